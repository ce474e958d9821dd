"""The registry (pipeline.toml) is edited by hand: every mistake in it is named at once, before any run."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from conftest import STREET
from pipeline.registry import Registry, RegistryError, demo_registry_path, load_registry, parse_registry


def parsed(change) -> Registry | RegistryError:
    data = copy.deepcopy(STREET)
    change(data)
    try:
        return parse_registry(data, Path("pipeline.toml"))
    except RegistryError as exc:
        return exc


def test_the_demo_street_and_the_test_street_are_read_as_written():
    demo = load_registry(demo_registry_path())
    assert len(demo.units) == 6 and sum(len(u.groups) for u in demo.units) == 33
    street = parsed(lambda d: None)
    assert [u.code for u in street.units] == ["U01", "U02", "U03"] and street.street.deadline_day == 5


@pytest.mark.parametrize("change, words", [
    (lambda d: d["units"][1].update(aliases=["甲村委会"]),
     "“甲村委会”同时是“甲村”和“乙社区”的名称或别名"),  # a 甲村 return could have been filed as 乙社区's
    (lambda d: d["units"][2].update(aliases=["丙村委会", "甲 村"]), "“甲 村”同时是“甲村”和“丙村”的名称或别名"),
    (lambda d: d["units"][2].update(code="U01"), "单位代码 U01 登记了两次(“甲村”和“丙村”)"),
    (lambda d: d["units"][0].update(groups=[]), "甲村) groups 没有列出任何小组"),
    (lambda d: d["units"][0].pop("groups"), "甲村) 缺少 groups"),
    (lambda d: d["units"][0].update(groups="一组,二组"), "groups 应写成方括号里加引号的名称"),
    (lambda d: d["units"][0].update(kind="镇"), "kind 只能是 村 或 社区,现在是 '镇'"),
    (lambda d: d["units"][1].pop("name"), "第 2 个 [[units]] 缺少 name"),
    (lambda d: d.pop("units"), "没有登记任何村(居)"),
    (lambda d: d.pop("street"), "缺少 [street] 一段"),
    (lambda d: d["street"].update(deadline_day=0), "deadline_day 应是 1 到 31 的整数"),
    (lambda d: d["street"].update(deadline_day="5号"), "deadline_day 应是 1 到 31 的整数"),
    (lambda d: d.update(settings={"swing_share": 10}), "swing_share 应是 0 到 1 之间的比例(0.10 即 10%),现在是 10"),
    (lambda d: d.update(settings={"swing_count": "20人"}), "swing_count 应是 0 或正整数"),
    (lambda d: d.update(settings={"mask_ids": "否"}), "mask_ids 应是 true 或 false"),
    (lambda d: d.update(settings={"stat_year_start_month": 13}), "stat_year_start_month 应是 1 到 12 的整数"),
    (lambda d: d.update(settings={"settle_seconds": -1}), "settle_seconds 应是 0 或正数"),
    (lambda d: d.update(settings={"inbox": ""}), "inbox 应是 加引号的文件夹或文件路径"),
    (lambda d: d.update(settings={"severity": {"roster-vs-tabel": "warning"}}),
     "没有叫 roster-vs-tabel 的规则,是不是 roster-vs-table?"),  # a typo used to be ignored without a word
    (lambda d: d.update(settings={"severity": {"roster-vs-table": "warn"}}),
     "roster-vs-table 应是 \"error\"、\"warning\" 或 \"info\",现在是 'warn'"),  # it failed the night's run
    (lambda d: d.update(settings={"colour": "red"}), "不认识的设置: colour"),
])
def test_a_mistake_in_the_registry_is_named_where_it_is(change, words):
    result = parsed(change)
    assert isinstance(result, RegistryError), result
    assert words in str(result) and str(result).startswith("登记文件 pipeline.toml:")


def test_what_can_only_mean_one_thing_is_read_so():
    """A group listed twice is listed once, 居委会 is the kind 社区: a working registry keeps its nights."""
    def lenient(d):
        d["units"][0]["groups"] = ["一组", "二组", "一组 "]
        d["units"][1]["kind"] = "居委会"

    street = parsed(lenient)
    assert street.units[0].groups == ("一组", "二组") and street.units[1].kind == "社区"


def test_every_mistake_is_named_in_one_message():
    def many(d):
        d["street"]["deadline_day"] = 40
        d["units"][1]["code"] = "U01"
        d["units"][2]["kind"] = "镇"
        d["settings"] = {"swing_share": "10%", "severity": {"duplicate-id": "提示"}}

    message = str(parsed(many))
    assert message.startswith("登记文件 pipeline.toml 有 5 处需要修改:")
    assert [line.split(".")[0].strip() for line in message.splitlines()[1:]] == ["1", "2", "3", "4", "5"]


def test_a_run_with_a_mistaken_registry_exits_2_and_says_what_to_change(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    text = demo_registry_path().read_text(encoding="utf-8").replace('aliases = ["红星村委会", "红星"]',
                                                                   'aliases = ["红星村委会", "满春"]')
    assert text != demo_registry_path().read_text(encoding="utf-8")
    (tmp_path / "pipeline.toml").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["run", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "“满春”同时是“满春村”和“红星村”的名称或别名" in result.output
    assert not (tmp_path / "history.sqlite").exists()  # nothing was started


def test_a_committee_written_by_its_formal_name_is_the_unit_it_can_only_be():
    """满春村村民委员会 on a cover was an unknown unit unless it was listed as an alias; the name without the
    committee's words names the unit, when exactly one unit of that kind has it."""
    street = parsed(lambda d: None)
    found = {text: (u.code if (u := street.find_unit(text)) else None)
             for text in ("甲村村民委员会", "甲村委会", "甲 村 民 委 员 会", "乙社区居民委员会", "乙居委会", "乙社区居委会",
                          "丙村委会", "乙村委会", "甲社区居委会", "村民委员会", "丁村村民委员会")}
    assert found == {"甲村村民委员会": "U01", "甲村委会": "U01", "甲 村 民 委 员 会": "U01", "乙社区居民委员会": "U02",
                     "乙居委会": "U02", "乙社区居委会": "U02", "丙村委会": "U03",
                     "乙村委会": None, "甲社区居委会": None,  # another kind of unit: not ours to guess
                     "村民委员会": None, "丁村村民委员会": None}

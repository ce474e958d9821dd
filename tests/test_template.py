"""`pipeline template`: the blank return, filled in correctly, is accepted; next month's comes pre-filled."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from conftest import PERIOD, RUN_DAY, clean_return, drop, make_id, retable, woman
from pipeline.forms import load_form
from pipeline.periods import shift
from pipeline.registry import Registry
from pipeline.returnbook import ReturnData
from pipeline.run import run, validate_files
from pipeline.store.history import History
from pipeline.template import GUIDE_SHEET, TemplateError, write_template

NEXT = shift(PERIOD, 1)
NEXT_RUN = dt.datetime(2026, 12, 3, 20, 0)


def header(ws) -> tuple[int, dict[str, int]]:
    """The header row of a template sheet and its column numbers by name."""
    for row in ws.iter_rows(min_row=1, max_row=10):
        names = {c.value: c.column for c in row if isinstance(c.value, str)}
        if "小组" in names and len(names) > 3:
            return row[0].row, names
    raise AssertionError(f"no header in {ws.title}")


def fill_cover(book, day: dt.date) -> None:
    ws = book["封面"]
    entries = {"填报人": "张三", "联系电话": "13900000000", "填报日期": day}
    for row in ws.iter_rows(min_col=1, max_col=1):
        if row[0].value in entries:
            ws.cell(row[0].row, 2).value = entries[row[0].value]


def fill_table(ws, frame: pd.DataFrame, *, first: int | None = None) -> None:
    """Write a frame's rows under the header (or from row `first`), by column name."""
    top, columns = header(ws)
    for r, record in enumerate(frame.to_dict("records"), start=first or top + 1):
        for name, value in record.items():
            if name in columns and value is not None and value == value:
                ws.cell(r, columns[name]).value = value


def fill_monthly(ws, frame: pd.DataFrame) -> None:
    """The figures of each group into the row the template lists it on."""
    top, columns = header(ws)
    rows = {ws.cell(r, columns["小组"]).value: r for r in range(top + 1, top + 20)}
    for record in frame.to_dict("records"):
        for name, value in record.items():
            if name != "小组" and name in columns:
                ws.cell(rows[record["小组"]], columns[name]).value = value


def filled(path: Path, data: ReturnData, day: dt.date) -> Path:
    """The template at `path` filled in with `data` (registers appended after any carried rows)."""
    book = openpyxl.load_workbook(path)
    fill_cover(book, day)
    fill_monthly(book["月报"], data.monthly)
    for sheet, frame in (("育龄妇女", data.roster), ("流动人口", data.floating)):
        fill_table(book[sheet], frame, first=book[sheet].max_row + 1)
    book.save(path)
    return path


def test_blank_template_lists_groups_and_guards_every_column(tmp_path, street):
    path = write_template(tmp_path / "模板.xlsx", street, "U01", PERIOD).path
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["封面", "月报", "育龄妇女", "流动人口", GUIDE_SHEET]
    cover = {r[0]: r[1] for r in book["封面"].iter_rows(values_only=True) if r[0]}
    assert cover["单位名称"] == "甲村" and cover["单位代码"] == "U01" and cover["报告期"] == "2026年10月"
    monthly = book["月报"]
    top, names = header(monthly)
    assert [monthly.cell(top + i, 1).value for i in (1, 2, 3)] == ["一组", "二组", "合计"]
    assert monthly.cell(top + 3, names["期末人口"]).value == f"=SUM(H{top + 1}:H{top + 2})"
    form = load_form()
    for spec in (form.women, form.floating):
        ws = book[spec.name]
        top, columns = header(ws)
        rules = {(dv.type, str(dv.formula1)): str(dv.sqref) for dv in ws.data_validations.dataValidation}
        for col in spec.columns_of_type("code"):
            letter = openpyxl.utils.get_column_letter(columns[col.name])
            assert rules[("list", '"' + ",".join(col.list) + '"')].startswith(f"{letter}{top + 1}:"), col.name
        assert ("list", '"一组,二组"') in rules and ("textLength", "18") in rules
        id_letter = openpyxl.utils.get_column_letter(columns["身份证号"])
        assert ws.column_dimensions[id_letter].number_format == "@"
        assert ws.protection.sheet and ws.freeze_panes == f"A{top + 1}"
        assert not ws.column_dimensions[id_letter].protection.locked and ws.cell(top, 1).protection.locked
    counts = [dv for dv in monthly.data_validations.dataValidation if dv.type == "whole"]
    assert len(counts) == len([c for c in form.monthly.columns if c.type == "count" and c.name in names])
    assert all(dv.operator == "greaterThanOrEqual" and dv.formula1 == "0" for dv in counts)
    assert not monthly.cell(4, names["出生"]).protection.locked and monthly.cell(4, 1).protection.locked
    assert monthly.protection.sheet and monthly.freeze_panes == "B4"
    assert "截止" in " ".join(str(v) for r in book[GUIDE_SHEET].iter_rows(values_only=True) for v in r)


def test_template_filled_in_correctly_is_accepted(tmp_path, street):
    path = write_template(tmp_path / "模板.xlsx", street, "U01", PERIOD).path
    filled(path, clean_return(street), dt.date(2026, 11, 2))
    [(_, found)] = validate_files([path], street, PERIOD, RUN_DAY)
    assert found == []


def test_unknown_unit_has_no_template(tmp_path, street):
    with pytest.raises(TemplateError):
        write_template(tmp_path / "x.xlsx", street, "U99", PERIOD)


def first_month(street: Registry) -> ReturnData:
    """October: 3 women and 2 floating persons per group; one woman moves out, one turns 50 in November,
    one floating person leaves."""
    data = clean_return(street)
    data.roster.at[5, "变动"] = "迁出"
    data.roster.at[4, "身份证号"] = make_id("640102", dt.date(1976, 11, 15), 40, True)  # 50 in November
    data.floating.at[3, "流出日期"] = dt.date(2026, 10, 20)
    retable(data)
    return data


def settle(path: Path) -> None:
    """A settled modification time, as `drop` gives (the run reads only files no longer being copied)."""
    stamp = RUN_DAY.timestamp() - 3600
    os.utime(path, (stamp, stamp))


def test_next_month_template_carries_the_accepted_month_forward(workspace, street):
    october = first_month(street)
    drop(workspace, "甲村10月.xlsx", october)
    assert run(workspace, street, now=RUN_DAY).exit_code == 0
    with History(workspace.history) as history:
        path = write_template(workspace.root / "甲村11月.xlsx", street, "U01", NEXT, prefill_from=history).path
    book = openpyxl.load_workbook(path)
    monthly = pd.DataFrame(list(book["月报"].iter_rows(min_row=3, max_row=5, values_only=True)))
    monthly = monthly.rename(columns=monthly.iloc[0]).iloc[1:].set_index("小组")
    assert dict(monthly["期初人口"]) == dict(zip(october.monthly["小组"], october.monthly["期末人口"]))
    roster = pd.DataFrame(list(book["育龄妇女"].iter_rows(min_row=2, values_only=True)))
    roster = roster.rename(columns=roster.iloc[0]).iloc[1:]
    assert october.roster.at[5, "身份证号"] not in set(roster["身份证号"])  # moved out last month: gone
    assert len(roster) == 5 and set(roster["序号"]) == {1, 2, 3, 4, 5}
    changes = dict(zip(roster["身份证号"], roster["变动"]))
    assert changes.pop(october.roster.at[4, "身份证号"]) == "超龄" and set(changes.values()) == {"无"}
    floating = [r for r in book["流动人口"].iter_rows(min_row=3, values_only=True) if r[0] is not None]
    assert len(floating) == 3  # the leaver is not carried over
    assert monthly.at["二组", "已婚育龄妇女"] == 1 and monthly.at["一组", "已婚育龄妇女"] == 3


def test_next_month_from_the_template_with_only_changes_entered_is_accepted(workspace, street):
    drop(workspace, "甲村10月.xlsx", first_month(street))
    assert run(workspace, street, now=RUN_DAY).exit_code == 0
    with History(workspace.history) as history:
        path = write_template(workspace.inbox / "甲村11月.xlsx", street, "U01", NEXT, prefill_from=history).path
    book = openpyxl.load_workbook(path)
    fill_cover(book, dt.date(2026, 12, 2))
    top, columns = header(book["月报"])
    newcomer = woman("一组", 60, measure="上环") | {"变动": "新增", "序号": 6}
    fill_table(book["育龄妇女"], pd.DataFrame([newcomer]), first=book["育龄妇女"].max_row + 1)
    for r in (top + 1, top + 2):
        opening = book["月报"].cell(r, columns["期初人口"]).value
        joined = int(book["月报"].cell(r, 1).value == "一组")
        figures = {"出生": 0, "死亡": 1, "迁入": 2 + joined, "迁出": 0, "期末人口": opening + 1 + joined,
                   "政策内出生": 0}
        for name, value in figures.items():
            book["月报"].cell(r, columns[name]).value = value
        for name in ("已婚育龄妇女", "节育措施"):
            book["月报"].cell(r, columns[name]).value += joined
    book.save(path)
    settle(path)
    result = run(workspace, street, now=NEXT_RUN)
    assert [(o.period, o.status) for o in result.outcomes] == [(NEXT, "accepted")]
    report = json.loads((workspace.outbox / NEXT / "report.json").read_text(encoding="utf-8"))
    errors = [(f["code"], f["cell"]) for f in report["findings"] if f["period"] == NEXT and f["severity"] == "error"]
    assert errors == []


def test_template_command_writes_a_blank_and_a_prefilled_template(workspace, street):
    from click.testing import CliRunner

    from test_cli import registry_file
    from pipeline.cli import main

    config = registry_file(workspace.root)
    drop(workspace, "甲村10月.xlsx", first_month(street))
    run(workspace, street, now=RUN_DAY)
    cli = CliRunner()
    blank = cli.invoke(main, ["template", "--unit", "U01", "--period", PERIOD, "--config", str(config),
                              "-o", str(workspace.root / "blank.xlsx")])
    assert blank.exit_code == 0, blank.output
    assert openpyxl.load_workbook(workspace.root / "blank.xlsx")["育龄妇女"].max_row == 2
    carried = cli.invoke(main, ["template", "--unit", "U01", "--period", NEXT, "--config", str(config),
                                "--from-history", "--workdir", str(workspace.root),
                                "-o", str(workspace.root / "next.xlsx")])
    assert carried.exit_code == 0, carried.output
    assert "2026-10" in carried.output
    assert openpyxl.load_workbook(workspace.root / "next.xlsx")["育龄妇女"].max_row == 2 + 5
    nothing = cli.invoke(main, ["template", "--unit", "U02", "--period", NEXT, "--config", str(config),
                                "--from-history", "--workdir", str(workspace.root), "-o", "x.xlsx"])
    assert nothing.exit_code == 2 and "没有已接收的月报" in nothing.output

"""Shared builders: a tiny street, clean returns made from a few persons, working folders."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest
from stdnum.cn import ric

from pipeline.periods import month_end, shift
from pipeline.registry import Registry, parse_registry
from pipeline.returnbook import ReturnData, write_return
from pipeline.workspace import Workspace

PERIOD = "2026-10"
RUN_DAY = dt.datetime(2026, 11, 3, 20, 0)
STREET = {
    "street": {"code": "640104001000", "name": "测试街道", "district": "兴庆区", "deadline_day": 5},
    "units": [
        {"code": "U01", "name": "甲村", "kind": "村", "aliases": ["甲村委会"], "groups": ["一组", "二组"]},
        {"code": "U02", "name": "乙社区", "kind": "社区", "aliases": ["乙居委会"], "groups": ["第一居民小组"]},
        {"code": "U03", "name": "丙村", "kind": "村", "aliases": [], "groups": ["一组"]},
    ],
}


def make_id(area: str, birth: dt.date, serial: int, female: bool) -> str:
    """A valid 18-digit ID number (17th digit even for a woman)."""
    seq = f"{serial % 50:02d}{(serial % 5) * 2 + (0 if female else 1)}"
    body = f"{area}{birth:%Y%m%d}{seq}"
    return body + ric.calc_check_digit(body + "0")


def woman(group: str, serial: int, *, measure: str = "上环", pregnant: bool = False, birth_year: int = 1990,
          change: str = "无", area: str = "640102") -> dict:
    return {"序号": serial, "姓名": f"王{serial}梅", "身份证号": make_id(area, dt.date(birth_year, 3, 1), serial, True),
            "小组": group, "结婚日期": dt.date(2012, 5, 1), "现有子女数": 1, "节育措施": measure,
            "措施日期": dt.date(2014, 6, 1) if measure != "无" else None, "孕情": "孕中" if pregnant else "无",
            "末次生育日期": dt.date(2013, 8, 1), "变动": change, "是否流动": "否", "备注": None}


def floater(group: str, serial: int, *, female: bool = True, married: bool = True, measure: str | None = "上环",
            certified: bool = True, verified: bool = True, birth_year: int = 1992, area: str = "622921") -> dict:
    return {"序号": serial, "姓名": f"李{serial}", "性别": "女" if female else "男",
            "身份证号": make_id(area, dt.date(birth_year, 7, 9), serial + 7, female), "户籍地": "甘肃省临夏县",
            "现居住地": "测试街道幸福路1号", "小组": group, "流入日期": dt.date(2025, 3, 1), "流出日期": None,
            "就业情况": "务工", "婚姻状况": "已婚" if married else "未婚",
            "节育措施": measure if (female and married) else None, "婚育证明": "有" if certified else "无",
            "验证": "是" if verified else "否", "联系电话": f"1380000{serial:04d}"}


def table_from(groups: list[str], women: list[dict], floaters: list[dict], period: str = PERIOD,
               starts: dict[str, int] | None = None) -> pd.DataFrame:
    """The 月报 rows that agree with the registers (and balance)."""
    rows = []
    for i, g in enumerate(groups):
        w = [x for x in women if x["小组"] == g and x["变动"] not in ("迁出", "死亡", "超龄", "离异丧偶")]
        first, end = dt.date(int(period[:4]), int(period[5:]), 1), month_end(period)
        f = [x for x in floaters if x["小组"] == g and not (x["流出日期"] and x["流出日期"] <= end)]
        fw = [x for x in f if x["性别"] == "女"]
        start = (starts or {}).get(g, 400 + 100 * i)
        born = sum(bool(x["末次生育日期"]) and first <= x["末次生育日期"] <= end for x in w)
        rows.append({"小组": g, "期初人口": start, "出生": born, "死亡": 1, "迁入": 3, "迁出": 1,
                     "期末人口": start + born + 1, "政策内出生": born, "怀孕": sum(x["孕情"] == "孕中" for x in w), "已婚育龄妇女": len(w),
                     "节育措施": sum(x["节育措施"] != "无" for x in w), "独生子女证": 5, "流动人口": len(f),
                     "流动育龄妇女": len(fw),
                     "流动节育措施": sum(x["婚姻状况"] == "已婚" and x["节育措施"] not in (None, "无") for x in fw),
                     "持证人数": sum(x["婚育证明"] == "有" for x in f), "验证人数": sum(x["验证"] == "是" for x in f)})
    return pd.DataFrame(rows)


def clean_return(registry: Registry, code: str = "U01", period: str = PERIOD, first_serial: int = 1) -> ReturnData:
    """A clean, consistent return of one unit: 3 women and 2 floating persons per group."""
    unit = registry.unit_by_code(code)
    women, floaters = [], []
    n = first_serial
    for g in unit.groups:
        women += [woman(g, n), woman(g, n + 1, measure="无", pregnant=True), woman(g, n + 2, measure="女扎")]
        floaters += [floater(g, n), floater(g, n + 1, female=False, married=False, measure=None)]
        n += 3
    cover = {"单位名称": unit.name, "单位代码": unit.code, "报告期": period, "填报人": "张三",
             "联系电话": "13900000000", "填报日期": dt.date(*map(int, shift(period, 1).split("-")), 2)}
    return ReturnData(cover, table_from(list(unit.groups), women, floaters, period), pd.DataFrame(women),
                      pd.DataFrame(floaters))


def next_month(data: ReturnData, births: int = 0) -> ReturnData:
    """The same unit one month on, nothing changed but what the test plants: 期初 = last 期末.

    `births`: that many women not pregnant give birth on the 10th of the new month.
    """
    period = shift(str(data.cover["报告期"]), 1)
    roster = data.roster.copy()
    roster = roster[~roster["变动"].isin(["迁出", "死亡", "超龄", "离异丧偶"])].reset_index(drop=True)
    roster["变动"] = "无"
    mothers = roster.index[roster["孕情"] == "孕中"][:births]
    roster.loc[mothers, "末次生育日期"] = dt.date(int(period[:4]), int(period[5:]), 10)
    roster.loc[mothers, "孕情"] = "无"
    roster.loc[mothers, "备注"] = None
    floating = data.floating.copy()
    starts = dict(zip(data.monthly["小组"], data.monthly["期末人口"]))
    cover = {**data.cover, "报告期": period, "填报日期": dt.date(*map(int, shift(period, 1).split("-")), 2)}
    return ReturnData(cover, table_from(list(data.monthly["小组"]), roster.to_dict("records"),
                                        floating.to_dict("records"), period, starts), roster, floating)


def retable(data: ReturnData) -> None:
    """After a register changed, make the table agree with it again (keeping 期初人口)."""
    starts = dict(zip(data.monthly["小组"], data.monthly["期初人口"]))
    data.monthly = table_from(list(data.monthly["小组"]), data.roster.to_dict("records"),
                              data.floating.to_dict("records"), str(data.cover["报告期"]), starts)


@pytest.fixture
def street() -> Registry:
    return parse_registry(STREET, Path("test-street.toml"))


@pytest.fixture
def workspace(tmp_path: Path, street: Registry) -> Workspace:
    ws = Workspace.at(tmp_path, street.settings)
    ws.create()
    return ws


def drop(ws_or_dir, name: str, data: ReturnData, **kwargs) -> Path:
    """Write a return into an inbox with a settled modification time."""
    folder = ws_or_dir.inbox if isinstance(ws_or_dir, Workspace) else Path(ws_or_dir)
    path = write_return(folder / name, data, **kwargs)
    old = RUN_DAY.timestamp() - 3600
    os.utime(path, (old, old))
    return path


WINDOWS_IN_USE = "另一个程序正在使用此文件,进程无法访问。"  # what Windows says of a file open in Excel


def open_in_excel(monkeypatch, path: Path) -> None:
    """Make `path` as Windows makes a file Excel has open: it cannot be removed (os.unlink raises
    PermissionError) until monkeypatch.undo()."""
    real_unlink = os.unlink

    def unlink(target, *args, **kwargs):
        if Path(target) == path:
            raise PermissionError(13, WINDOWS_IN_USE, str(target))
        real_unlink(target, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)

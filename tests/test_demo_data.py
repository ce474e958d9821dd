"""The demo street's synthetic month: exact street totals, rosters that agree with 月报, a readable workbook."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pandas as pd
import pytest
from stdnum.cn import ric

from pipeline.demo_data import STREET_TOTALS, demo_month, with_clerk_mistakes
from pipeline.registry import demo_registry_path, load_registry
from pipeline.returnbook import write_return

PERIOD = "2026-10"
START, END = dt.date(2026, 10, 1), dt.date(2026, 10, 31)
MEASURES = {"无", "上环", "女扎", "男扎", "皮埋", "药具", "其他"}


@pytest.fixture(scope="module")
def registry():
    return load_registry(demo_registry_path())


@pytest.fixture(scope="module")
def month(registry):
    return demo_month(registry, PERIOD)


def age_at(number: str, day: dt.date) -> int:
    born = ric.get_birth_date(number)
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def blank(value) -> bool:
    return value is None or (not isinstance(value, (str, dt.date)) and pd.isna(value))


def test_street_totals_are_exact(month):
    monthly = pd.concat([r.monthly for r in month.values()])
    assert len(monthly) == 33
    for column, total in STREET_TOTALS.items():
        assert monthly[column].sum() == total, column
    assert 10 <= monthly["出生"].sum() <= 20 and 3 <= monthly["死亡"].sum() <= 10
    assert monthly["迁入"].sum() > 0 and monthly["迁出"].sum() > 0
    assert monthly["期末人口"].between(250, 1100).all()


def test_group_rows_balance(month, registry):
    for unit in registry.units:
        m = month[unit.code].monthly
        assert list(m["小组"]) == list(unit.groups)
        assert "合计" not in set(m["小组"])
        assert (m["期末人口"] == m["期初人口"] + m["出生"] - m["死亡"] + m["迁入"] - m["迁出"]).all()
        assert (m["一孩"] + m["二孩"] + m["多孩"] == m["出生"]).all()
        assert (m["政策内出生"] <= m["出生"]).all()
        assert (m["节育措施"] <= m["已婚育龄妇女"]).all()
        assert (m["验证人数"] <= m["持证人数"]).all()
        assert (m["流动节育措施"] <= m["流动育龄妇女"]).all()


def test_roster_agrees_with_monthly(month):
    for code, data in month.items():
        roster = data.roster
        assert list(roster["序号"]) == list(range(1, len(roster) + 1))
        for _, row in data.monthly.iterrows():
            women = roster[roster["小组"] == row["小组"]]
            assert len(women) == row["已婚育龄妇女"], (code, row["小组"])
            assert (women["节育措施"] != "无").sum() == row["节育措施"]
            assert (women["孕情"] == "孕中").sum() == row["怀孕"]
            born = women[women["末次生育日期"].map(lambda d: d is not None and START <= d <= END)]
            assert len(born) == row["出生"] and (born["孕情"] == "无").all()
        for w in roster.itertuples():
            assert 15 <= age_at(w.身份证号, END) <= 49
            assert int(w.身份证号[16]) % 2 == 0
            assert age_at(w.身份证号, w.结婚日期) >= 18
            assert w.结婚日期 <= END and 0 <= w.现有子女数 <= 3
            assert w.节育措施 in MEASURES and w.孕情 in {"无", "孕中"}
            if w.节育措施 != "无":
                assert w.结婚日期 <= w.措施日期 <= END
            else:
                assert w.措施日期 is None
            assert w.末次生育日期 is None or w.末次生育日期 <= END
            assert w.变动 in {"无", "新增"} and w.是否流动 == "否" and blank(w.备注)
        assert (roster["变动"] == "新增").sum() < len(roster) / 50


def test_floating_register_agrees_with_monthly(month):
    for code, data in month.items():
        reg = data.floating
        for _, row in data.monthly.iterrows():
            people = reg[reg["小组"] == row["小组"]]
            assert len(people) == row["流动人口"], (code, row["小组"])
            women = people[(people["性别"] == "女") & people["身份证号"].map(lambda n: 15 <= age_at(n, END) <= 49)]
            assert len(women) == row["流动育龄妇女"]
            has_measure = women["节育措施"].map(lambda v: not blank(v) and v != "无")
            assert ((women["婚姻状况"] == "已婚") & has_measure).sum() == row["流动节育措施"]
            assert (people["婚育证明"] == "有").sum() == row["持证人数"]
            assert ((people["婚育证明"] == "有") & (people["验证"] == "是")).sum() == row["验证人数"]
        for p in reg.itertuples():
            assert p.性别 == ("男" if int(p.身份证号[16]) % 2 else "女")
            fertile = p.性别 == "女" and p.婚姻状况 == "已婚" and 15 <= age_at(p.身份证号, END) <= 49
            assert (not blank(p.节育措施)) == fertile and (blank(p.节育措施) or p.节育措施 in MEASURES)
            assert p.验证 == "否" or p.婚育证明 == "有"
            assert p.流入日期 <= END and blank(p.流出日期)
            assert "丽景街道" in p.现居住地 and p.户籍地
            assert blank(p.联系电话) or (len(p.联系电话) == 11 and p.联系电话.isdigit() and p.联系电话[0] == "1")


def test_ids_unique_and_valid_across_street(month):
    ids = [n for d in month.values() for n in (*d.roster["身份证号"], *d.floating["身份证号"])]
    assert len(ids) == len(set(ids)) == STREET_TOTALS["已婚育龄妇女"] + STREET_TOTALS["流动人口"]
    assert all(ric.is_valid(n) for n in ids)


def test_cover(month, registry):
    for unit in registry.units:
        cover = month[unit.code].cover
        assert cover["单位名称"] == unit.name and cover["单位代码"] == unit.code and cover["报告期"] == PERIOD
        assert cover["填报日期"] == dt.date(2026, 11, 3) and cover["填报人"]
        assert len(cover["联系电话"]) == 11 and cover["联系电话"].startswith("1")


def test_same_seed_same_data(registry, month):
    again = demo_month(registry, PERIOD)
    for code, data in month.items():
        assert data.cover == again[code].cover
        for sheet in ("monthly", "roster", "floating"):
            pd.testing.assert_frame_equal(getattr(data, sheet), getattr(again[code], sheet))


def test_workbook_layout(month, tmp_path):
    data = month["640104001001"]
    path = write_return(tmp_path / "满春村.xlsx", data)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["封面", "月报", "育龄妇女", "流动人口"]
    cover = wb["封面"]
    assert cover["A1"].value == "村(居)人口与计划生育月报"
    assert (cover["A3"].value, cover["B3"].value) == ("单位名称", "满春村")
    assert cover["B4"].value == "640104001001" and cover["B4"].data_type == "s"
    assert cover["B8"].value == dt.datetime(2026, 11, 3)

    ws = wb["月报"]
    assert "2026年10月" in ws["A1"].value and ws["A2"].value == "单位:人"
    header = [c.value for c in ws[3]]
    assert header == list(data.monthly.columns)
    total_row = 4 + len(data.monthly)
    assert ws.cell(total_row, 1).value == "合计"
    col = header.index("期末人口") + 1
    letter = openpyxl.utils.get_column_letter(col)
    assert ws.cell(total_row, col).value == f"=SUM({letter}4:{letter}{total_row - 1})"
    assert ws.cell(total_row + 1, 1).value is None
    assert ws.cell(total_row + 2, 1).value == "注:本表由村(居)计生专干填报"
    cached = openpyxl.load_workbook(path, data_only=True)["月报"]
    assert cached.cell(total_row, col).value == data.monthly["期末人口"].sum()

    women = wb["育龄妇女"]
    assert [c.value for c in women[2]] == list(data.roster.columns)
    assert women.max_row == 2 + len(data.roster)
    id_cell = women.cell(3, list(data.roster.columns).index("身份证号") + 1)
    assert id_cell.data_type == "s" and id_cell.value == data.roster["身份证号"][0]
    assert women.cell(3, list(data.roster.columns).index("结婚日期") + 1).number_format == "yyyy-mm-dd"
    floating = wb["流动人口"]
    phone = floating.cell(3, list(data.floating.columns).index("联系电话") + 1)
    assert phone.data_type == "s"
    blank_col = list(data.floating.columns).index("流出日期") + 1
    assert all(floating.cell(r, blank_col).value is None for r in range(3, floating.max_row + 1))


def test_workbook_without_titles_or_total(month, tmp_path):
    data = month["640104001005"]
    wb = openpyxl.load_workbook(write_return(tmp_path / "r.xlsx", data, total_row=False, title_rows=False))
    assert wb["封面"]["A1"].value == "单位名称"
    for name, frame in (("月报", data.monthly), ("育龄妇女", data.roster), ("流动人口", data.floating)):
        assert [c.value for c in wb[name][1]] == list(frame.columns)
    ws = wb["月报"]
    assert "合计" not in [ws.cell(r, 1).value for r in range(1, ws.max_row + 1)]
    assert ws.cell(len(data.monthly) + 3, 1).value == "注:本表由村(居)计生专干填报"


def changed_cells(a: pd.DataFrame, b: pd.DataFrame) -> set[tuple[int, str]]:
    """(row, column) of every cell that differs, blanks (None/NaN) being equal."""
    x, y = (f.astype(object).where(f.notna(), None).to_numpy() for f in (a, b))
    return {(int(i), a.columns[j]) for i, j in zip(*(x != y).nonzero())}


def test_clerk_mistakes_are_the_documented_ones(month, registry):
    for unit in registry.units:
        clean = month[unit.code]
        bad = with_clerk_mistakes(clean)
        assert bad.cover == clean.cover
        monthly = changed_cells(clean.monthly, bad.monthly)
        assert {c for _, c in monthly} == {"期末人口", "小组"} and len(monthly) == 2
        (i, _), = [x for x in monthly if x[1] == "期末人口"]
        old, new = str(clean.monthly.at[i, "期末人口"]), str(bad.monthly.at[i, "期末人口"])
        assert sorted(old) == sorted(new) and old[:-2] == new[:-2]
        last = len(clean.monthly) - 1
        assert bad.monthly.at[last, "小组"] == f"{len(unit.groups) + 1}组"
        assert bad.monthly.at[last, "小组"] not in unit.groups
        m = bad.monthly
        assert (m["期末人口"] != m["期初人口"] + m["出生"] - m["死亡"] + m["迁入"] - m["迁出"]).sum() == 1

        roster = changed_cells(clean.roster, bad.roster)
        assert roster == {(0, "身份证号"), (roster_measure_row(bad), "节育措施")}
        assert not ric.is_valid(bad.roster.at[0, "身份证号"])
        assert bad.roster.at[0, "身份证号"][:17] == clean.roster.at[0, "身份证号"][:17]
        floating = changed_cells(clean.floating, bad.floating)
        assert len(floating) == 1 and {c for _, c in floating} == {"联系电话"}
        (k, _), = floating
        assert len(bad.floating.at[k, "联系电话"]) == 10
        # the clean data is untouched
        assert ric.is_valid(clean.roster.at[0, "身份证号"]) and "上环术" not in set(clean.roster["节育措施"])


def roster_measure_row(bad) -> int:
    rows = list(bad.roster.index[bad.roster["节育措施"] == "上环术"])
    assert len(rows) == 1
    return rows[0]

"""The district summary workbook: read back with openpyxl, checked cell by cell."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from pipeline.findings import Finding, Severity
from pipeline.forms import load_form
from pipeline.merge import RATE_COLUMNS, street_table, year_to_date
from pipeline.period import PeriodState, Submission
from pipeline.periods import deadline, stat_year_months
from pipeline.registry import parse_registry
from pipeline.resources import load_schema_file
from pipeline.store.history import StoredReturn
from pipeline.write.street_report import write_street_report
from pipeline.write.summary import floating_counter, month_ranges, write_summary

PERIOD = "2026-03"
COUNTS = [c.name for c in load_form().monthly.columns if c.type == "count"]
MARCH = {"期初人口": 1000, "出生": 3, "死亡": 1, "迁入": 2, "迁出": 1, "期末人口": 1003, "政策内出生": 3, "怀孕": 4,
         "已婚育龄妇女": 200, "节育措施": 180, "独生子女证": 10, "流动人口": 2, "流动育龄妇女": 1,
         "流动节育措施": 1, "持证人数": 2, "验证人数": 1}
FEBRUARY = {**MARCH, "期初人口": 998, "出生": 2, "死亡": 0, "迁入": 0, "迁出": 0, "期末人口": 1000, "政策内出生": 2,
            "已婚育龄妇女": 199, "节育措施": 170}
IDS = ["640104199001011236", "640104198505052348", "640104199212120017"]
NAMES = ["张三丰", "李四娘", "王五郎"]


def registry():
    return parse_registry({
        "street": {"code": "640104001000", "name": "丽景街道", "district": "兴庆区"},
        "units": [
            {"code": "A01", "name": "满春村", "kind": "村", "groups": ["一组"]},
            {"code": "B02", "name": "新华社区", "kind": "社区", "groups": ["一组"]},
            {"code": "C03", "name": "永安村", "kind": "村", "groups": ["一组"]},
        ],
    }, Path("test.toml"))


def totals(figures: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame([figures], index=["A01"], dtype=float).reindex(columns=COUNTS)


def stored(rid: int, name: str, unit: str | None, status: str, received: dt.datetime, reason: str = "") -> StoredReturn:
    return StoredReturn(rid, f"sha{rid}", name, f"archive/{name}", unit, PERIOD, status, status, received,
                        received.date(), reason)


def floating() -> pd.DataFrame:
    person = {"性别": "男", "婚姻状况": "已婚", "就业情况": "务工", "婚育证明": "有", "验证": "是", "节育措施": None,
              "联系电话": "13800138000", "流出日期": None}
    records = [
        {**person, "姓名": NAMES[0], "身份证号": IDS[0]},
        {**person, "姓名": NAMES[1], "身份证号": IDS[1], "性别": "女", "就业情况": "经商", "验证": "否",
         "流出日期": "2026-04-02"},  # leaves after the month: still counted
        {**person, "姓名": NAMES[2], "身份证号": IDS[2], "流出日期": "2026-03-15"},  # left in the month
    ]
    return pd.DataFrame({"return_id": 1, "id_number": IDS, "grp": "一组", "record": records, "unit": "A01"})


def build_state(last_table: pd.DataFrame | None = None) -> PeriodState:
    reg = registry()
    months = stat_year_months(PERIOD, 1)
    ytd = year_to_date({"2026-02": totals(FEBRUARY), PERIOD: totals(MARCH)}, months)
    table = street_table(totals(MARCH), ytd, [u.code for u in reg.units])
    accepted = stored(1, "满春村2026年3月.xlsx", "A01", "accepted", dt.datetime(2026, 4, 3, 9, 30))
    rejected = stored(2, "新华社区月报.xlsx", "B02", "rejected", dt.datetime(2026, 4, 8, 16, 0))
    quarantined = stored(3, "不明文件.xlsx", None, "quarantined", dt.datetime(2026, 4, 9, 8, 0), "无法识别单位")
    due = deadline(PERIOD, reg.street.deadline_day)
    a, b, c = reg.units
    submissions = [
        Submission(a, accepted, [Finding("swing", Severity.WARNING, unit="A01")], due),
        Submission(b, rejected, [Finding("not-a-number", Severity.ERROR, unit="B02"),
                                 Finding("negative", Severity.ERROR, unit="B02")], due),
        Submission(c, None, [], due),
    ]
    return PeriodState(PERIOD, reg, submissions, [accepted, rejected, quarantined], [], table, last_table, ytd,
                       floating_counter(PERIOD)(floating()), dt.datetime(2026, 4, 10, 8, 0))


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "outbox" / PERIOD / "汇总.xlsx"
    write_summary(build_state(), path)
    return openpyxl.load_workbook(path)


def rows_of(ws) -> list[list]:
    return [tuple(r) for r in ws.iter_rows(values_only=True)]


def header_index(ws) -> tuple[int, list]:
    """The 1-based row of the 汇总 header and its cells."""
    for cells in ws.iter_rows():
        if cells[0].value == "单位":
            return cells[0].row, [c.value for c in cells]
    raise AssertionError("no header row")


def unit_rows(ws) -> dict[str, dict]:
    """汇总 rows below the header, by their first cell, as {header: cell}."""
    at, headers = header_index(ws)
    found = {}
    for cells in ws.iter_rows(min_row=at + 1):
        if cells[0].value in ("满春村", "新华社区", "永安村", "合计"):
            found[cells[0].value] = dict(zip(headers, cells))
    return found


def test_sheets_and_title(book):
    assert book.sheetnames == ["汇总", "报送情况", "环比", "流动人口汇总"]
    ws = book["汇总"]
    assert ws["A1"].value == "人口与计划生育统计月报表"
    assert ws["A1"].font.b and ws["A1"].alignment.horizontal == "center"
    assert any(str(r).startswith("A1:") for r in ws.merged_cells.ranges)
    texts = [c for row in rows_of(ws)[:3] for c in row if isinstance(c, str)]
    assert any("表号:" in t and "制表机关:兴庆区" in t and "批准文号:" in t for t in texts)
    assert "填报单位:兴庆区丽景街道" in texts
    assert "报告期:2026年3月" in texts


def test_header_columns_in_template_order(book):
    _, headers = header_index(book["汇总"])
    rates = ["出生率‰", "自然增长率‰", "综合节育率%", "计划生育率%", "流动育龄妇女节育率%"]
    assert headers == ["单位", *COUNTS, "本年累计出生", *rates, "报送状态"]


def test_every_registered_unit_has_a_row_with_its_status(book):
    rows = unit_rows(book["汇总"])
    assert list(rows) == ["满春村", "新华社区", "永安村", "合计"]
    assert [rows[u]["报送状态"].value for u in ("满春村", "新华社区", "永安村")] == ["已接收", "已退回", "未报送"]
    for unit in ("新华社区", "永安村"):
        assert all(rows[unit][c].value is None for c in [*COUNTS, "本年累计出生", "出生率‰"])


def test_total_row_values_and_formats(book):
    total = unit_rows(book["汇总"])["合计"]
    assert total["期末人口"].value == 1003
    assert total["本年累计出生"].value == 5
    assert total["单位"].font.b and total["期末人口"].font.b
    for name in ("期初人口", "已婚育龄妇女", "本年累计出生"):
        assert isinstance(total[name].value, (int, float)) and total[name].number_format == "#,##0"
    assert total["往年出生补报"].value is None  # an optional column no unit filled stays blank


def test_rates_are_numbers_computed_from_counts(book):
    row = unit_rows(book["汇总"])["满春村"]
    assert row["综合节育率%"].value == pytest.approx(90.0)
    assert row["综合节育率%"].number_format == "0.0"
    # 年初人口 from February, the first month held: 5 / ((998 + 1003) / 2) × 1000
    assert row["出生率‰"].value == pytest.approx(5 / 1000.5 * 1000)
    assert row["计划生育率%"].value == pytest.approx(100.0)
    assert all(isinstance(row[h].value, (int, float)) and row[h].number_format == "0.0"
               for h in ("出生率‰", "自然增长率‰", "综合节育率%", "流动育龄妇女节育率%"))


def test_year_to_date_gap_note_and_footer(book):
    texts = [c for row in rows_of(book["汇总"]) for c in row if isinstance(c, str)]
    assert "注:本年累计数缺 2026年1月 的已接收月报,年初人口取自 2026年2月 的期初人口。" in texts
    footer = next(t for t in texts if t.startswith("单位负责人:"))
    assert "统计负责人:" in footer and "填表人:" in footer and footer.endswith("报出日期:2026年4月10日")


def printed_one_page_wide(ws, header: int) -> bool:
    """Landscape A4, fit to one page wide (1 wide is the default) and as many down, `header` on each page."""
    return (ws.page_setup.orientation == "landscape" and ws.page_setup.paperSize == 9
            and ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToHeight == 0
            and ws.print_title_rows == f"${header}:${header}")


def test_summary_page_setup(book):
    ws = book["汇总"]
    at, _ = header_index(ws)
    assert ws.freeze_panes == f"B{at + 1}"
    assert printed_one_page_wide(ws, at)
    assert all(printed_one_page_wide(book[name], 1) for name in ("报送情况", "环比", "流动人口汇总"))


def test_street_report_prints_every_column_on_one_landscape_page_wide(tmp_path):
    path, state = tmp_path / "错误报告.xlsx", build_state()
    write_street_report(state, path, findings=[f for s in state.submissions for f in s.findings])
    book = openpyxl.load_workbook(path)
    assert printed_one_page_wide(book["全部问题"], 4) and printed_one_page_wide(book["按单位统计"], 1)


def test_submission_rows(book):
    rows = rows_of(book["报送情况"])
    assert list(rows[0]) == ["单位代码", "单位名称", "类别", "报送文件", "收到时间", "截止日期", "是否按时", "状态", "错误数",
                       "警告数"]
    assert list(rows[1]) == ["A01", "满春村", "村", "满春村2026年3月.xlsx", "2026-04-03 09:30", "2026-04-05", "按时", "已接收",
                       0, 1]
    assert list(rows[2]) == ["B02", "新华社区", "社区", "新华社区月报.xlsx", "2026-04-08 16:00", "2026-04-05", "逾期3天",
                       "已退回", 2, 0]
    assert list(rows[3]) == ["C03", "永安村", "村", None, None, "2026-04-05", "逾期未报", "未报送", 0, 0]
    ws = book["报送情况"]
    assert ws["H3"].fill.fgColor.rgb.endswith("FFC7CE") and ws["H4"].fill.fgColor.rgb.endswith("FFC7CE")
    quarantined = [r for r in rows if r[0] == "不明文件.xlsx"]
    assert quarantined and "无法识别单位" in quarantined[0]


def test_month_on_month_without_history(book):
    rows = rows_of(book["环比"])
    assert list(rows[0]) == ["单位", "指标", "本月", "上月", "增减", "增减%"]
    assert rows[1][0] == "上月无已接收的月报,暂无环比数据。"
    assert len(rows) == 2


def test_month_on_month_against_last_month(tmp_path):
    path = tmp_path / "汇总.xlsx"
    write_summary(build_state(last_table=totals(FEBRUARY)), path)
    ws = openpyxl.load_workbook(path)["环比"]
    rows = {(r[0], r[1]): r[2:] for r in rows_of(ws)[1:]}
    assert rows[("满春村", "期末人口")] == (1003, 1000, 3, pytest.approx(0.3))
    assert rows[("合计", "已婚育龄妇女")] == (200, 199, 1, pytest.approx(100 / 199))
    assert rows[("永安村", "出生")] == (None, None, None, None)
    figures = load_schema_file("summary_layout.toml")["month_on_month"]["figures"]
    assert len(rows) == 4 * len(figures)
    assert ws["F2"].number_format == "0.0" and ws["C2"].number_format == "#,##0"


def test_floating_summary_counts_present_persons(book):
    rows = {r[0]: r[1:] for r in rows_of(book["流动人口汇总"])}
    assert rows["单位"] == ("流动人口", "男", "女", "已婚", "务工", "经商", "其他就业", "持证人数", "验证人数")
    assert rows["满春村"] == (2, 1, 1, 2, 1, 1, 0, 2, 1)
    assert rows["合计"] == rows["满春村"]
    assert rows["永安村"] == (None,) * 9


def test_no_personal_data_on_any_sheet(book):
    for ws in book.worksheets:
        text = " ".join(str(c) for row in rows_of(ws) for c in row if c is not None)
        assert not any(i in text or i[:6] + "********" + i[-4:] in text for i in IDS)
        assert not any(n in text for n in NAMES)
        assert "13800138000" not in text


def test_write_is_atomic_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "汇总.xlsx"
    write_summary(build_state(), path)
    assert [p.name for p in tmp_path.iterdir()] == ["汇总.xlsx"]


def test_layout_rates_are_merge_rates():
    layout = load_schema_file("summary_layout.toml")
    assert [r["column"] for r in layout["summary"]["rates"]] == RATE_COLUMNS


def test_month_ranges():
    assert month_ranges(["2026-04", "2026-01", "2026-02"]) == "2026年1月—2026年2月、2026年4月"
    assert month_ranges(["2025-12", "2026-01"]) == "2025年12月—2026年1月"

"""Every rule of SPEC §4 (except the month-on-month ones): one planted defect, one finding.

Each case writes a clean return, plants a single defect, and compares the findings'
(code, severity, sheet, cell) with what the clerk should be shown.
"""

from __future__ import annotations

import datetime as dt
from copy import deepcopy
from pathlib import Path

import openpyxl
import pytest

from conftest import RUN_DAY, clean_return, make_id, table_from
from pipeline.run import validate_files
from pipeline.returnbook import ReturnData, write_return


def letter(frame, column: str) -> str:
    return openpyxl.utils.get_column_letter(list(frame.columns).index(column) + 1)


# Where the template writer puts things: 月报 header on row 3 (group i on row 4+i, 合计 after),
# registers' header on row 2 (person j on row 3+j), cover values in column B from row 3.
def m_cell(data: ReturnData, column: str, i: int = 0) -> str:
    return f"{letter(data.monthly, column)}{4 + i}"


def r_cell(data: ReturnData, column: str, j: int = 0) -> str:
    return f"{letter(data.roster, column)}{3 + j}"


def f_cell(data: ReturnData, column: str, j: int = 0) -> str:
    return f"{letter(data.floating, column)}{3 + j}"


def rebuild(data: ReturnData, groups=("一组", "二组")) -> None:
    """After changing a register, make the table agree with it again."""
    data.monthly = table_from(list(groups), data.roster.to_dict("records"), data.floating.to_dict("records"))


def check(tmp_path: Path, registry, data: ReturnData, *, period: str | None = None, patch=None,
          name: str = "return.xlsx") -> set[tuple[str, str, str, str]]:
    path = write_return(tmp_path / name, data)
    if patch:
        book = openpyxl.load_workbook(path)
        patch(book)
        book.save(path)
    [(_, found)] = validate_files([path], registry, period, RUN_DAY)
    return {(f.code, f.severity.value, f.sheet, f.cell) for f in found}


def test_clean_return_has_no_finding(tmp_path, street):
    assert check(tmp_path, street, clean_return(street)) == set()


def _set(frame, column, value, row=0):
    frame[column] = frame[column].astype(object)
    frame.at[row, column] = value


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def unknown_group(d):
    _set(d.monthly, "小组", "三组")
    return {("unknown-group", "error", "月报", m_cell(d, "小组"))}


@case
def not_a_number(d):
    _set(d.monthly, "出生", "两")
    return {("not-a-number", "error", "月报", m_cell(d, "出生"))}


@case
def negative(d):
    _set(d.monthly, "迁入", -3)
    d.monthly.at[0, "期末人口"] = d.monthly.at[0, "期初人口"] + 0 - 1 - 3 - 1
    return {("negative", "error", "月报", m_cell(d, "迁入"))}


@case
def not_integer(d):
    _set(d.monthly, "独生子女证", 5.5)
    return {("not-integer", "error", "月报", m_cell(d, "独生子女证"))}


@case
def blank_required(d):
    _set(d.monthly, "期初人口", None, row=1)
    return {("blank-required", "error", "月报", m_cell(d, "期初人口", 1))}


@case
def population_balance(d):
    d.monthly.at[1, "期末人口"] += 1
    return {("population-balance", "error", "月报", m_cell(d, "期末人口", 1))}


@case
def measures_exceed_women(d):
    d.monthly.at[0, "节育措施"] = d.monthly.at[0, "已婚育龄妇女"] + 1
    cell = m_cell(d, "节育措施")
    return {("measures-exceed-women", "error", "月报", cell), ("roster-vs-table", "error", "月报", cell)}


@case
def policy_births_exceed_births(d):
    d.monthly.at[0, "政策内出生"] = 3
    return {("policy-births-exceed-births", "error", "月报", m_cell(d, "政策内出生"))}


@case
def verified_exceed_certified(d):
    d.floating.at[1, "婚育证明"] = "无"  # verified without a certificate: the table follows the register
    rebuild(d)
    return {("verified-exceed-certified", "error", "月报", m_cell(d, "验证人数"))}


@case
def floating_measures_exceed_women(d):
    d.monthly.at[0, "流动节育措施"] = d.monthly.at[0, "流动育龄妇女"] + 1
    cell = m_cell(d, "流动节育措施")
    return {("floating-measures-exceed-women", "error", "月报", cell), ("register-vs-table", "error", "月报", cell)}


@case
def birth_order_sum(d):
    d.monthly.insert(3, "一孩", [1, 0])
    d.monthly.insert(4, "二孩", [0, 0])
    d.monthly.insert(5, "多孩", [0, 0])
    return {("birth-order-sum", "error", "月报", m_cell(d, "一孩"))}


@case
def rate_mismatch(d):
    d.monthly["综合节育率"] = [round(2 / 3 * 100, 1), 50.0]  # group 2 really has 66.7
    return {("rate-mismatch", "warning", "月报", m_cell(d, "综合节育率", 1))}


@case
def roster_vs_table(d):
    d.roster = d.roster.drop(index=0).reset_index(drop=True)  # a woman left off the roster
    return {("roster-vs-table", "error", "月报", m_cell(d, "已婚育龄妇女")),
            ("roster-vs-table", "error", "月报", m_cell(d, "节育措施"))}


@case
def register_vs_table(d):
    d.floating.at[1, "小组"] = "二组"  # a floating man registered in the other group
    return {("register-vs-table", "error", "月报", m_cell(d, "流动人口", 0)),
            ("register-vs-table", "error", "月报", m_cell(d, "持证人数", 0)),
            ("register-vs-table", "error", "月报", m_cell(d, "验证人数", 0)),
            ("register-vs-table", "error", "月报", m_cell(d, "流动人口", 1)),
            ("register-vs-table", "error", "月报", m_cell(d, "持证人数", 1)),
            ("register-vs-table", "error", "月报", m_cell(d, "验证人数", 1))}


@case
def not_in_list(d):
    d.roster.at[0, "节育措施"] = "上环术"
    return {("not-in-list", "error", "育龄妇女", r_cell(d, "节育措施"))}


@case
def date_unparseable(d):
    _set(d.roster, "结婚日期", "去年")
    return {("date-unparseable", "error", "育龄妇女", r_cell(d, "结婚日期"))}


@case
def date_after_period(d):
    d.roster.at[0, "末次生育日期"] = dt.date(2026, 11, 2)
    return {("date-after-period", "warning", "育龄妇女", r_cell(d, "末次生育日期"))}


@case
def date_future(d):
    d.roster.at[0, "末次生育日期"] = dt.date(2026, 12, 1)
    return {("date-future", "error", "育龄妇女", r_cell(d, "末次生育日期"))}


@case
def id_length(d):
    d.roster.at[0, "身份证号"] = d.roster.at[0, "身份证号"][:17]
    return {("id-length", "error", "育龄妇女", r_cell(d, "身份证号"))}


@case
def id_checksum(d):
    number = d.roster.at[0, "身份证号"]
    d.roster.at[0, "身份证号"] = number[:17] + ("1" if number[17] != "1" else "2")
    return {("id-checksum", "error", "育龄妇女", r_cell(d, "身份证号"))}


@case
def id_birthdate(d):
    number = d.roster.at[0, "身份证号"]
    d.roster.at[0, "身份证号"] = number[:10] + "13" + number[12:]
    return {("id-birthdate", "error", "育龄妇女", r_cell(d, "身份证号"))}


@case
def id_region(d):
    d.roster.at[0, "身份证号"] = make_id("999999", dt.date(1990, 3, 1), 1, True)
    return {("id-region", "warning", "育龄妇女", r_cell(d, "身份证号"))}


@case
def phone_invalid(d):
    d.floating.at[0, "联系电话"] = "1380000123"
    return {("phone-invalid", "error", "流动人口", f_cell(d, "联系电话"))}


@case
def roster_not_female(d):
    d.roster.at[0, "身份证号"] = make_id("640102", dt.date(1990, 3, 1), 40, False)
    return {("roster-not-female", "error", "育龄妇女", r_cell(d, "身份证号"))}


@case
def roster_age_over(d):
    d.roster.at[0, "身份证号"] = make_id("640121", dt.date(1975, 3, 1), 40, True)  # 51 at the end of October
    return {("roster-age", "error", "育龄妇女", r_cell(d, "身份证号"))}


@case
def roster_age_under(d):
    d.roster.at[2, "身份证号"] = make_id("640104", dt.date(2012, 3, 1), 41, True)
    return {("roster-age", "error", "育龄妇女", r_cell(d, "身份证号", 2))}


@case
def duplicate_id(d):
    d.roster.at[1, "身份证号"] = d.roster.at[0, "身份证号"]
    return {("duplicate-id", "error", "育龄妇女", r_cell(d, "身份证号", 0)),
            ("duplicate-id", "error", "育龄妇女", r_cell(d, "身份证号", 1))}


@case
def measure_before_marriage(d):
    d.roster.at[0, "措施日期"] = dt.date(2010, 1, 1)
    return {("measure-before-marriage", "warning", "育龄妇女", r_cell(d, "措施日期"))}


@case
def outflow_before_inflow(d):
    d.floating.at[1, "流出日期"] = dt.date(2025, 1, 1)
    rebuild(d)  # he has left: the table no longer counts him
    return {("outflow-before-inflow", "error", "流动人口", f_cell(d, "流出日期", 1))}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_defect_one_finding(tmp_path, street, name):
    data = deepcopy(clean_return(street))
    expected = CASES[name](data)
    assert check(tmp_path, street, data) == expected


def test_missing_sheet(tmp_path, street):
    found = check(tmp_path, street, clean_return(street), patch=lambda b: b.remove(b["流动人口"]))
    assert found == {("missing-sheet", "error", "", "")}


def test_missing_column(tmp_path, street):
    data = clean_return(street)
    data.monthly = data.monthly.drop(columns=["死亡"])
    assert check(tmp_path, street, data) == {("missing-column", "error", "月报", "")}


def test_duplicate_column(tmp_path, street):
    data = clean_return(street)
    data.monthly["出生数"] = data.monthly["出生"]  # the same column again, under an alias
    assert check(tmp_path, street, data) == {("duplicate-column", "error", "月报", f"{letter(data.monthly, '出生数')}3")}


def test_unknown_unit(tmp_path, street):
    data = clean_return(street)
    data.cover.update({"单位名称": "不存在村", "单位代码": "X99"})
    assert check(tmp_path, street, data) == {("unknown-unit", "error", "封面", "B3")}


def test_period_missing(tmp_path, street):
    data = clean_return(street)
    data.cover["报告期"] = "十月份"
    assert check(tmp_path, street, data) == {("period-missing", "error", "封面", "B5")}


def test_period_not_the_one_run(tmp_path, street):
    assert check(tmp_path, street, clean_return(street), period="2026-09") == {
        ("period-mismatch", "error", "封面", "B5")}


def test_id_stored_as_number(tmp_path, street):
    data = clean_return(street)
    number = data.roster.at[1, "身份证号"]

    def as_number(book):
        book["育龄妇女"][r_cell(data, "身份证号", 1)] = int(number[:15] + "000")  # what Excel keeps of it

    assert check(tmp_path, street, data, patch=as_number) == {("id-numeric", "error", "育龄妇女", r_cell(data, "身份证号", 1))}


def test_total_row_mismatch(tmp_path, street):
    data = clean_return(street)
    cell = m_cell(data, "出生", 2)  # the 合计 row under two groups

    def wrong_total(book):
        book["月报"][cell] = 99

    assert check(tmp_path, street, data, patch=wrong_total) == {("total-row-mismatch", "error", "月报", cell)}


def test_same_person_in_two_units_of_one_run(tmp_path, street):
    first, second = clean_return(street, "U01"), clean_return(street, "U02", first_serial=30)
    second.floating.at[0, "身份证号"] = first.floating.at[0, "身份证号"]
    paths = [write_return(tmp_path / "a.xlsx", first), write_return(tmp_path / "b.xlsx", second)]
    results = validate_files(paths, street, None, RUN_DAY)
    for (ret, found), data in zip(results, (first, second)):
        assert {(f.code, f.severity.value, f.sheet, f.cell) for f in found} == {
            ("id-in-other-unit", "error", "流动人口", f_cell(data, "身份证号"))}
        assert all("乙社区" not in f.message and "甲村" not in f.message for f in found)

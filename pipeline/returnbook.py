"""A unit's monthly return in memory (ReturnData) and its template-v1 workbook writer."""

from __future__ import annotations

import datetime as dt
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xlsxwriter
from xlsxwriter.utility import xl_rowcol_to_cell
from xlsxwriter.worksheet import Worksheet

from pipeline.resources import load_schema_file
from pipeline.write.safe import new_workbook

TEMPLATE_FILE = "template_v1.toml"
COVER_TITLE = "村(居)人口与计划生育月报"
MONTHLY_UNIT_NOTE = "单位:人"
MONTHLY_FOOT_NOTE = "注:本表由村(居)计生专干填报"
TEXT_TYPES = {"text", "id", "phone", "group", "code"}  # always written as text, never as numbers
COVER_TEXT = {"单位代码", "联系电话"}  # codes and phone numbers stay text even if given as numbers
WIDE_COLUMNS = {"身份证号": 21, "现居住地": 34, "户籍地": 24, "联系电话": 14}


@dataclass
class ReturnData:
    """One unit's return for one month, with canonical template-v1 column names."""

    cover: dict[str, object]  # 单位名称, 单位代码, 报告期 ("YYYY-MM"), 填报人, 联系电话, 填报日期
    monthly: pd.DataFrame  # 月报: one row per group, no 合计 row
    roster: pd.DataFrame  # 育龄妇女
    floating: pd.DataFrame  # 流动人口


def write_return(path: Path, data: ReturnData, *, total_row: bool = True, title_rows: bool = True) -> Path:
    """Write the return as a template-v1 .xlsx (封面, 月报, 育龄妇女, 流动人口) and return its path."""
    path = Path(path)
    sheets = load_schema_file(TEMPLATE_FILE)["sheets"]
    wb = new_workbook(path)  # text stays text: never a formula, a link or a number
    try:
        fmts = _formats(wb)
        unit = str(data.cover.get("单位名称", ""))
        period = _period_text(data.cover.get("报告期"))
        _write_cover(wb.add_worksheet(sheets["cover"]["name"]), data.cover, fmts, title_rows)
        _write_monthly(wb.add_worksheet(sheets["monthly"]["name"]), data.monthly, _types(sheets["monthly"]),
                       fmts, title=f"{unit} {period} 人口与计划生育月报表" if title_rows else None,
                       total_label=sheets["monthly"].get("total_label", "合计") if total_row else None)
        for key, what in (("roster", "已婚育龄妇女花名册"), ("floating", "流动人口登记表")):
            ws = wb.add_worksheet(sheets[key]["name"])
            first = 0
            if title_rows:
                ws.write_string(0, 0, f"{unit} {period} {what}", fmts["title"])
                first = 1
            _write_table(ws, first, getattr(data, key), _types(sheets[key]), fmts)
    finally:
        wb.close()
    return path


def _formats(wb: xlsxwriter.Workbook) -> dict[str, object]:
    """The few cell formats the return uses."""
    return {
        "title": wb.add_format({"bold": True, "font_size": 14}),
        "header": wb.add_format({"bold": True, "border": 1, "align": "center", "valign": "vcenter",
                                 "text_wrap": True, "bg_color": "#DDEBF7"}),
        "cell": wb.add_format({"border": 1}),
        "date": wb.add_format({"border": 1, "num_format": "yyyy-mm-dd"}),
        "total": wb.add_format({"border": 1, "bold": True}),
        "label": wb.add_format({"bold": True}),
        "plain_date": wb.add_format({"num_format": "yyyy-mm-dd", "align": "left"}),
        "note": wb.add_format({"italic": True, "font_color": "#595959"}),
    }


def _types(sheet: dict) -> dict[str, str]:
    """Column name -> template type for one sheet of the template."""
    return {col["name"]: col["type"] for col in sheet.get("columns", [])}


def _period_text(value: object) -> str:
    """'2026-10' -> '2026年10月' for titles; anything else as it is."""
    text = "" if _is_blank(value) else str(value)
    try:
        year, month = text.split("-")
        return f"{int(year)}年{int(month)}月"
    except ValueError:
        return text


def _is_blank(value: object) -> bool:
    """None, NaN, NaT and empty text are left as blank cells."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, (str, dt.date)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_text(value: object) -> str:
    """Text of a cell meant as text; a float that is a whole number loses its '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _write_cell(ws: Worksheet, row: int, col: int, value: object, kind: str | None, fmts: dict) -> None:
    """One cell: blank, text, number or date by value and template type."""
    if _is_blank(value):
        return
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.date):
        ws.write_datetime(row, col, value, fmts["date"])
    elif kind in TEXT_TYPES or isinstance(value, str) or isinstance(value, bool):
        ws.write_string(row, col, _as_text(value), fmts["cell"])
    elif isinstance(value, numbers.Number):
        ws.write_number(row, col, value, fmts["cell"])
    else:
        ws.write_string(row, col, str(value), fmts["cell"])


def _write_table(ws: Worksheet, header_row: int, frame: pd.DataFrame, types: dict[str, str],
                 fmts: dict) -> int:
    """Header then one row per record; returns the index of the first row after the data."""
    for c, name in enumerate(frame.columns):
        ws.write_string(header_row, c, str(name), fmts["header"])
        ws.set_column(c, c, WIDE_COLUMNS.get(str(name), max(8, 2 * len(str(name)) + 2)))
    for r, record in enumerate(frame.itertuples(index=False, name=None), start=header_row + 1):
        for c, (name, value) in enumerate(zip(frame.columns, record)):
            _write_cell(ws, r, c, value, types.get(str(name)), fmts)
    ws.freeze_panes(header_row + 1, 0)
    return header_row + 1 + len(frame)


def _write_cover(ws: Worksheet, cover: dict[str, object], fmts: dict, title_rows: bool) -> None:
    """封面: an optional title in A1, then label in A and value in B, one row each."""
    first = 0
    if title_rows:
        ws.write_string(0, 0, COVER_TITLE, fmts["title"])
        first = 2
    ws.set_column(0, 0, 12)
    ws.set_column(1, 1, 22)
    for r, (label, value) in enumerate(cover.items(), start=first):
        ws.write_string(r, 0, str(label), fmts["label"])
        if _is_blank(value):
            continue
        if isinstance(value, dt.date):
            ws.write_datetime(r, 1, value, fmts["plain_date"])
        elif isinstance(value, numbers.Number) and not isinstance(value, bool) and label not in COVER_TEXT:
            ws.write_number(r, 1, value)
        else:
            ws.write_string(r, 1, _as_text(value))


def _write_monthly(ws: Worksheet, frame: pd.DataFrame, types: dict[str, str], fmts: dict, *,
                   title: str | None, total_label: str | None) -> None:
    """月报: optional title and unit note, header, group rows, optional 合计 row, then the foot note."""
    header_row = 0
    if title is not None:
        ws.write_string(0, 0, title, fmts["title"])
        ws.write_string(1, 0, MONTHLY_UNIT_NOTE, fmts["note"])
        header_row = 2
    end = _write_table(ws, header_row, frame, types, fmts)
    if total_label is not None:
        _write_total(ws, end, header_row + 1, frame, types, total_label, fmts)
        end += 1
    ws.write_string(end + 1, 0, MONTHLY_FOOT_NOTE, fmts["note"])


def _write_total(ws: Worksheet, row: int, first: int, frame: pd.DataFrame, types: dict[str, str],
                 label: str, fmts: dict) -> None:
    """The 合计 row: a SUM formula over the group rows for each count column, with its cached value."""
    for c, name in enumerate(frame.columns):
        kind = types.get(str(name))
        if kind == "group" or (c == 0 and kind is None):
            ws.write_string(row, c, label, fmts["total"])
        elif kind == "count" and len(frame):
            span = f"{xl_rowcol_to_cell(first, c)}:{xl_rowcol_to_cell(row - 1, c)}"
            ws.write_formula(row, c, f"=SUM({span})", fmts["total"], _numeric_sum(frame[name]))
        else:
            ws.write_blank(row, c, None, fmts["total"])


def _numeric_sum(values: pd.Series) -> int | float:
    """What Excel's SUM shows: the sum of the numeric cells, text ignored."""
    total: float = 0
    for v in values:
        if isinstance(v, numbers.Number) and not isinstance(v, bool) and not _is_blank(v):
            total += v
    return int(total) if math.isfinite(total) and float(total).is_integer() else total

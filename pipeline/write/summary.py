"""The district summary workbook (SPEC §6): 汇总, 报送情况, 环比 and 流动人口汇总.

Street-level sheets hold counts and rates only: no name, ID number or phone is written.
The words, title lines, rate headers and number formats come from
schemas/summary_layout.toml, so a district adapts the form without touching Python.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from pipeline.forms import load_form
from pipeline.merge import TOTAL
from pipeline.period import PeriodState, Submission
from pipeline.periods import label_zh, month_end, shift
from pipeline.resources import SUMMARY_LAYOUT, load_schema_file
from pipeline.status import timeliness
from pipeline.write.safe import atomic_file, new_workbook, print_one_page_wide, write_cell

ACCEPTED = "accepted"
TITLE_ROWS = 3  # 表名, the form marks, 填报单位 / 报告期; the header row comes next
FIGURE_WIDTH = 8.5
HEADER_HEIGHT = 48


@dataclass(frozen=True)
class Column:
    """One figure column of 汇总: the merged table's column, its header, its number format."""

    name: str
    header: str
    num_format: str


class Formats:
    """Cell formats, each made once per distinct set of properties."""

    def __init__(self, workbook: Workbook, font: str):
        self.workbook, self.font, self.made = workbook, font, {}

    def __call__(self, **props: Any) -> Format:
        key = tuple(sorted(props.items()))
        if key not in self.made:
            self.made[key] = self.workbook.add_format({"font_name": self.font, "valign": "vcenter", **props})
        return self.made[key]

    def header(self) -> Format:
        return self(bold=True, border=1, align="center", text_wrap=True)


def write_summary(state: PeriodState, path: Path) -> None:
    """Write the period's district summary workbook to `path`, atomically."""
    layout = load_schema_file(SUMMARY_LAYOUT)
    sheets = layout["sheets"]
    with atomic_file(path) as temp:
        workbook = new_workbook(temp)
        fmt = Formats(workbook, layout["formats"]["font"])
        summary_sheet(workbook.add_worksheet(sheets["summary"]), state, layout, fmt)
        submissions_sheet(workbook.add_worksheet(sheets["submissions"]), state, layout, fmt)
        month_on_month_sheet(workbook.add_worksheet(sheets["month_on_month"]), state, layout, fmt)
        floating_sheet(workbook.add_worksheet(sheets["floating"]), state, layout, fmt)
        workbook.close()


# ---- 汇总 --------------------------------------------------------------------
def summary_sheet(ws: Worksheet, state: PeriodState, layout: dict, fmt: Formats) -> None:
    """汇总: title rows, one row per registered unit, the street 合计, notes and the footer."""
    s = layout["summary"]
    columns = summary_columns(layout)
    last_col = len(columns) + 1
    title_rows(ws, state, layout, fmt, last_col)
    write_row(ws, TITLE_ROWS, [s["unit_header"], *(c.header for c in columns), s["status_header"]], fmt.header())
    subs = {sub.unit.code: sub for sub in state.submissions}
    row = TITLE_ROWS
    for row, unit in enumerate(state.registry.units, start=TITLE_ROWS + 1):
        status = subs[unit.code].status if unit.code in subs else "missing"
        figures = table_row(state.table, unit.code) if status == ACCEPTED else None
        figure_row(ws, row, unit.name, figures, columns, fmt)
        bad = {} if status == ACCEPTED else bad_style(layout)
        write_cell(ws, row, last_col, status_word(status, layout), fmt(border=1, align="center", **bad))
    row += 1
    figure_row(ws, row, s["total_label"], table_row(state.table, TOTAL), columns, fmt, bold=True)
    write_cell(ws, row, last_col, total_status(state, layout), fmt(border=1, align="center", bold=True))
    for row, note in enumerate(ytd_notes(state, layout), start=row + 1):
        merged(ws, row, 0, last_col, note, fmt(text_wrap=True))
    merged(ws, row + 2, 0, last_col, footer(state, layout), fmt())
    summary_page(ws, columns)


def summary_columns(layout: dict) -> list[Column]:
    """The 月报 count columns in template order, then the year-to-date counts, then the rates."""
    formats, s = layout["formats"], layout["summary"]
    counts = [Column(c.name, c.name, formats["count"]) for c in load_form().monthly.columns if c.type == "count"]
    ytd = [Column(c["column"], c["header"], formats["count"]) for c in s["ytd_columns"]]
    rates = [Column(r["column"], r["header"], r.get("format", formats["rate"])) for r in s["rates"]]
    return counts + ytd + rates


def title_rows(ws: Worksheet, state: PeriodState, layout: dict, fmt: Formats, last_col: int) -> None:
    """表名, the 表号 / 制表机关 / 批准文号 line, and 填报单位 with 报告期."""
    values, s = placeholders(state), layout["summary"]
    merged(ws, 0, 0, last_col, fill(layout["title"], values), fmt(bold=True, font_size=16, align="center"))
    ws.set_row(0, 30)
    marks = "    ".join(f"{m['label']}:{fill(m['value'], values)}" for m in layout["form_marks"])
    merged(ws, 1, 0, last_col, marks, fmt(align="right"))
    half = last_col // 2
    merged(ws, 2, 0, half, f"{s['filler_label']}:{fill(s['filler'], values)}", fmt(align="left"))
    merged(ws, 2, half + 1, last_col, f"{s['period_label']}:{values['period']}", fmt(align="right"))


def figure_row(ws: Worksheet, row: int, label: str, figures: pd.Series | dict | None, columns: list[Column],
               fmt: Formats, **style: Any) -> None:
    """A label then one number (or blank) per column."""
    write_cell(ws, row, 0, label, fmt(border=1, **style))
    values = figures.to_dict() if isinstance(figures, pd.Series) else figures  # a dict lookup per cell is cheaper
    for col, c in enumerate(columns, start=1):
        value = number(values.get(c.name)) if values is not None else None
        write_cell(ws, row, col, value, fmt(border=1, num_format=c.num_format, **style))


def total_status(state: PeriodState, layout: dict) -> str:
    """How many registered units the 合计 covers, e.g. '已接收 4/6'."""
    accepted = sum(s.status == ACCEPTED for s in state.submissions)
    return f"{status_word(ACCEPTED, layout)} {accepted}/{len(state.registry.units)}"


def ytd_notes(state: PeriodState, layout: dict) -> list[str]:
    """One note per distinct year-to-date gap of the accepted units; none when the year is whole."""
    first = state.ytd.months[0] if state.ytd.months else state.period
    accepted = [s.unit for s in state.submissions if s.status == ACCEPTED]
    gaps: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for unit in accepted:
        missing = tuple(state.ytd.missing.get(unit.code, ()))
        start = state.ytd.year_start_from.get(unit.code, "")
        later = start if start > first else ""
        if missing or later:
            gaps.setdefault((missing, later), []).append(unit.name)
    return [gap_note(names, missing, later, len(names) == len(accepted), layout["summary"])
            for (missing, later), names in gaps.items()]


def gap_note(names: list[str], missing: tuple[str, ...], start: str, everyone: bool, s: dict) -> str:
    """'注:本年累计数缺 2026年1月—2026年9月 的已接收月报,年初人口取自 2026年10月 的期初人口。'"""
    parts = []
    if missing:
        parts.append(s["note_missing"].format(months=month_ranges(list(missing))))
    if start:
        parts.append(s["note_start"].format(month=label_zh(start)))
    return s["note"].format(units="" if everyone else "、".join(names), parts=",".join(parts))


def month_ranges(months: list[str]) -> str:
    """Months as runs: ['2026-01', '2026-02', '2026-04'] → '2026年1月—2026年2月、2026年4月'."""
    runs: list[list[str]] = []
    for m in sorted(months):
        if runs and shift(runs[-1][-1], 1) == m:
            runs[-1].append(m)
        else:
            runs.append([m])
    return "、".join(label_zh(r[0]) if len(r) == 1 else f"{label_zh(r[0])}—{label_zh(r[-1])}" for r in runs)


def footer(state: PeriodState, layout: dict) -> str:
    """单位负责人 / 统计负责人 / 填表人 blanks to sign, and 报出日期."""
    s, day = layout["summary"], state.generated_at.date()
    signs = [f"{label}:{s['footer_blank']}" for label in s["footer"]]
    return "    ".join([*signs, f"{s['footer_date']}:{day.year}年{day.month}月{day.day}日"])


def summary_page(ws: Worksheet, columns: list[Column]) -> None:
    """Frozen header, widths, landscape A4, one page wide."""
    ws.freeze_panes(TITLE_ROWS + 1, 1)
    ws.set_row(TITLE_ROWS, HEADER_HEIGHT)
    ws.set_column(0, 0, 12)
    ws.set_column(1, len(columns), FIGURE_WIDTH)
    ws.set_column(len(columns) + 1, len(columns) + 1, 10)
    print_one_page_wide(ws, TITLE_ROWS)
    ws.center_horizontally()


# ---- 报送情况 ------------------------------------------------------------------
def submissions_sheet(ws: Worksheet, state: PeriodState, layout: dict, fmt: Formats) -> None:
    """报送情况: every registered unit's return, on time or late, then the quarantined files."""
    headers = layout["submissions"]["headers"]
    write_row(ws, 0, list(headers.values()), fmt.header())
    for row, sub in enumerate(state.submissions, start=1):
        values = submission_values(sub, state.generated_at.date(), layout)
        bad = {} if sub.status == ACCEPTED else bad_style(layout)
        for col, key in enumerate(headers):
            late = key == "timeliness" and not bad and sub.days_late > 0
            style = {"bg_color": layout["formats"]["late_fill"]} if late else bad
            write_cell(ws, row, col, values.get(key), fmt(border=1, **style))
    quarantine_rows(ws, len(state.submissions) + 2, state, layout, fmt, len(headers) - 1)
    ws.freeze_panes(1, 2)
    ws.autofilter(0, 0, len(state.submissions), len(headers) - 1)
    print_one_page_wide(ws, 0)
    for col, key in enumerate(headers):
        ws.set_column(col, col, {"code": 14, "file": 32, "received": 17, "due": 11, "timeliness": 20}.get(key, 10))


def submission_values(sub: Submission, today: dt.date, layout: dict) -> dict[str, Any]:
    """One 报送情况 row, by column key."""
    standing = sub.standing
    return {
        "code": sub.unit.code, "name": sub.unit.name, "kind": sub.unit.kind,
        "file": standing.file_name if standing else None,
        "received": sub.received.strftime("%Y-%m-%d %H:%M") if sub.received else None,
        "due": sub.due.isoformat(),
        "timeliness": timeliness(sub.received, sub.due, today, sub.first_accepted, layout["timeliness"]),
        "status": status_word(sub.status, layout),
        "errors": sub.count("error"), "warnings": sub.count("warning"),
    }


def quarantine_rows(ws: Worksheet, row: int, state: PeriodState, layout: dict, fmt: Formats, last_col: int) -> None:
    """The period's quarantined files with their reasons, below the units."""
    files = [r for r in state.returns if r.status == "quarantined"]
    if not files:
        return
    q = layout["submissions"]["quarantine"]
    write_cell(ws, row, 0, q["title"], fmt(bold=True))
    spans = [(0, 3), (4, 4), (5, max(5, last_col))]
    for (first, last), header in zip(spans, q["headers"]):
        merged(ws, row + 1, first, last, header, fmt.header())
    for r, ret in enumerate(files, start=row + 2):
        values = [ret.file_name, ret.received_at.strftime("%Y-%m-%d %H:%M"), ret.reason]
        for (first, last), value in zip(spans, values):
            merged(ws, r, first, last, value, fmt(border=1, text_wrap=True, **bad_style(layout)))


# ---- 环比 ----------------------------------------------------------------------
def month_on_month_sheet(ws: Worksheet, state: PeriodState, layout: dict, fmt: Formats) -> None:
    """环比: each unit's and the street's stock and flow figures, this month against last."""
    m, formats = layout["month_on_month"], layout["formats"]
    keys = ("unit", "figure", "this", "last", "change", "share")
    write_row(ws, 0, [m["headers"][k] for k in keys], fmt.header())
    ws.freeze_panes(1, 2)
    ws.set_column(0, 1, 14)
    ws.set_column(2, 5, 10)
    print_one_page_wide(ws, 0)
    if state.last_table is None:
        write_cell(ws, 1, 0, m["no_history"], fmt())
        return
    labels, figures = unit_labels(state, layout), m["figures"]
    codes = [code for _, code in labels]
    # month_on_month for every unit at once: the same arithmetic, element by element
    this = state.table.reindex(index=codes, columns=figures).astype(float)
    last = state.last_table.reindex(index=codes, columns=figures).astype(float)
    if TOTAL not in state.last_table.index:
        last.loc[TOTAL] = last_figures(state.last_table, TOTAL, figures)
    change = this - last
    share = change / last.where(last > 0) * 100
    columns = [(this.to_numpy(), formats["count"]), (last.to_numpy(), formats["count"]),
               (change.to_numpy(), formats["count"]), (share.to_numpy(), formats["share"])]
    row = 0
    for i, (label, code) in enumerate(labels):
        bold = code == TOTAL
        for j, figure in enumerate(figures):
            row += 1
            write_row(ws, row, [label, figure], fmt(border=1, bold=bold))
            for col, (values, num_format) in enumerate(columns, start=2):
                write_cell(ws, row, col, number(values[i, j]), fmt(border=1, num_format=num_format, bold=bold))
    ws.autofilter(0, 0, row, len(keys) - 1)


def figures_of(table: pd.DataFrame, code: str, figures: list[str]) -> pd.Series:
    """A row's figures (NaN where the unit or the column is absent)."""
    row = table_row(table, code)
    return pd.Series(float("nan"), index=figures) if row is None else row.reindex(figures).astype(float)


def last_figures(last: pd.DataFrame, code: str, figures: list[str]) -> pd.Series:
    """Last month's figures of a unit; for 合计, the sum over the units accepted last month."""
    if code == TOTAL and TOTAL not in last.index:
        return last.reindex(columns=figures).astype(float).sum(min_count=1)
    return figures_of(last, code, figures)


# ---- 流动人口汇总 ----------------------------------------------------------------
def floating_sheet(ws: Worksheet, state: PeriodState, layout: dict, fmt: Formats) -> None:
    """流动人口汇总: per unit and 合计, counts of the floating persons present at month end."""
    spec, count_format = layout["floating"], layout["formats"]["count"]
    headers = [c["header"] for c in spec["columns"]]
    write_row(ws, 0, [spec["unit_header"], *headers], fmt.header())
    counts = state.floating_counts
    accepted = [s.unit.code for s in state.submissions if s.status == ACCEPTED]
    columns = [Column(h, h, count_format) for h in headers]
    present = counts.reindex(accepted).fillna(0)  # a unit with nobody present counts 0
    by_unit = dict(zip(present.index, present.to_dict("records")))
    for row, (label, code) in enumerate(unit_labels(state, layout), start=1):
        figures = (present.sum() if accepted else None) if code == TOTAL else by_unit.get(code)
        figure_row(ws, row, label, figures, columns, fmt, bold=code == TOTAL)
    ws.freeze_panes(1, 1)
    ws.set_row(0, 30)
    ws.set_column(0, 0, 12)
    ws.set_column(1, len(headers), FIGURE_WIDTH)
    print_one_page_wide(ws, 0)


def floating_counter(period: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """floating_counts by the layout's columns, for persons present at the end of `period`."""
    columns, end = load_schema_file(SUMMARY_LAYOUT)["floating"]["columns"], month_end(period)
    return lambda floating: floating_counts(floating, columns, end)


def floating_fields() -> tuple[str, ...]:
    """The floating-register fields floating_counts reads: 流出日期 and each column's field."""
    columns = load_schema_file(SUMMARY_LAYOUT)["floating"]["columns"]
    return tuple(dict.fromkeys(["流出日期", *(c["field"] for c in columns if "field" in c)]))


def floating_counts(floating: pd.DataFrame, columns: list[dict], end: dt.date) -> pd.DataFrame:
    """Per unit code, how many persons present at month end fall under each column."""
    headers = [c["header"] for c in columns]
    if floating.empty:
        return pd.DataFrame(columns=headers, dtype=float)
    records = floating["record"].tolist()
    here = [is_present(r, end) for r in records]
    present = floating[pd.Series(here, index=floating.index, dtype=bool)]
    records = [r for r, h in zip(records, here) if h]
    fields: dict[str, list] = {}  # several columns read the same field: read it once
    flags = {}
    for c in columns:
        if "field" not in c:
            flags[c["header"]] = [True] * len(records)
            continue
        if c["field"] not in fields:
            fields[c["field"]] = [r.get(c["field"]) for r in records]
        allowed = c.get("values", [])
        flags[c["header"]] = [v in allowed for v in fields[c["field"]]]
    frame = pd.DataFrame(flags, index=present.index, columns=headers)
    return frame.astype(int).groupby(present["unit"]).sum()


def is_present(record: dict, end: dt.date) -> bool:
    """Still here at month end: no 流出日期, or one after the month (as the register check counts)."""
    left = record.get("流出日期")
    if left is None or (isinstance(left, float) and math.isnan(left)) or str(left).strip() == "":
        return True
    return str(left)[:10] > end.isoformat()


def matches(record: dict, column: dict) -> bool:
    """Whether a person counts in a 流动人口汇总 column (a column without a field counts everyone)."""
    return "field" not in column or record.get(column["field"]) in column.get("values", [])


# ---- shared --------------------------------------------------------------------
def unit_labels(state: PeriodState, layout: dict) -> list[tuple[str, str]]:
    """(printed label, table index) for every registered unit in registry order, then 合计."""
    return [(u.name, u.code) for u in state.registry.units] + [(layout["summary"]["total_label"], TOTAL)]


def table_row(table: pd.DataFrame, code: str) -> pd.Series | None:
    return table.loc[code] if code in table.index else None


def status_word(status: str, layout: dict) -> str:
    return layout["status"].get(status, status)


def bad_style(layout: dict) -> dict[str, str]:
    """The red-ish fill of a unit with no accepted return."""
    return {"bg_color": layout["formats"]["bad_fill"], "font_color": layout["formats"]["bad_font"]}


def number(value: Any) -> float | None:
    """A figure as a plain float; None for blank (NaN, None, absent, not a number)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) or math.isinf(result) else result


def placeholders(state: PeriodState) -> dict[str, str]:
    street = state.registry.street
    return {"district": street.district, "street": street.name, "street_code": street.code,
            "period": label_zh(state.period), "year": state.period[:4]}


def fill(template: str, values: dict[str, str]) -> str:
    """A layout text with its placeholders filled; a district's typo leaves the text as written."""
    try:
        return template.format_map(values)
    except (KeyError, ValueError, IndexError):
        return template


def write_row(ws: Worksheet, row: int, values: list[Any], fmt: Format) -> None:
    for col, value in enumerate(values):
        write_cell(ws, row, col, value, fmt)


def merged(ws: Worksheet, row: int, first: int, last: int, value: Any, fmt: Format) -> None:
    """One value across columns; the merge holds a blank and the value goes through write_cell."""
    if last > first:
        ws.merge_range(row, first, row, last, "", fmt)
    write_cell(ws, row, first, value, fmt)

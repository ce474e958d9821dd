"""The error workbook that goes back to one unit: its own return, annotated.

First sheet 错误清单 says what to do and lists every finding with a link to its cell;
then every sheet as the clerk sent it (same positions, her values), each offending
cell filled and commented. Only this unit's findings and data are in it.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from pipeline.findings import Finding, sort_key
from pipeline.intake.read import RawSheet, RawWorkbook
from pipeline.periods import label_zh
from pipeline.write.safe import atomic_file, new_workbook, write_cell

LIST_SHEET = "错误清单"
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_A1 = re.compile(r"^([A-Z]+)(\d+)$")
FILLS = {"error": "#FFC7CE", "warning": "#FFEB9C", "info": "#DDEBF7"}
ROW_MARK = "#FDE9EC"


def sheet_title(name: str, taken: set[str]) -> str:
    """A valid, unique Excel sheet name for a name that came from the clerk's file."""
    title = _BAD_SHEET_CHARS.sub("_", name).strip("'")[:31] or "Sheet"
    base, n = title, 1
    while title.lower() in {t.lower() for t in taken}:
        n += 1
        title = f"{base[:27]}({n})"
    taken.add(title)
    return title


def cell_position(cell: str) -> tuple[int, int] | None:
    """'J4' → (3, 9), 0-based row and column."""
    m = _A1.match(cell or "")
    if not m:
        return None
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)) - 1, col - 1


def write_unit_book(path: Path, unit_name: str, period: str, due: dt.date, findings: list[Finding],
                    workbook: RawWorkbook | None, contact: str) -> None:
    """Write the annotated return of one unit (its findings only) to `path`, atomically."""
    findings = sorted(findings, key=sort_key)
    with atomic_file(path) as temp:
        book = new_workbook(temp)
        styles = _Styles(book)
        listing = book.add_worksheet(LIST_SHEET)
        titles = {}
        taken = {LIST_SHEET}
        for sheet in workbook.sheets if workbook else []:
            titles[sheet.name] = sheet_title(sheet.name, taken)
        _write_listing(listing, styles, unit_name, period, due, findings, titles, contact)
        for sheet in workbook.sheets if workbook else []:
            mine = [f for f in findings if f.sheet == sheet.name]
            _write_sheet(book.add_worksheet(titles[sheet.name]), styles, sheet, mine)
        book.close()


class _Styles:
    def __init__(self, book):
        self.title = book.add_format({"bold": True, "font_size": 14})
        self.bold = book.add_format({"bold": True})
        self.head = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
        self.link = book.add_format({"font_color": "blue", "underline": 1})
        self.wrap = book.add_format({"text_wrap": True, "valign": "top"})
        self.date = book.add_format({"num_format": "yyyy-mm-dd"})
        self.cells = {s: book.add_format({"bg_color": c, "border": 2, "border_color": "#C00000"})
                      for s, c in FILLS.items()}
        self.cell_dates = {s: book.add_format({"bg_color": c, "border": 2, "border_color": "#C00000",
                                               "num_format": "yyyy-mm-dd"}) for s, c in FILLS.items()}
        self.row = book.add_format({"bg_color": ROW_MARK})
        self.row_date = book.add_format({"bg_color": ROW_MARK, "num_format": "yyyy-mm-dd"})


def _write_listing(ws, st: _Styles, unit_name: str, period: str, due: dt.date, findings: list[Finding],
                   titles: dict[str, str], contact: str) -> None:
    errors = sum(f.blocks for f in findings)
    write_cell(ws, 0, 0, f"{unit_name} {label_zh(period)} 月报审核结果", st.title)
    write_cell(ws, 1, 0, "请按以下说明修改后重新报送。" if errors else "本月报已接收,以下警告请核实。", st.bold)
    write_cell(ws, 2, 0, f"共 {errors} 处错误(必须改正)、{len(findings) - errors} 处警告或提示;"
                         f"报送截止日期:{due.isoformat()}。{contact}")
    write_cell(ws, 3, 0, "点击“单元格”一列可直接跳到出错的位置;出错的单元格已标红并附批注。")
    headers = [("序号", 6), ("严重程度", 9), ("工作表", 10), ("单元格", 8), ("项目", 14), ("填写值", 22),
               ("应为", 30), ("说明", 70)]
    for c, (name, width) in enumerate(headers):
        write_cell(ws, 5, c, name, st.head)
        ws.set_column(c, c, width)
    for r, f in enumerate(findings, start=6):
        write_cell(ws, r, 0, r - 5)
        write_cell(ws, r, 1, f.severity.zh)
        write_cell(ws, r, 2, f.sheet)
        target = f.cell or ("A1" if f.sheet in titles else "")
        if f.sheet in titles and target:
            ws.write_url(r, 3, f"internal:'{titles[f.sheet]}'!{target}", st.link, f.cell or f.sheet)
        else:
            write_cell(ws, r, 3, f.cell)
        for c, value in enumerate([f.field, f.value, f.expected, f.message], start=4):
            write_cell(ws, r, c, value, st.wrap if c == 7 else None)
    ws.freeze_panes(6, 0)
    ws.autofilter(5, 0, 5 + max(len(findings), 1), len(headers) - 1)
    ws.activate()


def _write_sheet(ws, st: _Styles, sheet: RawSheet, findings: list[Finding]) -> None:
    """The clerk's sheet, cell for cell, with findings marked where they point."""
    at_cell: dict[tuple[int, int], list[Finding]] = {}
    for f in findings:
        pos = cell_position(f.cell) or ((f.row - 1, 0) if f.row else (0, 0))
        at_cell.setdefault(pos, []).append(f)
    marked_rows = {r for r, _ in at_cell}
    for r in range(sheet.top, sheet.n_rows):
        for c in range(sheet.left, sheet.n_cols):
            value = sheet.cell(r, c)
            here = at_cell.get((r, c))
            if here:
                worst = min(here, key=lambda f: f.severity.rank).severity.value
                fmt = (st.cell_dates if _is_date(value) else st.cells)[worst]
            elif r in marked_rows:
                fmt = st.row_date if _is_date(value) else st.row
            else:
                fmt = st.date if _is_date(value) else None
            _write_value(ws, r, c, value, fmt)
    for (r, c), found in at_cell.items():
        if r >= sheet.n_rows or c >= sheet.n_cols:
            write_cell(ws, r, c, None, st.cells[found[0].severity.value])
        ws.write_comment(r, c, "\n".join(f"【{f.severity.zh}】{f.message}" for f in found)[:30000],
                         {"x_scale": 3, "y_scale": 2, "author": "街道审核"})
    ws.set_column(0, max(sheet.n_cols - 1, 0), 12)


def _is_date(value: object) -> bool:
    return isinstance(value, (dt.date, dt.datetime))


def _write_value(ws, r: int, c: int, value: object, fmt) -> None:
    if _is_date(value):
        ws.write_datetime(r, c, value if isinstance(value, dt.datetime) else
                          dt.datetime.combine(value, dt.time()), fmt)
    elif value is None and fmt is None:
        return
    else:
        write_cell(ws, r, c, value, fmt)


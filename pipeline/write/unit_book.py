"""The error workbook that goes back to one unit: her own return, annotated.

Her .xlsx is marked in a copy of its own XML parts (book_xml), so her layout, formatting,
data validations and formulas stay hers, and a book takes ~20 ms rather than openpyxl's
~150. A book that is not plain or safe as it is goes through openpyxl first (its unsafe
formulas made values, macros and external links dropped, an earlier annotation removed);
any other format (.xls, .ods, an HTML "xls") is rebuilt by openpyxl cell for cell at the
same positions from the values read at intake. Every offending cell is filled and given a
note, the rows with findings are tinted, and a first sheet 错误清单 says what to do and
links to each cell. A finding with no single cell points at the nearest sensible one (the
header row, the sheet's first cell), or is listed without a link when its sheet is
missing. Only this unit's findings and data are in it.

The book is safe to open: text that looks like a formula stays text (and is marked as
text, so editing it in Excel does not make it one), formulas other than plain
arithmetic over the book's own cells are replaced by their values, macros and external
links are dropped. Sent back as it is, with its 错误清单 and notes, the corrected
file reads exactly like the unit's own (the annotations cause no finding), and a later
annotation of it first removes the earlier one.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import warnings
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

import openpyxl
from openpyxl.cell.cell import Cell
from openpyxl.comments import Comment
from openpyxl.styles import PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from pipeline.findings import Finding, Severity, sort_key
from pipeline.forms import load_form
from pipeline.intake.read import RawWorkbook, UnreadableFile
from pipeline.intake.safety import DAMAGED_ZIP, check_every_xml_prolog
from pipeline.intake.sheets import match_sheets
from pipeline.periods import label_zh
from pipeline.text import normalise_label
from pipeline.write.book_xml import CellStyle, NewSheet, Note, NotPlain, XmlBook, parse_ref
from pipeline.write.safe import FORMULA_TRIGGERS, atomic_file, safe_text

LIST_SHEET = "错误清单"
AUTHOR = "街道审核"
FILLS = {"error": "FFFFB3B3", "warning": "FFFFE699", "info": "FFE2EFDA"}
ROW_MARK = "FFFDF0F0"
OUR_FILLS = {*FILLS.values(), ROW_MARK}
NO_SOURCE_SHEET, NO_SOURCE_TEXT = "原报表", "原报表文件已不在归档中,这里只列出问题;请对照本单位留存的报表修改。"
HER_NOTE = "\n\n(原批注)"  # our comment keeps hers after this line, and gives it back when removed
MAX_MARK_COLUMNS = 80  # a row is tinted across at most this many used columns
MAX_ANNOTATE_BYTES = 200 * 1024 * 1024  # larger (uncompressed) workbooks are rebuilt instead
# "openpyxl": every book cleaned by openpyxl first, as before book_xml (~10× slower): a street
# whose Excel or WPS finds fault with a book marked in its own parts can rule that way out.
BOOKS_ENV = "PIPELINE_UNIT_BOOKS"
_A1 = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_FUNCTION = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\s*\(")
# Formulas using only these functions over the book's own cells are kept as she wrote them.
SAFE_FUNCTIONS = frozenset("""
    SUM SUMIF SUMIFS SUMPRODUCT SUBTOTAL COUNT COUNTA COUNTBLANK COUNTIF COUNTIFS AVERAGE AVERAGEIF
    MAX MIN ROUND ROUNDUP ROUNDDOWN INT ABS MOD IF IFS IFERROR AND OR NOT ISBLANK ISNUMBER ISTEXT
    LEN LEFT RIGHT MID TRIM TEXT VALUE CONCATENATE CONCAT UPPER LOWER DATE YEAR MONTH DAY TODAY NOW
    DATEDIF EDATE EOMONTH VLOOKUP HLOOKUP INDEX MATCH ROW COLUMN N
""".split())

WORDS = {
    "zh": {
        "title": "{unit} {period} 月报审核结果",
        "todo": "请按以下说明修改后重新报送。",
        "todo_warnings": "本月报已接收。以下警告请核实;确有错误的,请改正后重新报送。",
        "counts": "共 {errors} 处错误(必须改正)、{others} 处警告或提示(请核实)。报送截止日期:{due}。",
        "how": "怎么改:点“单元格”一列的蓝字可跳到出错的位置;红色为错误,黄色为警告,鼠标移到单元格上可看批注。"
               "在原位置改正后保存,把本文件原样报送即可,本页和批注不用删除。",
        "headers": ["序号", "严重程度", "工作表", "单元格", "项目", "填写值", "应为", "问题说明"],
        "row": "第{row}行", "sheet": "整张表", "nowhere": "无法定位,见问题说明",
    },
    "en": {
        "title": "{unit} {period}: review of the monthly return",
        "todo": "Please correct the return as explained below and send it again.",
        "todo_warnings": "The return is accepted. Please check the warnings below; correct and resend if needed.",
        "counts": "{errors} error(s) to correct, {others} warning(s) or note(s) to check. Due date: {due}.",
        "how": "Click a blue cell reference to jump to the cell; red marks an error, yellow a warning, and each "
               "marked cell carries a comment. Correct the cells in place, save, and send this file as it is.",
        "headers": ["No.", "Severity", "Sheet", "Cell", "Item", "Value found", "Expected", "Message"],
        "row": "row {row}", "sheet": "whole sheet", "nowhere": "no cell: see the message",
    },
}
WIDTHS = [6, 9, 12, 10, 14, 22, 30, 70]
SEVERITY_EN = {"error": "error", "warning": "warning", "info": "note"}
# How each line of our notes starts (_line): ours, even where another program dropped their author.
OUR_NOTE_STARTS = tuple(f"【{s.zh}】" for s in Severity) + tuple(f"[{word}] " for word in SEVERITY_EN.values())


@dataclass(frozen=True)
class Place:
    """Where a finding is shown: a sheet title and a cell of the output book (None: nowhere)."""

    sheet: str | None
    cell: str | None
    kind: str  # cell | row | sheet | nowhere


def write_unit_book(path: Path, unit_name: str, period: str, due: dt.date, findings: list[Finding],
                    workbook: RawWorkbook | Callable[[], RawWorkbook | None] | None, contact: str,
                    source: Path | None = None, lang: str = "zh") -> None:
    """Write the annotated return of one unit (its findings only) to `path`, atomically.

    `source` is the unit's archived file (annotated in a copy when it is an .xlsx/.xlsm);
    `workbook` its values as read at intake (the rebuild for other formats, cached values),
    or what reads them: they are then read only if the book needs them.
    """
    values = functools.cache(workbook if callable(workbook) else lambda: workbook)
    with atomic_file(path) as temp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl's notes on unsupported extensions it drops
        for attempt in (her_own_book, cleaned_book, rebuilt_book):
            try:
                book = attempt(source, values, temp)
                if book is not None:
                    annotate(book, findings, values, unit_name, period, due, contact, lang)
                    break
            # Not plain: found opening it, or only while marking (a sheet lxml cannot parse, cells
            # without references, an attribute that is not a number): the next way, then.
            except (NotPlain, ValueError, LookupError):
                if attempt is rebuilt_book:  # openpyxl's own book: never expected
                    raise
        book.save(temp)


Values = Callable[[], RawWorkbook | None]  # her return's values as read at intake, read when first asked


def annotate(book: XmlBook, findings: list[Finding], values: Values, unit_name: str, period: str,
             due: dt.date, contact: str, lang: str) -> None:
    """Mark each finding where it is and put the 错误清单 first."""
    names = sheet_names(book, values, findings)
    placed = in_book_order(book, [(f, place_of(f, book, names)) for f in findings])
    mark(book, placed, lang)
    book.add_first_sheet(listing(free_title(LIST_SHEET, book.titles), unit_name, period, due, placed,
                                 contact, lang))


# ---- her workbook: as it is, cleaned by openpyxl, or rebuilt ----------------------------------
def her_own_book(source: Path | None, values: Values, scratch: Path) -> XmlBook | None:
    """Her .xlsx as she sent it, when it is plain and safe as it is (most are)."""
    if source is None or os.environ.get(BOOKS_ENV) == "openpyxl" or not annotatable(source):
        return None
    book = XmlBook.open(source)
    if not safe_as_it_is(book):
        return None
    book.quote_text(FORMULA_TRIGGERS)
    return book


def cleaned_book(source: Path | None, values: Values, scratch: Path) -> XmlBook | None:
    """Her .xlsx/.xlsm made safe by openpyxl (formulas as formulas where they are safe), saved in `scratch`."""
    if source is None or not annotatable(source):
        return None
    try:
        made = openpyxl.load_workbook(source, keep_vba=False, keep_links=False, rich_text=True)
    except Exception:  # a file calamine reads but openpyxl does not: rebuilt instead
        return None
    return _saved_plain(made, values(), scratch)


def rebuilt_book(source: Path | None, values: Values, scratch: Path) -> XmlBook:
    """Her sheets rebuilt from the values read at intake, saved in `scratch`."""
    return _saved_plain(rebuild(values()), values(), scratch)


def _saved_plain(made: Workbook, raw: RawWorkbook | None, scratch: Path) -> XmlBook:
    remove_old_annotations(made)
    cached = neutralise(made, raw)
    made.save(scratch)
    restore_cached_values(scratch, made, cached)
    return XmlBook.open(scratch)


def safe_as_it_is(book: XmlBook) -> bool:
    """Nothing to make safe or to take away: plain formulas and names, and no earlier annotation."""
    return (all(text is not None and safe_formula("=" + text) for text in book.formulas())
            and all(safe_formula("=" + text) for text in book.defined_names())
            and not any(title.startswith(LIST_SHEET) for title in book.titles)
            and AUTHOR not in book.note_authors() and not OUR_FILLS & book.fill_colours())


def annotatable(source: Path) -> bool:
    """An OOXML workbook of sane size (checked before openpyxl inflates it) with no DTD in any part.

    Checked here as at intake, so openpyxl's parser needs no guard against entities: the
    writing processes run it without defusedxml's (book_writers), ~10% of a book's time.
    """
    try:
        with zipfile.ZipFile(source) as archive:
            infos = archive.infolist()
            names = {i.filename for i in infos}
            if "xl/workbook.xml" not in names or sum(i.file_size for i in infos) > MAX_ANNOTATE_BYTES:
                return False
            check_every_xml_prolog(archive)
    except (UnreadableFile, *DAMAGED_ZIP):
        return False
    return True


def rebuild(raw: RawWorkbook | None) -> Workbook:
    """Her sheets from the values read at intake, each value at its own position; with none (her file is
    no longer in the archive), one sheet that says so: the book then brings her the listing alone."""
    book = Workbook()
    book.remove(book.active)
    for sheet in raw.sheets if raw else []:
        ws = book.create_sheet(free_title(sheet.name, book.sheetnames))
        for r, row in enumerate(sheet.grid, start=sheet.top + 1):
            for c, value in enumerate(row, start=sheet.left + 1):
                if value is not None and value != "":
                    set_value(ws.cell(r, c), value)
        _fit_columns(ws)
    if not book.sheetnames:
        book.create_sheet(NO_SOURCE_SHEET)["A1"] = NO_SOURCE_TEXT
    return book


def _fit_columns(ws: Worksheet) -> None:
    """Column widths from the longest text in each column (CJK characters count double)."""
    widest: dict[int, int] = defaultdict(int)
    for cell in ws._cells.values():
        text = "" if cell.value is None else str(cell.value)
        widest[cell.column] = max(widest[cell.column], sum(2 if ord(ch) > 255 else 1 for ch in text))
    for column, width in widest.items():
        ws.column_dimensions[get_column_letter(column)].width = min(max(width + 2, 8), 40)


def free_title(name: str, titles: list[str]) -> str:
    """A valid sheet title not yet among `titles`, from a name that may come from her file."""
    title = _valid_title(name)
    taken = {t.lower() for t in titles}
    base, n = title, 1
    while title.lower() in taken:
        n += 1
        title = f"{base[:27]}({n})"
    return title


def _valid_title(name: str) -> str:
    return _BAD_SHEET_CHARS.sub("_", name).strip("'")[:31] or "Sheet"


def set_value(cell: Cell, value: object) -> None:
    """Put a value in a cell; text always stays text (never a formula), marked as text if it looks like one."""
    if isinstance(value, str):
        text = safe_text(value)
        cell.value = text
        cell.data_type = "s"  # openpyxl makes '=…' a formula and '#N/A' an error: undo that
        cell.quotePrefix = text.startswith(FORMULA_TRIGGERS)
    elif isinstance(value, (int, float, bool, dt.date, dt.datetime, dt.time, dt.timedelta)) or value is None:
        cell.value = value
        if isinstance(value, dt.datetime) and value.time() != dt.time():
            cell.number_format = "yyyy-mm-dd hh:mm"
        elif isinstance(value, dt.date):
            cell.number_format = "yyyy-mm-dd"
    else:
        set_value(cell, str(value))


# ---- safety -----------------------------------------------------------------------------
def neutralise(book: Workbook, raw: RawWorkbook | None) -> dict[str, dict[str, object]]:
    """Make her book inert; return the cached values of the formulas kept, per sheet and cell."""
    values = {s.name: s for s in raw.sheets} if raw else {}
    kept: dict[str, dict[str, object]] = {}
    for ws in book.worksheets:
        sheet = values.get(ws.title)
        for cell in list(ws._cells.values()):  # existing cells only: never the whole used range
            if cell.hyperlink is not None and cell.hyperlink.target:
                cell.hyperlink = None  # links out of the book are dropped; links inside it stay
            if cell.data_type == "s" and str(cell.value).startswith(FORMULA_TRIGGERS):
                cell.quotePrefix = True  # her text stays text, even when she edits the cell in Excel
            elif cell.data_type == "f":
                cached = sheet.cell(cell.row - 1, cell.column - 1) if sheet else None
                if safe_formula(formula_text(cell.value)):
                    kept.setdefault(ws.title, {})[cell.coordinate] = cached
                else:
                    set_value(cell, cached)
    _drop_unsafe_names(book)
    return kept


def formula_text(value: object) -> str:
    """The text of a formula cell's value (plain, array or data-table formula)."""
    return value if isinstance(value, str) else getattr(value, "text", None) or ""


def safe_formula(text: str) -> bool:
    """Arithmetic and plain functions over the book's own cells; no DDE, external book or unknown function."""
    body = _QUOTED.sub("''", text.lstrip("="))
    if not text or any(ch in body for ch in "|[\\"):
        return False
    return all(name.upper().removeprefix("_XLFN.") in SAFE_FUNCTIONS for name in _FUNCTION.findall(body))


def _drop_unsafe_names(book: Workbook) -> None:
    """Defined names whose formula is not safe (a cell could call them) are removed."""
    scopes = [book.defined_names, *(ws.defined_names for ws in book.worksheets)]
    for names in scopes:
        for name in [n for n, d in names.items() if not safe_formula("=" + (d.attr_text or ""))]:
            del names[name]


def restore_cached_values(path: Path, book: Workbook, cached: dict[str, dict[str, object]]) -> None:
    """Put her formulas' last values back beside them (openpyxl saves formulas without values).

    Excel recalculates on opening anyway; this is for every reader that does not, the
    pipeline's own intake included, so the book sent back as it is reads like hers.
    """
    parts = {f"xl/worksheets/sheet{i}.xml": cached[ws.title]
             for i, ws in enumerate(book.worksheets, start=1) if cached.get(ws.title)}
    if not parts:
        return
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            if info.filename in parts:
                data = _with_values(data.decode("utf-8"), parts[info.filename]).encode("utf-8")
            archive.writestr(info, data)


# openpyxl writes an empty value as <v /> (its own writer) or <v></v> (with lxml installed)
_FORMULA_CELL = re.compile(r'<c r="([A-Z]+\d+)"([^>]*)>(<f[^>]*/>|<f[^>]*>.*?</f>)(?:<v\s*/>|<v>\s*</v>)', re.S)


def _with_values(xml: str, values: dict[str, object]) -> str:
    """A worksheet part with a cached <v> for each formula cell whose value is known."""
    def fill(m: re.Match) -> str:
        value = values.get(m.group(1))
        kind, text = _cached(value)
        if text is None:
            return m.group(0)
        return f'<c r="{m.group(1)}"{m.group(2)}{kind}>{m.group(3)}<v>{escape(text)}</v>'
    return _FORMULA_CELL.sub(fill, xml)


def _number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)


def _cached(value: object) -> tuple[str, str | None]:
    """(type attribute, text) of a cached value in SpreadsheetML."""
    if isinstance(value, bool):
        return ' t="b"', "1" if value else "0"
    if isinstance(value, (int, float)):
        return "", _number_text(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return "", _number_text(float(to_excel(value)))
    if isinstance(value, str) and value:
        return ' t="str"', safe_text(value)
    return "", None


# ---- earlier annotations ----------------------------------------------------------------
def remove_old_annotations(book: Workbook) -> None:
    """A re-sent annotated book: our listing, comments and fills go; her own stay.

    A cell of hers that had a fill of its own before we marked it comes back unfilled.
    Saved again by LibreOffice or WPS, our notes may have lost their author: a note that
    reads as ours (each line 【错误】…) is ours in a book that has our listing, or on a cell
    with our fill.
    """
    listed = False
    for ws in list(book.worksheets):
        if _is_our_listing(ws):
            book.remove(ws)
            listed = True
    # Our fills, by their index in the book's list of fills: a cell's fill is then looked at
    # without building its style (~10 ms a book of a few thousand cells).
    ours = {i for i, fill in enumerate(book._fills) if fill.fill_type == "solid" and _colour(fill) in OUR_FILLS}
    for ws in book.worksheets:
        for cell in ws._cells.values():
            our_fill = bool(ours) and cell.has_style and cell._style.fillId in ours
            if cell.comment is not None and _is_our_note(cell.comment, listed or our_fill):
                text = cell.comment.text
                cell.comment = Comment(text.split(HER_NOTE, 1)[1], "") if HER_NOTE in text else None
            if our_fill:
                cell.fill = PatternFill(fill_type=None)


def _is_our_listing(ws: Worksheet) -> bool:
    if not ws.title.startswith(LIST_SHEET):
        return False
    title = ws["A1"].value
    title = str(title) if title is not None else ""  # rich text once another program has saved it
    return title.endswith("月报审核结果") or "review of the monthly return" in title


def _is_our_note(comment: Comment, annotated_here: bool) -> bool:
    """Ours by its author, or, where we annotated (`annotated_here`), by how it reads."""
    return comment.author == AUTHOR or annotated_here and (comment.text or "").startswith(OUR_NOTE_STARTS)


def _colour(fill: PatternFill) -> str:
    rgb = fill.fgColor.rgb if fill.fgColor is not None else None
    return rgb.upper() if isinstance(rgb, str) else ""


# ---- where each finding goes --------------------------------------------------------------
def sheet_names(book: XmlBook, values: Values, findings: list[Finding]) -> dict[str, str]:
    """Any name the findings use for a sheet (hers, the form's, an alias) → the book's title.

    Her values are read only when a finding names a sheet otherwise than she does."""
    titles = {normalise_label(title): title for title in book.titles}
    if all(normalise_label(f.sheet) in titles for f in findings if f.sheet):
        return titles
    raw = values()
    if raw is None:
        return titles
    form = load_form()
    for key, sheet in match_sheets(raw, form).items():
        title = titles.get(normalise_label(sheet.name)) or titles.get(normalise_label(_valid_title(sheet.name)))
        for label in form.sheets[key].labels():
            if title is not None:
                titles.setdefault(label, title)
    return titles


def place_of(f: Finding, book: XmlBook, names: dict[str, str]) -> Place:
    """The cell that shows a finding: its own, else its row's first cell, else the sheet's first."""
    title = names.get(normalise_label(f.sheet)) if f.sheet else None
    if title is None:
        return Place(None, None, "nowhere")
    if _A1.match(f.cell or ""):
        return Place(title, f.cell.replace("$", ""), "cell")
    first_row, first_column, _, _ = book.bounds(title)
    if f.row:
        return Place(title, f"{get_column_letter(first_column)}{f.row}", "row")
    return Place(title, f"{get_column_letter(first_column)}{first_row}", "sheet")


def in_book_order(book: XmlBook, placed: list[tuple[Finding, Place]]) -> list[tuple[Finding, Place]]:
    """Errors first; then as she reads her book: sheet by sheet, row by row, left to right."""
    order = {title: i for i, title in enumerate(book.titles)}

    def key(item: tuple[Finding, Place]) -> tuple:
        f, p = item
        row, column = _A1.match(p.cell).groups()[::-1] if p.cell else ("0", "")
        return (f.severity.rank, order.get(p.sheet, -1), int(row), len(column), column, sort_key(f))
    return sorted(placed, key=key)


def mark(book: XmlBook, placed: list[tuple[Finding, Place]], lang: str) -> None:
    """Fill and note each cell with findings (shown if hidden); tint the rest of its row."""
    at: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f, p in placed:
        if p.sheet is not None:
            at[(p.sheet, p.cell)].append(f)
    marked: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for (title, ref), found in at.items():
        row, column = book.anchor(title, *parse_ref(ref))
        worst = min(found, key=lambda f: f.severity.rank).severity.value
        book.mark(title, row, column, FILLS[worst], _note(found, book.note(title, row, column), lang))
        marked[title].add((row, column))
    for title, cells in marked.items():
        book.tint_rows(title, cells, ROW_MARK, MAX_MARK_COLUMNS)


def _note(found: list[Finding], hers: Note | None, lang: str) -> Note:
    lines = [_line(f, lang) for f in found]
    text = "\n".join(lines)
    if hers is not None and hers.author != AUTHOR:
        text += HER_NOTE + hers.text
    height = min(60 + 18 * sum(1 + len(x) // 24 for x in lines), 400)
    return Note(AUTHOR, safe_text(text)[:30000], (320, height))


def _line(f: Finding, lang: str) -> str:
    if lang == "en":
        return f"[{SEVERITY_EN[f.severity.value]}] {f.message_en or f.message}"
    return f"【{f.severity.zh}】{f.message}"


# ---- the first sheet: what to do, and every finding with a link ---------------------------
def listing(title: str, unit_name: str, period: str, due: dt.date, placed: list[tuple[Finding, Place]],
            contact: str, lang: str) -> NewSheet:
    """错误清单: a short header (what to do, the deadline, whom to ask), then one row per finding."""
    words = WORDS.get(lang, WORDS["zh"])
    errors = sum(f.blocks for f, _ in placed)
    when = label_zh(period) if lang == "zh" else period
    due_text = f"{due.year}年{due.month}月{due.day}日" if lang == "zh" else due.isoformat()
    head = [(words["title"].format(unit=unit_name, period=when), CellStyle(bold=True, size=14, wrap=True)),
            (words["todo"] if errors else words["todo_warnings"], CellStyle(bold=True, color="C00000", wrap=True)),
            (words["counts"].format(errors=errors, others=len(placed) - errors, due=due_text) + contact,
             CellStyle(wrap=True)),
            (words["how"], CellStyle(color="595959", wrap=True))]
    last = get_column_letter(len(WIDTHS))
    top = len(head) + 2
    sheet = NewSheet(title, WIDTHS, frozen_rows=top, print_title_row=top, tab_color="C00000",
                     filter_ref=f"A{top}:{last}{top + max(len(placed), 1)}")
    for r, (text, style) in enumerate(head, start=1):  # each line across the listing's width
        sheet.cells[(r, 1)] = (text, style)
        sheet.merged.append(f"A{r}:{last}{r}")
        sheet.heights[r] = _lines(text, sum(WIDTHS)) * (style.size or 11) * 1.45
    for c, name in enumerate(words["headers"], start=1):
        sheet.cells[(top, c)] = (name, CellStyle(bold=True, fill="FFDDEBF7"))
    wrap = CellStyle(wrap=True)
    for n, (f, p) in enumerate(placed, start=1):
        r = top + n
        severity = f.severity.zh if lang == "zh" else SEVERITY_EN[f.severity.value]
        message = f.message_en or f.message if lang == "en" else f.message
        row = [n, severity, p.sheet or f.sheet or "—", _where(f, p, words), f.field, f.value, f.expected, message]
        for c, value in enumerate(row, start=1):
            if value not in ("", None):
                sheet.cells[(r, c)] = (value, wrap)
        sheet.cells[(r, 2)] = (severity, CellStyle(wrap=True, fill=FILLS[f.severity.value]))
        if p.sheet is not None:  # a link inside the book that jumps to the finding's cell
            sheet.cells[(r, 4)] = (row[3], CellStyle(wrap=True, color="0563C1", underline=True))
            sheet.links[f"D{r}"] = "'" + p.sheet.replace("'", "''") + "'!" + p.cell
        sheet.heights[r] = max(_lines(str(v or ""), w) for v, w in zip(row, WIDTHS)) * 16
    return sheet


def _lines(text: str, width: float) -> int:
    """How many lines a wrapped text takes in a column `width` characters wide (CJK count double)."""
    size = sum(2 if ord(ch) > 255 else 1 for ch in text)
    return max(1, -(-size // max(int(width) - 1, 1)))


def _where(f: Finding, p: Place, words: dict) -> str:
    """What the 单元格 column shows: the cell, the row, the sheet, or that there is none."""
    if p.kind == "cell":
        return p.cell
    if p.kind == "row":
        return words["row"].format(row=f.row)
    return words["sheet"] if p.kind == "sheet" else words["nowhere"]

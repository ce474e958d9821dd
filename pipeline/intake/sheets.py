"""From a workbook's grids to what a return is: its tables, whose it is, what is wrong.

Plain Python over RawSheet grids (no pandas): it runs in the reading processes, next to
the parser, so the run's own process only receives located tables. Match the sheets to
the form, clean their text, locate the tables, read their cells as texts, identify the unit
and period.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.findings import Finding, finding
from pipeline.forms import Form, SheetSpec
from pipeline.intake.identify import Identity, identify, read_cover
from pipeline.intake.locate import LocatedRows, column_letter, find_header_row, locate_rows
from pipeline.intake.read import RawSheet, RawWorkbook
from pipeline.intake.untrusted import TextProblem, clean_sheet
from pipeline.periods import PERIOD_FORMS
from pipeline.registry import Registry
from pipeline.text import normalise_label
from pipeline.values import as_text, column_texts

TITLE_ROWS = 5  # rows above a table's header searched for the unit and period


@dataclass
class TakenBook:
    """A workbook taken in: its format, located tables by form sheet key, identity and findings."""

    format: str
    tables: dict[str, LocatedRows]
    identity: Identity
    findings: list[Finding]


def take_workbook(book: RawWorkbook, file_name: str, registry: Registry, form: Form) -> TakenBook:
    """Match sheets to the form, clean their text, locate tables, identify unit and period."""
    findings: list[Finding] = []
    sheets = match_sheets(book, form)
    for key, spec in form.sheets.items():
        if key not in sheets:
            findings.append(finding("missing-sheet", file=file_name, expected=spec.name))
    problems = {key: clean_sheet(sheet) for key, sheet in sheets.items()}
    cover = read_cover(sheets["cover"], form.cover) if "cover" in sheets else {}
    tables = {key: locate_rows(sheet, form.sheets[key]) for key, sheet in sheets.items()
              if form.sheets[key].layout == "table"}
    add_texts(tables)
    identity = identify(cover, file_name, registry, content_texts(sheets, tables))
    cover_sheet = sheets["cover"].name if "cover" in sheets else form.cover.name
    findings += _identity_findings(identity, file_name, cover_sheet)
    findings += _header_findings(tables, file_name)
    findings += _text_findings(problems, sheets, tables, file_name)
    findings += [finding("attachment-not-read", file=file_name, value=name) for name in book.attachments]
    findings += _twin_findings(book, sheets, form, file_name)
    return TakenBook(book.format, tables, identity, findings)


def add_texts(tables: dict[str, LocatedRows]) -> None:
    """Each located cell as the text a clerk sees, made here beside the parser: the checks start from these."""
    known: dict = {}  # numbers and dates repeat across a workbook's tables: convert each once
    for table in tables.values():
        table.texts = {name: column_texts(cells, known) for name, cells in table.columns.items()}


def match_sheets(book: RawWorkbook, form: Form) -> dict[str, RawSheet]:
    """Form sheet key → the workbook's sheet: by name or alias, else by its header or cover labels."""
    matched: dict[str, RawSheet] = {}
    for key, spec in form.sheets.items():
        sheet = next((s for s in book.sheets if normalise_label(s.name) in spec.labels()), None)
        if sheet is not None:
            matched[key] = sheet
    free = [s for s in book.sheets if all(s is not m for m in matched.values())]
    for key, spec in form.sheets.items():
        if key in matched:
            continue
        sheet = next((s for s in free if _looks_like(s, spec)), None)
        if sheet is not None:
            matched[key] = sheet
            free.remove(sheet)
    return matched


def _twin_findings(book: RawWorkbook, sheets: dict[str, RawSheet], form: Form, file_name: str) -> list[Finding]:
    """A sheet left over that looks like one the form took (a roster split in two, last month's copy kept
    beside this month's): only the one taken is read, and she is told so rather than left to wonder why
    the counts disagree."""
    taken = {id(s) for s in sheets.values()}
    found = []
    for sheet in book.sheets:
        if id(sheet) in taken or not any(any(v not in (None, "") for v in row) for row in sheet.grid):
            continue
        key = next((key for key in sheets if _looks_like(sheet, form.sheets[key])), None)
        if key is not None:
            found.append(finding("sheet-not-read", file=file_name, sheet=sheet.name, expected=sheets[key].name))
    return found


def _looks_like(sheet: RawSheet, spec: SheetSpec) -> bool:
    """A table: half the required columns in its header; a cover: a unit and a period label."""
    if spec.layout != "table":
        found = read_cover(sheet, spec)
        return ("unit_name" in found or "unit_code" in found) and "period" in found
    if find_header_row(sheet, spec) is None:
        return False
    table = locate_rows(sheet, spec)
    required = [c for c in spec.columns if c.required]
    return len([c for c in required if c.name in table.letters]) * 2 >= len(required)


def content_texts(sheets: dict[str, RawSheet], tables: dict[str, LocatedRows]) -> list[str]:
    """Title texts above each table's header, where a unit and month are often written."""
    texts = []
    for key, table in tables.items():
        sheet = sheets[key]
        for r in range(sheet.top, min(table.header_row - 1, sheet.top + TITLE_ROWS)):
            texts += [v for c in range(sheet.left, min(sheet.n_cols, sheet.left + 10))
                      if isinstance(v := sheet.cell(r, c), str)]
    return texts + [s.name for s in sheets.values()]


def _identity_findings(ident: Identity, file_name: str, sheet: str) -> list[Finding]:
    found: list[Finding] = []
    cover = ident.cover
    if ident.named_in_file_name is not None:
        entry = cover.get("unit_name") or cover.get("unit_code")
        found.append(finding("unit-conflict", file=file_name, sheet=sheet, cell=entry.cell if entry else "",
                             row=entry.row if entry else None, field="单位名称",
                             value=as_text(entry.value) if entry else "", expected=ident.named_in_file_name.name))
    elif ident.unit is None:
        entry = cover.get("unit_name") or cover.get("unit_code")
        found.append(finding("unknown-unit", file=file_name, sheet=sheet, cell=entry.cell if entry else "",
                             row=entry.row if entry else None, field="单位名称",
                             value=as_text(entry.value) if entry else "", expected="本街道登记的村(居)"))
    if ident.period is None:
        entry = cover.get("period")
        code = "period-ambiguous" if ident.period_ambiguous else "period-conflict" if ident.month_in_file_name \
            else "period-missing"
        found.append(finding(code, file=file_name, sheet=sheet, cell=entry.cell if entry else "",
                             row=entry.row if entry else None, field="报告期",
                             value=as_text(entry.value) if entry else "",
                             expected=ident.month_in_file_name or PERIOD_FORMS))
    return found


def _header_findings(tables: dict[str, LocatedRows], file_name: str) -> list[Finding]:
    found = []
    for table in tables.values():
        for p in table.problems:
            found.append(finding(p.kind, file=file_name, sheet=table.sheet, cell=p.cell, row=p.row,
                                 field=p.column, expected=p.column if p.kind == "missing-column" else ""))
    return found


def _text_findings(problems: dict[str, list[TextProblem]], sheets: dict[str, RawSheet],
                   tables: dict[str, LocatedRows], file_name: str) -> list[Finding]:
    """control-characters and text-too-long, named by the column (or cover label) of the cell."""
    found = []
    for key, items in problems.items():
        by_letter = {letter: name for name, letter in tables[key].letters.items()} if key in tables else {}
        for p in items:
            letter = column_letter(p.col)
            label = by_letter.get(letter) or _label_left_of(sheets[key], p.row, p.col) or f"{letter}{p.row + 1}"
            found.append(finding(p.code, file=file_name, sheet=sheets[key].name, cell=f"{letter}{p.row + 1}",
                                 row=p.row + 1, column=letter, field=label, value=p.value, expected=p.expected))
    return found


def _label_left_of(sheet: RawSheet, row: int, col: int) -> str:
    """On a cover, the label a value stands beside."""
    left = sheet.cell(row, col - 1) if col > sheet.left else None
    return normalise_label(left)[:20] if isinstance(left, str) else ""

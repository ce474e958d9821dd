"""Find a table inside a clerk's sheet: the header row, its columns, the data rows.

Tolerates title rows above the header, headers with spaces, full-width characters or
aliases, columns in any order, blank rows and notes under the table. Every value keeps
the Excel row and column letter it came from, so findings point into the clerk's file.

`locate_rows` is plain Python: it runs in the reading processes, which have no pandas.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.forms import SheetSpec
from pipeline.intake.read import Cell, RawSheet
from pipeline.text import normalise_label, without_unit

if TYPE_CHECKING:
    import pandas as pd

HEADER_SEARCH_ROWS = 30
MAX_LABEL = 24  # characters: longer cell texts are never a column header
NOTE_PREFIXES = ("注", "说明", "备注", "填表说明", "填表人", "制表", "审核", "负责人", "单位负责人", "统计负责人",
                 "填报人", "填报日期", "报出日期")
TOTAL_LABELS = {"合计", "总计", "小计合计", "全村合计", "全社区合计"}
# How a register's closing line starts ("合计 186 人", "共计:186人"): no person's row starts so.
REGISTER_TOTAL_PREFIXES = ("合计", "总计", "共计", "小计")
MAX_FOOTER_CELLS = 4


def column_letter(index: int) -> str:
    """0-based column index to Excel letters (0 → A, 27 → AB)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@dataclass
class HeaderProblem:
    kind: str  # missing-column | duplicate-column
    column: str
    cell: str = ""
    row: int | None = None


@dataclass
class LocatedRows:
    """A sheet's table: its data rows' cells under the form's column names, as plain lists.

    Made in the reading processes (no pandas there) and checked as lists; `values` gives
    the same cells as a frame, for people and tests who look at one table.
    """

    sheet: str
    header_row: int  # Excel row number of the header (0: no header found)
    rows: list[int]  # Excel row number of each data row
    columns: dict[str, list[Cell]]  # canonical column name -> its cells, one per data row
    letters: dict[str, str]  # canonical column name -> Excel letter
    total: dict[str, Cell] | None = None  # the 合计 row, if any
    total_row: int | None = None
    problems: list[HeaderProblem] = field(default_factory=list)
    texts: dict[str, list] | None = None  # canonical column name -> each cell as the clerk's text (values.column_texts)

    @functools.cached_property
    def values(self) -> pd.DataFrame:
        """The raw cells as a frame (object dtype) indexed by Excel row number."""
        import pandas as pd  # here: the reading processes import this module without pandas

        if not self.header_row:
            return pd.DataFrame(columns=[])
        return pd.DataFrame(self.columns, index=pd.Index(self.rows, name="excel_row"), dtype=object)


def find_header_row(sheet: RawSheet, spec: SheetSpec) -> int | None:
    """0-based row whose cells name the most of the form's columns (at least two)."""
    known = {label for col in spec.columns for label in col.labels()}
    ascii_labels = any(label.isascii() for label in known)
    best, best_hits = None, 1
    for r, line in enumerate(sheet.grid[:HEADER_SEARCH_ROWS]):  # the cells of rows top, top + 1, …
        hits = sum(1 for v in line if _may_be_label(v, ascii_labels)  # (header_label, inlined: every cell)
                   and ((label := normalise_label(v)) in known or label[-1:] == ")" and without_unit(label) in known))
        if hits > best_hits:
            best, best_hits = r + sheet.top, hits
    return best


def locate_rows(sheet: RawSheet, spec: SheetSpec) -> LocatedRows:
    """Map the sheet's header to the form's columns and collect the data rows (`framed` makes them a table)."""
    header = find_header_row(sheet, spec)
    if header is None:
        problems = [HeaderProblem("missing-column", c.name) for c in spec.columns if c.required]
        return LocatedRows(sheet.name, 0, [], {}, {}, problems=problems)
    positions, problems = _map_columns(sheet, spec, header)
    rows, lines = _data_rows(sheet, header, positions, spec)
    columns = list(zip(*lines)) if lines else [()] * len(positions)
    table = LocatedRows(sheet.name, header + 1, [r + 1 for r in rows],
                        {name: list(cells) for name, cells in zip(positions, columns)},
                        {name: column_letter(c) for name, c in positions.items()}, problems=problems)
    if spec.total_label and spec.group_column in table.columns:
        _split_total(table, spec)
    return table


def header_label(value: Cell, known: set[str] | dict[str, object]) -> str:
    """The label a header cell is among `known`: as written, or without its unit ("期初人口(人)")."""
    label = normalise_label(value)
    return without_unit(label) if label not in known and label[-1:] == ")" else label


def _map_columns(sheet: RawSheet, spec: SheetSpec, header: int) -> tuple[dict[str, int], list[HeaderProblem]]:
    by_label = {label: col for col in spec.columns for label in col.labels()}
    positions: dict[str, int] = {}
    problems: list[HeaderProblem] = []
    for c in range(sheet.left, sheet.n_cols):
        col = by_label.get(header_label(sheet.cell(header, c), by_label))
        if col is None and header > sheet.top:
            # A two-row header: "出生" over "小计 | 一孩 | 二孩": an unknown sub-label takes its parent's name.
            parent = by_label.get(header_label(sheet.cell(header - 1, c), by_label))
            col = parent if parent is not None and parent.name not in positions else None
        if col is None:
            continue
        if col.name in positions:
            problems.append(HeaderProblem("duplicate-column", col.name, f"{column_letter(c)}{header + 1}", header + 1))
            continue
        positions[col.name] = c
    problems += [HeaderProblem("missing-column", col.name, row=header + 1)
                 for col in spec.columns if col.required and col.name not in positions]
    return positions, problems


def _data_rows(sheet: RawSheet, header: int, positions: dict[str, int],
               spec: SheetSpec) -> tuple[list[int], list[list[Cell]]]:
    """Rows under the header holding data (blank rows, notes and repeated headers left out), and their values.

    Runs for every row of every return: it works on the grid rows themselves, touches each
    cell once or twice, and normalises a text only to compare it with a header label.
    """
    at = [c - sheet.left for c in positions.values()]
    labels = [(known, any(label.isascii() for label in known))
              for known in (spec.column(name).labels() for name in positions)]
    normalised: dict[str, str] = {}  # texts repeat down a column: each one's header_label once
    every_label = frozenset().union(*(known for known, _ in labels))
    register = not spec.total_label  # the registers list persons; the monthly table's 合计 row is its total
    rows, kept = [], []
    for r in range(header + 1 - sheet.top, len(sheet.grid)):
        line = sheet.grid[r]
        width = len(line)
        values = [None if (v := line[c] if c < width else None) == "" else v for c in at]
        # _blank, inlined: this looks at every cell of every table row
        shown = [v for v in values if v is not None and not (isinstance(v, str) and v.isspace())]
        if not shown:
            continue
        # A note is a row of one filled cell: the whole row is looked at only when one of the table's is filled.
        if len(shown) == 1 and _is_note([v for v in line if not _blank(v)]):
            continue
        # A closing line: looked at whole only when the first of the table's filled cells starts like one.
        if type(first := shown[0]) is str and first[:1] in _FOOTER_STARTS \
                and _is_footer([v for v in line if not _blank(v)], register):
            continue
        if _repeats_header(values, labels, normalised, every_label):
            continue
        rows.append(r + sheet.top)
        kept.append(values)
    return rows, kept


def _repeats_header(values: list[Cell], labels: list[tuple[frozenset[str], bool]],
                    normalised: dict[str, str], every_label: frozenset[str]) -> bool:
    """A header row again: the lower row of a merged two-row header, or a header repeated on each printed page.

    That is: at least two, and at least half, of the row's filled cells are labels of their
    columns. Runs for every data row, so it stops at the first miss too many.
    """
    named = [(v, known) for v, known in zip(values, labels) if v is not None]
    misses_left = len(named) - max(2, (len(named) + 1) // 2)
    if misses_left < 0:  # fewer than two filled cells
        return False
    for value, (known, ascii_labels) in named:
        # _may_be_label, inlined (every data row), and short: long texts under a header are data
        if type(value) is str and len(value) <= MAX_LABEL and (ascii_labels or not value.isascii()):
            label = normalised.get(value)
            if label is None:  # header_label, inlined: this runs for most texts of a table
                label = normalise_label(value)
                if label[-1:] == ")" and label not in every_label:
                    label = without_unit(label)
                normalised[value] = label
            if label in known:
                continue
        misses_left -= 1
        if misses_left < 0:
            return False
    return True


def _may_be_label(value: Cell, ascii_labels: bool) -> bool:
    """Whether a cell could hold a header label: a text, as numbers and dates are data; and not
    an ASCII text (ID numbers, phones) when no label is ASCII (NFKC keeps ASCII ASCII)."""
    return type(value) is str and (ascii_labels or not value.isascii())


def _is_note(filled: list[Cell]) -> bool:
    """A row with one text cell that reads like a remark ("注:…", or a sentence)."""
    if len(filled) != 1 or not isinstance(filled[0], str):
        return False
    text = normalise_label(filled[0])
    return text.startswith(NOTE_PREFIXES) or len(text) > 12


_FOOTER_STARTS = frozenset(p[0] for p in NOTE_PREFIXES + REGISTER_TOTAL_PREFIXES)


def _is_footer(filled: list[Cell], register: bool) -> bool:
    """A closing line under a table: a register's count ("合计 | 共 186 人"), or signatures and dates in texts
    ("制表人:张三 | 审核人:李四 | 填报日期 | 2026-11-03"). A few cells only: a person's row fills most of the register's."""
    if len(filled) > MAX_FOOTER_CELLS:
        return False
    text = normalise_label(filled[0])
    if register and text.startswith(REGISTER_TOTAL_PREFIXES):
        return True
    return text.startswith(NOTE_PREFIXES) and all(isinstance(v, (str, dt.date)) for v in filled)  # no counts


def _blank(value: Cell) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _split_total(table: LocatedRows, spec: SheetSpec) -> None:
    """Take the 合计 row(s) out of the data rows; the last one is the table's total."""
    labels = TOTAL_LABELS | {normalise_label(spec.total_label)}
    groups = table.columns[spec.group_column]
    total_values = {v for v in set(groups) if normalise_label(v) in labels}  # groups repeat: each once
    is_total = [v in total_values for v in groups]
    if not any(is_total):
        return
    last = max(i for i, flag in enumerate(is_total) if flag)
    table.total_row = table.rows[last]
    table.total = {name: cells[last] for name, cells in table.columns.items()}
    keep = [i for i, flag in enumerate(is_total) if not flag]
    table.rows = [table.rows[i] for i in keep]
    table.columns = {name: [cells[i] for i in keep] for name, cells in table.columns.items()}

"""HTML tables saved as "Excel" (.xls) by county systems: one sheet per <table>.

Such pages often declare no charset, leave rows ragged and tags unclosed, and span
headers with rowspan/colspan. Python's html.parser knows only HTML's own character
references (no DTD, nothing to expand), so it is safe on hostile pages. A table is named
by its <caption>, else by the short heading just before it, else by the page <title>.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from pipeline.intake.read import Cell, RawSheet, RawWorkbook, UnreadableFile, fill_merges

MAX_COLSPAN = 1000  # the HTML standard's own limits
MAX_ROWSPAN = 65534
MAX_CELLS = 2_000_000
MAX_NAME = 40
_HTML_START = re.compile(r"<\s*(!doctype\s+html|html|head|body|table|meta)\b", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def looks_like_html(text: str) -> bool:
    """A page, not delimited text: an HTML tag near the start."""
    return bool(_HTML_START.search(text[:65536]))


@dataclass
class _Table:
    caption: str = ""
    heading: str = ""  # the text just before the table
    rows: list[list[tuple[str, int, int]]] = field(default_factory=list)  # (text, rowspan, colspan)
    cell: list[str] | None = None
    span: tuple[int, int] = (1, 1)
    in_caption: bool = False


class _Parser(HTMLParser):
    """Collects every table's cells with their spans; forgiving of unclosed tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.done: list[_Table] = []
        self.stack: list[_Table] = []
        self.title: list[str] = []
        self.in_title = False
        self.recent: list[str] = []  # text outside tables since the last table

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        top = self.stack[-1] if self.stack else None
        if tag == "table":
            heading = _clean(" ".join(self.recent[-1:]))
            self.stack.append(_Table(heading=heading if len(heading) <= MAX_NAME else ""))
            self.recent = []
        elif tag == "title":
            self.in_title = True
        elif top is None:
            return
        elif tag == "tr":
            self._close_row(top)
            top.rows.append([])
        elif tag in ("td", "th"):
            self._close_cell(top)
            if not top.rows:
                top.rows.append([])
            named = dict(attrs)
            top.cell, top.span = [], (_span(named.get("rowspan"), MAX_ROWSPAN), _span(named.get("colspan"), MAX_COLSPAN))
        elif tag == "caption":
            top.in_caption = True
        elif tag in ("br", "p", "div") and top.cell is not None:
            top.cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        top = self.stack[-1] if self.stack else None
        if tag == "title":
            self.in_title = False
        elif top is None:
            return
        elif tag == "table":
            self._close_row(top)
            self.done.append(self.stack.pop())
        elif tag in ("td", "th"):
            self._close_cell(top)
        elif tag == "tr":
            self._close_row(top)
        elif tag == "caption":
            top.in_caption = False

    def handle_data(self, data: str) -> None:
        top = self.stack[-1] if self.stack else None
        if self.in_title:
            self.title.append(data)
        elif top is None:
            if data.strip():
                self.recent.append(data)
        elif top.in_caption:
            top.caption += data
        elif top.cell is not None:
            top.cell.append(data)

    def _close_cell(self, table: _Table) -> None:
        if table.cell is not None:
            table.rows[-1].append((_clean("".join(table.cell)), *table.span))
            table.cell = None

    def _close_row(self, table: _Table) -> None:
        self._close_cell(table)

    def finish(self) -> list[_Table]:
        self.close()
        while self.stack:  # tables never closed: keep what they hold
            self._close_row(self.stack[-1])
            self.done.append(self.stack.pop())
        return self.done


def _span(value: str | None, limit: int) -> int:
    try:
        return max(1, min(int(str(value).strip()), limit))
    except ValueError:
        return 1


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def read_html(text: str, name: str) -> RawWorkbook:
    """Every non-empty table of the page as a sheet; a page with none is refused."""
    parser = _Parser()
    parser.feed(text)
    tables = [t for t in parser.finish() if any(any(c[0] for c in row) for row in t.rows)]
    if not tables:
        raise UnreadableFile("这是一个网页文件,里面没有表格,不是月报")
    title = _clean("".join(parser.title))
    sheets, taken = [], set()
    for n, table in enumerate(tables, start=1):
        label = table.caption or table.heading or (title if len(tables) == 1 else "") or f"表{n}"
        sheets.append(_sheet(table, unique_name(label, taken)))
    return RawWorkbook("html", sheets)


def unique_name(label: str, taken: set[str]) -> str:
    """A sheet name from text inside a file: no control characters, short, not already used."""
    base = _clean(_CONTROL.sub(" ", label))[:MAX_NAME] or "表"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base} ({n})"
    taken.add(candidate)
    return candidate


def _sheet(table: _Table, name: str) -> RawSheet:
    """Lay the cells out as a browser would: spans occupy the cells they cover."""
    grid: list[list[Cell]] = [[] for _ in table.rows]
    covered: dict[int, set[int]] = {}
    merges, cells = [], 0
    for r, row in enumerate(table.rows):
        c = 0
        for text, rowspan, colspan in row:
            while c in covered.get(r, ()):
                c += 1
            rowspan = min(rowspan, len(table.rows) - r)
            cells += rowspan * colspan
            if cells > MAX_CELLS:
                raise UnreadableFile("网页表格过大(合并单元格范围异常),不像是一份月报")
            grid[r].extend([None] * (c + 1 - len(grid[r])))
            grid[r][c] = text or None
            for rr in range(r + 1, r + rowspan):
                covered.setdefault(rr, set()).update(range(c, c + colspan))
            if rowspan > 1 or colspan > 1:
                merges.append((r, c, r + rowspan - 1, c + colspan - 1))
            c += colspan
    sheet = RawSheet(name, grid, merges=merges)
    fill_merges(sheet)
    return sheet

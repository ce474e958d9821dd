"""Excel's "XML Spreadsheet 2003" (XML 电子表格 2003): one XML document, often named .xls.

Some county systems export it, and Excel saves it under that name. calamine does not
read it, so it is read here: streamed through the same DTD-refusing expat parser as any
part of an untrusted file, into the grids every other reader gives. Cells are placed as
Excel places them: ss:Index on a row or cell jumps to that position, a cell merged across
(ss:MergeAcross) takes the columns it covers, ss:MergeDown merges down. Values come out
as calamine gives them: numbers as floats, a date without a time as a date, errors blank.
"""

from __future__ import annotations

import datetime as dt
import re
from xml.parsers import expat

from pipeline.intake.read import Cell, Merge, RawSheet, RawWorkbook, UnreadableFile, fill_merges
from pipeline.intake.safety import MAX_CELL_AREA, attribute, local_name, refusing_parser

NAMESPACE = "urn:schemas-microsoft-com:office:spreadsheet"
_LOOKS_LIKE = re.compile(r"<(?:\w+:)?Workbook\b[^>]*" + re.escape(NAMESPACE))
MAX_CELLS = 2_000_000  # values in a workbook (as htmltables)
MAX_ROW, MAX_COL = 1_048_576, 16_384  # Excel's own sheet


def looks_like_xml_spreadsheet(text: str) -> bool:
    """A <Workbook> of the spreadsheet namespace near the start."""
    return bool(_LOOKS_LIKE.search(text[:65536]))


def read_xml_spreadsheet(text: str) -> RawWorkbook:
    """Every worksheet of the document as a grid, merged cells filled in."""
    reader = _Reader()
    parser = refusing_parser()  # as for every XML part of an untrusted file: no DTD, no entities
    parser.StartElementHandler, parser.EndElementHandler = reader.start, reader.end
    parser.CharacterDataHandler = reader.text
    try:
        parser.Parse(text, True)  # (a str: expat reads it as UTF-8, whatever the declaration says)
    except (expat.ExpatError, ValueError) as exc:
        raise UnreadableFile("文件内容已损坏(“XML 电子表格”不是有效的 XML)") from exc
    if not reader.sheets:
        raise UnreadableFile("“XML 电子表格”里没有工作表")
    return RawWorkbook("xmlss", [_sheet(name, cells, merges) for name, cells, merges in reader.sheets])


class _Reader:
    """Expat's callbacks: each worksheet's cells by (row, column), 0-based, and its merges."""

    def __init__(self) -> None:
        self.sheets: list[tuple[str, dict[tuple[int, int], Cell], list[Merge]]] = []
        self.cells: dict[tuple[int, int], Cell] = {}
        self.merges: list[Merge] = []
        self.count = 0
        self.depth = 0  # of <Table>: a sheet's own rows only
        self.row, self.col = -1, 0
        self.data: list[str] | None = None  # the text of the <Data> being read
        self.kind = ""
        self.in_comment = False  # a cell's comment holds a <Data> of its own: not the cell's value
        self.cell = (0, 0)

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        local = local_name(tag)
        if local == "Worksheet":
            self.sheets.append((attribute(attrs, "Name"), {}, []))
            self.cells, self.merges, self.row = self.sheets[-1][1], self.sheets[-1][2], -1
        elif local == "Table":
            self.depth += 1
        elif self.depth != 1:
            return
        elif local == "Row":
            self.row = _index(attrs, self.row + 1, MAX_ROW)
            self.col = 0
        elif local == "Cell":
            at = _index(attrs, self.col, MAX_COL)
            across, down = _count(attrs, "MergeAcross"), _count(attrs, "MergeDown")
            self.cell = (max(self.row, 0), at)
            self.col = at + 1 + across
            if across or down:
                self.merges.append((self.cell[0], at, self.cell[0] + down, at + across))
        elif local == "Comment":
            self.in_comment = True
        elif local == "Data" and not self.in_comment:
            self.data, self.kind = [], attribute(attrs, "Type")

    def text(self, data: str) -> None:
        if self.data is not None:
            self.data.append(data)  # rich text (<Font> inside <Data>) is read as its characters

    def end(self, tag: str) -> None:
        local = local_name(tag)
        if local == "Table":
            self.depth -= 1
        elif local == "Comment":
            self.in_comment = False
        elif local == "Data" and self.data is not None:
            value = _value("".join(self.data), self.kind)
            self.data = None
            if value is not None:
                self.count += 1
                if self.count > MAX_CELLS:
                    raise UnreadableFile("“XML 电子表格”的单元格太多,不像是一份村(居)月报")
                self.cells[self.cell] = value


def _sheet(name: str, cells: dict[tuple[int, int], Cell], merges: list[Merge]) -> RawSheet:
    """The cells as a grid from the first row and column that hold one."""
    if not cells:
        return RawSheet(name, [], merges=merges)
    top, left = min(r for r, _ in cells), min(c for _, c in cells)
    bottom, right = max(r for r, _ in cells), max(c for _, c in cells)
    if (bottom - top + 1) * (right - left + 1) > MAX_CELL_AREA:
        raise UnreadableFile(f"工作表“{name[:31]}”在很远的单元格有内容,表格范围过大,可能是损坏或恶意构造的文件")
    grid: list[list[Cell]] = [[None] * (right - left + 1) for _ in range(bottom - top + 1)]
    for (r, c), value in cells.items():
        grid[r - top][c - left] = value
    sheet = RawSheet(name, grid, top=top, left=left, merges=merges)
    fill_merges(sheet)
    return sheet


def _value(text: str, kind: str) -> Cell:
    """A <Data> as calamine would give the cell."""
    if kind == "Number":
        try:
            return float(text)
        except ValueError:
            return text.strip() or None
    if kind == "DateTime":
        try:
            moment = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            return text.strip() or None
        return moment.date() if moment.time() == dt.time() else moment
    if kind == "Boolean":
        return text.strip() in ("1", "true", "TRUE")
    if kind == "Error":
        return None  # calamine shows an error value (#DIV/0!) as blank
    return text if text != "" else None


def _index(attrs: dict[str, str], default: int, limit: int) -> int:
    """A 0-based position: ss:Index (1-based) when given, else the next one."""
    value = attribute(attrs, "Index")
    at = int(value) - 1 if value.isdecimal() and int(value) > 0 else default
    if at >= limit:
        raise UnreadableFile("“XML 电子表格”里有超出 Excel 范围的单元格,可能是损坏或恶意构造的文件")
    return at


def _count(attrs: dict[str, str], name: str) -> int:
    value = attribute(attrs, name)
    return min(int(value), MAX_ROW) if value.isdecimal() else 0

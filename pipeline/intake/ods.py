"""What calamine does not read of an OpenDocument spreadsheet: its merged ranges.

calamine gives an .ods's values but no merged ranges, so a header merged over two rows
or a group name merged down a roster would arrive as blank cells. The ranges are read
here from content.xml, streamed through the same DTD-refusing expat parser as every
part of an untrusted file (`safety.parse_part`).

In content.xml a merged range is a <table:table-cell> with number-columns-spanned and/or
number-rows-spanned; the cells it covers follow as <table:covered-table-cell>. Positions
are counted as a spreadsheet does: number-rows-repeated and number-columns-repeated stand
for that many rows or cells, and rows may sit inside header-row or row-group elements.
"""

from __future__ import annotations

import zipfile
from xml.parsers import expat

from pipeline.intake.read import Merge
from pipeline.intake.safety import attribute, local_name, parse_part

CONTENT = "content.xml"
MAX_MERGES = 100_000  # per workbook: a return has a few dozen; more is no return (and is not held)
_CELLS = ("table-cell", "covered-table-cell")


def merged_ranges(archive: zipfile.ZipFile) -> dict[str, list[Merge]]:
    """Sheet name → its merged ranges (0-based, first and last row and column, as calamine's positions)."""
    if CONTENT not in archive.namelist():
        return {}
    ranges: dict[str, list[Merge]] = {}
    where = {"depth": 0, "sheet": "", "row": 0, "col": 0, "repeat": 1, "count": 0}

    def start(tag: str, attrs: dict[str, str]) -> None:
        local = local_name(tag)
        if local == "table":
            where["depth"] += 1
            if where["depth"] == 1:
                where.update(sheet=attribute(attrs, "name"), row=0)
                ranges.setdefault(where["sheet"], [])
        elif where["depth"] != 1:  # outside a sheet, or inside a table within a cell
            return
        elif local == "table-row":
            where.update(col=0, repeat=_count(attrs, "number-rows-repeated"))
        elif local in _CELLS:
            col = where["col"]
            where["col"] = col + _count(attrs, "number-columns-repeated")
            rows, cols = _count(attrs, "number-rows-spanned"), _count(attrs, "number-columns-spanned")
            if local == "table-cell" and (rows > 1 or cols > 1) and where["count"] < MAX_MERGES:
                row = where["row"]
                ranges[where["sheet"]].append((row, col, row + rows - 1, col + cols - 1))
                where["count"] += 1

    def end(tag: str) -> None:
        local = local_name(tag)
        if local == "table":
            where["depth"] -= 1
        elif local == "table-row" and where["depth"] == 1:
            where["row"] += where["repeat"]

    def setup(parser: expat.XMLParserType) -> None:
        parser.StartElementHandler, parser.EndElementHandler = start, end

    parse_part(archive, CONTENT, setup)
    return {sheet: found for sheet, found in ranges.items() if found}


def _count(attrs: dict[str, str], name: str) -> int:
    """A repeat or span count: 1 when absent or not a positive number."""
    value = attribute(attrs, name)
    return int(value) if value.isdecimal() and int(value) > 0 else 1

"""Read a workbook's cell values, whatever the format, into plain grids.

Values come from python-calamine (formula cells give their cached values); openpyxl is
10–20× slower on the same sheet and is kept for annotating, not for reading.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import python_calamine

Cell = str | float | int | bool | dt.date | dt.datetime | dt.time | dt.timedelta | None


@dataclass
class RawSheet:
    """A sheet's values; grid[r][c] is the cell at Excel row r+1+top, column c+1+left."""

    name: str
    grid: list[list[Cell]]
    top: int = 0
    left: int = 0

    def cell(self, row: int, col: int) -> Cell:
        """Value at 0-based absolute (row, col), None outside the grid."""
        r, c = row - self.top, col - self.left
        if 0 <= r < len(self.grid) and 0 <= c < len(self.grid[r]):
            value = self.grid[r][c]
            return None if value == "" else value
        return None

    @property
    def n_rows(self) -> int:
        return self.top + len(self.grid)

    @property
    def n_cols(self) -> int:
        return self.left + max((len(r) for r in self.grid), default=0)


@dataclass
class RawWorkbook:
    format: str
    sheets: list[RawSheet]


class UnreadableFile(Exception):
    """The file is not a workbook we can read; the message says why, in Chinese."""


def sniff_format(head: bytes) -> str:
    """Tell the format from the first bytes, never from the extension."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if not head.strip():
        return "empty"
    return "text"


def read_workbook(path: Path) -> RawWorkbook:
    """All sheets of an Excel or OpenDocument workbook as raw grids."""
    with open(path, "rb") as fh:
        kind = sniff_format(fh.read(8))
    if kind == "empty":
        raise UnreadableFile("文件是空的")
    if kind not in ("zip", "ole"):
        raise UnreadableFile("不是Excel工作簿")
    try:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        sheets = [_raw_sheet(book, name) for name in book.sheet_names]
    except Exception as exc:  # calamine's errors are not one class; any is "unreadable"
        raise UnreadableFile(f"工作簿已损坏或有密码保护({type(exc).__name__})") from exc
    return RawWorkbook("xlsx" if kind == "zip" else "xls", sheets)


def _raw_sheet(book: Any, name: str) -> RawSheet:
    sheet = book.get_sheet_by_name(name)
    start = sheet.start or (0, 0)
    return RawSheet(name, sheet.to_python(), top=start[0], left=start[1])

"""Read a return's cell values, whatever the format, into plain grids (RawWorkbook).

The format is told by content, never by the extension: a zip holding xl/workbook.xml is
.xlsx/.xlsm, one holding an OpenDocument mimetype is .ods, an OLE file is .xls, text
with a <Workbook> of Excel's spreadsheet namespace is an "XML Spreadsheet 2003", text
with <table> is an "Excel" file exported as an HTML page, any other zip (or a folder)
holds one file per sheet. Every guard of `safety` runs before a parser sees the bytes.

Values come from python-calamine (formula cells give their cached values). openpyxl is
10–20× slower on the same sheet; it can be chosen for .xlsx with PIPELINE_XLSX_READER=
openpyxl (`pipeline run --xlsx-reader openpyxl`), to compare or to rule out a parser bug,
reading the whole workbook as Excel would (merged ranges included). This module runs inside the
sandboxed reader process (see `sandbox`): it must not import pandas.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import python_calamine

Cell = str | float | int | bool | dt.date | dt.datetime | dt.time | dt.timedelta | None
Merge = tuple[int, int, int, int]  # first row, first column, last row, last column (0-based, absolute)

XLSX_READERS = ("calamine", "openpyxl")
READER_ENV = "PIPELINE_XLSX_READER"  # the parser of .xlsx/.xlsm; every other format is calamine's
MAX_FILE_BYTES = 64 * 1024 * 1024  # a village return is a few MB at most
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
NOT_A_WORKBOOK = "这是Word或PowerPoint文件,不是Excel工作簿"
# Files clerks send instead of the workbook, told by their first bytes: (signatures, what to tell her).
OTHER_FILES = (
    ((b"%PDF-",), "这是PDF文件,不是Excel工作簿。扫描件无法读取,请报送Excel格式的月报"),
    ((b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*"),
     "这是图片,不是Excel工作簿。照片或扫描件无法读取,请报送Excel格式的月报"),
    ((b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c"), "这是RAR或7z压缩包,无法打开。请直接报送Excel文件,或用zip格式压缩"),
    ((b"L\x00\x00\x00\x01\x14\x02\x00",), "这是快捷方式,不是月报文件本身。请把Excel文件本身复制到收件箱"),  # a Windows .lnk
)
WPS_SPREADSHEET = "这是WPS表格自己的 .et 格式,无法读取。请在WPS中“另存为”Excel 工作簿(.xlsx)后报送"
ONLY_ATTACHMENTS = "文件夹或压缩包里没有Excel表格,只有扫描件、图片或Word文件等,请报送Excel格式的月报"
# What a file sent beside the sheets of a folder or zip may be (a stamped letter's scan, a photo, a
# Word note): kept with the return, not read.
ATTACHMENT_REASONS = frozenset({NOT_A_WORKBOOK, *(message for _, message in OTHER_FILES)})
# The reasons that say the file is something else, not a workbook to open and save again.
NOT_A_WORKBOOK_REASONS = ATTACHMENT_REASONS | {ONLY_ATTACHMENTS}


@dataclass
class RawSheet:
    """A sheet's values; grid[r][c] is the cell at Excel row r+1+top, column c+1+left."""

    name: str
    grid: list[list[Cell]]
    top: int = 0
    left: int = 0
    merges: list[Merge] = field(default_factory=list)
    _width: int | None = field(default=None, repr=False, compare=False)

    def cell(self, row: int, col: int) -> Cell:
        """Value at 0-based absolute (row, col), None outside the grid."""
        r, c = row - self.top, col - self.left
        if 0 <= r < len(self.grid) and 0 <= c < len(self.grid[r]):
            value = self.grid[r][c]
            return None if value == "" else value
        return None

    def put(self, row: int, col: int, value: Cell) -> None:
        """Set the value at 0-based absolute (row, col), growing a ragged row if needed."""
        r, c = row - self.top, col - self.left
        if 0 <= r < len(self.grid) and c >= 0:
            line = self.grid[r]
            line.extend([None] * (c + 1 - len(line)))
            line[c] = value
            self._width = None

    @property
    def n_rows(self) -> int:
        return self.top + len(self.grid)

    @property
    def n_cols(self) -> int:
        if self._width is None:  # cached: loops over every row ask for it
            self._width = max((len(r) for r in self.grid), default=0)
        return self.left + self._width

    def trim(self) -> None:
        """Drop empty cells at the end of each row and empty rows at the bottom (positions unchanged)."""
        for line in self.grid:
            while line and line[-1] in (None, ""):
                line.pop()
        while self.grid and not self.grid[-1]:
            self.grid.pop()
        self._width = None


@dataclass
class RawWorkbook:
    format: str  # xlsx | xlsb | ods | xls | xmlss | html | csv | bundle
    sheets: list[RawSheet]
    attachments: list[str] = field(default_factory=list)  # a bundle's members that are not tables: kept, not read


class UnreadableFile(Exception):
    """The file is not a return we can read safely; the message says why, in Chinese."""


def sniff_format(head: bytes) -> str:
    """Tell the container from the first bytes, never from the extension: zip | ole | empty | text."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(OLE_MAGIC):
        return "ole"
    if not head.strip():
        return "empty"
    return "text"


def read_workbook(path: Path, xlsx_reader: str = "calamine") -> RawWorkbook:
    """All sheets of a return (a file of any accepted format, or a folder of per-sheet files)."""
    from pipeline.intake.bundle import read_folder  # bundle reads its members with read_bytes

    book = read_folder(path) if path.is_dir() else read_bytes(read_limited(path), path.name, xlsx_reader=xlsx_reader)
    for sheet in book.sheets:
        sheet.trim()  # a formatted but empty area must not cost the checks a pass over millions of cells
    return book


def share_equal_values(book: RawWorkbook) -> None:
    """One object per distinct text or number of a workbook (its groups, 无, 否, 0 repeat down every column).

    For a whole workbook sent from a reading process: pickling keeps the sharing, so the
    answer is smaller to send and to hold. (Taken-in tables share theirs as their texts
    are made: values.column_texts.)
    """
    seen: dict = {}
    for sheet in book.sheets:
        for line in sheet.grid:
            for i, value in enumerate(line):
                kind = type(value)
                if kind is str or (kind is float and value):  # 0.0 == -0.0: zeros keep their own sign
                    line[i] = seen.setdefault((kind, value), value)


def read_limited(path: Path) -> bytes:
    """A file's bytes, refusing one too large to be a return before reading it."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableFile("文件是空的(0 字节),可能没有保存或复制完整")
    if size > MAX_FILE_BYTES:
        raise UnreadableFile(f"文件太大({size // (1024 * 1024)} MB),不像是一份村(居)月报")
    return path.read_bytes()


def read_bytes(data: bytes, name: str, *, member: bool = False, xlsx_reader: str = "calamine") -> RawWorkbook:
    """Read one file's bytes by their content; `member` is a file inside a zip or folder of sheets."""
    from pipeline.intake import delimited, htmltables, xmlss  # these import this module

    kind = sniff_format(data[:8])
    if kind == "empty":
        raise UnreadableFile("文件是空的,可能没有保存或复制完整")
    for signatures, message in OTHER_FILES:
        if data.startswith(signatures):
            raise UnreadableFile(message)
    if kind == "ole":
        try:
            return read_ole(data)
        except UnreadableFile:
            if name.lower().endswith((".et", ".ett")):  # by content it is only some OLE file: the name says whose
                raise UnreadableFile(WPS_SPREADSHEET) from None
            raise
    if kind == "zip":
        return read_zip(data, member, xlsx_reader)
    text = delimited.decode_text(data)
    if xmlss.looks_like_xml_spreadsheet(text):  # before HTML: its <Table> looks like one
        return xmlss.read_xml_spreadsheet(text)
    if htmltables.looks_like_html(text):
        return htmltables.read_html(text, name)
    if member:
        return delimited.read_csv(text, name)
    raise UnreadableFile("不是Excel工作簿(是纯文本文件;CSV 请按工作表分别保存,放在一个文件夹或 zip 压缩包里报送)")


def read_zip(data: bytes, member: bool, xlsx_reader: str = "calamine") -> RawWorkbook:
    """A zip: an Excel or OpenDocument workbook, or (at the top level) a zip of per-sheet files."""
    from pipeline.intake import bundle, safety

    archive = safety.open_zip(data)
    names = set(archive.namelist())
    if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
        scans = safety.check_ooxml(archive)
        fmt = "xlsb" if "xl/workbook.bin" in names else "xlsx"
        book = openpyxl_workbook(data, fmt) if xlsx_reader == "openpyxl" and fmt == "xlsx" else \
            calamine_workbook(data, fmt)
        safety.check_rows_read(book, scans)
        safety.show_error_values(book, scans)
        return book
    if ODS_MIMETYPE in _mimetype(archive) or "content.xml" in names:
        from pipeline.intake import ods

        safety.check_xml_prologs(archive)
        return calamine_workbook(data, "ods", ods.merged_ranges(archive))
    if any(n.startswith(("word/", "ppt/")) for n in names):
        raise UnreadableFile(NOT_A_WORKBOOK)
    if member:
        raise UnreadableFile("压缩包里又套了一个压缩包,请解开后再报送")
    return bundle.read_zip_bundle(archive)


def _mimetype(archive: Any) -> bytes:
    from pipeline.intake.safety import DAMAGED_ZIP

    try:
        info = archive.getinfo("mimetype")
        return archive.read(info)[:100] if info.file_size <= 100 else b""
    except KeyError:
        return b""
    except DAMAGED_ZIP as exc:
        raise UnreadableFile("文件不完整或已损坏(解压失败)") from exc


def read_ole(data: bytes) -> RawWorkbook:
    """An OLE compound file: a .xls workbook, or an Office file protected by a password."""
    from pipeline.intake import safety

    if safety.is_encrypted_ole(data):
        raise UnreadableFile("工作簿设有打开密码,无法读取。请去掉密码后重新报送")
    if safety.is_other_office_ole(data):
        raise UnreadableFile(NOT_A_WORKBOOK)
    return calamine_workbook(data, "xls")


def calamine_workbook(data: bytes, fmt: str, merges: dict[str, list[Merge]] | None = None) -> RawWorkbook:
    """Every sheet of a workbook calamine reads, merged cells filled in (`merges`: by sheet, where calamine has none)."""
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = [_raw_sheet(book, meta.name, None if merges is None else merges.get(meta.name, []))
                  for meta in book.sheets_metadata if meta.typ == python_calamine.SheetTypeEnum.WorkSheet]
    except python_calamine.PasswordError as exc:
        raise UnreadableFile("工作簿设有密码保护,无法读取。请去掉密码后重新报送") from exc
    except Exception as exc:  # calamine's errors are not one class; any is "unreadable"
        raise UnreadableFile(f"工作簿已损坏,无法读取({type(exc).__name__})") from exc
    return RawWorkbook(fmt, sheets)


def openpyxl_workbook(data: bytes, fmt: str) -> RawWorkbook:
    """Every worksheet's values (cached values of formulas) and merged ranges, read with openpyxl."""
    import openpyxl  # only in a reading process asked for it: its import alone costs ~0.3 s

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
        sheets = []
        for ws in book.worksheets:
            merges = [(m.min_row - 1, m.min_col - 1, m.max_row - 1, m.max_col - 1) for m in ws.merged_cells.ranges]
            grid = [[_as_calamine_gives(v) for v in row] for row in ws.iter_rows(values_only=True)]
            raw = RawSheet(ws.title, grid, merges=merges)
            fill_merges(raw)
            sheets.append(raw)
    except Exception as exc:  # as calamine_workbook: any parser error means unreadable
        raise UnreadableFile(f"工作簿已损坏,无法读取({type(exc).__name__})") from exc
    return RawWorkbook(fmt, sheets)


def _as_calamine_gives(value: Cell) -> Cell:
    """openpyxl's value as calamine shows it: every number a float, a date without a time a date."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date()
    return value


def _raw_sheet(book: Any, name: str, merges: list[Merge] | None = None) -> RawSheet:
    sheet = book.get_sheet_by_name(name)
    start = sheet.start or (0, 0)
    if merges is None:
        merges = [(a[0], a[1], b[0], b[1]) for a, b in (sheet.merged_cell_ranges or [])]
    raw = RawSheet(name, sheet.to_python(), top=start[0], left=start[1], merges=merges)
    fill_merges(raw)
    return raw


def fill_merges(sheet: RawSheet) -> None:
    """Give each cell of a merged range's first column the range's value.

    A header merged over two header rows then names its column in the lower row too, and
    a group name merged down a roster reaches every row of that group. Values are not
    copied across columns: a title or a note merged across the table must stay one cell,
    and a header merged over two columns must not become a duplicate column.
    """
    for top, left, bottom, _right in sheet.merges:
        value = sheet.cell(top, left)
        if value is None:
            continue
        for row in range(top + 1, min(bottom, sheet.n_rows - 1) + 1):  # (a range may claim rows far below)
            if sheet.cell(row, left) is None:
                sheet.put(row, left, value)

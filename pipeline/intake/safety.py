"""Guards that run before any parser sees an untrusted file (SPEC §8).

- A zip is checked from its directory alone (entry count, declared sizes, ratio, total)
  before anything is decompressed; Python's zipfile then never yields more than an
  entry declares (a lying size fails its CRC), so the declared sizes are a safe bound.
- Every XML part is parsed by expat with DTDs refused: no entity expansion, no external
  entities, in whatever encoding the part declares (UTF-16 included).
- Worksheets are scanned for their real extent: a cell far away (calamine aborts the
  whole process on XFD1048576) is refused with a reason, and the rows the reader returns
  are compared with the rows the file holds, so a stale <dimension> can never make rows
  disappear silently.
"""

from __future__ import annotations

import io
import posixpath
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable
from xml.parsers import expat

from pipeline.intake.read import RawWorkbook, UnreadableFile

MAX_ENTRIES = 500
MAX_ENTRY_BYTES = 200 * 1024 * 1024
MAX_TOTAL_BYTES = 300 * 1024 * 1024
MAX_RATIO = 200  # deflate tops out near 1000:1; real sheets compress 5–50:1
RATIO_FROM_BYTES = 1024 * 1024  # tiny entries may compress oddly: the ratio counts from here
MAX_CELL_AREA = 4_000_000  # rows × columns a sheet's values may span (calamine allocates the full rectangle)
CHUNK = 64 * 1024
_REF = re.compile(r"^([A-Z]{1,3})(\d{1,7})$")
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")


# What zipfile raises on damaged members (a lying size fails its CRC: BadZipFile).
DAMAGED_ZIP = (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError, zlib.error, struct.error)


class UnsafeEnvironment(RuntimeError):
    """The machine lacks a protection the pipeline relies on; nothing is read."""


def require_defusedxml() -> None:
    """openpyxl is safe from XML entity attacks only when defusedxml is importable: check it."""
    try:
        import defusedxml  # noqa: F401
    except ImportError as exc:
        raise UnsafeEnvironment("缺少安全组件 defusedxml,为防止恶意文件,本次不处理任何文件。"
                                "请执行 pip install defusedxml 后重新运行。") from exc


def open_zip(data: bytes) -> zipfile.ZipFile:
    """Open a zip and check its directory before anything is decompressed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, struct.error, EOFError) as exc:
        raise UnreadableFile("文件不完整或已损坏(可能没有下载或复制完整),请重新保存后报送") from exc
    check_zip(archive.infolist(), len(data))
    return archive


def check_zip(entries: list[zipfile.ZipInfo], compressed_size: int) -> None:
    """Entry count, encryption, declared sizes and compression ratio within bounds."""
    if len(entries) > MAX_ENTRIES:
        raise UnreadableFile(f"压缩包里的文件太多({len(entries)} 个),不像是一份月报")
    total = 0
    for info in entries:
        if info.flag_bits & 0x1:
            raise UnreadableFile("压缩包设有密码,无法读取。请去掉密码后重新报送")
        if info.file_size > MAX_ENTRY_BYTES:
            raise UnreadableFile(f"压缩包里的“{info.filename[:60]}”解压后过大({info.file_size // 2**20} MB),疑似“压缩炸弹”")
        if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UnreadableFile(f"压缩包里的“{info.filename[:60]}”压缩比异常(超过 {MAX_RATIO} 倍),疑似“压缩炸弹”")
        total += info.file_size
    if total > MAX_TOTAL_BYTES or (total > RATIO_FROM_BYTES and total > MAX_RATIO * max(compressed_size, 1)):
        raise UnreadableFile(f"压缩包解压后共 {total // 2**20} MB,疑似“压缩炸弹”")


def is_encrypted_ole(data: bytes) -> bool:
    """An Office file with an open password is an OLE container holding an EncryptedPackage stream."""
    return _ENCRYPTED in data


# ---- XML parts -----------------------------------------------------------------------

class _PrologDone(Exception):
    """The root element started: the part has no DTD."""


@dataclass
class SheetScan:
    """What a worksheet part really holds, counted while checking it."""

    part: str
    first_row: int = 0  # 1-based, 0 while no value seen
    last_row: int = 0  # last row with a non-empty value
    min_col: int = 0
    max_col: int = 0
    max_row_any: int = 0  # last row with any value element, even an empty one
    values: int = 0


def column_number(letters: str) -> int:
    """'A' → 1, 'XFD' → 16384."""
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def column_letters(number: int) -> str:
    """16384 → 'XFD' (1-based)."""
    letters = ""
    while number > 0:
        number, rem = divmod(number - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _refuse_dtd(*_args: object) -> None:
    raise UnreadableFile("文件里含有 XML 实体或文档类型声明(DTD),可能是恶意构造的文件,已拒绝读取")


def _parser() -> expat.XMLParserType:
    """An expat parser that refuses any DTD, entity declaration or external entity."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    return parser


def parse_part(archive: zipfile.ZipFile, name: str, setup: Callable[[expat.XMLParserType], None]) -> None:
    """Stream one part through a DTD-refusing expat parser that `setup` gives handlers."""
    parser = _parser()
    setup(parser)
    try:
        with archive.open(name) as fh:
            while chunk := fh.read(CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except _PrologDone:
        return
    except expat.ExpatError as exc:
        raise UnreadableFile(f"文件内容已损坏(“{name[:60]}”不是有效的 XML)") from exc
    except DAMAGED_ZIP as exc:
        raise UnreadableFile(f"文件不完整或已损坏(“{name[:60]}”解压失败)") from exc


def _stop_at_root(parser: expat.XMLParserType) -> None:
    def start(*_args: object) -> None:
        raise _PrologDone
    parser.StartElementHandler = start


def xml_parts(archive: zipfile.ZipFile) -> list[str]:
    return [n for n in archive.namelist() if n.lower().endswith((".xml", ".rels", ".vml")) and not n.endswith("/")]


def check_xml_prologs(archive: zipfile.ZipFile) -> None:
    """Every XML part: no DTD (a DTD can only stand before the root element)."""
    for name in xml_parts(archive):
        parse_part(archive, name, _stop_at_root)


def check_ooxml(archive: zipfile.ZipFile) -> dict[str, SheetScan]:
    """Check every part of an .xlsx; return, per sheet name, what its worksheet holds."""
    targets = sheet_parts(archive)
    scans: dict[str, SheetScan] = {}
    for name in xml_parts(archive):
        if name in targets.values():
            scans[name] = scan_sheet(archive, name)
        else:
            parse_part(archive, name, _stop_at_root)
    for sheet, part in targets.items():
        scan = scans.get(part)
        if scan is not None:
            _check_extent(sheet, scan)
    return {sheet: scans[part] for sheet, part in targets.items() if part in scans}


def sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name → its worksheet part, from workbook.xml and its relationships."""
    sheets: list[tuple[str, str]] = []
    rels: dict[str, str] = {}

    def on_workbook(parser: expat.XMLParserType) -> None:
        def start(tag: str, attrs: dict[str, str]) -> None:
            if tag.rsplit(":", 1)[-1] == "sheet":
                rid = next((v for k, v in attrs.items() if k.endswith(":id")), "")
                sheets.append((attrs.get("name", ""), rid))
        parser.StartElementHandler = start

    def on_rels(parser: expat.XMLParserType) -> None:
        def start(tag: str, attrs: dict[str, str]) -> None:
            if tag.rsplit(":", 1)[-1] == "Relationship":
                rels[attrs.get("Id", "")] = attrs.get("Target", "")
        parser.StartElementHandler = start

    names = set(archive.namelist())
    if "xl/workbook.xml" not in names:
        return {}
    parse_part(archive, "xl/workbook.xml", on_workbook)
    if "xl/_rels/workbook.xml.rels" in names:
        parse_part(archive, "xl/_rels/workbook.xml.rels", on_rels)
    return {sheet: _resolve(rels.get(rid, "")) for sheet, rid in sheets if rels.get(rid)}


def _resolve(target: str) -> str:
    """A relationship target relative to xl/ (or absolute from the package root)."""
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join("xl", target))


def scan_sheet(archive: zipfile.ZipFile, name: str) -> SheetScan:
    """Stream a worksheet: where its values really are (cells without r= counted in order)."""
    scan = SheetScan(name)
    state = {"row": 0, "col": 0, "in_cell": False, "has_value": False, "text": False, "error": False, "tag": ""}

    def start(tag: str, attrs: dict[str, str]) -> None:
        local = tag.rsplit(":", 1)[-1]
        if local == "row":
            state["row"] = int(attrs["r"]) if attrs.get("r", "").isdigit() else state["row"] + 1
            state["col"] = 0
        elif local == "c":
            ref = _REF.match(attrs.get("r", ""))
            if ref:
                state["row"], state["col"] = int(ref.group(2)), column_number(ref.group(1))
            else:
                state["col"] += 1
            state.update(in_cell=True, has_value=False, text=False, error=attrs.get("t") == "e")
        elif state["in_cell"] and local in ("v", "is", "f"):
            state["has_value"] = True
        state["tag"] = local

    def chars(data: str) -> None:
        if state["in_cell"] and state["tag"] in ("v", "t") and data.strip():
            state["text"] = True

    def end(tag: str) -> None:
        if tag.rsplit(":", 1)[-1] == "c" and state["in_cell"]:
            state["in_cell"] = False
            if state["has_value"]:
                # calamine shows an error value (#DIV/0!) as blank: such a cell is not a row it must return
                _count(scan, state["row"], state["col"], state["text"] and not state["error"])

    def setup(parser: expat.XMLParserType) -> None:
        parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, chars

    parse_part(archive, name, setup)
    return scan


def _count(scan: SheetScan, row: int, col: int, non_empty: bool) -> None:
    scan.values += 1
    scan.max_row_any = max(scan.max_row_any, row)
    scan.first_row = row if not scan.first_row else min(scan.first_row, row)
    scan.min_col = col if not scan.min_col else min(scan.min_col, col)
    scan.max_col = max(scan.max_col, col)
    if non_empty:
        scan.last_row = max(scan.last_row, row)


def _check_extent(sheet: str, scan: SheetScan) -> None:
    """Refuse a sheet whose values span a rectangle too large to hold (a cell far away)."""
    if not scan.values:
        return
    area = (scan.max_row_any - scan.first_row + 1) * (scan.max_col - scan.min_col + 1)
    if area > MAX_CELL_AREA:
        raise UnreadableFile(
            f"工作表“{sheet[:31]}”在很远的单元格(第 {scan.max_row_any} 行、第 {column_letters(scan.max_col)} 列)"
            "有内容,表格范围过大,可能是损坏或恶意构造的文件。请删除多余内容后重新保存")


def check_rows_read(book: RawWorkbook, scans: dict[str, SheetScan]) -> None:
    """Every row that holds a value in the file was read: fewer rows is refused, never silent."""
    for sheet in book.sheets:
        scan = scans.get(sheet.name)
        if scan is None or not scan.last_row:
            continue
        read_to = max((sheet.top + r + 1 for r, line in enumerate(sheet.grid)
                       if any(v not in (None, "") for v in line)), default=0)
        if read_to < scan.last_row:
            raise UnreadableFile(f"工作表“{sheet.name[:31]}”只读到第 {read_to} 行,文件里有数据到第 {scan.last_row} 行"
                                 "(文件的表格范围记录有误)。请用Excel打开后另存一次再报送")

"""Guards that run before any parser sees an untrusted file (SPEC §8).

- A zip is checked from its directory alone (entry count, declared sizes, ratio, total)
  before anything is decompressed; Python's zipfile then never yields more than an
  entry declares (a lying size fails its CRC), so the declared sizes are a safe bound.
- Every XML part is checked for a DTD before its root element: no entity expansion, no
  external entities, in whatever encoding the part declares (UTF-16 included).
- Worksheets are scanned for their real extent: a cell far away (calamine aborts the
  whole process on XFD1048576) is refused with a reason, and the rows the reader returns
  are compared with the rows the file holds, so a stale <dimension> can never make rows
  disappear silently.

Two ways to check a part, with the same results (tests/test_safety_scan.py compares them):
- The fast path (every ordinary file, ~10× faster) reads the part's bytes and uses compiled
  patterns. The prolog must be plain UTF-8 (or ASCII): an XML declaration, comments,
  processing instructions and white space up to a well-formed root start tag. A worksheet
  must be made of cells the patterns fully recognise: one `re.split` takes out the cells
  nearly every writer makes, stricter patterns read whatever cells are left (r= anywhere
  in the tag, inline strings, a namespace prefix), and each start tag of a cell must be
  accounted for. Counts and extremes then come from sets and builtins over what the
  patterns return, not from a Python call per cell.
- Expat (the reference) takes over whenever the patterns cannot be sure: another encoding
  (UTF-16, a BOM other than UTF-8's, a declared encoding other than UTF-8/ASCII), anything
  but a plain prolog (a DOCTYPE above all: expat then refuses it with its reason), a
  worksheet above FAST_SCAN_MAX_BYTES, comments, CDATA or processing instructions after
  the root, a value cell without a plain r="A1" (expat then counts it by its place), a
  repeated r= or t=, single-quoted or escaped attribute values, an element the patterns do
  not know inside a cell, cells of two namespace prefixes, a row 0. (A row without r= does
  not matter: every value cell carries its own reference.)
  XML broken in a way the patterns do not notice is left to calamine, which reads it or
  refuses it next; the patterns still see every cell start tag it could find.
"""

from __future__ import annotations

import html
import io
import posixpath
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
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
PROLOG_BYTES = 4096  # the head of a part where a plain prolog and the root start tag stand (else: expat)
FAST_SCAN_MAX_BYTES = 16 * 1024 * 1024  # larger worksheets are streamed by expat: memory stays bounded
_REF = re.compile(r"^([A-Z]{1,3})(\d{1,7})$")
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
# Stream names in an OLE directory (UTF-16, with the terminating NUL the directory stores).
_WORKBOOK_STREAMS = tuple(f"{name}\0".encode("utf-16-le") for name in ("Workbook", "Book"))
_OTHER_OFFICE_STREAMS = tuple(f"{name}\0".encode("utf-16-le") for name in ("WordDocument", "PowerPoint Document"))


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


def is_other_office_ole(data: bytes) -> bool:
    """An old Word or PowerPoint file (.doc, .ppt, WPS's .wps, .dps): a WordDocument or PowerPoint Document
    stream and no workbook stream. (Only told apart to say so: anything else goes to the parser.)"""
    return any(name in data for name in _OTHER_OFFICE_STREAMS) and not any(name in data for name in _WORKBOOK_STREAMS)


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
    # (row, column) of each cell holding an error value (t="e"), 1-based → its text (#DIV/0!, #REF!):
    # calamine reads such a cell as blank, Excel shows the error, and so does the clerk's finding
    errors: dict[tuple[int, int], str] = field(default_factory=dict)


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


def refusing_parser() -> expat.XMLParserType:
    """An expat parser that refuses any DTD, entity declaration or external entity."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    return parser


def local_name(name: str) -> str:
    """An element's or attribute's name without its namespace prefix, whatever prefix the file chose."""
    return name.rsplit(":", 1)[-1]


def attribute(attrs: dict[str, str], name: str) -> str:
    """An attribute by its local name ("" when absent)."""
    return next((v for k, v in attrs.items() if local_name(k) == name), "")


def parse_part(archive: zipfile.ZipFile, name: str, setup: Callable[[expat.XMLParserType], None]) -> None:
    """Stream one part through a DTD-refusing expat parser that `setup` gives handlers."""
    parser = refusing_parser()
    setup(parser)
    try:
        with archive.open(name) as fh:
            while chunk := fh.read(CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except _PrologDone:
        return
    except (expat.ExpatError, LookupError, ValueError) as exc:  # (the last two: an encoding expat cannot read)
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
        check_prolog(archive, name)


def check_every_xml_prolog(archive: zipfile.ZipFile) -> None:
    """As check_xml_prologs, and also any other part that begins like XML (a worksheet part may be named
    anything): for a parser that guards against no entity (the writing processes' openpyxl)."""
    named = set(xml_parts(archive))
    for name in archive.namelist():
        if name in named or (not name.endswith("/") and _read(archive, name, 4).lstrip().startswith(_XML_STARTS)):
            check_prolog(archive, name)


_XML_STARTS = (b"<", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")  # a tag, or a UTF-8/16 byte order mark


def check_prolog(archive: zipfile.ZipFile, name: str) -> None:
    """One part has no DTD: a plain prolog at its head, else expat decides."""
    if _root_start(_read(archive, name, PROLOG_BYTES)) is None:
        parse_part(archive, name, _stop_at_root)


def check_ooxml(archive: zipfile.ZipFile) -> dict[str, SheetScan]:
    """Check every part of an .xlsx; return, per sheet name, what its worksheet holds."""
    targets = sheet_parts(archive)
    worksheets = set(targets.values())
    scans: dict[str, SheetScan] = {}
    for name in xml_parts(archive):
        if name in worksheets:
            scans[name] = scan_sheet(archive, name)
        else:
            check_prolog(archive, name)
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
            if local_name(tag) == "sheet":
                rid = next((v for k, v in attrs.items() if k.endswith(":id")), "")
                sheets.append((attrs.get("name", ""), rid))
        parser.StartElementHandler = start

    def on_rels(parser: expat.XMLParserType) -> None:
        def start(tag: str, attrs: dict[str, str]) -> None:
            if local_name(tag) == "Relationship":
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
    """Where a worksheet's values really are: by patterns when they can be sure, else by expat."""
    if archive.getinfo(name).file_size > FAST_SCAN_MAX_BYTES:
        return scan_sheet_expat(archive, name)
    data = _read(archive, name)
    scan = scan_sheet_bytes(data, name)
    return scan if scan is not None else scan_sheet_expat(archive, name)


def scan_sheet_expat(archive: zipfile.ZipFile, name: str) -> SheetScan:
    """Stream a worksheet through expat (the reference): cells without r= counted in order."""
    scan = SheetScan(name)
    state = {"row": 0, "col": 0, "in_cell": False, "has_value": False, "text": False, "error": False, "tag": ""}

    def start(tag: str, attrs: dict[str, str]) -> None:
        local = local_name(tag)
        if local == "row":
            state["row"] = int(attrs["r"]) if attrs.get("r", "").isdecimal() else state["row"] + 1
            state["col"] = 0
        elif local == "c":
            ref = _REF.match(attrs.get("r", ""))
            if ref:
                state["row"], state["col"] = int(ref.group(2)), column_number(ref.group(1))
            else:
                state["col"] += 1
            state.update(in_cell=True, has_value=False, text=False, error=attrs.get("t") == "e", shown=[])
        elif state["in_cell"] and local in ("v", "is", "f"):
            state["has_value"] = True
        state["tag"], state["in_v"] = local, local == "v"

    def chars(data: str) -> None:
        if state["in_cell"] and state["tag"] in ("v", "t") and data.strip():
            state["text"] = True
        if state["in_cell"] and state["in_v"] and state["error"]:
            state["shown"].append(data)

    def end(tag: str) -> None:
        state["in_v"] = False
        if local_name(tag) == "c" and state["in_cell"]:
            state["in_cell"] = False
            if state["has_value"]:
                # calamine shows an error value (#DIV/0!) as blank: such a cell is not a row it must return
                _count(scan, state["row"], state["col"], state["text"] and not state["error"])
            if state["error"] and (shown := "".join(state["shown"])).strip():
                scan.errors[(state["row"], state["col"])] = shown

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


# ---- fast path: compiled patterns over a part's bytes --------------------------------

# A prolog expat would pass without a DTD, then the root start tag: UTF-8 (BOM allowed), the
# XML declaration only at the very start, names and attribute values plain ASCII/UTF-8 text,
# no character XML forbids. Anything else (a DOCTYPE above all) is left to expat.
_PROLOG = re.compile(rb"""
    (?:\xef\xbb\xbf)?
    (?:<\?xml%(S)s+version%(S)s*=%(S)s*(["'])1\.[0-9]+\1
       (?:%(S)s+encoding%(S)s*=%(S)s*(["'])(?P<encoding>[A-Za-z][A-Za-z0-9._-]*)\2)?
       (?:%(S)s+standalone%(S)s*=%(S)s*(["'])(?:yes|no)\4)?%(S)s*\?>)?
    (?>%(S)s+                                                     # white space
     |<!--(?:[^%(X)s-]|-[^%(X)s-])*-->                             # a comment (no "--" in it)
     |<\?(?![Xx][Mm][Ll][ \t\r\n?])%(N)s(?:%(S)s(?:[^%(X)s?]|\?(?!>))*)?\?>  # an instruction
    )*
    (?P<root><%(N)s(?:%(S)s+%(N)s%(S)s*=%(S)s*(?:"[^%(X)s"<&]*"|'[^%(X)s'<&]*'))*%(S)s*/?>)
    """ % {b"S": rb"[ \t\r\n]", b"X": rb"\x00-\x08\x0b\x0c\x0e-\x1f", b"N": rb"[A-Za-z_][\w.:-]*"}, re.VERBOSE)
_UTF8_NAMES = (b"utf-8", b"us-ascii")  # what expat itself reads as UTF-8; any other name goes to expat

# Every character str.isspace() accepts: the expat scan asks `data.strip()`, so these make a text blank.
_SPACE_CODES = (0x9, 0xA, 0xB, 0xC, 0xD, *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                0x2028, 0x2029, 0x202F, 0x205F, 0x3000)


def _hex_any_case(code: int) -> bytes:
    """0x200a → b"200[aA]": hexadecimal digits of a character reference in either case."""
    return "".join(f"[{ch}{ch.upper()}]" if ch.isalpha() else ch for ch in f"{code:x}").encode()


# One blank character as it can stand in the bytes: raw UTF-8 or a character reference.
_BLANK = b"|".join([
    *(re.escape(chr(c).encode()) for c in _SPACE_CODES),
    rb"&\#0*(?:%s);" % b"|".join(b"%d" % c for c in _SPACE_CODES),
    rb"&\#x0*(?:%s);" % b"|".join(_hex_any_case(c) for c in _SPACE_CODES),
])
# A character that starts a non-blank text with no doubt: ASCII, not white space, not a reference.
_PLAIN_NON_BLANK = rb"[^\t-\r\x1c-\x20<&\x80-\xff]"

# Every start tag of local name c (its prefix), even with a prefix no XML name could have:
# whatever a lenient reader might take for a cell is counted, never skipped.
_ANY_CELL = re.compile(rb"<((?:[^\s<>/][^\s<>]*:)?)c[\s/>]")
_PREFIXED_CELL = re.compile(rb":c[\s/>]")  # at least every prefixed one (text may hold more)
_UNPREFIXED_CELL = re.compile(rb"<c[\s/>]")
_NAME = rb"[A-Za-z_][\w.:-]*"
_VALUE = rb'"[^"<>&]*"'  # double quotes, no reference: the bytes are the value expat would see
_TAKEN_OUT = b"<>"  # stands where a plain cell was taken out: no cell pattern passes over it


class _CellPatterns:
    """The patterns for the cells of one namespace prefix (b"" or b"x:").

    `plain` takes out, in one pass, the cells nearly every writer makes (r first, then s
    and t; a number or shared-string index in <v>, maybe after a formula): a cell with a
    non-blank value gives its column letters and row, a self-closing cell gives None twice.
    `cell` and `text_row` then read whatever other cells are left, in every form the schema
    allows. (`(?:x|)` rather than `(?:x)?`: the regex engine runs it faster.)
    """

    def __init__(self, prefix: bytes) -> None:
        p = re.escape(prefix)
        attrs = rb"(?>(?:\s+%s=%s)*\s*)" % (_NAME, _VALUE)

        def element(name: bytes, content: bytes) -> bytes:
            return rb"<%s%s%s(?:/>|>%s</%s%s>)" % (p, name, attrs, content, p, name)

        plain_formula = rb'<%sf(?: [A-Za-z]+="[^"<>&]*")*(?:/>|>[^<]*</%sf>)' % (p, p)
        self.plain = re.compile(
            rb'<%sc r="([A-Z]{1,3})([0-9]{1,7})"(?: s="[0-9]{1,9}"|)(?: t="(?:s|n|str|b|d)"|)>'
            rb"(?:<%sv>|%s<%sv>)%s[^<]*</%sv></%sc>"
            rb'|<%sc(?: %s="[^"<>&]*")*/>' % (p, p, plain_formula, p, _PLAIN_NON_BLANK, p, p, p, _NAME))
        self.tag = re.compile(rb"<%sc[\s/>]" % p)

        others = rb"(?>(?:\s+(?![rt]=)%s=%s)*)" % (_NAME, _VALUE)  # neither r nor t: each stands once
        ref = rb'\s+r="([A-Z]{1,3})([0-9]{1,7})"' + others
        kind = rb"\s+t=%s" % _VALUE + others
        start = rb"<%sc%s(?:%s(?:%s|)|%s%s)\s*>" % (p, others, ref, kind, kind, ref)  # r, then t or not; or t, then r
        text = element(b"t", rb"[^<]*")
        run_properties = element(b"rPr", rb"(?:\s|<%s[A-Za-z]+%s/>)*+" % (p, attrs))
        run = rb"<%sr%s>\s*(?:%s\s*|)(?:%s\s*|)</%sr>" % (p, attrs, run_properties, text, p)
        phonetic_run = rb"<%srPh%s>\s*(?:%s\s*|)</%srPh>" % (p, attrs, text, p)
        phonetic_properties = rb"<%sphoneticPr%s/>" % (p, attrs)
        inline = element(b"is", rb"(?:\s|%s|%s|%s|%s)*+" % (text, run, phonetic_run, phonetic_properties))
        formula = element(b"f", rb"[^<]*")
        value = element(b"v", rb"[^<]*")
        content = rb"\s*(?:%s\s*(?:%s\s*|)(?:%s\s*|)|%s\s*(?:%s\s*|)|%s\s*)" % (
            formula, value, inline, value, inline, inline)
        # A value cell gives its reference (in groups 1-2 or 3-4, by attribute order);
        # a cell without a value gives four empty groups.
        self.cell = re.compile(rb"%s%s</%sc>|<%sc%s(?:/>|>\s*</%sc>)" % (start, content, p, p, attrs, p))
        # The row of each cell, not an error (t="e"), with a non-blank text in a <v> or <t>:
        # run only once `cell` recognised every cell, so a cell's content ends at its </c>.
        self.text_row = re.compile(
            rb'<%sc(?=[^<>]*?\sr="[A-Z]{1,3}([0-9]{1,7})")(?![^<>]*?\st="e")[^<>]*(?<!/)>'
            rb"(?:[^<]|<(?!/%sc>))*?<%s[vt](?:\s[^<>]*)?>(?>(?:%s)*)[^<]" % (p, p, p, _BLANK))


@lru_cache(maxsize=8)
def _cell_patterns(prefix: bytes) -> _CellPatterns:
    return _CellPatterns(prefix)


def _read(archive: zipfile.ZipFile, name: str, limit: int = -1) -> bytes:
    """A part's bytes (the first `limit` of them): a damaged member is an unreadable file."""
    try:
        with archive.open(name) as fh:
            return fh.read(limit)
    except DAMAGED_ZIP as exc:
        raise UnreadableFile(f"文件不完整或已损坏(“{name[:60]}”解压失败)") from exc


def _root_start(data: bytes) -> int | None:
    """Where the root element starts when the prolog is plain UTF-8 with no DTD; None: ask expat."""
    prolog = _PROLOG.match(data)
    if prolog is None:
        return None
    encoding = prolog.group("encoding")
    if encoding is not None and encoding.lower() not in _UTF8_NAMES:
        return None
    return prolog.start("root")


@dataclass
class _Cells:
    """What some cells hold: how many have a value, and their rows and columns as written."""

    values: int = 0
    rows: frozenset[bytes] = frozenset()  # rows of the cells with a value
    text_rows: frozenset[bytes] = frozenset()  # rows of the cells with a non-blank, non-error text
    columns: frozenset[bytes] = frozenset()  # column letters of the cells with a value


def _plain_cells(columns: list[bytes | None], rows: list[bytes | None]) -> _Cells:
    """The cells `plain` took out (None: a self-closing cell); each with a value has a text."""
    distinct_rows = frozenset(rows)
    if None not in distinct_rows:  # (counting None in a long list is slow: only when there is one)
        return _Cells(len(rows), distinct_rows, distinct_rows, frozenset(columns))
    distinct_rows -= {None}
    return _Cells(len(rows) - rows.count(None), distinct_rows, distinct_rows, frozenset(columns) - {None})


def _count_cell_tags(rest: bytes, patterns: _CellPatterns, prefix: bytes) -> int:
    """Start tags of local name c, in any prefix: by literals when no other prefix can be there."""
    mine = len(patterns.tag.findall(rest))
    prefixed = len(_PREFIXED_CELL.findall(rest))
    if prefixed == (mine if prefix else 0) and (not prefix or not _UNPREFIXED_CELL.search(rest)):
        return mine
    return len(_ANY_CELL.findall(rest))


def _other_cells(rest: bytes, patterns: _CellPatterns, prefix: bytes) -> _Cells | None:
    """The cells left after the plain ones; None unless `cell` recognises every one of them."""
    tags = _count_cell_tags(rest, patterns, prefix)
    if not tags:
        return _Cells()
    cells = patterns.cell.findall(rest)
    if len(cells) != tags:
        return None  # a cell the patterns do not fully recognise
    columns1, rows1, columns2, rows2 = zip(*cells)
    return _Cells(len(cells) - cells.count((b"", b"", b"", b"")), frozenset(rows1 + rows2) - {b""},
                  frozenset(patterns.text_row.findall(rest)), frozenset(columns1 + columns2) - {b""})


def scan_sheet_bytes(data: bytes, name: str) -> SheetScan | None:
    """A worksheet's scan from its bytes, the same as expat's; None when the patterns cannot be sure."""
    root = _root_start(data)
    if root is None:
        return None
    body = data[root:]
    first = _ANY_CELL.search(body)
    if first is None:
        return SheetScan(name)  # not a cell anywhere, not even in a comment
    prefix = first.group(1)
    patterns = _cell_patterns(prefix)
    parts = patterns.plain.split(body)  # [between, columns, row, between, columns, row, ..., between]
    rest = _TAKEN_OUT.join(filter(None, parts[0::3]))  # (the markers stay between all that was apart)
    if b"<!" in rest or b"<?" in rest:
        return None  # comments, CDATA, instructions (never in a plain cell): markup the patterns do not follow
    other = _other_cells(rest, patterns, prefix)
    if other is None:
        return None
    plain = _plain_cells(parts[1::3], parts[2::3])
    scan = _scan(name, plain if not other.values else _Cells(
        plain.values + other.values, plain.rows | other.rows, plain.text_rows | other.text_rows,
        plain.columns | other.columns))
    if scan is not None and b't="e"' in rest:  # (an error cell is never a plain one)
        scan.errors = _error_values(rest, prefix)
    return scan


def _error_values(rest: bytes, prefix: bytes) -> dict[tuple[int, int], str]:
    """Each error cell's (row, column) → the text of its <v>, as expat reads it (the patterns already
    made sure every cell is one they recognise, with its r=)."""
    p = re.escape(prefix)
    found = {}
    for attrs, content in re.findall(rb"<%sc(\s[^<>]*?)(?<!/)>(.*?)</%sc>" % (p, p), rest, re.S):
        if not re.search(rb'\st="e"', attrs):
            continue
        ref = re.search(rb'\sr="([A-Z]{1,3})([0-9]{1,7})"', attrs)
        texts = re.findall(rb"<%sv(?:\s[^<>]*)?>([^<]*)</%sv>" % (p, p), content)
        shown = html.unescape(b"".join(texts).replace(b"\r\n", b"\n").replace(b"\r", b"\n").decode("utf-8"))
        if ref and shown.strip():
            found[(int(ref.group(2)), column_number(ref.group(1).decode()))] = shown
    return found


def _scan(name: str, cells: _Cells) -> SheetScan | None:
    """The scan of a sheet from its cells, as numbers; None for a row 0 (expat's order decides then)."""
    if not cells.values:
        return SheetScan(name)
    rows = set(map(int, cells.rows))
    if 0 in rows:
        return None  # no such row: expat's running minimum would take it or not by its place
    text_rows = rows if cells.text_rows is cells.rows else set(map(int, cells.text_rows))
    columns = [column_number(c.decode()) for c in cells.columns]
    return SheetScan(name, first_row=min(rows), last_row=max(text_rows, default=0),
                     min_col=min(columns), max_col=max(columns), max_row_any=max(rows), values=cells.values)


def _check_extent(sheet: str, scan: SheetScan) -> None:
    """Refuse a sheet whose values span a rectangle too large to hold (a cell far away)."""
    if not scan.values:
        return
    area = (scan.max_row_any - scan.first_row + 1) * (scan.max_col - scan.min_col + 1)
    if area > MAX_CELL_AREA:
        raise UnreadableFile(
            f"工作表“{sheet[:31]}”在很远的单元格(第 {scan.max_row_any} 行、第 {column_letters(scan.max_col)} 列)"
            "有内容,表格范围过大,可能是损坏或恶意构造的文件。请删除多余内容后重新保存")


def show_error_values(book: RawWorkbook, scans: dict[str, SheetScan]) -> None:
    """Put each error value (#DIV/0!) where calamine left the cell blank: the checks then say what Excel
    shows her ("应填数字,这里填的是“#DIV/0!”"), not that the cell is empty, as with openpyxl as the reader."""
    for sheet in book.sheets:
        scan = scans.get(sheet.name)
        for (row, col), text in (scan.errors.items() if scan else ()):
            if sheet.cell(row - 1, col - 1) is None:
                sheet.put(row - 1, col - 1, text)


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

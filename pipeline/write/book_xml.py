"""Her .xlsx as its XML parts, edited in place: cells marked, notes added, a first sheet put in.

openpyxl builds an object for every cell to open a workbook and writes every cell back to
save it: ~110 ms for a return of 7,000 cells, most of a bad night's writing. An XmlBook
parses only the parts it changes (the workbook, its styles, the sheets that get marks and
their notes) and copies every other part as it came, so her formatting, data validations,
pictures and formulas stay exactly hers.

It takes only a package whose every part it knows and that points at nothing outside the
file; anything else raises NotPlain, and unit_book has openpyxl make such a book plain
first. Whether what a book contains is safe (its formulas, say) is for unit_book to judge
from what this module lists.
"""

from __future__ import annotations

import bisect
import copy
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from lxml import etree
from openpyxl.utils import column_index_from_string, get_column_letter

from pipeline.write.safe import FORMULA_TRIGGERS, safe_text

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
_SML = "application/vnd.openxmlformats-officedocument.spreadsheetml."
_DOC = "application/vnd.openxmlformats-officedocument."
WORKBOOK_TYPE = _SML + "sheet.main+xml"
WORKSHEET_TYPE = _SML + "worksheet+xml"
COMMENTS_TYPE = _SML + "comments+xml"
VML_TYPE = _DOC + "vmlDrawing"
# What an ordinary workbook from Excel, WPS, xlsxwriter or openpyxl is made of. Macros,
# external links, embedded objects, ActiveX, pivot caches, threaded comments… are not here:
# such a book goes through openpyxl, which drops what is not safe to send back.
KNOWN_TYPES = frozenset({
    WORKBOOK_TYPE, WORKSHEET_TYPE, COMMENTS_TYPE, VML_TYPE, _SML + "sharedStrings+xml", _SML + "styles+xml",
    _SML + "calcChain+xml", _SML + "table+xml", _SML + "printerSettings", _DOC + "theme+xml",
    _DOC + "extended-properties+xml", _DOC + "custom-properties+xml", _DOC + "drawing+xml",
    _DOC + "drawingml.chart+xml", "application/vnd.ms-office.chartstyle+xml",
    "application/vnd.ms-office.chartcolorstyle+xml", "application/vnd.openxmlformats-package.core-properties+xml",
    "application/vnd.openxmlformats-package.relationships+xml", "application/xml",
    "image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff", "image/x-emf", "image/x-wmf",
})
BINARY_TYPES = frozenset({_SML + "printerSettings", *(t for t in KNOWN_TYPES if t.startswith("image/"))})
# The children of <worksheet> in the order the schema requires (Excel repairs a book otherwise).
_SHEET_ORDER = """sheetPr dimension sheetViews sheetFormatPr cols sheetData sheetCalcPr sheetProtection
    protectedRanges scenarios autoFilter sortState dataConsolidate customSheetViews mergeCells phoneticPr
    conditionalFormatting dataValidations hyperlinks printOptions pageMargins pageSetup headerFooter rowBreaks
    colBreaks customProperties cellWatches ignoredErrors smartTags drawing legacyDrawing legacyDrawingHF
    drawingHF picture oleObjects controls webPublishItems tableParts extLst""".split()
_WORKBOOK_ORDER = """fileVersion fileSharing workbookPr workbookProtection bookViews sheets functionGroups
    externalReferences definedNames calcPr oleSize customWorkbookViews pivotCaches smartTagPr smartTagTypes
    webPublishing fileRecoveryPr webPublishObjects extLst""".split()
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
_REF = re.compile(r"^([A-Z]{1,3})(\d+)$")
# Patterns over a part's bytes, for what need not be parsed: an element may carry any prefix
# (<x:f> is <f>), an attribute either quote.
_P = rb"(?:[\w.-]+:)?"
_ANY_FORMULA = re.compile(rb"<" + _P + rb"f[\s/>]")
_SHARED_STRING_CELL = re.compile(rb"<" + _P + rb"""c\b[^>]*\bt=["']s["'][^>]*>\s*<""" + _P + rb"v>\s*(\d+)")
_SHEET_VIEWS = re.compile(rb"<" + _P + rb"sheetViews\b.*?</" + _P + rb"sheetViews>", re.S)
_TAB_SELECTED = re.compile(rb"""\stabSelected\s*=\s*["'](?:1|true)["']""")
_URL_OR_PATH = re.compile(r"\s*(?:[A-Za-z][\w+.-]*:|[/\\]{2})")  # http:, file:, C:, //host, \\host
_DECLARED = re.compile(rb"""\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']+)["']""")
_OBJECT_TYPE = re.compile(rb"""ObjectType\s*=\s*["']([^"']*)["']""")
_IDMAP = re.compile(rb"<" + _P + rb"""idmap\b[^>]*\bdata\s*=\s*["']([\d,\s]*)["']""")
_COLOUR = re.compile(r'rgb="([0-9A-Fa-f]{8})"')


class NotPlain(Exception):
    """A workbook this module does not edit as it is (why, for the log of the writer)."""


def _parse(data: bytes) -> etree._Element:
    """A part's XML; NotPlain where lxml cannot read it (calamine, more lenient, may have)."""
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise NotPlain(f"XML: {exc}") from exc


def _serialised(tree: etree._Element) -> bytes:
    """A part's bytes as Excel writes them: UTF-8, with its declaration."""
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", standalone=True)


def _utf8(data: bytes) -> bool:
    """XML (or VML) in UTF-8: no UTF-16 byte order mark or NULs at its head, no other encoding declared."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:256]:
        return False
    declared = _DECLARED.match(data.removeprefix(b"\xef\xbb\xbf"))
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")


def _outside(rel: etree._Element) -> bool:
    """A relationship to something outside the file: said so, or a URL, a drive or a network path
    as its target (a reader may follow one whatever its mode)."""
    target = rel.get("Target") or ""
    return (rel.get("TargetMode") or "").lower() == "external" or _URL_OR_PATH.match(target) is not None


def q(tag: str) -> str:
    """A SpreadsheetML element's qualified name."""
    return f"{{{MAIN}}}{tag}"


def cell_ref(row: int, column: int) -> str:
    return f"{get_column_letter(column)}{row}"


def parse_ref(ref: str) -> tuple[int, int]:
    """(row, column) of an A1 reference."""
    m = _REF.match(ref)
    if m is None:
        raise NotPlain(f"cell reference {ref!r}")
    return int(m.group(2)), column_index_from_string(m.group(1))


def _range(ref: str) -> tuple[int, int, int, int]:
    """(first row, first column, last row, last column) of "A1:C3" or "B2"."""
    first, _, last = ref.partition(":")
    (r1, c1), (r2, c2) = parse_ref(first), parse_ref(last or first)
    return r1, c1, r2, c2


@dataclass(frozen=True)
class CellStyle:
    """How a cell of a new sheet looks: its font changed from the book's own, a fill, wrapping."""

    bold: bool = False
    size: float | None = None
    color: str | None = None
    underline: bool = False
    fill: str | None = None
    wrap: bool = False


@dataclass
class NewSheet:
    """A sheet to put first in the book: values by (row, column), each with its style."""

    title: str
    widths: list[float]
    cells: dict[tuple[int, int], tuple[object, CellStyle]] = field(default_factory=dict)
    heights: dict[int, float] = field(default_factory=dict)
    merged: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # cell → where in the book it jumps to
    frozen_rows: int = 0  # rows kept in view when scrolling (the table's header)
    filter_ref: str | None = None
    print_title_row: int | None = None
    tab_color: str | None = None


@dataclass
class Note:
    """A cell's note: who wrote it, its plain text, and the size of its box in pixels."""

    author: str
    text: str
    size: tuple[int, int] = (144, 80)


class XmlBook:
    """An .xlsx held as its parts (name → bytes); the parts it edits parsed on first use."""

    def __init__(self, parts: dict[str, bytes]):
        self.parts = parts
        self._types = _parse(self._part("[Content_Types].xml"))
        self._check_types()
        for name, data in parts.items():
            if name.endswith(".rels") and any(_outside(rel) for rel in _parse(data)):
                raise NotPlain(f"a link to something outside the file ({name})")
        for name, data in parts.items():
            if name.endswith(".vml") and any(kind != b"Note" for kind in _OBJECT_TYPE.findall(data)):
                raise NotPlain("a drawing with form controls")
        [self.workbook_part] = [t for _, kind, t in self.rels("") if kind == REL + "/officeDocument"] or [None]
        if self.workbook_part is None or self._type_of(self.workbook_part) != WORKBOOK_TYPE:
            raise NotPlain("not an .xlsx workbook")
        self.workbook = _parse(self._part(self.workbook_part))
        if self.workbook.tag != q("workbook"):  # Strict OOXML, say: another namespace
            raise NotPlain(f"workbook element {self.workbook.tag}")
        self._workbook_rels = self._rels_tree(self.workbook_part)
        self.sheet_parts: dict[str, str] = {}  # title → part, in the book's order
        targets = {rid: (kind, target) for rid, kind, target in self.rels(self.workbook_part)}
        for sheet in self._sheets():
            kind, target = targets.get(sheet.get(f"{{{REL}}}id"), (None, None))
            if kind != REL + "/worksheet" or target not in parts:
                raise NotPlain(f"sheet {sheet.get('name')!r} is not a worksheet")
            self.sheet_parts[sheet.get("name")] = target
        styles = [t for _, kind, t in self.rels(self.workbook_part) if kind == REL + "/styles"]
        if not styles or styles[0] not in parts:
            raise NotPlain("no styles part")
        self.styles = _Styles(_parse(parts[styles[0]]), styles[0])
        self._sheets_parsed: dict[str, _Sheet] = {}
        self._notes: dict[str, _Notes] = {}

    @classmethod
    def open(cls, path: Path) -> XmlBook:
        try:
            with zipfile.ZipFile(path) as archive:
                return cls({i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()})
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise NotPlain(f"{type(exc).__name__}: {exc}") from exc

    # ---- the package ---------------------------------------------------------------------
    def _part(self, name: str) -> bytes:
        if name not in self.parts:
            raise NotPlain(f"no part {name}")
        return self.parts[name]

    def _type_of(self, name: str) -> str | None:
        """A part's content type: its own (Override), else its extension's (Default)."""
        own = {o.get("PartName", "").lstrip("/"): o.get("ContentType")
               for o in self._types.iter(f"{{{CONTENT_TYPES}}}Override")}
        by_extension = {d.get("Extension", "").lower(): d.get("ContentType")
                        for d in self._types.iter(f"{{{CONTENT_TYPES}}}Default")}
        return own.get(name) or by_extension.get(name.rsplit(".", 1)[-1].lower())

    def _check_types(self) -> None:
        """Every part of a known kind, and every text part in UTF-8 (what is looked for in a part's
        bytes is looked for in UTF-8: a part in UTF-16 goes the openpyxl way)."""
        for name, data in self.parts.items():
            kind = "application/xml" if name == "[Content_Types].xml" else self._type_of(name)
            if kind not in KNOWN_TYPES:
                raise NotPlain(f"part {name} ({kind})")
            if kind not in BINARY_TYPES and not _utf8(data):
                raise NotPlain(f"part {name} not in UTF-8")

    def _add_type(self, name: str, kind: str) -> None:
        etree.SubElement(self._types, f"{{{CONTENT_TYPES}}}Override", PartName="/" + name, ContentType=kind)

    def _add_default_type(self, extension: str, kind: str) -> None:
        if not any(d.get("Extension", "").lower() == extension
                   for d in self._types.iter(f"{{{CONTENT_TYPES}}}Default")):
            default = etree.Element(f"{{{CONTENT_TYPES}}}Default", Extension=extension, ContentType=kind)
            self._types.insert(0, default)

    @staticmethod
    def _rels_name(part: str) -> str:
        folder, name = posixpath.split(part)
        return posixpath.join(folder, "_rels", name + ".rels")

    def _rels_tree(self, part: str) -> etree._Element:
        data = self.parts.get(self._rels_name(part))
        if data:
            return _parse(data)
        return etree.Element(f"{{{PACKAGE_RELS}}}Relationships", nsmap={None: PACKAGE_RELS})

    def rels(self, part: str, tree: etree._Element | None = None) -> list[tuple[str, str, str]]:
        """(id, type, target part) of each relationship of `part` ("" for the package's own)."""
        tree = self._rels_tree(part) if tree is None else tree
        folder = posixpath.dirname(part)
        found = []
        for rel in tree:
            target = rel.get("Target", "")
            path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
            found.append((rel.get("Id"), rel.get("Type"), path))
        return found

    @staticmethod
    def _add_rel(tree: etree._Element, kind: str, source: str, target: str) -> str:
        taken = {rel.get("Id") for rel in tree}
        rid = next(f"rId{n}" for n in range(len(taken) + 1, len(taken) + 1000) if f"rId{n}" not in taken)
        relative = posixpath.relpath(target, posixpath.dirname(source) or ".")
        etree.SubElement(tree, f"{{{PACKAGE_RELS}}}Relationship", Id=rid, Type=kind, Target=relative)
        return rid

    def _free_part(self, pattern: str) -> str:
        return next(pattern.format(n) for n in range(1, 100000) if pattern.format(n) not in self.parts)

    # ---- what unit_book looks at -----------------------------------------------------------
    @property
    def titles(self) -> list[str]:
        return list(self.sheet_parts)

    def _sheets(self) -> list[etree._Element]:
        sheets = self.workbook.find(q("sheets"))
        return list(sheets) if sheets is not None else []

    def formulas(self) -> list[str | None]:
        """Every formula in the book as she wrote it; None for one with no text of its own that does
        not take another's (a data table). Cells of a shared formula take its first cell's text.

        Read by the XML parser from each sheet that may hold one: what decides whether her book
        goes back as it is must not be fooled by how its XML is written."""
        found: list[str | None] = []
        for title, part in self.sheet_parts.items():
            if not _ANY_FORMULA.search(self.parts[part]):
                continue
            for formula in self._sheet(title).root.iter(q("f")):
                if formula.text:
                    found.append(formula.text)
                elif formula.get("t") != "shared":
                    found.append(None)
        return found

    def defined_names(self) -> list[str]:
        names = self.workbook.find(q("definedNames"))
        return [d.text or "" for d in names] if names is not None else []

    def note_authors(self) -> set[str]:
        return {author.text or "" for name, data in self.parts.items() if self._type_of(name) == COMMENTS_TYPE
                for author in _parse(data).iter(q("author"))}

    def fill_colours(self) -> set[str]:
        return self.styles.fill_colours()

    def bounds(self, title: str) -> tuple[int, int, int, int]:
        """(first row, first column, last row, last column) of the cells the sheet has (merged ones too)."""
        return self._sheet(title).bounds()

    def anchor(self, title: str, row: int, column: int) -> tuple[int, int]:
        """The cell that holds what shows at (row, column): the first cell of a merged range covering it."""
        for r1, c1, r2, c2 in self._sheet(title).merged:
            if r1 <= row <= r2 and c1 <= column <= c2:
                return r1, c1
        return row, column

    def note(self, title: str, row: int, column: int) -> Note | None:
        return self._notes_of(title).get(cell_ref(row, column))

    # ---- changes -----------------------------------------------------------------------------
    def quote_text(self, starts: tuple[str, ...]) -> None:
        """Cells whose text begins with one of `starts` are marked as text (Excel's leading apostrophe),
        so that editing one in Excel does not make it a formula."""
        strings = self._strings_starting(starts)
        for title, part in self.sheet_parts.items():
            data = self.parts[part]
            used = {int(i) for i in _SHARED_STRING_CELL.findall(data)} if strings else set()
            if not used & strings and b"inlineStr" not in data:
                continue
            sheet = self._sheet(title)
            for cell in sheet.data.iter(q("c")):
                kind = cell.get("t")
                if kind == "s" and strings:
                    v = cell.find(q("v"))
                    hit = v is not None and (v.text or "").strip().isdigit() and int(v.text) in strings
                elif kind == "inlineStr":
                    text = cell.find(q("is"))
                    hit = text is not None and "".join(text.itertext()).startswith(starts)
                else:
                    continue
                if hit:
                    cell.set("s", str(self.styles.derive(int(cell.get("s", "0")), quote=True)))
                    sheet.changed = True

    def _strings_starting(self, starts: tuple[str, ...]) -> set[int]:
        part = next((t for _, kind, t in self.rels(self.workbook_part) if kind == REL + "/sharedStrings"), None)
        data = self.parts.get(part) if part else None
        if not data or not re.search(rb">(?:" + b"|".join(re.escape(escape(s).encode()) for s in starts)
                                     + rb"|&#)", data):  # a character reference may spell one
            return set()
        root = _parse(data)
        return {i for i, si in enumerate(root.iter(q("si")))
                if "".join(t.text or "" for t in si.iter(q("t"))).startswith(starts)}

    def mark(self, title: str, row: int, column: int, fill: str, note: Note) -> None:
        """Fill one cell (her other formatting kept), give it `note` (in place of hers), and show it."""
        sheet = self._sheet(title)
        cell = sheet.cell(row, column)
        cell.set("s", str(self.styles.derive(int(cell.get("s", "0")), fill=fill)))
        sheet.changed = True
        self._notes_of(title).put(cell_ref(row, column), note)
        sheet.show(row, column)
        for element in self._sheets():
            if element.get("name") == title:
                element.attrib.pop("state", None)

    def tint_rows(self, title: str, marked: set[tuple[int, int]], fill: str, max_columns: int) -> None:
        """The cells of each marked row without a fill of their own, across the used columns, get `fill`."""
        sheet = self._sheet(title)
        _, first, _, last = sheet.bounds()
        last = min(last, first + max_columns - 1)
        for row in sorted({r for r, _ in marked}):
            present = sheet.row_cells(row)
            for column in range(first, last + 1):
                if (row, column) in marked or sheet.inside_merge(row, column):
                    continue
                cell = present.get(column)
                if cell is None:
                    cell = sheet.cell(row, column)
                style = int(cell.get("s", "0"))
                if not self.styles.has_fill(style):
                    cell.set("s", str(self.styles.derive(style, fill=fill)))
                    sheet.changed = True

    def add_first_sheet(self, new: NewSheet) -> None:
        """Put `new` before her sheets, open the book on it, and select only it."""
        part = self._free_part("xl/worksheets/sheet{}.xml")
        rid = self._add_rel(self._workbook_rels, REL + "/worksheet", self.workbook_part, part)
        self.parts[part] = _new_sheet_xml(new, self.styles)
        self._add_type(part, WORKSHEET_TYPE)
        sheets = self.workbook.find(q("sheets"))
        ids = [int(s.get("sheetId", "0")) for s in sheets]
        element = etree.Element(q("sheet"), nsmap={"r": REL}, name=new.title, sheetId=str(max(ids, default=0) + 1))
        element.set(f"{{{REL}}}id", rid)
        sheets.insert(0, element)
        names = self.workbook.find(q("definedNames"))
        for name in names if names is not None else []:  # a sheet's own names are by its position
            if name.get("localSheetId") is not None:
                name.set("localSheetId", str(int(name.get("localSheetId")) + 1))
        quoted = "'" + new.title.replace("'", "''") + "'"
        if new.filter_ref:
            first, last = new.filter_ref.split(":")
            self._define_name("_xlnm._FilterDatabase", f"{quoted}!{_absolute(first)}:{_absolute(last)}", hidden=True)
        if new.print_title_row:
            self._define_name("_xlnm.Print_Titles", f"{quoted}!${new.print_title_row}:${new.print_title_row}")
        views = _child(self.workbook, "bookViews", _WORKBOOK_ORDER)
        view = views.find(q("workbookView"))
        if view is None:
            view = etree.SubElement(views, q("workbookView"))
        view.set("activeTab", "0")
        view.attrib.pop("firstSheet", None)
        for title, data_part in self.sheet_parts.items():
            if title in self._sheets_parsed:
                sheet = self._sheets_parsed[title]
                for sheet_view in sheet.root.iter(q("sheetView")):
                    if sheet_view.attrib.pop("tabSelected", None) is not None:
                        sheet.changed = True
            else:
                data = self.parts[data_part]
                self.parts[data_part] = _SHEET_VIEWS.sub(lambda m: _TAB_SELECTED.sub(b"", m.group(0)), data, count=1)
        self.sheet_parts = {new.title: part, **self.sheet_parts}

    def _define_name(self, name: str, text: str, hidden: bool = False) -> None:
        names = _child(self.workbook, "definedNames", _WORKBOOK_ORDER)
        element = etree.SubElement(names, q("definedName"), name=name, localSheetId="0")
        if hidden:
            element.set("hidden", "1")
        element.text = text

    def save(self, path: Path) -> None:
        """The book with every change, written to `path` (the caller makes that atomic)."""
        for title, sheet in self._sheets_parsed.items():
            if title in self._notes:
                self._write_notes(sheet, self._notes[title])
            if sheet.changed:  # a sheet only looked at keeps her bytes
                self.parts[sheet.part] = _serialised(sheet.root)
        self._drop_calc_chain()  # Excel rebuilds it; one that no longer matches the sheets makes it "repair"
        self.parts[self.workbook_part] = _serialised(self.workbook)
        self.parts[self._rels_name(self.workbook_part)] = _serialised(self._workbook_rels)
        self.parts[self.styles.part] = _serialised(self.styles.root)
        self.parts["[Content_Types].xml"] = _serialised(self._types)
        order = ["[Content_Types].xml", *(n for n in self.parts if n != "[Content_Types].xml")]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for name in order:  # level 1: a fifth larger than the default, 1.6 ms a book against 4
                archive.writestr(name, self.parts[name])

    def _drop_calc_chain(self) -> None:
        for rid, kind, target in self.rels(self.workbook_part, self._workbook_rels):
            if kind == REL + "/calcChain":
                self._workbook_rels.remove(next(r for r in self._workbook_rels if r.get("Id") == rid))
                self.parts.pop(target, None)
                for override in list(self._types.iter(f"{{{CONTENT_TYPES}}}Override")):
                    if override.get("PartName", "").lstrip("/") == target:
                        self._types.remove(override)

    # ---- sheets and their notes ---------------------------------------------------------
    def _sheet(self, title: str) -> _Sheet:
        if title not in self._sheets_parsed:
            part = self.sheet_parts[title]
            self._sheets_parsed[title] = _Sheet(part, _parse(self.parts[part]))
        return self._sheets_parsed[title]

    def _notes_of(self, title: str) -> _Notes:
        if title not in self._notes:
            part = self.sheet_parts[title]
            comments = [t for _, kind, t in self.rels(part) if kind == REL + "/comments"]
            self._notes[title] = _Notes(_parse(self.parts[comments[0]]) if comments else None)
        return self._notes[title]

    def _write_notes(self, sheet: _Sheet, notes: _Notes) -> None:
        """Her notes part rewritten with ours, and a drawing of every note (Excel shows them by it)."""
        if not notes.ours:
            return
        rels = self._rels_tree(sheet.part)
        targets = {rid: (kind, target) for rid, kind, target in self.rels(sheet.part, rels)}
        comments = [target for kind, target in targets.values() if kind == REL + "/comments"]
        if comments:
            comments_part = comments[0]
        else:
            comments_part = self._free_part("xl/comments{}.xml")
            self._add_rel(rels, REL + "/comments", sheet.part, comments_part)
            self._add_type(comments_part, COMMENTS_TYPE)
        # the notes' drawing is the one <legacyDrawing> names: a header or footer picture has another
        legacy = sheet.root.find(q("legacyDrawing"))
        if legacy is not None and legacy.get(f"{{{REL}}}id") in targets:
            vml_part = targets[legacy.get(f"{{{REL}}}id")][1]
        else:
            if legacy is not None:  # naming no drawing: replaced
                sheet.root.remove(legacy)
            vml_part = self._free_part("xl/drawings/vmlDrawing{}.vml")
            rid = self._add_rel(rels, REL + "/vmlDrawing", sheet.part, vml_part)
            self._add_default_type("vml", VML_TYPE)
            legacy = etree.Element(q("legacyDrawing"), nsmap={"r": REL})  # r: as Excel writes it
            legacy.set(f"{{{REL}}}id", rid)
            _insert_in_order(sheet.root, legacy, _SHEET_ORDER)
        self.parts[comments_part] = notes.comments_xml()
        self.parts[vml_part] = notes.drawing_xml(self._free_drawing_id(vml_part, notes.blocks()))
        self.parts[self._rels_name(sheet.part)] = _serialised(rels)

    def _free_drawing_id(self, own: str, blocks: int) -> int:
        """The first of `blocks` drawing numbers in a row that no other drawing of the book uses
        (a drawing's shapes are numbered from them, 1,024 a number)."""
        taken = {int(n) for name, data in self.parts.items() if name.endswith(".vml") and name != own
                 for group in _IDMAP.findall(data) for n in re.findall(rb"\d+", group)}
        return next(n for n in range(1, 100000) if taken.isdisjoint(range(n, n + blocks)))

class _Sheet:
    """One worksheet part, parsed: its rows by number and its merged ranges."""

    def __init__(self, part: str, root: etree._Element):
        if root.tag != q("worksheet"):
            raise NotPlain(f"worksheet element {root.tag}")
        self.part, self.root = part, root
        self.changed = False
        self.data = root.find(q("sheetData"))
        if self.data is None:
            self.data = etree.Element(q("sheetData"))
            _insert_in_order(root, self.data, _SHEET_ORDER)
        self.rows: dict[int, etree._Element] = {}
        for row in self.data.iterchildren(q("row")):
            number = row.get("r", "")
            if not number.isdigit():
                raise NotPlain("a row without its number")
            self.rows[int(number)] = row
        self.numbers = list(self.rows)
        if self.numbers != sorted(self.numbers):
            raise NotPlain("rows out of order")
        merges = root.find(q("mergeCells"))
        self.merged = [_range(m.get("ref", "")) for m in merges] if merges is not None else []
        self._bounds: tuple[int, int, int, int] | None = None

    def bounds(self) -> tuple[int, int, int, int]:
        if self._bounds is None:
            self._bounds = self._measure()
        return self._bounds

    def _measure(self) -> tuple[int, int, int, int]:
        rows, columns = [], []
        for number, row in self.rows.items():
            cells = row.findall(q("c"))
            if cells:
                rows.append(number)
                columns += [_column(cells[0]), _column(cells[-1])]
        for r1, c1, r2, c2 in self.merged:
            rows += [r1, r2]
            columns += [c1, c2]
        if not rows:
            return 1, 1, 1, 1
        return min(rows), min(columns), max(rows), max(columns)

    def inside_merge(self, row: int, column: int) -> bool:
        """Covered by a merged range and not its first cell (such a cell shows nothing of its own)."""
        return any(r1 <= row <= r2 and c1 <= column <= c2 and (row, column) != (r1, c1)
                   for r1, c1, r2, c2 in self.merged)

    def row_cells(self, row: int) -> dict[int, etree._Element]:
        """The cells the row has, by column."""
        element = self.rows.get(row)
        return {_column(c): c for c in element.iterchildren(q("c"))} if element is not None else {}

    def cell(self, row: int, column: int) -> etree._Element:
        """The cell's element, made (empty, in its place) if the sheet has none."""
        element = self.rows.get(row)
        if element is None:
            element = etree.Element(q("row"), r=str(row))
            at = bisect.bisect(self.numbers, row)
            if at < len(self.numbers):
                self.rows[self.numbers[at]].addprevious(element)
            else:
                self.data.append(element)
            self.numbers.insert(at, row)
            self.rows[row] = element
        previous = None
        for cell in element.iterchildren(q("c")):
            at_column = _column(cell)
            if at_column == column:
                return cell
            if at_column > column:
                break
            previous = cell
        new = etree.Element(q("c"), r=cell_ref(row, column))
        if self._bounds is not None:
            r1, c1, r2, c2 = self._bounds
            self._bounds = min(r1, row), min(c1, column), max(r2, row), max(c2, column)
        if previous is None:
            element.insert(0, new)
        else:
            previous.addnext(new)
        element.attrib.pop("spans", None)  # a hint of the row's columns, no longer true
        return new

    def show(self, row: int, column: int) -> None:
        """Unhide the cell's row and column."""
        self.rows[row].attrib.pop("hidden", None)
        columns = self.root.find(q("cols"))
        for col in columns if columns is not None else []:
            if int(col.get("min", "0")) <= column <= int(col.get("max", "0")):
                col.attrib.pop("hidden", None)


def _column(cell: etree._Element) -> int:
    ref = cell.get("r")
    if ref is None:
        raise NotPlain("a cell without its reference")
    return parse_ref(ref)[1]


class _Styles:
    """The styles part: fonts, fills and cell formats, to which derived formats are added."""

    def __init__(self, root: etree._Element, part: str):
        if root.tag != q("styleSheet"):
            raise NotPlain(f"styles element {root.tag}")
        self.root, self.part = root, part
        self.fonts, self.fills, self.xfs = root.find(q("fonts")), root.find(q("fills")), root.find(q("cellXfs"))
        if self.fonts is None or len(self.fonts) == 0 or self.fills is None or self.xfs is None or len(self.xfs) == 0:
            raise NotPlain("styles without fonts, fills or cell formats")
        self._fill_ids: dict[str, int] = {}
        self._made: dict[object, int] = {}

    def fill_colours(self) -> set[str]:
        return {c.upper() for c in _COLOUR.findall(etree.tostring(self.fills, encoding="unicode"))}

    def _xf(self, index: int) -> etree._Element:
        return self.xfs[index] if 0 <= index < len(self.xfs) else self.xfs[0]

    def has_fill(self, index: int) -> bool:
        fill_id = int(self._xf(index).get("fillId", "0"))
        fill = self.fills[fill_id] if fill_id < len(self.fills) else None
        pattern = fill.find(q("patternFill")) if fill is not None else None
        return fill is not None and (pattern is None or pattern.get("patternType") not in (None, "none"))

    def derive(self, index: int, fill: str | None = None, quote: bool = False) -> int:
        """A cell format as `index` with a solid `fill` and/or marked as text."""
        key = (index, fill, quote)
        if key not in self._made:
            xf = copy.deepcopy(self._xf(index))
            if fill:
                xf.set("fillId", str(self._fill(fill)))
                xf.set("applyFill", "1")
            if quote:
                xf.set("quotePrefix", "1")
            self._made[key] = self._append(self.xfs, xf)
        return self._made[key]

    def of(self, style: CellStyle, quote: bool) -> int:
        """A cell format for a new sheet: the book's own font changed as `style` says."""
        key = (style, quote)
        if key not in self._made:
            xf = etree.Element(q("xf"), numFmtId="0", fontId=str(self._font(style)), borderId="0", xfId="0",
                               applyFont="1")
            xf.set("fillId", str(self._fill(style.fill)) if style.fill else "0")
            if style.fill:
                xf.set("applyFill", "1")
            if quote:
                xf.set("quotePrefix", "1")
            if style.wrap:
                xf.set("applyAlignment", "1")
                etree.SubElement(xf, q("alignment"), vertical="top", wrapText="1")
            self._made[key] = self._append(self.xfs, xf)
        return self._made[key]

    def _font(self, style: CellStyle) -> int:
        base = self.fonts[0]  # the Normal style's font: hers
        font = etree.Element(q("font"))
        if style.bold:
            etree.SubElement(font, q("b"))
        if style.underline:
            etree.SubElement(font, q("u"))
        own_size = base.find(q("sz"))
        size = style.size or (float(own_size.get("val", "11")) if own_size is not None else 11)
        etree.SubElement(font, q("sz"), val=f"{size:g}")
        if style.color:
            etree.SubElement(font, q("color"), rgb=style.color.rjust(8, "F"))
        for tag in ("name", "family", "charset", "scheme"):
            own = base.find(q(tag))
            if own is not None and own.get("val") is not None:
                etree.SubElement(font, q(tag), val=own.get("val"))
        return self._append(self.fonts, font)

    def _fill(self, colour: str) -> int:
        if colour not in self._fill_ids:
            fill = etree.Element(q("fill"))
            pattern = etree.SubElement(fill, q("patternFill"), patternType="solid")
            etree.SubElement(pattern, q("fgColor"), rgb=colour.rjust(8, "F"))
            etree.SubElement(pattern, q("bgColor"), indexed="64")
            self._fill_ids[colour] = self._append(self.fills, fill)
        return self._fill_ids[colour]

    @staticmethod
    def _append(parent: etree._Element, element: etree._Element) -> int:
        parent.append(element)
        parent.set("count", str(len(parent)))
        return len(parent) - 1


class _Notes:
    """A sheet's notes part (hers, or none yet) with the notes put in since."""

    def __init__(self, root: etree._Element | None):
        authors = root.find(q("authors")) if root is not None else None
        self.authors = [a.text or "" for a in authors] if authors is not None else []
        listed = root.find(q("commentList")) if root is not None else None
        self.entries: dict[str, etree._Element | Note] = {c.get("ref"): c for c in listed} if listed is not None else {}
        self.ours = False

    def get(self, ref: str) -> Note | None:
        entry = self.entries.get(ref)
        if entry is None or isinstance(entry, Note):
            return entry
        author = int(entry.get("authorId", "0"))
        text = "".join(t.text or "" for t in entry.iter(q("t")) if t.getparent().tag != q("rPh"))
        return Note(self.authors[author] if author < len(self.authors) else "", text)

    def put(self, ref: str, note: Note) -> None:
        self.entries[ref] = note
        self.ours = True

    def comments_xml(self) -> bytes:
        authors = list(self.authors)
        for entry in self.entries.values():
            if isinstance(entry, Note) and entry.author not in authors:
                authors.append(entry.author)
        out = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<comments xmlns="{MAIN}"><authors>',
               *(f"<author>{escape(a)}</author>" for a in authors), "</authors><commentList>"]
        for ref, entry in self.entries.items():
            if isinstance(entry, Note):
                out.append(f'<comment ref="{ref}" authorId="{authors.index(entry.author)}"><text>'
                           f'<t xml:space="preserve">{escape(entry.text)}</t></text></comment>')
            else:
                out.append(etree.tostring(entry, encoding="unicode").replace(f' xmlns="{MAIN}"', ""))
        out.append("</commentList></comments>")
        return "".join(out).encode("utf-8")

    def blocks(self) -> int:
        """How many drawing numbers the notes' shapes take (1,024 a number, the first shape is 1)."""
        return len(self.entries) // 1024 + 1

    def drawing_xml(self, first_id: int) -> bytes:
        """The VML drawing Excel shows notes by: one hidden box a note, beside its cell."""
        shapes = []
        for n, (ref, entry) in enumerate(self.entries.items(), start=1):
            row, column = parse_ref(ref)
            width, height = entry.size if isinstance(entry, Note) else Note("", "").size
            anchor = f"{column}, 15, {row - 1}, 10, {column + -(-width // 64)}, 15, {row - 1 + -(-height // 20)}, 4"
            shapes.append(
                f'<v:shape id="_x0000_s{first_id * 1024 + n}" type="#_x0000_t202" style="position:absolute;'
                f'margin-left:59.25pt;margin-top:1.5pt;width:{width * 0.75:g}pt;height:{height * 0.75:g}pt;'
                f'z-index:{n};visibility:hidden" fillcolor="#ffffe1" o:insetmode="auto">'
                '<v:fill color2="#ffffe1"/><v:shadow on="t" color="black" obscured="t"/>'
                '<v:path o:connecttype="none"/><v:textbox style="mso-direction-alt:auto">'
                '<div style="text-align:left"></div></v:textbox><x:ClientData ObjectType="Note">'
                f"<x:MoveWithCells/><x:SizeWithCells/><x:Anchor>{anchor}</x:Anchor><x:AutoFill>False</x:AutoFill>"
                f"<x:Row>{row - 1}</x:Row><x:Column>{column - 1}</x:Column></x:ClientData></v:shape>")
        ids = ",".join(str(first_id + b) for b in range(self.blocks()))
        return ('<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
                'xmlns:x="urn:schemas-microsoft-com:office:excel">'
                f'<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{ids}"/></o:shapelayout>'
                '<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" path="m,l,21600r21600,l21600,xe">'
                '<v:stroke joinstyle="miter"/><v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>'
                + "".join(shapes) + "</xml>").encode("utf-8")


def _new_sheet_xml(new: NewSheet, styles: _Styles) -> bytes:
    """The worksheet part of `new`, its cell formats added to `styles`."""
    rows: dict[int, list[str]] = {}
    for (row, column), (value, style) in sorted(new.cells.items()):
        ref = cell_ref(row, column)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            text = safe_text("" if value is None else str(value))
            s = styles.of(style, text.startswith(FORMULA_TRIGGERS))
            xml = f'<c r="{ref}" s="{s}" t="inlineStr"><is><t xml:space="preserve">{escape(text)}</t></is></c>'
        else:
            xml = f'<c r="{ref}" s="{styles.of(style, False)}"><v>{value!r}</v></c>'
        rows.setdefault(row, []).append(xml)
    last_row = max([*rows, *new.heights], default=1)
    width = len(new.widths)
    out = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{MAIN}" xmlns:r="{REL}">',
           "<sheetPr>", f'<tabColor rgb="{new.tab_color.rjust(8, "F")}"/>' if new.tab_color else "",
           '<pageSetUpPr fitToPage="1"/></sheetPr>',
           f'<dimension ref="A1:{cell_ref(last_row, max(width, 1))}"/>',
           '<sheetViews><sheetView tabSelected="1" workbookViewId="0">']
    if new.frozen_rows:
        top = f"A{new.frozen_rows + 1}"
        out.append(f'<pane ySplit="{new.frozen_rows}" topLeftCell="{top}" activePane="bottomLeft" state="frozen"/>'
                   f'<selection pane="bottomLeft" activeCell="{top}" sqref="{top}"/>')
    out.append('</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/><cols>')
    out += [f'<col min="{c}" max="{c}" width="{w:g}" customWidth="1"/>' for c, w in enumerate(new.widths, start=1)]
    out.append("</cols><sheetData>")
    for row in sorted({*rows, *new.heights}):
        height = f' ht="{new.heights[row]:g}" customHeight="1"' if row in new.heights else ""
        out.append(f'<row r="{row}"{height}>{"".join(rows.get(row, []))}</row>')
    out.append("</sheetData>")
    if new.filter_ref:
        out.append(f'<autoFilter ref="{new.filter_ref}"/>')
    if new.merged:
        out.append(f'<mergeCells count="{len(new.merged)}">'
                   + "".join(f'<mergeCell ref="{m}"/>' for m in new.merged) + "</mergeCells>")
    if new.links:
        out.append("<hyperlinks>" + "".join(
            f'<hyperlink ref="{ref}" location={quoteattr(where)} display={quoteattr(str(shown))}/>'
            for ref, where in new.links.items() for shown in [new.cells.get(parse_ref(ref), ("",))[0]])
            + "</hyperlinks>")
    out.append('<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
               '<pageSetup paperSize="9" orientation="landscape" fitToWidth="1" fitToHeight="0"/></worksheet>')
    return "".join(out).encode("utf-8")


def _absolute(ref: str) -> str:
    row, column = parse_ref(ref)
    return f"${get_column_letter(column)}${row}"


def _child(parent: etree._Element, tag: str, order: list[str]) -> etree._Element:
    """`parent`'s child `tag`, made in its place if there is none."""
    found = parent.find(q(tag))
    if found is None:
        found = etree.Element(q(tag))
        _insert_in_order(parent, found, order)
    return found


def _insert_in_order(parent: etree._Element, element: etree._Element, order: list[str]) -> None:
    """Put `element` before the first child the schema wants after it (children of other namespaces kept)."""
    rank = order.index(etree.QName(element).localname)
    for child in parent:
        name = etree.QName(child)
        if name.namespace == MAIN and name.localname in order and order.index(name.localname) > rank:
            child.addprevious(element)
            return
    parent.append(element)

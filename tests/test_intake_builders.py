"""Builders for the intake tests: one clean return written in every format clerks send.

No tests here: the corpus and hostile-file tests import these. Each builder takes the
grids of a return (`return_grids`) so every format holds exactly the same values.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import xlsxwriter
import xlwt

from conftest import RUN_DAY
from pipeline.returnbook import ReturnData

Grid = list[list[object]]
SETTLED = RUN_DAY.timestamp() - 3600


def settle(path: Path) -> Path:
    """Give a dropped file (or every file of a dropped folder) an old modification time."""
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (SETTLED, SETTLED))
    return path


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: object) -> object:
    """pandas values to plain Python (Timestamp → date, numpy ints → int, NaN → None)."""
    if _blank(value):
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().date()
    if hasattr(value, "item"):
        return value.item()
    return value


def return_grids(data: ReturnData, *, title: bool = True, total: bool = True) -> dict[str, Grid]:
    """The four sheets as value grids: cover labels, 月报 with title and 合计 rows, the registers."""
    grids: dict[str, Grid] = {"封面": [[k, _plain(v)] for k, v in data.cover.items()]}
    monthly = [list(data.monthly.columns)] + [[_plain(v) for v in row] for row in data.monthly.itertuples(index=False)]
    if total:
        sums = ["合计"] + [sum(r[c] or 0 for r in monthly[1:]) for c in range(1, len(monthly[0]))]
        monthly.append(sums)
    grids["月报"] = ([[f"{data.cover['单位名称']} 人口与计划生育月报表"]] if title else []) + monthly
    for name, frame in (("育龄妇女", data.roster), ("流动人口", data.floating)):
        grids[name] = [list(frame.columns)] + [[_plain(v) for v in row] for row in frame.itertuples(index=False)]
    return grids


def as_text_grid(grid: Grid) -> Grid:
    """What a CSV or HTML export holds: every value as text, dates as 2026-03-01."""
    return [[None if v is None else v.isoformat() if isinstance(v, dt.date) else str(v) for v in row] for row in grid]


# ---- workbook formats ---------------------------------------------------------------

def write_xlsx(path: Path, grids: dict[str, Grid], *, merges: dict[str, list[tuple]] | None = None,
               hidden: dict[str, list[int]] | None = None, numbers_as_dates: bool = True) -> Path:
    """An .xlsx of the grids; `merges` (sheet → (r0, c0, r1, c1, value)), `hidden` columns."""
    book = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False,
                                           "strings_to_urls": False})
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    for name, grid in grids.items():
        ws = book.add_worksheet(name)
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if isinstance(v, dt.date) and numbers_as_dates:
                    ws.write_datetime(r, c, dt.datetime.combine(v, dt.time()), date)
                elif v is not None:
                    ws.write(r, c, v)
        for r0, c0, r1, c1, value in (merges or {}).get(name, []):
            ws.merge_range(r0, c0, r1, c1, value)
        for c in (hidden or {}).get(name, []):
            ws.set_column(c, c, None, None, {"hidden": True})
    book.close()
    return settle(path)


def write_xls(path: Path, grids: dict[str, Grid], *, merges: dict[str, list[tuple]] | None = None) -> Path:
    """A BIFF8 .xls of the grids (xlwt), dates as date cells."""
    book = xlwt.Workbook(encoding="utf-8")
    date = xlwt.easyxf(num_format_str="yyyy-mm-dd")
    for name, grid in grids.items():
        ws = book.add_sheet(name)
        merged = {(r0, c0) for r0, c0, *_ in (merges or {}).get(name, [])}
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if v is not None and (r, c) not in merged:
                    ws.write(r, c, v, date) if isinstance(v, dt.date) else ws.write(r, c, v)
        for r0, c0, r1, c1, value in (merges or {}).get(name, []):
            ws.write_merge(r0, r1, c0, c1, value)
    book.save(str(path))
    return settle(path)


def write_ods(path: Path, grids: dict[str, Grid], *, merges: dict[str, list[tuple]] | None = None) -> Path:
    """A minimal OpenDocument spreadsheet of the grids.

    `merges` (sheet → (r0, c0, r1, c1, value)) as LibreOffice writes them: the first cell
    spans the range, the cells it covers are <table:covered-table-cell/>.
    """
    return write_ods_tables(path, "".join(
        f'<table:table table:name="{escape(name)}">{_ods_rows(grid, (merges or {}).get(name, []))}</table:table>'
        for name, grid in grids.items()))


def write_ods_tables(path: Path, tables: str) -> Path:
    """An .ods whose spreadsheet holds `tables` (<table:table> elements as written): mimetype first and stored."""
    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} office:version="1.2">'
               f"<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body></office:document-content>")
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                "</manifest:manifest>")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        z.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        z.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return settle(path)


def _ods_rows(grid: Grid, merges: list[tuple]) -> str:
    spans = {(r0, c0): (r1 - r0 + 1, c1 - c0 + 1, value) for r0, c0, r1, c1, value in merges}
    covered = {(r, c) for r0, c0, r1, c1, _ in merges for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
    width = max([len(row) for row in grid] + [c1 + 1 for *_, c1, _ in merges], default=0)
    rows = []
    for r, row in enumerate(grid):
        cells = []
        for c in range(width):
            if (r, c) in spans:
                rows_spanned, cols_spanned, value = spans[r, c]
                cells.append(_ods_cell(value, f' table:number-rows-spanned="{rows_spanned}"'
                                              f' table:number-columns-spanned="{cols_spanned}"'))
            elif (r, c) in covered:
                cells.append("<table:covered-table-cell/>")
            else:
                cells.append(_ods_cell(row[c] if c < len(row) else None))
        rows.append(f"<table:table-row>{''.join(cells)}</table:table-row>")
    return "".join(rows)


def _ods_cell(v: object, spans: str = "") -> str:
    if v is None:
        return f"<table:table-cell{spans}/>"
    if isinstance(v, dt.date):
        return (f'<table:table-cell{spans} office:value-type="date" office:date-value="{v.isoformat()}">'
                f"<text:p>{v.isoformat()}</text:p></table:table-cell>")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (f'<table:table-cell{spans} office:value-type="float" office:value="{v}"><text:p>{v}</text:p>'
                "</table:table-cell>")
    return f'<table:table-cell{spans} office:value-type="string"><text:p>{escape(str(v))}</text:p></table:table-cell>'


def write_xml_spreadsheet(path: Path, grids: dict[str, Grid], *, merges: dict[str, list[tuple]] | None = None,
                          encoding: str = "utf-8") -> Path:
    """Excel's "XML Spreadsheet 2003" of the grids, as Excel writes it: ss:Index after a gap, a merged
    cell spanning with ss:MergeAcross/ss:MergeDown and the cells it covers left out; `merges` as write_xlsx."""
    parts = [f'<?xml version="1.0" encoding="{encoding}"?>\n<?mso-application progid="Excel.Sheet"?>\n'
             '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
             'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet" xmlns:html="http://www.w3.org/TR/REC-html40">'
             '<Styles><Style ss:ID="d"><NumberFormat ss:Format="Short Date"/></Style></Styles>']
    for name, grid in grids.items():
        spans = {(r0, c0): (r1 - r0, c1 - c0, value) for r0, c0, r1, c1, value in (merges or {}).get(name, [])}
        covered = {(r, c) for r0, c0, r1, c1, _ in (merges or {}).get(name, [])
                   for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)} - set(spans)
        parts.append(f'<Worksheet ss:Name="{escape(name)}"><Table>')
        for r, row in enumerate(grid):
            cells, expected = [], 0  # the column Excel places the next cell at without ss:Index
            width = max([len(row)] + [c + across + 1 for (r0, c), (_, across, _) in spans.items() if r0 == r])
            for c in range(width):
                down, across, value = spans.get((r, c), (0, 0, row[c] if c < len(row) else None))
                if (r, c) in covered or (value is None and (r, c) not in spans):
                    continue
                index = f' ss:Index="{c + 1}"' if c != expected else ""
                merge = (f' ss:MergeAcross="{across}"' if across else "") + (f' ss:MergeDown="{down}"' if down else "")
                cells.append(f"<Cell{index}{merge}{_xml_spreadsheet_data(value)}</Cell>")
                expected = c + 1 + across
            parts.append(f"<Row>{''.join(cells)}</Row>")
        parts.append("</Table></Worksheet>")
    parts.append("</Workbook>")
    path.write_bytes("".join(parts).encode(encoding))
    return settle(path)


def _xml_spreadsheet_data(value: object) -> str:
    """The end of a <Cell> start tag, and its <Data>."""
    if value is None:
        return ">"
    if isinstance(value, dt.date):
        return f' ss:StyleID="d"><Data ss:Type="DateTime">{value.isoformat()}T00:00:00.000</Data>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'><Data ss:Type="Number">{value}</Data>'
    return f'><Data ss:Type="String">{escape(str(value))}</Data>'


def as_xlsm(xlsx: Path, target: Path) -> Path:
    """The same workbook declared macro-enabled, as Excel saves .xlsm."""
    def edit(name: str, data: bytes) -> bytes:
        if name == "[Content_Types].xml":
            return data.replace(b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                                b"application/vnd.ms-excel.sheet.macroEnabled.main+xml")
        return data
    return rewrite_zip(xlsx, target, edit)


def rewrite_zip(source: Path, target: Path, edit) -> Path:
    """Copy a zip, passing each member's bytes through edit(name, data)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, edit(info.filename, zin.read(info.filename)))
    return settle(target)


def stale_dimension(xlsx: Path, target: Path) -> Path:
    """Every sheet claims to end at A1:C3 though it holds more rows (as some exporters leave it)."""
    return rewrite_zip(xlsx, target, lambda name, data: re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:C3"/>', data))


# ---- text formats -------------------------------------------------------------------

def html_page(grids: dict[str, Grid], *, caption: str = "caption", ragged: bool = True) -> str:
    """A county-system "Excel" export: one table per sheet, no charset, unclosed cells, ragged rows."""
    parts = ["<html><head><title>月报导出</title></head><body>"]
    for name, grid in grids.items():
        label = f"<caption>{name}</caption>" if caption == "caption" else ""
        if caption == "heading":
            parts.append(f"<h3>{name}</h3>")
        parts.append(f"<table border=1>{label}")
        for row in as_text_grid(grid):
            cells = list(row)
            while ragged and cells and cells[-1] is None:
                cells.pop()  # exporters drop trailing empty cells
            parts.append("<tr>" + "".join(f"<td>{escape(v) if v else '&nbsp;'}" for v in cells))
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def csv_text(grid: Grid, delimiter: str = ",") -> str:
    out = io.StringIO()
    import csv

    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(
        [["" if v is None else v for v in row] for row in as_text_grid(grid)])
    return out.getvalue()


CSV_ENCODINGS = {"封面": "utf-8-sig", "月报": "gbk", "育龄妇女": "utf-8", "流动人口": "gb18030"}


def csv_zip(path: Path, grids: dict[str, Grid], *, gbk_names: bool = True) -> Path:
    """A zip of per-sheet CSV files in mixed encodings; names stored in GBK as Chinese Windows does.

    zipfile would store a non-ASCII name as UTF-8 (and say so); a Windows zip stores GBK
    bytes and no flag. So members are written under ASCII stand-ins of the same length,
    whose bytes are then replaced by the GBK names.
    """
    renames = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i, (name, grid) in enumerate(grids.items()):
            data = csv_text(grid).encode(CSV_ENCODINGS.get(name, "utf-8"))
            real = f"{name}.csv".encode("gbk")
            stand_in = (str(i).rjust(len(real) - 4, "_") + ".csv") if gbk_names else f"{name}.csv"
            renames[stand_in.encode()] = real
            z.writestr(stand_in, data)
    if gbk_names:
        data = path.read_bytes()
        for stand_in, real in renames.items():
            data = data.replace(stand_in, real)
        path.write_bytes(data)
    return settle(path)


def sheet_folder(folder: Path, grids: dict[str, Grid]) -> Path:
    """A folder of per-sheet files in four formats: CSV, .xls, an HTML page named .xls, .xlsx."""
    folder.mkdir(parents=True)
    (folder / "封面.csv").write_bytes(csv_text(grids["封面"]).encode("gbk"))
    write_xls(folder / "月报.xls", {"Sheet1": grids["月报"]})
    (folder / "育龄妇女.xls").write_bytes(html_page({"x": grids["育龄妇女"]}, caption="none").encode("gbk"))
    write_xlsx(folder / "流动人口.xlsx", {"Sheet1": grids["流动人口"]})
    return settle(folder)

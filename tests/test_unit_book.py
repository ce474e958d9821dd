"""The unit's error workbook: her own return, annotated, safe, and accepted when sent back fixed."""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import zipfile
from collections import Counter
from copy import deepcopy
from pathlib import Path

import openpyxl
import pytest
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.comments import Comment
from python_calamine import CalamineWorkbook

from conftest import PERIOD, RUN_DAY, clean_return
from test_intake_builders import rewrite_zip
from pipeline.findings import Finding, finding
from pipeline.intake.read import read_workbook
from pipeline.returnbook import ReturnData, write_return
from pipeline.run import validate_files
from pipeline.write.unit_book import (AUTHOR, FILLS, LIST_SHEET, ROW_MARK, _with_values, annotatable,
                                      write_unit_book)

DUE = dt.date(2026, 11, 5)
CONTACT = "如有疑问请联系测试街道计生办。"


def defective(street) -> ReturnData:
    """A return with one defect of each kind a cell can carry, on every sheet."""
    data = deepcopy(clean_return(street))
    data.monthly.at[1, "期末人口"] += 1  # population-balance
    data.monthly["独生子女证"] = data.monthly["独生子女证"].astype(object)
    data.monthly.at[0, "独生子女证"] = 5.5  # not-integer
    data.roster.at[0, "节育措施"] = "上环术"  # not-in-list
    data.roster.at[1, "末次生育日期"] = dt.date(2026, 11, 2)  # date-after-period (a warning)
    number = data.roster.at[3, "身份证号"]
    data.roster.at[3, "身份证号"] = number[:17] + ("1" if number[17] != "1" else "2")  # id-checksum
    data.floating.at[0, "联系电话"] = "1380000123"  # phone-invalid
    return data


def checked(path: Path, street, period: str | None = None) -> list[Finding]:
    [(_, found)] = validate_files([path], street, period, RUN_DAY)
    return found


def annotate(tmp_path: Path, source: Path, found: list[Finding], *, rebuild: bool = False, **kw) -> Path:
    out = tmp_path / "审核结果.xlsx"
    write_unit_book(out, "甲村", PERIOD, DUE, found, read_workbook(source), CONTACT,
                    source=None if rebuild else source, **kw)
    return out


def marked_cells(book: openpyxl.Workbook) -> set[tuple[str, str]]:
    """(sheet, cell) of every cell filled with a severity colour and carrying our comment."""
    return {(ws.title, c.coordinate) for ws in book.worksheets if ws.title != LIST_SHEET
            for row in ws.iter_rows() for c in row
            if c.fill.fill_type == "solid" and c.fill.fgColor.rgb in FILLS.values()
            and c.comment is not None and c.comment.author == AUTHOR}


def links(book: openpyxl.Workbook) -> list[tuple[str, str]]:
    """(sheet, cell) each 错误清单 link jumps to."""
    found = []
    for row in book[LIST_SHEET].iter_rows():
        for c in row:
            if c.hyperlink is not None and c.hyperlink.location:
                sheet, cell = c.hyperlink.location.rsplit("!", 1)
                found.append((sheet.strip("'").replace("''", "'"), cell))
    return found


def values(path: Path) -> dict[tuple[str, str], object]:
    """Every non-empty cell of the unit's own sheets, formulas as formulas."""
    book = openpyxl.load_workbook(path)
    return {(ws.title, c.coordinate): c.value for ws in book.worksheets if ws.title != LIST_SHEET
            for row in ws.iter_rows() for c in row if c.value is not None}


def test_every_offending_cell_is_filled_commented_and_linked(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street, period="2026-09")  # the cover's period is not the one run, too
    expected = {(f.sheet, f.cell) for f in found}
    assert {f.code for f in found} >= {"population-balance", "not-integer", "not-in-list", "date-after-period",
                                       "id-checksum", "phone-invalid", "period-mismatch"}
    assert all(f.cell for f in found)
    book = openpyxl.load_workbook(annotate(tmp_path, source, found))
    assert book.sheetnames[0] == LIST_SHEET and book.active.title == LIST_SHEET
    assert marked_cells(book) == expected
    assert sorted(links(book)) == sorted((f.sheet, f.cell) for f in found)
    for sheet, cell in links(book):
        assert book[sheet][cell].comment.author == AUTHOR
    assert book["月报"]["A5"].fill.fgColor.rgb == ROW_MARK  # the row of a finding is tinted
    assert book["月报"]["G5"].fill.fgColor.rgb == FILLS["error"]
    assert book["育龄妇女"][next(f.cell for f in found if f.code == "date-after-period")].fill.fgColor.rgb \
        == FILLS["warning"]


def test_the_units_own_values_and_layout_are_unchanged(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    out = annotate(tmp_path, source, checked(source, street))
    assert values(out) == values(source)
    mine, hers = openpyxl.load_workbook(out), openpyxl.load_workbook(source)
    for ws in hers.worksheets:
        assert mine[ws.title].freeze_panes == ws.freeze_panes
        assert {k: d.width for k, d in mine[ws.title].column_dimensions.items()} == \
            {k: d.width for k, d in ws.column_dimensions.items()}
    assert mine["月报"]["C3"].font.b  # her header formatting is kept


def test_her_formulas_keep_their_values_for_readers_that_do_not_calculate(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))  # its 合计 row holds SUM formulas
    out = annotate(tmp_path, source, checked(source, street))
    assert openpyxl.load_workbook(out)["月报"]["B6"].value == "=SUM(B4:B5)"
    mine, hers = CalamineWorkbook.from_path(str(out)), CalamineWorkbook.from_path(str(source))
    for name in hers.sheet_names:
        assert mine.get_sheet_by_name(name).to_python() == hers.get_sheet_by_name(name).to_python(), name


@pytest.mark.parametrize("empty", ["<v />", "<v/>", "<v></v>"])  # openpyxl's own writer; with lxml installed
def test_a_cached_value_goes_back_whichever_xml_writer_openpyxl_used(empty):
    xml = f'<row r="6"><c r="B6" s="3"><f>SUM(B4:B5)</f>{empty}</c><c r="C6"><f>C4&amp;"人"</f>{empty}</c></row>'
    assert _with_values(xml, {"B6": 900.0, "C6": "5人"}) == \
        '<row r="6"><c r="B6" s="3"><f>SUM(B4:B5)</f><v>900</v></c><c r="C6" t="str"><f>C4&amp;"人"</f><v>5人</v></c></row>'


def test_listing_puts_errors_first_and_says_what_to_do(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    book = openpyxl.load_workbook(annotate(tmp_path, source, checked(source, street)))
    rows = list(book[LIST_SHEET].iter_rows(values_only=True))
    head = " ".join(str(r[0]) for r in rows[:4])
    assert "请按以下说明修改后重新报送" in head and "2026年11月5日" in head and CONTACT in head
    header = next(i for i, r in enumerate(rows) if r[0] == "序号")
    severities = [r[1] for r in rows[header + 1:]]
    assert severities == sorted(severities, key=["错误", "警告", "提示"].index) and "警告" in severities
    assert rows[header][:8] == ("序号", "严重程度", "工作表", "单元格", "项目", "填写值", "应为", "问题说明")


def test_fixed_and_sent_back_as_it_is_the_book_passes(tmp_path, street):
    clean = write_return(tmp_path / "clean.xlsx", clean_return(street))
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    book = openpyxl.load_workbook(annotate(tmp_path, source, found))
    right = openpyxl.load_workbook(clean)
    for f in found:
        book[f.sheet][f.cell] = right[f.sheet][f.cell].value
    book.save(tmp_path / "改好了.xlsx")
    assert checked(tmp_path / "改好了.xlsx", street) == []


def test_sheets_named_by_alias_are_linked_by_their_own_names(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    book = openpyxl.load_workbook(source)
    book["月报"].title, book["育龄妇女"].title = "月报表", "育龄妇女花名册"
    book.save(source)
    found = checked(source, street)
    out = openpyxl.load_workbook(annotate(tmp_path, source, found))
    assert {s for s, _ in links(out)} == {"月报表", "育龄妇女花名册", "流动人口"}
    assert ("月报表", next(f.cell for f in found if f.code == "population-balance")) in marked_cells(out)


def test_findings_without_a_cell_point_at_the_nearest_one(tmp_path, street):
    data = clean_return(street)
    data.monthly = data.monthly.drop(columns=["死亡"])
    source = write_return(tmp_path / "甲村.xlsx", data)
    book = openpyxl.load_workbook(source)
    book.remove(book["流动人口"])
    book.save(source)
    found = checked(source, street)
    assert {(f.code, f.sheet, f.cell) for f in found} == {("missing-column", "月报", ""), ("missing-sheet", "", "")}
    out = openpyxl.load_workbook(annotate(tmp_path, source, found))
    assert links(out) == [("月报", "A3")]  # the header row's first cell
    assert "没有“死亡”这一列" in out["月报"]["A3"].comment.text
    rows = {r[4] or r[6]: r for r in out[LIST_SHEET].iter_rows(values_only=True) if isinstance(r[0], int)}
    missing_sheet = next(r for r in rows.values() if "流动人口" in str(r[7]))
    assert missing_sheet[3] == "无法定位,见问题说明"


def test_group_without_a_table_row_points_at_the_header(tmp_path, street):
    data = deepcopy(clean_return(street))
    data.roster.loc[data.roster["小组"] == "二组", "小组"] = "一组"  # all women in 一组; 二组 row still says 3
    data.monthly = data.monthly.iloc[[0]]  # and 二组 has no row at all
    source = write_return(tmp_path / "甲村.xlsx", data)
    found = checked(source, street)
    assert all(f.cell for f in found if f.sheet)
    out = openpyxl.load_workbook(annotate(tmp_path, source, found))
    assert marked_cells(out) == {(f.sheet, f.cell) for f in found}


def test_hostile_text_stays_text_and_foreign_formulas_become_values(tmp_path, street):
    data = clean_return(street)
    data.roster.at[0, "备注"] = "=cmd|' /C calc'!A0"
    data.roster.at[1, "备注"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    source = write_return(tmp_path / "甲村.xlsx", data)
    book = openpyxl.load_workbook(source)
    book["月报"]["T4"] = '=HYPERLINK("http://example.com/x","点这里")'
    book["月报"]["T5"] = "=B4+1"
    book["月报"]["T6"] = "=cmd|' /C calc'!A0"
    book.defined_names["run"] = openpyxl.workbook.defined_name.DefinedName("run", attr_text="cmd|' /C calc'!A0")
    book.save(source)
    out = annotate(tmp_path, source, [finding("population-balance", sheet="月报", cell="H4", field="期末人口")])
    mine = openpyxl.load_workbook(out)
    remark = mine["育龄妇女"]["M3"]
    assert remark.data_type == "s" and remark.value == "=cmd|' /C calc'!A0" and remark.quotePrefix
    assert mine["育龄妇女"]["M4"].data_type == "s" and mine["育龄妇女"]["M4"].quotePrefix
    assert mine["月报"]["T4"].data_type != "f" and mine["月报"]["T6"].data_type != "f"  # values now
    assert "run" not in mine.defined_names
    assert mine["月报"]["T5"].value == "=B4+1" and mine["月报"]["B6"].value == "=SUM(B4:B5)"


def test_a_second_annotation_replaces_the_first(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    first = annotate(tmp_path, source, found)
    again = tmp_path / "again.xlsx"
    later = [f for f in checked(first, street) if f.code == "phone-invalid"]
    write_unit_book(again, "甲村", PERIOD, DUE, later, read_workbook(first), CONTACT, source=first)
    book = openpyxl.load_workbook(again)
    assert [t for t in book.sheetnames if t.startswith(LIST_SHEET)] == [LIST_SHEET]
    assert marked_cells(book) == {(f.sheet, f.cell) for f in later}
    assert not [c for ws in book.worksheets if ws.title != LIST_SHEET for row in ws.iter_rows() for c in row
                if c.fill.fill_type == "solid" and c.fill.fgColor.rgb == ROW_MARK and c.row != 3]


def resaved_as_libreoffice_does(book: Path, target: Path) -> Path:
    """Our annotated book as LibreOffice (and WPS) save it again: notes without their author, the
    listing's title as rich text. (Seen with LibreOffice 7 on a returned book, 2026-11-29.)"""
    made = openpyxl.load_workbook(book, rich_text=True)
    for ws in made.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.comment is not None:
                    cell.comment = Comment(cell.comment.text, " ")
    listing = made[LIST_SHEET]
    listing["A1"] = CellRichText([TextBlock(InlineFont(b=True, sz=14), str(listing["A1"].value))])
    made.save(target)
    return target


def test_a_returned_book_saved_again_by_another_program_is_annotated_afresh(tmp_path, street):
    """The clerk opens the book we sent back, saves it in LibreOffice or WPS and sends it again unchanged:
    one listing, and our old notes are not kept as hers under the new ones."""
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    resent = resaved_as_libreoffice_does(annotate(tmp_path, source, found), tmp_path / "甲村(另存).xlsx")
    again = tmp_path / "again.xlsx"
    later = checked(resent, street)
    write_unit_book(again, "甲村", PERIOD, DUE, later, read_workbook(resent), CONTACT, source=resent)
    book = openpyxl.load_workbook(again)
    assert [t for t in book.sheetnames if t.startswith(LIST_SHEET)] == [LIST_SHEET]
    assert marked_cells(book) == marked_cells(openpyxl.load_workbook(annotate(tmp_path, source, found)))
    assert all(author == AUTHOR and "原批注" not in text for author, text in notes(again).values())


def test_other_formats_are_rebuilt_at_the_same_positions(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    out = annotate(tmp_path, source, found, rebuild=True)
    book = openpyxl.load_workbook(out)
    assert marked_cells(book) == {(f.sheet, f.cell) for f in found}
    raw = read_workbook(source)
    for sheet in raw.sheets:
        for r, row in enumerate(sheet.grid):
            for c, value in enumerate(row):
                got = book[sheet.name].cell(sheet.top + r + 1, sheet.left + c + 1).value
                if isinstance(got, dt.datetime) and type(value) is dt.date:
                    got = got.date()
                assert (got is None and value in ("", None)) or got == value, (sheet.name, r, c)
    assert {f.code for f in checked(out, street)} == {f.code for f in found}


def test_english_listing(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    book = openpyxl.load_workbook(annotate(tmp_path, source, found, lang="en"))
    rows = list(book[LIST_SHEET].iter_rows(values_only=True))
    assert any(r[0] == "No." for r in rows)
    assert sorted(r[7] for r in rows if isinstance(r[0], int)) == sorted(f.message_en for f in found)
    assert {r[1] for r in rows if isinstance(r[0], int)} == {"error", "warning"}


@pytest.mark.parametrize("name", ["roster", "floating"])
def test_id_number_cells_stay_text(tmp_path, street, name):
    data = clean_return(street)
    source = write_return(tmp_path / "甲村.xlsx", data)
    out = annotate(tmp_path, source, checked(source, street, period="2026-09"))
    sheet = {"roster": "育龄妇女", "floating": "流动人口"}[name]
    frame = data.roster if name == "roster" else data.floating
    column = openpyxl.utils.get_column_letter(list(frame.columns).index("身份证号") + 1)
    cell = openpyxl.load_workbook(out)[sheet][f"{column}3"]
    assert cell.value == frame.at[0, "身份证号"] and cell.data_type == "s"


def test_the_run_sends_back_her_own_book_annotated(workspace, street):
    from conftest import drop
    from pipeline.outputs import UNIT_FOLDER
    from pipeline.run import run

    sent = drop(workspace, "甲村10月.xlsx", defective(street))
    hers = values(sent)
    run(workspace, street, now=RUN_DAY)
    [book_path] = (workspace.outbox / PERIOD / UNIT_FOLDER).glob("*.xlsx")
    book = openpyxl.load_workbook(book_path)
    assert book.sheetnames == [LIST_SHEET, "封面", "月报", "育龄妇女", "流动人口"]
    assert values(book_path) == hers and book["月报"]["C3"].font.b
    report = (workspace.outbox / PERIOD / "report.json").read_text(encoding="utf-8")
    assert all(f'"{cell}"' in report for _, cell in marked_cells(book))


def test_writing_processes_make_the_books_this_process_makes(tmp_path, street):
    """write_in_parallel runs write_unit_book elsewhere: the same book, cell for cell, mark for mark."""
    from pipeline.write.book_writers import write_in_parallel

    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    here = annotate(tmp_path, source, found)
    calls = [((tmp_path / f"审核结果{i}.xlsx", "甲村", PERIOD, DUE, found, read_workbook(source), CONTACT),
              {"source": source}) for i in range(3)]
    write_in_parallel(iter(calls), 2)
    for (path, *_), _ in calls:
        assert values(path) == values(here)
        book, mine = openpyxl.load_workbook(path), openpyxl.load_workbook(here)
        assert marked_cells(book) == marked_cells(mine) and links(book) == links(mine)


DTD_PROLOG = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'


@pytest.mark.parametrize("name, data", [
    ("xl/sharedStrings.xml", DTD_PROLOG),
    ("xl/worksheets/sheet9.dat", DTD_PROLOG),  # named like no XML part: openpyxl follows the rels, not the name
    ("xl/worksheets/sheet9.bin", "\ufeff".encode("utf-16-le") + DTD_PROLOG.decode().encode("utf-16-le")),
])
def test_a_book_with_a_dtd_anywhere_is_never_opened_by_openpyxl(tmp_path, street, name, data):
    """The writing processes' openpyxl has no entity guard of its own: a DTD in any part that reads as XML
    keeps her file from it (her book is rebuilt from the values instead); pictures and other binaries do not."""
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    assert annotatable(source)

    def add(part: str, content: bytes) -> Path:
        """Her file with `part` replaced, or added, as `content`."""
        target = tmp_path / f"{len(list(tmp_path.iterdir()))}.xlsx"
        with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                zout.writestr(info, content if info.filename == part else zin.read(info))
            if part not in zin.namelist():
                zout.writestr(part, content)
        return target

    assert annotatable(add("xl/media/image1.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))))
    hostile = add(name, data)
    assert not annotatable(hostile)
    write_unit_book(tmp_path / "审核结果.xlsx", "甲村", PERIOD, DUE, checked(source, street), read_workbook(source),
                    CONTACT, source=hostile)
    assert values(tmp_path / "审核结果.xlsx")  # rebuilt from the values read at intake


def test_a_book_a_writing_process_cannot_write_fails_the_run_with_its_reason(tmp_path, street):
    from pipeline.write.book_writers import BookWriteFailed, write_in_parallel

    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    nowhere = source / "审核结果.xlsx"  # under a file: no folder can be made there
    with pytest.raises(BookWriteFailed, match="1 份退回工作簿未能写出"):
        write_in_parallel(iter([((nowhere, "甲村", PERIOD, DUE, found, read_workbook(source), CONTACT), {})]), 2)


@pytest.mark.parametrize("kind", ["ods", "xml spreadsheet"])
def test_a_return_in_another_format_goes_back_rebuilt_with_its_marks(tmp_path, street, kind):
    from test_intake_builders import return_grids, write_ods, write_xml_spreadsheet

    grids = return_grids(defective(street))
    source = (write_ods(tmp_path / "甲村.ods", grids) if kind == "ods"
              else write_xml_spreadsheet(tmp_path / "甲村.xls", grids))
    found = checked(source, street)
    assert {"population-balance", "id-checksum", "phone-invalid"} <= {f.code for f in found}
    out = annotate(tmp_path, source, found, rebuild=True)
    assert marked_cells(openpyxl.load_workbook(out)) == {(f.sheet, f.cell) for f in found if f.cell}


class OnlyInTheTests:
    """Pickled by reference: a writing process cannot import it, and dies reading the call."""


def test_a_writing_process_that_dies_fails_the_run_and_is_reaped(tmp_path):
    from pipeline.write.book_writers import BookWriteFailed, write_in_parallel

    with pytest.raises(BookWriteFailed, match="异常退出"):
        write_in_parallel(iter([((OnlyInTheTests(),), {})] * 3), 2)


def test_a_book_someone_has_open_comes_back_from_a_writing_process_by_name():
    """A writing process answers with the OutputInUse itself (pickled): the run names the book and goes on."""
    import pickle

    from pipeline.write.safe import OutputInUse

    held = pickle.loads(pickle.dumps(OutputInUse([Path("/out/U01_甲村_审核结果.xlsx")])))
    assert isinstance(held, OutputInUse) and held.paths == [Path("/out/U01_甲村_审核结果.xlsx")]
    assert str(held).startswith("“U01_甲村_审核结果.xlsx” 无法更新:正被其他程序") and "请关闭后重新运行" in str(held)


# ---- her book marked in its own XML parts ---------------------------------------------------
def package_problems(path: Path, her: Path | None = None) -> list[str]:
    """What would make Excel offer to repair the book: parts without a type, links to missing parts,
    worksheet elements out of the schema's order, style counts that lie, drawings sharing numbers,
    more than one selected tab; and, given `her` book it was marked in, any error the Open XML SDK's
    schemas and semantic rules (openxml-audit) find in it that hers did not have."""
    from lxml import etree

    from pipeline.write.book_xml import _SHEET_ORDER, CONTENT_TYPES, MAIN

    problems = []
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        types = etree.fromstring(archive.read("[Content_Types].xml"))
        overrides = {o.get("PartName").lstrip("/") for o in types.iter(f"{{{CONTENT_TYPES}}}Override")}
        defaults = {d.get("Extension").lower() for d in types.iter(f"{{{CONTENT_TYPES}}}Default")}
        problems += [f"no type: {n}" for n in names - {"[Content_Types].xml"}
                     if n not in overrides and n.rsplit(".", 1)[-1].lower() not in defaults]
        problems += [f"a type for no part: {n}" for n in overrides - names]
        for rels in (n for n in names if n.endswith(".rels")):
            folder = posixpath.dirname(posixpath.dirname(rels))
            for rel in etree.fromstring(archive.read(rels)):
                target = rel.get("Target")
                part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
                if rel.get("TargetMode") != "External" and part not in names:
                    problems.append(f"{rels} points at no part: {target}")
        selected, drawings = 0, []
        for name in names:
            data = archive.read(name)
            if name.endswith(".vml"):  # each drawing's numbers (blocks of 1,024 shape ids)
                drawings += [int(n) for group in re.findall(rb'<(?:\w+:)?idmap\b[^>]*\bdata="([^"]*)"', data)
                             for n in group.split(b",")]
            if not name.startswith("xl/worksheets/sheet"):
                continue
            root = etree.fromstring(data)
            order = [_SHEET_ORDER.index(etree.QName(c).localname) for c in root
                     if etree.QName(c).namespace == MAIN]
            if order != sorted(order):
                problems.append(f"{name}: elements out of order")
            selected += sum(v.get("tabSelected") in ("1", "true") for v in root.iter(f"{{{MAIN}}}sheetView"))
        styles = etree.fromstring(archive.read("xl/styles.xml"))
        problems += [f"styles: {e.tag} count" for e in styles
                     if e.get("count") is not None and int(e.get("count")) != len(e)]
    if selected != 1:
        problems.append(f"{selected} tabs selected")
    if len(drawings) != len(set(drawings)):
        problems.append(f"drawings share numbers: {drawings}")
    if her is not None:
        problems += [f"{part}: {what}" for part, what in (schema_errors(path) - schema_errors(her)).elements()]
    return problems


def schema_errors(path: Path) -> Counter:
    """(part, error) of each error openxml-audit finds (its warnings left out: a listing in inline
    strings is one, which Excel moves to shared strings when it next saves the book)."""
    from openxml_audit import OpenXmlValidator, ValidationSeverity

    result = OpenXmlValidator(max_errors=0).validate(path)
    return Counter((e.part_uri, e.description) for e in result.errors if e.severity == ValidationSeverity.ERROR)


def notes(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(sheet, cell) → (author, text) of every note of the unit's own sheets."""
    book = openpyxl.load_workbook(path)
    return {(ws.title, c.coordinate): (c.comment.author, c.comment.text) for ws in book.worksheets
            if ws.title != LIST_SHEET for row in ws.iter_rows() for c in row if c.comment is not None}


def fills(path: Path) -> dict[tuple[str, str], str]:
    """(sheet, cell) → colour of every cell we filled."""
    book = openpyxl.load_workbook(path)
    return {(ws.title, c.coordinate): c.fill.fgColor.rgb for ws in book.worksheets if ws.title != LIST_SHEET
            for row in ws.iter_rows() for c in row
            if c.fill.fill_type == "solid" and c.fill.fgColor.rgb in {*FILLS.values(), ROW_MARK}}


def only_her_own_book(monkeypatch) -> None:
    """Fail the test if openpyxl is asked to clean or rebuild the book."""
    from pipeline.write import unit_book

    def refuse(*_):
        raise AssertionError("openpyxl was used")
    monkeypatch.setattr(unit_book, "cleaned_book", refuse)
    monkeypatch.setattr(unit_book, "rebuilt_book", refuse)


def test_a_plain_book_is_marked_in_her_own_parts_the_rest_kept_byte_for_byte(tmp_path, street, monkeypatch):
    data = defective(street)
    data.roster.at[0, "备注"] = "=cmd|' /C calc'!A0"  # text that looks like a formula: kept, marked as text
    source = write_return(tmp_path / "甲村.xlsx", data)
    found = [f for f in checked(source, street) if f.sheet == "育龄妇女"]
    only_her_own_book(monkeypatch)
    out = annotate(tmp_path, source, found)
    assert package_problems(out, her=source) == []
    assert marked_cells(openpyxl.load_workbook(out)) == {(f.sheet, f.cell) for f in found}
    remark = openpyxl.load_workbook(out)["育龄妇女"]["M3"]
    assert remark.value == "=cmd|' /C calc'!A0" and remark.data_type == "s" and remark.quotePrefix
    with zipfile.ZipFile(source) as hers, zipfile.ZipFile(out) as mine:
        same = [n for n in hers.namelist() if hers.read(n) == mine.read(n)]
        unselected = [n for n in hers.namelist() if n not in same
                      and hers.read(n).replace(b' tabSelected="1"', b"") == mine.read(n)]
    assert {"xl/sharedStrings.xml", "xl/theme/theme1.xml", "xl/worksheets/sheet4.xml"} <= set(same)
    assert unselected == ["xl/worksheets/sheet1.xml"]  # her first sheet, no longer the one shown


def test_a_book_libreoffice_saved_is_marked_in_her_own_parts(tmp_path, street, monkeypatch):
    """Clerks who use LibreOffice (or a WPS that saves alike) send its dialect of .xlsx: marked in its own
    parts too, with nothing added that the Open XML SDK's schemas object to."""
    source = tmp_path / "甲村.xlsx"
    source.write_bytes((Path(__file__).parent / "data" / "甲村_libreoffice.xlsx").read_bytes())
    found = checked(source, street)
    assert {f.code for f in found} >= {"population-balance", "not-in-list", "id-checksum", "phone-invalid"}
    only_her_own_book(monkeypatch)
    out = annotate(tmp_path, source, found)
    assert package_problems(out, her=source) == []
    assert marked_cells(openpyxl.load_workbook(out)) == {(f.sheet, f.cell) for f in found}
    assert {cell: author for cell, (author, _) in notes(out).items()} == {(f.sheet, f.cell): AUTHOR for f in found}


def test_her_book_and_openpyxls_cleaned_copy_are_marked_alike(tmp_path, street, monkeypatch):
    from pipeline.write import unit_book

    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    fast = annotate(tmp_path, source, found)
    monkeypatch.setattr(unit_book, "her_own_book", lambda *_: None)
    (tmp_path / "cleaned").mkdir()
    cleaned = annotate(tmp_path / "cleaned", source, found)
    assert package_problems(fast, her=source) == package_problems(cleaned) == []
    assert values(fast) == values(cleaned) and fills(fast) == fills(cleaned) and notes(fast) == notes(cleaned)
    mine, theirs = openpyxl.load_workbook(fast), openpyxl.load_workbook(cleaned)
    assert links(mine) == links(theirs) and mine.sheetnames == theirs.sheetnames
    assert list(mine[LIST_SHEET].values) == list(theirs[LIST_SHEET].values)


def test_her_own_notes_stay_and_one_on_a_marked_cell_is_kept_under_ours(tmp_path, street, monkeypatch):
    from openpyxl.comments import Comment

    from pipeline.write.unit_book import HER_NOTE

    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    cell = next(f.cell for f in found if f.code == "phone-invalid")
    book = openpyxl.load_workbook(source)
    book["流动人口"][cell].comment = Comment("这个号码是村主任给的", "李会计")
    book["流动人口"]["A1"].comment = Comment("表头别动", "李会计")
    book.save(source)
    only_her_own_book(monkeypatch)
    out = annotate(tmp_path, source, found)
    assert package_problems(out, her=source) == []
    got = notes(out)
    assert got[("流动人口", "A1")] == ("李会计", "表头别动")
    author, text = got[("流动人口", cell)]
    assert author == AUTHOR and text.endswith(HER_NOTE + "这个号码是村主任给的") and "【错误】" in text


def test_a_marked_cell_in_a_hidden_row_column_or_sheet_is_shown(tmp_path, street, monkeypatch):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    phone = next(f for f in found if f.code == "phone-invalid")
    column = "".join(ch for ch in phone.cell if ch.isalpha())
    book = openpyxl.load_workbook(source)
    ws = book["流动人口"]
    ws.sheet_state = "hidden"
    ws.row_dimensions[phone.row].hidden = True
    ws.row_dimensions[phone.row + 1].hidden = True  # no finding there: stays hidden
    ws.column_dimensions[column].hidden = True
    book.save(source)
    only_her_own_book(monkeypatch)
    path = annotate(tmp_path, source, found)
    assert package_problems(path, her=source) == []
    out = openpyxl.load_workbook(path)
    ws = out["流动人口"]
    assert ws.sheet_state == "visible" and not ws.row_dimensions[phone.row].hidden
    assert not ws.column_dimensions[column].hidden and ws.row_dimensions[phone.row + 1].hidden


def test_a_finding_inside_merged_cells_marks_the_cell_that_shows_them(tmp_path, street, monkeypatch):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    book = openpyxl.load_workbook(source)
    book["月报"].merge_cells("R4:S5")
    book.save(source)
    only_her_own_book(monkeypatch)
    path = annotate(tmp_path, source, [finding("not-integer", sheet="月报", cell="S5", row=5)])
    assert package_problems(path, her=source) == []
    out = openpyxl.load_workbook(path)
    assert out["月报"]["R4"].fill.fgColor.rgb == FILLS["error"] and out["月报"]["R4"].comment.author == AUTHOR
    assert links(out) == [("月报", "S5")]


def test_a_sheet_whose_cells_carry_no_references_goes_through_openpyxl(tmp_path, street):
    """References on cells are optional in the file format; her book is then cleaned by openpyxl first."""
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    bare = tmp_path / "bare.xlsx"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(bare, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/worksheets/sheet3.xml":
                data = re.sub(rb'<c r="[A-Z]+\d+"', b"<c", data)
            zout.writestr(info, data)
    out = annotate(tmp_path, bare, found)
    assert package_problems(out) == []
    assert marked_cells(openpyxl.load_workbook(out)) == {(f.sheet, f.cell) for f in found}


def test_her_values_are_read_only_when_her_book_needs_them(tmp_path, street):
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    asked = []

    def values():
        asked.append(1)
        return read_workbook(source)
    write_unit_book(tmp_path / "a.xlsx", "甲村", PERIOD, DUE, found, values, CONTACT, source=source)
    assert asked == []  # marked in her own parts, every finding naming her sheets as she does
    book = openpyxl.load_workbook(source)
    book["封面"].title = "封面页"  # the cover's findings say 封面, the form's name
    book.save(source)
    found = checked(source, street, period="2026-09")
    assert "封面" in {f.sheet for f in found}
    write_unit_book(tmp_path / "b.xlsx", "甲村", PERIOD, DUE, found, values, CONTACT, source=source)
    assert asked == [1]
    assert ("封面页", next(f.cell for f in found if f.sheet == "封面")) in marked_cells(openpyxl.load_workbook(
        tmp_path / "b.xlsx"))


def test_a_writing_process_reads_the_values_a_rebuilt_book_needs(tmp_path, street):
    """A return in another format is rebuilt from its values: read in the writing process, warily."""
    from test_intake_builders import return_grids, write_ods

    from pipeline.write.book_writers import ArchivedValues, write_in_parallel

    source = write_ods(tmp_path / "甲村.ods", return_grids(defective(street)))
    found = checked(source, street)
    calls = [((tmp_path / f"审核结果{i}.xlsx", "甲村", PERIOD, DUE, found, ArchivedValues(source), CONTACT),
              {"source": source}) for i in range(4)]
    assert write_in_parallel(calls, 2) == []
    for (path, *_), _ in calls:
        assert marked_cells(openpyxl.load_workbook(path)) == {(f.sheet, f.cell) for f in found if f.cell}


@pytest.mark.parametrize("oddity", ["a part of a kind it does not know", "a link out of the file",
                                    "a link out of the file, spelt with a character reference",
                                    "a link out of the file, its mode left out"])
def test_a_book_it_does_not_take_as_it_is_is_cleaned_by_openpyxl_first(tmp_path, street, oddity):
    from pipeline.write.book_xml import NotPlain, XmlBook

    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    if oddity.startswith("a link out of the file"):
        book = openpyxl.load_workbook(source)
        book["封面"]["D1"].hyperlink = "http://example.com/x"
        book.save(source)
        spelt = {"reference": b'TargetMode="&#69;xternal"', "left out": b""}
        for words, mode in spelt.items():
            if words in oddity:
                source = rewrite_zip(source, tmp_path / "spelt.xlsx", lambda name, data: data.replace(
                    b'TargetMode="External"', mode) if name.endswith(".rels") else data)
    else:
        def add_part(name: str, data: bytes) -> bytes:
            if name == "[Content_Types].xml":
                return data.replace(b"</Types>", b'<Override PartName="/xl/custom/item1.bin" '
                                                 b'ContentType="application/x-something"/></Types>')
            return data
        odd = tmp_path / "odd.xlsx"
        with zipfile.ZipFile(source) as zin, zipfile.ZipFile(odd, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                zout.writestr(info, add_part(info.filename, zin.read(info)))
            zout.writestr("xl/custom/item1.bin", b"\x00\x01")
        source = odd
    with pytest.raises(NotPlain):
        XmlBook.open(source)
    out = annotate(tmp_path, source, found)
    assert package_problems(out) == []
    assert marked_cells(openpyxl.load_workbook(out)) == {(f.sheet, f.cell) for f in found}
    with zipfile.ZipFile(out) as archive:
        assert "xl/custom/item1.bin" not in archive.namelist()
        assert not [n for n in archive.namelist() if n.endswith(".rels") and b"xternal" in archive.read(n)]


def test_a_picture_in_her_header_keeps_its_drawing_when_notes_get_theirs(tmp_path, street, monkeypatch):
    """A header or footer picture is a VML drawing too (legacyDrawingHF): the notes get a drawing of their own."""
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    picture = (b'<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">'
               b'<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="1"/></o:shapelayout>'
               b'<v:shape id="LH" o:spid="_x0000_s1025" style="width:60pt;height:20pt"/></xml>')
    rels = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            b'2006/relationships"><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            b'relationships/vmlDrawing" Target="../drawings/vmlDrawingHF1.vml"/></Relationships>')
    header = tmp_path / "header.xlsx"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(header, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Default Extension="vml" ContentType="application/'
                                                 b'vnd.openxmlformats-officedocument.vmlDrawing"/></Types>')
            if info.filename == "xl/worksheets/sheet4.xml":  # 流动人口, where a phone number is wrong
                data = data.replace(b"</worksheet>", b'<legacyDrawingHF r:id="rId9"/></worksheet>')
            zout.writestr(info, data)
        zout.writestr("xl/worksheets/_rels/sheet4.xml.rels", rels)
        zout.writestr("xl/drawings/vmlDrawingHF1.vml", picture)
    only_her_own_book(monkeypatch)
    out = annotate(tmp_path, header, found)
    assert package_problems(out, her=header) == []
    assert ("流动人口", next(f.cell for f in found if f.code == "phone-invalid")) in marked_cells(
        openpyxl.load_workbook(out))
    with zipfile.ZipFile(out) as archive:
        assert archive.read("xl/drawings/vmlDrawingHF1.vml") == picture
        sheet = archive.read("xl/worksheets/sheet4.xml")
    assert sheet.index(b"<legacyDrawing ") < sheet.index(b"<legacyDrawingHF ")


def test_a_street_can_send_every_book_through_openpyxl(tmp_path, street, monkeypatch):
    """PIPELINE_UNIT_BOOKS=openpyxl: the way books were made before they were marked in their own parts."""
    from pipeline.write import unit_book

    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    cleaned, clean = [], unit_book.cleaned_book

    def spy(*args):
        cleaned.append(1)
        return clean(*args)
    monkeypatch.setattr(unit_book, "cleaned_book", spy)
    monkeypatch.setenv(unit_book.BOOKS_ENV, "openpyxl")
    out = annotate(tmp_path, source, found)
    assert cleaned == [1] and package_problems(out) == []
    assert marked_cells(openpyxl.load_workbook(out)) == {(f.sheet, f.cell) for f in found}


def test_a_sheet_lxml_cannot_parse_still_goes_back_marked(tmp_path, street):
    """calamine reads a character reference XML forbids (&#1;); lxml and openpyxl do not: rebuilt from her values."""
    source = write_return(tmp_path / "甲村.xlsx", defective(street))
    found = checked(source, street)
    odd = rewrite_zip(source, tmp_path / "odd.xlsx", lambda name, data: data.replace(
        b"</row>", b'<c r="Z1" t="inlineStr"><is><t>&#1;</t></is></c></row>', 1)
        if name == "xl/worksheets/sheet3.xml" else data)
    assert read_workbook(odd).sheets
    out = annotate(tmp_path, odd, found)
    assert package_problems(out) == []
    assert marked_cells(openpyxl.load_workbook(out)) == {(f.sheet, f.cell) for f in found}


def test_a_sheet_with_over_a_thousand_notes_numbers_its_drawing_apart_from_hers(tmp_path, street, monkeypatch):
    """Notes past 1,023 on a sheet take a second block of shape numbers: free ones, not her drawing's."""
    from openpyxl.comments import Comment

    source = write_return(tmp_path / "甲村.xlsx", clean_return(street))
    book = openpyxl.load_workbook(source)
    book["流动人口"]["A1"].comment = Comment("表头", "李会计")
    book.save(source)
    numbered = rewrite_zip(source, tmp_path / "numbered.xlsx", lambda name, data: data.replace(
        b'data="1"', b'data="2"') if name.endswith(".vml") else data)
    cells = [f"{column}{row}" for row in range(3, 100) for column in "ABCDEFGHIJKLM"][:1100]
    found = [finding("not-in-list", sheet="育龄妇女", cell=cell, value="x", expected="y") for cell in cells]
    only_her_own_book(monkeypatch)
    out = annotate(tmp_path, numbered, found)
    assert package_problems(out, her=numbered) == []
    assert len(marked_cells(openpyxl.load_workbook(out))) == 1100


def test_formulas_are_found_whatever_prefix_her_sheets_give_the_namespace(tmp_path, street):
    """<x:f> is a formula as <f> is: an unsafe one in a sheet written with prefixes still becomes its value."""
    source = write_return(tmp_path / "甲村.xlsx", clean_return(street))
    book = openpyxl.load_workbook(source)
    book["月报"]["T6"] = "=cmd|' /C calc'!A0"
    book.save(source)

    def prefixed(name: str, data: bytes) -> bytes:
        if not name.startswith("xl/worksheets/sheet"):
            return data
        data = re.sub(rb"<(/?)(?![?!])(\w+)([\s/>])", rb"<\1x:\2\3", data)
        return data.replace(b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"',
                            b'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"', 1)
    odd = rewrite_zip(source, tmp_path / "prefixed.xlsx", prefixed)
    assert b"<x:f>" in zipfile.ZipFile(odd).read("xl/worksheets/sheet2.xml")
    out = annotate(tmp_path, odd, [finding("population-balance", sheet="月报", cell="H4", field="期末人口")])
    assert package_problems(out, her=odd) == []
    mine = openpyxl.load_workbook(out)
    assert mine["月报"]["T6"].data_type != "f" and mine["月报"]["B6"].value == "=SUM(B4:B5)"
    assert marked_cells(mine) == {("月报", "H4")}


@pytest.mark.parametrize("hidden", ["an unsafe formula", "a link out of the file"])
def test_what_a_part_in_utf16_holds_is_seen_as_in_utf8(tmp_path, street, hidden):
    """XML may be UTF-16: a book whose parts are not UTF-8 is made safe by openpyxl, like any other."""
    source = write_return(tmp_path / "甲村.xlsx", clean_return(street))
    book = openpyxl.load_workbook(source)
    if hidden == "an unsafe formula":
        book["月报"]["T6"] = "=cmd|' /C calc'!A0"
        part = "xl/worksheets/sheet2.xml"
    else:
        book["封面"]["D1"].hyperlink = "http://example.com/x"
        part = "xl/worksheets/_rels/sheet1.xml.rels"
    book.save(source)
    raw = read_workbook(source)

    def utf16(name: str, data: bytes) -> bytes:
        if name != part:
            return data
        text = data.decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'").replace(
            'encoding="UTF-8"', 'encoding="UTF-16"')
        return text.encode("utf-16")
    odd = rewrite_zip(source, tmp_path / "utf16.xlsx", utf16)
    out = tmp_path / "审核结果.xlsx"
    write_unit_book(out, "甲村", PERIOD, DUE, [finding("population-balance", sheet="月报", cell="H4")], raw,
                    CONTACT, source=odd)
    assert package_problems(out) == []
    mine = openpyxl.load_workbook(out)
    assert mine["月报"]["T6"].data_type != "f" and marked_cells(mine) == {("月报", "H4")}
    with zipfile.ZipFile(out) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".rels")
                    and "External" in archive.read(n).decode("utf-16" if archive.read(n)[:2] == b"\xff\xfe"
                                                             else "utf-8")]

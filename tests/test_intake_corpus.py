"""Acceptance 1: one clean return in every format and with every tolerance of SPEC §3.

Each file is made here from the same clean return; each must be accepted with no error
and give exactly the figures and persons of the template .xlsx.
"""

from __future__ import annotations

import copy
import re
import datetime as dt
import shutil
import time
from pathlib import Path

import pytest

from conftest import PERIOD, RUN_DAY, clean_return, drop
from pipeline.check import check_returns, no_earlier_persons
from pipeline.forms import load_form
from pipeline.intake.returns import take_in_all
from pipeline.periods import EXCEL_EPOCH
from test_intake_builders import (as_xlsm, csv_zip, html_page, return_grids, settle, sheet_folder,
                                  stale_dimension, write_ods, write_ods_tables, write_xls, write_xlsx,
                                  write_xml_spreadsheet)


def serial(day: dt.date) -> int:
    return (day - EXCEL_EPOCH).days


def with_dates(grids: dict, form) -> dict:
    """The grids with every date in the registers written by `form(date)`."""
    out = copy.deepcopy(grids)
    for name in ("育龄妇女", "流动人口"):
        out[name] = [[form(v) if isinstance(v, dt.date) else v for v in row] for row in out[name]]
    return out


def with_cover(grids: dict, **changes) -> dict:
    """The grids with cover values changed (None removes the line)."""
    out = copy.deepcopy(grids)
    cover = dict((k, v) for k, v in out["封面"])
    cover.update(changes)
    out["封面"] = [[k, v] for k, v in cover.items() if v is not None]
    return out


def two_row_header(grids: dict) -> tuple[dict, list[tuple]]:
    """月报 under a two-row header: each column merged down both rows, the floating
    columns under one merged "流动人口情况" label, with 出生 split into 小计/一孩/二孩/多孩."""
    out = copy.deepcopy(grids)
    title, header, *rows = out["月报"]
    births = header.index("出生")
    floating = header.index("流动人口")
    top = [None] * (len(header) + 3)
    sub = [None] * (len(header) + 3)
    merges, c = [], 0
    body = [[] for _ in rows]
    for i, name in enumerate(header):
        if i == births:
            merges.append((1, c, 1, c + 3, "出生"))
            sub[c:c + 4] = ["小计", "一孩", "二孩", "多孩"]
            for line, row in zip(body, rows):
                total = row[i]
                first = total // 2 if isinstance(total, int) else None
                line += [total, first, total - first if first is not None else None, 0 if first is not None else None]
            c += 4
            continue
        if i >= floating:
            sub[c] = name
        else:
            merges.append((1, c, 2, c, name))
        for line, row in zip(body, rows):
            line.append(row[i])
        c += 1
    merges.append((1, floating + 3, 1, len(header) + 2, "流动人口情况"))
    merges.append((0, 0, 0, len(header) + 2, title[0]))
    out["月报"] = [[title[0]], top, sub, *body]
    return out, {"月报": merges}


def merged_groups(grids: dict) -> tuple[dict, dict[str, list[tuple]]]:
    """The registers sorted by group, each group's name merged down its rows, as many clerks lay them out."""
    out, merges = copy.deepcopy(grids), {}
    for name in ("育龄妇女", "流动人口"):
        header, *rows = out[name]
        c = header.index("小组")
        rows.sort(key=lambda row: str(row[c]))
        merges[name], start = [], 0
        for i in range(1, len(rows) + 1):  # rows[start:i] share a group: grid rows start + 1 … i
            if i == len(rows) or rows[i][c] != rows[start][c]:
                if i - start > 1:
                    merges[name].append((start + 1, c, i, c, rows[start][c]))
                start = i
        out[name] = [header, *rows]
    return out, merges


def corpus(folder: Path, street) -> dict[str, Path]:
    """Every format and tolerance, each a file (or folder) of the same clean return."""
    data = clean_return(street, "U01")
    grids = return_grids(data)
    folder.mkdir()
    base = drop(folder, "template.xlsx", data)
    header, merges = two_row_header(grids)
    grouped, group_merges = merged_groups(grids)
    files = {
        "xlsx template": base,
        "xlsm": as_xlsm(base, folder / "宏.xlsm"),
        "xls": write_xls(folder / "老版本.xls", grids),
        "xls named .xlsx": write_xls(folder / "改名.xlsx", grids),
        "ods": write_ods(folder / "wps.ods", grids),
        "html gbk named .xls": _write(folder / "系统导出.xls", html_page(grids).encode("gbk")),
        "html gb18030 headings, no captions": _write(folder / "导出2.xls", html_page(grids, caption="heading").encode("gb18030")),
        "html utf-8": _write(folder / "导出3.xls", html_page(grids).encode("utf-8")),
        "csv zip (gbk names, mixed encodings)": csv_zip(folder / "分表.zip", grids),
        "folder of per-sheet files": sheet_folder(folder / "甲村十月", grids),
        "merged two-row header": write_xlsx(folder / "合并表头.xlsx", header, merges=merges),
        "merged two-row header .xls": write_xls(folder / "合并表头.xls", header, merges=merges),
        "merged two-row header .ods": write_ods(folder / "合并表头.ods", header, merges=merges),
        "groups merged down the registers": write_xlsx(folder / "合并小组.xlsx", grouped, merges=group_merges),
        "groups merged down the registers .ods": write_ods(folder / "合并小组.ods", grouped, merges=group_merges),
        "xml spreadsheet 2003 named .xls": write_xml_spreadsheet(folder / "XML表格.xls", grids),
        "xml spreadsheet 2003, gb2312, merged": write_xml_spreadsheet(
            folder / "XML表格合并.xml", merged_groups(header)[0], merges={**merges, **merged_groups(header)[1]},
            encoding="gb2312"),
        "dates as serials": write_xlsx(folder / "序列号日期.xlsx", with_dates(grids, serial)),
        "dates 2026-03-01 as text": write_xlsx(folder / "d1.xlsx", with_dates(grids, lambda d: d.isoformat())),
        "dates 2026/3/1": write_xlsx(folder / "d2.xlsx", with_dates(grids, lambda d: f"{d.year}/{d.month}/{d.day}")),
        "dates 2026年3月1日": write_xlsx(folder / "d3.xlsx", with_dates(grids, lambda d: f"{d.year}年{d.month}月{d.day}日")),
        "hidden columns": write_xlsx(folder / "隐藏列.xlsx", grids, hidden={"月报": [1, 4], "育龄妇女": [0, 12]}),
        "period 2026年10月": write_xlsx(folder / "p1.xlsx", with_cover(grids, 报告期="2026年10月")),
        "period 202610": write_xlsx(folder / "p2.xlsx", with_cover(grids, 报告期="202610")),
        "period 202610 as a number": write_xlsx(folder / "p3.xlsx", with_cover(grids, 报告期=202610)),
        "period as an Excel date": write_xlsx(folder / "p4.xlsx", with_cover(grids, 报告期=dt.date(2026, 10, 1))),
        "period as an Excel serial": write_xlsx(folder / "p5.xlsx", with_cover(grids, 报告期=serial(dt.date(2026, 10, 1)))),
        "unit by alias": write_xlsx(folder / "alias.xlsx", with_cover(grids, 单位名称="甲村委会", 单位代码=None)),
        "unit and period from the file name": write_xlsx(folder / "甲村2026年10月报表(改).xlsx",
                                                          with_cover(grids, 单位名称=None, 单位代码=None, 报告期=None)),
        "unit and period from the title": write_xlsx(folder / "报表.xlsx", _titled(grids)),
        "stale dimension": stale_dimension(base, folder / "旧维度.xlsx"),
    }
    return files


def _titled(grids: dict) -> dict:
    out = with_cover(grids, 单位名称=None, 单位代码=None, 报告期=None)
    out["月报"][0] = ["甲村 2026年10月 人口与计划生育月报表"]
    return out


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return settle(path)


BIRTH_ORDERS = ("一孩", "二孩", "多孩")  # only the two-row header variant splits 出生 by order


def _numbers(checked) -> tuple:
    figures = checked.figures.frame()
    figures = figures[~figures["name"].isin(BIRTH_ORDERS)]
    figures = figures.sort_values(["grp", "name"]).reset_index(drop=True)
    persons = {k: sorted(p["id_number"]) for k, p in checked.persons.items()}
    return figures.to_dict("records"), persons


@pytest.fixture(scope="module")
def taken(tmp_path_factory, request):
    from conftest import STREET
    from pipeline.registry import parse_registry

    street = parse_registry(STREET, Path("test-street.toml"))
    files = corpus(tmp_path_factory.mktemp("corpus") / "files", street)
    form = load_form()
    returns = take_in_all([(p, None) for p in files.values()], street, form)
    results = {}
    for label, ret in zip(files, returns):
        checked, _ = check_returns([ret], street, form, RUN_DAY.date(), no_earlier_persons())
        results[label] = (ret, checked[0])
    return results


def test_every_format_and_tolerance_is_read(taken):
    assert len(taken) == 31
    unreadable = {label: ret.quarantine_reason for label, (ret, _) in taken.items() if ret.quarantine_reason}
    assert unreadable == {}


@pytest.mark.parametrize("label", [
    "xlsm", "xls", "xls named .xlsx", "ods", "html gbk named .xls", "html gb18030 headings, no captions",
    "html utf-8", "csv zip (gbk names, mixed encodings)", "folder of per-sheet files", "merged two-row header",
    "merged two-row header .xls", "merged two-row header .ods", "groups merged down the registers",
    "groups merged down the registers .ods", "xml spreadsheet 2003 named .xls", "xml spreadsheet 2003, gb2312, merged",
    "dates as serials", "dates 2026-03-01 as text", "dates 2026/3/1",
    "dates 2026年3月1日", "hidden columns", "period 2026年10月", "period 202610", "period 202610 as a number",
    "period as an Excel date", "period as an Excel serial", "unit by alias", "unit and period from the file name",
    "unit and period from the title", "stale dimension"])
def test_same_return_in_another_form_gives_the_same_numbers_and_no_error(taken, label):
    ret, checked = taken[label]
    _, reference = taken["xlsx template"]
    assert (ret.unit.code, ret.period) == ("U01", PERIOD)
    assert [(f.code, f.sheet, f.cell) for f in checked.findings if f.severity != "info"] == []
    assert checked.verdict == "accepted"
    assert _numbers(checked) == _numbers(reference)


def test_the_template_itself_is_clean(taken):
    ret, checked = taken["xlsx template"]
    assert checked.verdict == "accepted" and not [f for f in checked.findings if f.severity == "error"]
    assert ret.format == "xlsx"


def test_openpyxl_as_the_xlsx_reader_gives_the_same_tables_and_findings(taken, tmp_path, monkeypatch):
    """The fast parser and the classic one agree on every .xlsx of the corpus, end to end of intake."""
    from conftest import STREET
    from pipeline.intake.read import READER_ENV
    from pipeline.registry import parse_registry

    street = parse_registry(STREET, Path("test-street.toml"))
    xlsx = {label: ret for label, (ret, _) in taken.items() if ret.format == "xlsx"}
    assert len(xlsx) >= 10  # merged headers, stale dimension, dates, periods…
    copies = []  # same names (some returns are known by their file name), one folder each
    for i, ret in enumerate(xlsx.values()):
        (tmp_path / str(i)).mkdir()
        copies.append(Path(shutil.copy2(ret.path, tmp_path / str(i) / ret.path.name)))
    monkeypatch.setenv(READER_ENV, "openpyxl")
    slow = take_in_all([(p, None) for p in copies], street, load_form())
    for (label, fast), again in zip(xlsx.items(), slow):
        assert again.format == "xlsx", (label, again.unreadable)
        assert fast.tables.keys() == again.tables.keys(), label
        for key, table in fast.tables.items():
            other = again.tables[key]
            assert (table.header_row, table.letters, table.total_row) == (other.header_row, other.letters,
                                                                          other.total_row), (label, key)
            assert table.values.equals(other.values), (label, key)
        assert [(f.code, f.sheet, f.cell) for f in fast.findings] == \
               [(f.code, f.sheet, f.cell) for f in again.findings], label


def _ods(path: Path, rows: str) -> Path:
    """An .ods of one sheet 育龄妇女 whose <table:table> holds `rows` as written."""
    return write_ods_tables(path, f'<table:table table:name="育龄妇女">{rows}</table:table>')


def _text(value: str, attrs: str = "") -> str:
    return f'<table:table-cell{attrs} office:value-type="string"><text:p>{value}</text:p></table:table-cell>'


def test_ods_merges_are_placed_past_repeated_rows_and_cells(tmp_path):
    """A merge's place counts repeated rows and cells, rows inside header and group elements, covered cells."""
    from pipeline.intake.read import read_workbook

    rows = ("<table:table-header-rows><table:table-row>" + _text("姓名") + _text("小组") + _text("备注")
            + "</table:table-row></table:table-header-rows>"
            '<table:table-row table:number-rows-repeated="2"><table:table-cell/></table:table-row>'
            "<table:table-row-group><table:table-row>" + _text("甲") + _text("一组", ' table:number-rows-spanned="3"')
            + _text("x", ' table:number-columns-spanned="2" table:number-rows-spanned="2"')
            + "</table:table-row><table:table-row>" + _text("乙") + "<table:covered-table-cell/>"
            + '<table:covered-table-cell table:number-columns-repeated="2"/></table:table-row>'
            + "<table:table-row>" + _text("丙", ' table:number-columns-repeated="1"')
            + "<table:covered-table-cell/></table:table-row></table:table-row-group>")
    [sheet] = read_workbook(_ods(tmp_path / "合并.ods", rows)).sheets
    assert sorted(sheet.merges) == [(3, 1, 5, 1), (3, 2, 4, 3)]
    assert [sheet.cell(r, 1) for r in range(3, 6)] == ["一组", "一组", "一组"]
    assert sheet.cell(4, 2) == "x" and sheet.cell(3, 3) is None  # down the first column only


def test_an_ods_merge_claiming_a_billion_rows_fills_only_the_rows_there(tmp_path):
    from pipeline.intake.read import read_workbook

    rows = ("<table:table-row>" + _text("小组") + "</table:table-row><table:table-row>"
            + _text("一组", ' table:number-rows-spanned="1000000000"') + "</table:table-row>"
            + "<table:table-row><table:covered-table-cell/>" + _text("张三") + "</table:table-row>")
    started = time.perf_counter()
    [sheet] = read_workbook(_ods(tmp_path / "大合并.ods", rows)).sheets
    assert sheet.merges == [(1, 0, 1_000_000_000, 0)]
    assert [sheet.cell(r, 0) for r in range(4)] == ["小组", "一组", "一组", None]
    assert time.perf_counter() - started < 2


def test_xml_spreadsheet_cells_are_placed_and_typed_as_excel_shows_them():
    from pipeline.intake.xmlss import read_xml_spreadsheet

    rows = ('<Row ss:Index="2"><Cell ss:MergeAcross="1"><Data ss:Type="String">出生</Data></Cell>'
            '<Cell><Data ss:Type="Number">3</Data><Comment ss:Author="张"><ss:Data><B>备注</B></ss:Data></Comment></Cell>'
            '<Cell><ss:Data ss:Type="String"><Font html:Color="#FF0000">一</Font>组</ss:Data></Cell></Row>'
            '<Row><Cell ss:Index="2"><Data ss:Type="DateTime">2026-10-05T00:00:00.000</Data></Cell>'
            '<Cell><Data ss:Type="DateTime">2026-10-05T08:30:00.000</Data></Cell>'
            '<Cell ss:Formula="=1/0"><Data ss:Type="Error">#DIV/0!</Data></Cell>'
            '<Cell><Data ss:Type="Boolean">1</Data></Cell></Row>')
    text = ('<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
            'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet" xmlns:html="http://www.w3.org/TR/REC-html40">'
            f'<Worksheet ss:Name="月报"><Table>{rows}</Table></Worksheet></Workbook>')
    [sheet] = read_xml_spreadsheet(text).sheets
    assert sheet.name == "月报" and sheet.merges == [(1, 0, 1, 1)]
    assert [sheet.cell(1, c) for c in range(4)] == ["出生", None, 3.0, "一组"]  # a comment is not the cell's value
    assert [sheet.cell(2, c) for c in range(1, 5)] == [dt.date(2026, 10, 5), dt.datetime(2026, 10, 5, 8, 30), None, True]


def test_a_word_or_powerpoint_file_sent_by_mistake_is_named_as_such(tmp_path):
    """A .doc (or WPS .wps) or .docx where the return should be: the clerk is told what she sent, not "damaged"."""
    import zipfile

    from pipeline.intake.read import NOT_A_WORKBOOK, UnreadableFile, read_workbook

    book = write_xls(tmp_path / "真的.xls", {"月报": [["WordDocument 情况说明", 1.0]]})
    entry = lambda name: (name + "\0").encode("utf-16-le").ljust(64, b"\0") + (2 * len(name) + 2).to_bytes(2, "little")
    assert entry("Workbook") in book.read_bytes()  # (the directory entry this test renames)
    doc = tmp_path / "情况说明.doc"
    doc.write_bytes(book.read_bytes().replace(entry("Workbook"), entry("WordDocument")))
    docx = tmp_path / "情况说明.docx"
    with zipfile.ZipFile(docx, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")
    for path in (doc, docx):
        with pytest.raises(UnreadableFile, match=NOT_A_WORKBOOK):
            read_workbook(path)
    taken = take_in_all([(settle(doc), None), (settle(docx), None)], None, load_form())
    assert [f.code for t in taken for f in t.findings] == ["not-a-workbook"] * 2
    assert read_workbook(book).sheets[0].cell(0, 0) == "WordDocument 情况说明"  # a workbook's text is not a stream name


@pytest.mark.parametrize("name, head, words", [
    ("扫描件.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    ("月报照片.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "图片"),
    ("月报.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "图片"),
    ("月报.rar", b"Rar!\x1a\x07\x01\x00", "RAR"),
    ("满春村10月报表.xlsx - 快捷方式.lnk", b"L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00F",
     "快捷方式"),
])
def test_a_scan_a_photo_an_archive_or_a_shortcut_is_named_as_such(tmp_path, name, head, words):
    from pipeline.intake.read import UnreadableFile, read_workbook

    path = tmp_path / name
    path.write_bytes(head + bytes(range(256)) * 8)
    with pytest.raises(UnreadableFile, match=words):
        read_workbook(path)
    [taken] = take_in_all([(settle(path), None)], None, load_form())
    # her finding says what she sent, not "open it in Excel and save it again"
    assert [(f.code, f.severity.value) for f in taken.findings] == [("not-a-workbook", "error")]
    assert words in taken.findings[0].message and "另存为" not in taken.findings[0].message


def test_several_returns_in_one_folder_are_refused_by_name_not_read_as_one(tmp_path, street):
    """Two units' workbooks dropped in one folder (or a sheet sent twice): which to take is not ours to
    guess. The first unit's return was taken and the second's silently archived with it."""
    from pipeline.intake.read import UnreadableFile, read_workbook
    from pipeline.returnbook import write_return

    together = tmp_path / "10月报表"
    together.mkdir()
    write_return(together / "甲村.xlsx", clean_return(street, "U01"))
    write_return(together / "乙社区.xlsx", clean_return(street, "U02", first_serial=30))
    with pytest.raises(UnreadableFile, match="“乙社区”和“甲村”里都有“封面”.*请每份月报单独报送"):
        read_workbook(together)
    twice = sheet_folder(tmp_path / "丙村", return_grids(clean_return(street, "U03", first_serial=60)))
    (twice / "月报 .csv").write_bytes(next(twice.glob("月报.*")).read_bytes())  # the same sheet again
    with pytest.raises(UnreadableFile, match="都有“月报"):
        read_workbook(twice)


def test_a_scan_or_a_note_sent_beside_the_sheets_is_kept_and_named_not_fatal(tmp_path, street):
    """A zip or folder holding the sheets and the scan of a stamped letter, a photo or a Word note: the
    return is read from its sheets and the street is told what came with it; it was refused whole."""
    import zipfile

    grids = return_grids(clean_return(street, "U01"))
    folder = sheet_folder(tmp_path / "满春村10月", grids)
    (folder / "盖章报告单.pdf").write_bytes(b"%PDF-1.7\n" + bytes(300))
    (folder / "照片.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(300))
    plain = csv_zip(tmp_path / "plain.zip", grids)
    zipped = tmp_path / "满春村10月.zip"
    shutil.copy(plain, zipped)
    with zipfile.ZipFile(zipped, "a") as z:
        z.writestr("情况说明.docx", _docx_bytes())
    only_scans = tmp_path / "扫描件"
    only_scans.mkdir()
    (only_scans / "月报.pdf").write_bytes(b"%PDF-1.4\n" + bytes(300))
    returns = take_in_all([(settle(p), None) for p in (folder, settle(zipped), plain, only_scans)], street, load_form())
    checked, _ = check_returns(returns[:3], street, load_form(), RUN_DAY.date(), no_earlier_persons())
    assert [c.verdict for c in checked] == ["accepted"] * 3
    notes = [sorted((f.code, f.severity.value, f.value) for f in c.findings if f.code == "attachment-not-read")
             for c in checked]
    assert notes == [[("attachment-not-read", "info", "照片.jpg"), ("attachment-not-read", "info", "盖章报告单.pdf")],
                     [("attachment-not-read", "info", "情况说明.docx")], []]
    assert "盖章报告单.pdf" in next(f.message for f in checked[0].findings if f.value == "盖章报告单.pdf")
    assert _numbers(checked[0]) == _numbers(checked[2]) == _numbers(checked[1])
    [nothing] = returns[3].findings  # nothing but scans: not a return, and she is told so
    assert nothing.code == "not-a-workbook" and "没有Excel表格" in nothing.message


def test_a_sheet_that_repeats_one_the_form_took_is_named_not_silently_left_out(tmp_path, street):
    """A roster split over two sheets, or last month's register kept beside this month's: only one sheet of
    each kind is read, so the clerk is told which was not, beside the count errors the split causes."""
    grids = return_grids(clean_return(street, "U01"))
    roster = grids["育龄妇女"]
    split = dict(grids, 育龄妇女=roster[:1] + roster[1:-2], **{"育龄妇女(续)": roster[:1] + roster[-2:]})
    kept = dict(grids, **{"流动人口(9月)": grids["流动人口"], "说明": [["本月无特殊情况"]], "Sheet3": []})
    books = [write_xlsx(tmp_path / "分两页.xlsx", split), write_xlsx(tmp_path / "留旧表.xlsx", kept)]
    returns = take_in_all([(settle(p), None) for p in books], street, load_form())
    checked, _ = check_returns(returns, street, load_form(), RUN_DAY.date(), no_earlier_persons())
    twins = [[(f.severity.value, f.sheet, f.expected) for f in c.findings if f.code == "sheet-not-read"]
             for c in checked]
    assert twins == [[("warning", "育龄妇女(续)", "育龄妇女")], [("warning", "流动人口(9月)", "流动人口")]]
    assert "“育龄妇女(续)”里的内容没有统计" in next(f.message for f in checked[0].findings if f.code == "sheet-not-read")
    assert "roster-vs-table" in {f.code for f in checked[0].findings}  # the split's two rows are missing from the count
    assert checked[1].verdict == "accepted" and [f.code for f in checked[1].findings if f.severity != "info"] == [
        "sheet-not-read"]


def test_a_period_typed_as_2026_10_that_excel_made_2026_1_is_october_only_when_something_says_so(tmp_path, street):
    """Typed in a General cell, "2026.10" is stored as the number 2026.1: it was filed as January without a word.
    The filling date, the file name or a title decides between January and October; with none, she is asked."""
    grids = return_grids(clean_return(street, "U01"))
    typed = with_cover(grids, 报告期=2026.1)
    books = [write_xlsx(tmp_path / "a.xlsx", typed),  # 填报日期 2026-11-02
             write_xlsx(tmp_path / "甲村10月报表.xlsx", with_cover(typed, 填报日期=None)),
             write_xlsx(tmp_path / "甲村1月报表.xlsx", with_cover(typed, 填报日期=None)),
             write_xlsx(tmp_path / "b.xlsx", with_cover(typed, 填报日期=None)),
             write_xlsx(tmp_path / "c.xlsx", with_cover(grids, 报告期="2026.1", 填报日期=None))]
    returns = take_in_all([(settle(p), None) for p in books], street, load_form())
    assert [r.period for r in returns] == [PERIOD, PERIOD, "2026-01", None, "2026-01"]  # text "2026.1" is as typed
    [asked] = [f for f in returns[3].findings if f.severity == "error"]
    assert (asked.code, asked.sheet, asked.value) == ("period-ambiguous", "封面", "2026.1")
    assert "可能是1月,也可能是10月" in asked.message and "2026-11、2026年11月 或 202611" in asked.message


def test_a_formula_error_reads_as_excel_shows_it_on_either_reader(tmp_path, street, monkeypatch):
    """期末人口 =1/0 shows #DIV/0! in Excel: calamine read it as a blank cell ("必须填写,不能空着"), openpyxl as
    the error's text. Both now say "应填数字,这里填的是“#DIV/0!”" at the cell."""
    import xlsxwriter

    from pipeline.intake.read import READER_ENV

    grids = return_grids(clean_return(street, "U01"))
    monthly = grids["月报"]
    header = next(r for r, row in enumerate(monthly) if "期末人口" in row)
    column = monthly[header].index("期末人口")
    path = tmp_path / "甲村.xlsx"
    book = xlsxwriter.Workbook(str(path))
    for name, grid in grids.items():
        ws = book.add_worksheet(name)
        for r, row in enumerate(grid):
            for c, value in enumerate(row):
                if name == "月报" and (r, c) == (header + 1, column):
                    ws.write_formula(r, c, "=1/0", None, "#DIV/0!")
                elif isinstance(value, dt.date):
                    ws.write_string(r, c, value.isoformat())
                elif value is not None:
                    ws.write(r, c, value)
    book.close()
    cell = f"{chr(ord('A') + column)}{header + 2}"
    seen = []
    for reader in ("calamine", "openpyxl"):
        monkeypatch.setenv(READER_ENV, reader)
        [ret] = take_in_all([(settle(path), None)], street, load_form())
        [checked], _ = check_returns([ret], street, load_form(), RUN_DAY.date(), no_earlier_persons())
        seen.append([(f.code, f.sheet, f.cell, f.value) for f in checked.findings if f.cell == cell])
    assert seen[0] == seen[1] and ("not-a-number", "月报", cell, "#DIV/0!") in seen[0]


def test_a_month_written_in_chinese_numerals_is_the_month(tmp_path, street):
    """报告期 2026年十月 (or 十月份, or only in a title) was "cannot tell the period"."""
    grids = return_grids(clean_return(street, "U01"))
    books = [write_xlsx(tmp_path / "a.xlsx", with_cover(grids, 报告期="2026年十月份")),
             write_xlsx(tmp_path / "甲村2026年十月报表.xlsx", with_cover(grids, 报告期=None)),
             write_xlsx(tmp_path / "b.xlsx", with_cover(grids, 报告期="2026年十三月"))]
    returns = take_in_all([(settle(p), None) for p in books], street, load_form())
    assert [r.period for r in returns] == [PERIOD, PERIOD, None]


def _docx_bytes() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")
    return out.getvalue()


def test_a_wps_spreadsheet_in_its_own_format_says_how_to_save_it(tmp_path):
    """WPS saves .et by default; one calamine cannot read is named for what it is, an .xls named .et is read."""
    from pipeline.intake.read import UnreadableFile, WPS_SPREADSHEET, read_workbook

    et = tmp_path / "满春村10月.et"
    et.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    with pytest.raises(UnreadableFile, match=re.escape(WPS_SPREADSHEET)):
        read_workbook(et)
    renamed = write_xls(tmp_path / "红星村10月.et", {"月报": [["小组", "期初人口"], ["一组", 12.0]]})
    assert read_workbook(renamed).sheets[0].cell(1, 1) == 12.0

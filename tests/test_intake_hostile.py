"""Acceptance 2: hostile and broken files are quarantined with a reason, fast and small,
while the main process survives and a clean return in the same run is accepted."""

from __future__ import annotations

import random
import resource
import time
import zipfile
from pathlib import Path

import msoffcrypto.format.ooxml
import pytest

from conftest import RUN_DAY, clean_return, drop
from pipeline.forms import load_form
from pipeline.intake.read import RawSheet, RawWorkbook, UnreadableFile
from pipeline.intake import sandbox
from pipeline.intake.returns import take_in_all
from pipeline.intake.sandbox import Limits
from pipeline.intake.safety import SheetScan, check_rows_read
from pipeline.run import run
from test_intake_builders import rewrite_zip, return_grids, settle, write_xls

LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
          + b']><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
          b"<si><t>&lol9;</t></si></sst>")
XXE = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">&x;</workbook>')


def _replace(part: str, data: bytes):
    return lambda name, old: data if name == part else old


def _far_cell(name: str, data: bytes) -> bytes:
    if name == "xl/worksheets/sheet2.xml":
        return data.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>')
    return data


def _padded(name: str, data: bytes) -> bytes:
    """A sheet inflated with 40 MB of spaces: compresses about 1000 to 1."""
    if name == "xl/worksheets/sheet2.xml":
        return data.replace(b"<sheetData>", b"<sheetData>" + b" " * (40 * 1024 * 1024))
    return data


def lying_sizes(source: Path, target: Path) -> Path:
    """A zip whose directory claims a member is smaller than it really is (a bomb that lies)."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as z:
        info = z.getinfo("xl/worksheets/sheet2.xml")
    true_size = info.file_size.to_bytes(4, "little")
    small = (100).to_bytes(4, "little")
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            if data[i + offset:i + offset + 4] == true_size:
                data[i + offset:i + offset + 4] = small
            start = i + 4
    target.write_bytes(bytes(data))
    return settle(target)


def ods_allocation_bomb(path: Path) -> Path:
    """724 bytes that ask calamine for a 9,000 × 10,000 range: it aborts the process when memory runs out."""
    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')
    row = ('<table:table-row table:number-rows-repeated="9000"><table:table-cell table:number-columns-repeated="10000" '
           'office:value-type="float" office:value="1"><text:p>1</text:p></table:table-cell></table:table-row>')
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns}><office:body><office:spreadsheet>'
               f'<table:table table:name="月报">{row}</table:table></office:spreadsheet></office:body></office:document-content>')
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        z.writestr("META-INF/manifest.xml", '<?xml version="1.0"?><manifest:manifest '
                   'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>')
    return settle(path)


def encrypted(source: Path, target: Path) -> Path:
    with open(source, "rb") as plain, open(target, "wb") as out:
        msoffcrypto.format.ooxml.OOXMLFile(plain).encrypt("123456", out)
    return settle(target)


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return settle(path)


def _xml_spreadsheet(rows: str) -> bytes:
    """An "XML Spreadsheet 2003" of one sheet 月报 whose <Table> holds `rows`."""
    return ('<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
            f'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet ss:Name="月报"><Table>{rows}'
            "</Table></Worksheet></Workbook>").encode()


XMLSS_LAUGHS = LAUGHS.split(b"]>")[0] + b"]>" + _xml_spreadsheet(
    '<Row><Cell><Data ss:Type="String">&lol9;</Data></Cell></Row>').split(b"?>", 1)[1]


# file name → (builder, words the quarantine reason must hold)
def hostile_files(folder: Path, street) -> dict[str, tuple[Path, str]]:
    folder.mkdir(exist_ok=True)
    good = drop(folder, "source.xlsx", clean_return(street, "U02", first_serial=40))
    utf16 = LAUGHS.replace(b'<?xml version="1.0"?>', b"").decode()
    files = {
        "entities": (rewrite_zip(good, folder / "甲村_实体.xlsx", _replace("xl/sharedStrings.xml", LAUGHS)), "实体"),
        "external entity": (rewrite_zip(good, folder / "甲村_外部实体.xlsx", _replace("xl/workbook.xml", XXE)), "实体"),
        "entities in utf-16": (rewrite_zip(good, folder / "甲村_utf16.xlsx", _replace(
            "xl/sharedStrings.xml", ('<?xml version="1.0" encoding="UTF-16"?>' + utf16).encode("utf-16"))), "实体"),
        "zip bomb": (rewrite_zip(good, folder / "甲村_炸弹.xlsx", _padded), "压缩炸弹"),
        "lying sizes": (lying_sizes(rewrite_zip(good, folder / "tmp.xlsx", lambda n, d: d), folder / "甲村_尺寸.xlsx"),
                        "损坏"),
        "far cell": (rewrite_zip(good, folder / "甲村_远单元格.xlsx", _far_cell), "很远的单元格"),
        "allocation bomb": (ods_allocation_bomb(folder / "甲村_分配.ods"), "异常退出"),
        "truncated": (_bytes(folder / "甲村_截断.xlsx", good.read_bytes()[: good.stat().st_size // 2]), "不完整"),
        "not a zip": (_bytes(folder / "甲村_假.xlsx", b"this is not a workbook\r\n"), "不是Excel"),
        "random bytes": (_bytes(folder / "甲村_乱码.xls", random.Random(4).randbytes(5000)), "不是可识别"),
        "broken ole": (_bytes(folder / "甲村_坏.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)), "损坏"),
        "page without a table": (_bytes(folder / "甲村_网页.xls",
                                        "<html><body><h1>系统维护中</h1></body></html>".encode("gbk")), "没有表格"),
        "empty": (_bytes(folder / "甲村_空.xlsx", b""), "空"),
        "xml spreadsheet with entities": (_bytes(folder / "甲村_XML实体.xls", XMLSS_LAUGHS), "实体"),
        "xml spreadsheet, a cell past Excel's last column": (_bytes(folder / "甲村_XML远列.xls", _xml_spreadsheet(
            '<Row><Cell ss:Index="20000"><Data ss:Type="Number">1</Data></Cell></Row>')), "超出 Excel 范围"),
        "xml spreadsheet, a far cell": (_bytes(folder / "甲村_XML远单元格.xls", _xml_spreadsheet(
            '<Row><Cell><Data ss:Type="String">月报</Data></Cell></Row><Row ss:Index="1000000">'
            '<Cell ss:Index="16000"><Data ss:Type="Number">1</Data></Cell></Row>')), "很远的单元格"),
        "password": (encrypted(good, folder / "甲村_密码.xlsx"), "密码"),
    }
    (folder / "tmp.xlsx").unlink()
    good.unlink()
    return files


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from conftest import STREET
    from pipeline.registry import parse_registry

    street = parse_registry(STREET, Path("test-street.toml"))
    return street, hostile_files(tmp_path_factory.mktemp("hostile") / "files", street)


@pytest.fixture(params=["self-limited", "watched"])
def reading(request, monkeypatch) -> str:
    """Reading processes that limit themselves (POSIX), or that the run watches (as on Windows)."""
    if request.param == "watched":
        monkeypatch.setattr(sandbox, "PROCESS_LIMITS", False)
    return request.param


def test_each_hostile_file_is_refused_with_its_reason_in_bounded_time_and_memory(hostile, reading):
    street, files = hostile
    # calamine aborts when its own limit stops it; a watched process is killed when seen past it
    words_of = {"allocation bomb": "异常退出" if reading == "self-limited" else "内存过多"}
    # (a watched process may overshoot by what it fills between two looks)
    most_mb = Limits().memory_mb + (20 if reading == "self-limited" else 100)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    taken = take_in_all([(p, None) for p, _ in files.values()], street, load_form())
    by_label = dict(zip(files, taken))
    for label, (path, words) in files.items():
        ret = by_label[label]
        assert words_of.get(label, words) in ret.quarantine_reason, (label, ret.quarantine_reason)
        assert ret.read.seconds < 10, (label, ret.read)
        assert ret.read.peak_mb is None or ret.read.peak_mb < most_mb, (label, ret.read)
        assert [f.code for f in ret.findings] == ["file-unreadable"]
    assert time.monotonic() - started < 60
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before < 200  # the main process stayed small


def test_a_file_that_reads_too_long_is_stopped_and_the_next_file_is_read(reading, tmp_path, street):
    """A page of 20,000 cells takes our HTML reader ~1 s; allowed 0.3 s, its process is stopped, and a
    fresh one reads the next file."""
    rows = "<tr>" + "<td>甲村</td><td>12</td><td>张三</td><td>2026-10-01</td>" * 4 + "</tr>"
    slow = _bytes(tmp_path / "甲村_慢.xls", f"<html><body><table>{rows * 5000}</table></body></html>".encode())
    clean = drop(tmp_path, "甲村.xlsx", clean_return(street, "U01"))
    with sandbox.ReaderPool(1, Limits(seconds=0.3)) as pool:
        stopped = pool.read(slow)
        assert stopped.workbook is None and stopped.reason == sandbox.TOO_SLOW, stopped
        assert stopped.report.seconds < 2, stopped.report
        assert pool.read(clean).workbook is not None


def test_hostile_files_are_quarantined_and_a_clean_return_still_accepted(hostile, tmp_path):
    street, files = hostile
    from pipeline.workspace import Workspace

    ws = Workspace.at(tmp_path, street.settings)
    ws.create()
    for path, _ in files.values():
        _bytes(ws.inbox / path.name, path.read_bytes())
    drop(ws, "甲村.xlsx", clean_return(street, "U01"))
    result = run(ws, street, now=RUN_DAY)
    status = {o.file: o.status for o in result.outcomes}
    assert status.pop("甲村.xlsx") == "accepted"
    assert set(status.values()) == {"quarantined"} and len(status) == len(files)
    notes = {p.name for p in ws.quarantine.rglob("*.原因.txt")}
    assert len(notes) == len(files)


def test_rows_the_reader_missed_are_refused_not_lost():
    """A stale <dimension> that made a reader stop early: fewer rows than the file holds is refused."""
    book = RawWorkbook("xlsx", [RawSheet("月报", [["小组", "期初人口"], ["一组", 1]])])
    check_rows_read(book, {"月报": SheetScan("s", first_row=1, last_row=2, values=4)})
    with pytest.raises(UnreadableFile, match="只读到第 2 行"):
        check_rows_read(book, {"月报": SheetScan("s", first_row=1, last_row=40, values=80)})


def fuzz_cases(source: Path, n: int, seed: int) -> list[bytes]:
    """Byte flips (1–20 bytes) and truncations of a valid file."""
    rng = random.Random(seed)
    data = source.read_bytes()
    cases = []
    for i in range(n):
        if i % 3 == 0:
            cases.append(data[: rng.randrange(1, len(data))])
        else:
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 20)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            cases.append(bytes(mutated))
    return cases


def test_fuzzed_xlsx_and_xls_never_kill_the_run(tmp_path, street):
    """A few hundred damaged returns: each is read or refused; none harms the run."""
    xlsx = drop(tmp_path, "src.xlsx", clean_return(street, "U01"))
    xls = write_xls(tmp_path / "src.xls", return_grids(clean_return(street, "U01")))
    folder = tmp_path / "fuzz"
    folder.mkdir()
    paths = []
    for source, suffix, seed in ((xlsx, ".xlsx", 1), (xls, ".xls", 2)):
        for i, case in enumerate(fuzz_cases(source, 150, seed)):
            paths.append(_bytes(folder / f"{i:03d}{suffix}", case))
    started = time.monotonic()
    taken = take_in_all([(p, None) for p in paths], street, load_form())
    assert len(taken) == len(paths)
    assert all(t.read is not None and t.read.seconds < 10 for t in taken)
    refused = [t for t in taken if t.unreadable]
    assert refused and len(refused) < len(taken)  # some damage is survivable, some is not
    assert time.monotonic() - started < 60

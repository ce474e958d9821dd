"""Untrusted values inside a readable return: control characters, over-long text, odd names."""

from __future__ import annotations

import sys

import pytest

from conftest import RUN_DAY, clean_return, drop
from pipeline.check import check_returns, no_earlier_persons
from pipeline.forms import load_form
from pipeline.intake import safety
from pipeline.intake.delimited import decode_text, sniff_delimiter
from pipeline.intake.htmltables import read_html
from pipeline.intake.read import UnreadableFile
from pipeline.intake.returns import take_in_all


def test_control_characters_are_replaced_and_long_text_reported_not_cut(tmp_path, street):
    data = clean_return(street, "U01")
    data.roster.at[0, "姓名"] = "王\x07梅"
    data.roster.at[1, "备注"] = "说明" * 150
    data.roster.at[2, "备注"] = "=HYPERLINK(\"http://x\")"
    [ret] = take_in_all([(drop(tmp_path, "甲村.xlsx", data), None)], street, load_form())
    found = sorted((f.code, f.sheet, f.cell, f.field, f.value) for f in ret.findings)
    assert found == [("control-characters", "育龄妇女", "B3", "姓名", "王 梅"),
                     ("text-too-long", "育龄妇女", "M4", "备注", "300")]
    roster = ret.tables["roster"].values  # indexed by Excel row: a title row, the header, then the women
    assert roster.loc[3, "姓名"] == "王 梅" and len(roster.loc[4, "备注"]) == 300
    assert roster.loc[5, "备注"].startswith("=HYPERLINK")  # the clerk's text; writers make it inert
    [checked], _ = check_returns([ret], street, load_form(), RUN_DAY.date(), no_earlier_persons())
    assert checked.verdict == "accepted"


def test_sheet_names_from_inside_a_file_are_only_labels(tmp_path):
    page = "<table><caption>../../月报\x01</caption><tr><td>a<td>b</table><table><tr><td>c</table>"
    book = read_html(page, "x.xls")
    assert [s.name for s in book.sheets] == ["../../月报", "表2"]  # a label: nothing is ever written under it


def test_encodings_are_detected_not_assumed():
    text = "单位名称,甲村\r\n报告期,2026年10月\r\n"
    for codec in ("utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"):
        assert decode_text(text.encode(codec)) == text
    assert decode_text(text.encode("utf-16-le")) == text  # "Unicode text" without a BOM
    with pytest.raises(UnreadableFile):
        decode_text(bytes(range(256)) * 4)
    assert sniff_delimiter("小组\t期初人口\n一组\t400\n") == "\t"


def test_declared_charsets_are_widened_to_gb18030():
    page = '<meta charset="gb2312"><table><tr><td>镕</table>'.encode("gb18030")  # 镕 is GBK, not GB2312
    assert "镕" in decode_text(page)


def test_the_run_refuses_to_start_without_defusedxml(monkeypatch, street):
    monkeypatch.setitem(sys.modules, "defusedxml", None)
    with pytest.raises(safety.UnsafeEnvironment, match="defusedxml"):
        take_in_all([], street, load_form())


def test_id_numbers_excel_turned_into_numbers_are_errors_not_guesses(tmp_path, street):
    from test_intake_builders import return_grids, write_xlsx

    grids = return_grids(clean_return(street, "U01"))
    header = grids["育龄妇女"][0].index("身份证号")
    for row in grids["育龄妇女"][1:]:
        row[header] = float(row[header][:17] + "0")  # what Excel keeps of an 18-digit number: 15 digits
    [ret] = take_in_all([(write_xlsx(tmp_path / "甲村.xlsx", grids), None)], street, load_form())
    [checked], _ = check_returns([ret], street, load_form(), RUN_DAY.date(), no_earlier_persons())
    numeric = [f for f in checked.findings if f.code == "id-numeric"]
    assert len(numeric) == len(grids["育龄妇女"]) - 1 and checked.verdict == "rejected"


def test_equal_cells_share_one_object_and_keep_their_values():
    from pipeline.intake.read import RawSheet, RawWorkbook, share_equal_values

    texts = ["已婚x"[:2], "".join(["已", "婚"]), "否"]  # equal texts made apart are distinct objects
    assert texts[0] is not texts[1]
    grid = [[texts[0], 1.5, -0.0, 2], [texts[1], float("1.5"), 0.0, True]]
    book = RawWorkbook("xlsx", [RawSheet("s", grid)])
    share_equal_values(book)
    (first, second) = book.sheets[0].grid
    assert first[0] is second[0] and first[1] is second[1]
    assert str(first[2]) == "-0.0" and str(second[2]) == "0.0"  # the sign of a zero is kept
    assert first[3] == 2 and type(first[3]) is int and second[3] is True  # 1 == True: only texts and floats merge


def test_column_texts_share_equal_cells_and_read_them_as_a_clerk_does():
    from pipeline.values import column_texts

    made_apart = ["已婚x"[:2], "".join(["已", "婚"])]
    cells = [made_apart[0], 1.5, -0.0, made_apart[1], float("1.5"), 0.0, " 无 ", None, True, 1]
    texts = column_texts(cells)
    assert cells[0] is cells[3] and cells[1] is cells[4]  # one object per distinct text or number
    assert str(cells[2]) == "-0.0" and str(cells[5]) == "0.0"  # the sign of a zero is kept
    assert cells[8] is True and type(cells[9]) is int  # 1 == True: kinds never merge
    assert texts[:7] == ["已婚", "1.5", "0", "已婚", "1.5", "0", "无"] and texts[7] != texts[7]  # blank: NaN
    assert texts[8:] == ["是", "1"]
    assert column_texts([None, " ", float("nan")]) == [None, None, None]  # nothing in the column: blanks stay None
    written = ["甲组", "乙组", "甲组"]
    assert column_texts(written) is written  # already the texts: one list, pickled and held once
    for changed in (["甲组", None], ["甲组 ", "乙"]):  # a blank becomes NaN, a text is trimmed: texts of their own
        assert column_texts(changed) is not changed


def test_taken_in_tables_come_with_their_texts_and_share_equal_cells(tmp_path, street):
    from test_intake_builders import return_grids, write_xlsx

    grids = return_grids(clean_return(street, "U01"))
    [ret] = take_in_all([(write_xlsx(tmp_path / "甲村.xlsx", grids), None)], street, load_form())
    roster = ret.tables["roster"]
    groups = roster.columns["小组"]
    assert roster.texts is not None and roster.texts["小组"] == groups
    assert len(set(groups)) < len(groups)
    assert all(g is next(h for h in groups if h == g) for g in groups)  # equal group names: one object


def test_files_are_taken_in_batches_in_their_order_with_progress_over_all(tmp_path, street):
    from pipeline.intake.returns import take_in_batches
    from test_intake_builders import return_grids, write_xlsx

    grids = return_grids(clean_return(street, "U01"))
    paths = [(write_xlsx(tmp_path / f"甲村_{i}.xlsx", grids), None) for i in range(5)]
    seen = []
    batches = list(take_in_batches(paths, street, load_form(), progress=lambda d, t: seen.append((d, t)), batch=2))
    assert [[f.path.name for f in b] for b in batches] == [["甲村_0.xlsx", "甲村_1.xlsx"], ["甲村_2.xlsx", "甲村_3.xlsx"],
                                                          ["甲村_4.xlsx"]]
    assert seen == [(d, 5) for d in range(1, 6)]
    assert all(f.unit is not None and f.tables for b in batches for f in b)


def test_batches_may_start_small_double_up_to_the_batch_and_end_small(tmp_path, street):
    from pipeline.intake.returns import take_in_batches
    from test_intake_builders import return_grids, write_xlsx

    grids = return_grids(clean_return(street, "U01"))
    paths = [(write_xlsx(tmp_path / f"甲村_{i}.xlsx", grids), None) for i in range(8)]
    batches = list(take_in_batches(paths, street, load_form(), batch=3, first=1))
    assert [len(b) for b in batches] == [1, 2, 2, 2, 1]
    assert [f.path.name for b in batches for f in b] == [f"甲村_{i}.xlsx" for i in range(8)]



def test_batches_hold_as_many_ordinary_returns_whatever_the_size_of_the_files(tmp_path, street, monkeypatch):
    """A batch is made of files worth `batch` ordinary returns: long rosters make smaller batches, so the
    memory a batch takes stays the same; a file heavier than its batch goes alone; every file once, in order."""
    from pipeline.intake import returns
    from test_intake_builders import return_grids, write_xlsx

    grids = return_grids(clean_return(street, "U01"))
    paths = [(write_xlsx(tmp_path / f"甲村_{i}.xlsx", grids), None) for i in range(6)]
    assert [len(b) for b in returns.take_in_batches(paths, street, load_form(), batch=4)] == [4, 2]
    monkeypatch.setattr(returns, "ORDINARY_RETURN_BYTES", paths[0][0].stat().st_size / 2)  # each file: two returns
    batches = list(returns.take_in_batches(paths, street, load_form(), batch=4))
    assert [len(b) for b in batches] == [2, 2, 2]
    assert [f.path.name for b in batches for f in b] == [f"甲村_{i}.xlsx" for i in range(6)]
    for weights in ([1.0] * 7 + [9.0] + [1.5] * 20, [3.5] * 100, [1.0, 30.0, 1.0]):
        spans = list(returns._spans(weights, 8, 2))
        assert [i for start, end in spans for i in range(start, end)] == list(range(len(weights)))
        assert all(sum(weights[start:end]) <= 8 or end - start == 1 for start, end in spans), spans


def test_reading_processes_answer_into_a_pipe_that_holds_several_answers():
    import fcntl

    from pipeline.intake.sandbox import ANSWER_PIPE_BYTES, ReaderPool

    with ReaderPool(1) as pool:
        worker = pool._start()
        assert fcntl.fcntl(worker.proc.stdout.fileno(), fcntl.F_GETPIPE_SZ) == ANSWER_PIPE_BYTES

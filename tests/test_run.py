"""A run over a working folder: filing, verdicts, the outbox, exit codes."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from pathlib import Path

import openpyxl

from conftest import PERIOD, RUN_DAY, clean_return, drop, open_in_excel
from pipeline.outputs import UNIT_FOLDER, output_names
from pipeline.run import run
from pipeline.store.history import History


def report(ws) -> dict:
    return json.loads((ws.outbox / PERIOD / "report.json").read_text(encoding="utf-8"))


def test_clean_returns_are_accepted_and_filed(workspace, street):
    drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    drop(workspace, "乙.xlsx", clean_return(street, "U02", first_serial=30))
    result = run(workspace, street, now=RUN_DAY)
    assert result.exit_code == 0
    assert [o.status for o in result.outcomes] == ["accepted", "accepted"]
    assert not [p for p in workspace.inbox.iterdir() if p.name != ".gitkeep"]
    archived = sorted(p.name for p in (workspace.archive / PERIOD).rglob("*.xlsx"))
    assert len(archived) == 2 and all(PERIOD in str(p) for p in (workspace.archive / PERIOD).rglob("*.xlsx"))
    units = {u["unit"]: u["status"] for u in report(workspace)["units"]}
    assert units == {"U01": "accepted", "U02": "accepted", "U03": "missing"}


def test_a_run_collects_garbage_less_often_and_gives_the_setting_back(workspace, street):
    import gc

    from pipeline.run import RUN_GC_THRESHOLD

    drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    before, seen = gc.get_threshold(), set()
    run(workspace, street, now=RUN_DAY, progress=lambda stage, done, total: seen.add(gc.get_threshold()))
    assert seen == {(RUN_GC_THRESHOLD, *before[1:])} and before[0] != RUN_GC_THRESHOLD
    assert gc.get_threshold() == before


def test_a_stage_timed_inside_another_is_counted_once(monkeypatch):
    """Merging is timed inside writing: `--profile` shows each, and they add up to the time spent."""
    import pipeline.run as pipeline_run

    clock = iter([0.0, 1.0, 3.0, 4.0])  # write starts, merge starts, merge ends, write ends
    monkeypatch.setattr(pipeline_run.time, "perf_counter", lambda: next(clock))
    result = pipeline_run.RunResult(RUN_DAY)
    with result.timed("write"), result.timed("merge"):
        pass
    assert result.stage_seconds == {"merge": 2.0, "write": 2.0}


def test_rejected_return_is_archived_reported_and_left_out_of_totals(workspace, street):
    good, bad = clean_return(street, "U01"), clean_return(street, "U02", first_serial=30)
    bad.monthly.at[0, "期末人口"] += 7
    drop(workspace, "good.xlsx", good)
    drop(workspace, "bad.xlsx", bad)
    result = run(workspace, street, now=RUN_DAY)
    assert result.exit_code == 1
    assert {o.unit: o.status for o in result.outcomes} == {"U01": "accepted", "U02": "rejected"}
    rep = report(workspace)
    assert {r["file"]: r["status"] for r in rep["returns"]} == {"good.xlsx": "accepted", "bad.xlsx": "rejected"}
    problems = [f for f in rep["findings"] if f["severity"] != "info"]
    assert [(f["code"], f["unit"], f["sheet"], f["cell"]) for f in problems] == [("population-balance", "U02", "月报", "G4")]
    assert set(problems[0]) >= {"code", "severity", "unit", "file", "sheet", "cell", "row", "column",
                                       "value", "expected", "message"}
    assert list((workspace.archive / PERIOD).rglob("*bad.xlsx"))
    summary = openpyxl.load_workbook(workspace.outbox / PERIOD / output_names(street, PERIOD)["summary"])
    rows = {r[0]: r for r in summary["汇总"].iter_rows(values_only=True) if r and r[0]}
    header = next(r for r in summary["汇总"].iter_rows(values_only=True) if r and r[0] == "单位")
    total = rows["合计"][header.index("期末人口")]
    assert total == good.monthly["期末人口"].sum()
    status_rows = [r for r in summary["报送情况"].iter_rows(values_only=True)]
    joined = ["|".join(str(c) for c in r if c is not None) for r in status_rows]
    assert any("乙社区" in line and "已退回" in line and "|1|" in line for line in joined)
    assert any("丙村" in line and "未报送" in line for line in joined)


def test_unknown_unit_is_quarantined_with_a_reason(workspace, street):
    data = clean_return(street, "U01")
    data.cover.update({"单位名称": "外街道某村", "单位代码": "Z1"})
    drop(workspace, "月报.xlsx", data)
    (workspace.inbox / "notes.xlsx").write_bytes(b"not a workbook at all")
    import os

    os.utime(workspace.inbox / "notes.xlsx", (RUN_DAY.timestamp() - 3600,) * 2)
    result = run(workspace, street, now=RUN_DAY)
    assert result.exit_code == 1
    assert sorted(o.status for o in result.outcomes) == ["quarantined", "quarantined"]
    reasons = sorted(p.read_text(encoding="utf-8-sig") for p in workspace.quarantine.rglob("*.原因.txt"))
    assert len(reasons) == 2 and any("无法确定报送单位" in r for r in reasons)
    assert any("不是Excel工作簿" in r for r in reasons)


def test_same_content_twice_is_processed_once(workspace, street):
    data = clean_return(street, "U01")
    drop(workspace, "a.xlsx", data)
    run(workspace, street, now=RUN_DAY)
    (workspace.inbox / "a again.xlsx").write_bytes(next((workspace.archive / PERIOD).rglob("*.xlsx")).read_bytes())
    import os

    os.utime(workspace.inbox / "a again.xlsx", (RUN_DAY.timestamp() - 3600,) * 2)
    result = run(workspace, street, now=RUN_DAY)
    assert [o.status for o in result.outcomes] == ["duplicate"]
    with History(workspace.history) as h:
        assert [r.status for r in h.returns(period=PERIOD)] == ["accepted", "duplicate"]
    assert len(list((workspace.archive / PERIOD).rglob("*.xlsx"))) == 2


def test_lock_files_and_fresh_files_stay_in_the_inbox(workspace, street):
    (workspace.inbox / "~$甲村.xlsx").write_bytes(b"lock")
    drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    fresh = workspace.inbox / "乙.xlsx"
    drop(workspace, "乙.xlsx", clean_return(street, "U02", first_serial=30))
    fresh.touch()  # still being copied: modified just now
    result = run(workspace, street, now=RUN_DAY)
    assert [o.file for o in result.outcomes] == ["甲村.xlsx"]
    assert (workspace.inbox / "~$甲村.xlsx").exists() and fresh.exists()


def test_person_in_a_unit_accepted_earlier_gives_that_unit_a_warning(workspace, street):
    first = clean_return(street, "U01")
    drop(workspace, "甲.xlsx", first)
    run(workspace, street, now=RUN_DAY)
    second = clean_return(street, "U02", first_serial=30)
    second.roster.at[0, "身份证号"] = first.roster.at[0, "身份证号"]
    drop(workspace, "乙.xlsx", second)
    run(workspace, street, now=RUN_DAY)
    found = {(f["unit"], f["code"], f["severity"], f["cell"]) for f in report(workspace)["findings"]
             if f["severity"] != "info"}
    assert found == {("U01", "id-in-other-unit", "warning", "C3"), ("U02", "id-in-other-unit", "error", "C3")}


def _moved_within_the_street(street):
    """甲村's October return with one woman 迁出 and one floating person gone on 10-20; 乙社区's, with both."""
    from conftest import table_from

    leaving, arriving = clean_return(street, "U01"), clean_return(street, "U02", first_serial=30)
    leaving.roster.at[0, "变动"] = "迁出"
    leaving.floating["流出日期"] = leaving.floating["流出日期"].astype(object)
    leaving.floating.at[0, "流出日期"] = dt.date(2026, 10, 20)
    arriving.roster.at[0, "身份证号"], arriving.roster.at[0, "变动"] = leaving.roster.at[0, "身份证号"], "新增"
    arriving.floating.at[0, "身份证号"] = leaving.floating.at[0, "身份证号"]
    for data, unit in ((leaving, "U01"), (arriving, "U02")):
        data.monthly = table_from(list(street.unit_by_code(unit).groups), data.roster.to_dict("records"),
                                  data.floating.to_dict("records"))
    return leaving, arriving


def test_a_person_who_moved_to_another_unit_of_the_street_is_in_neither_twice(workspace, street):
    """A woman who left 甲村 for 乙社区 this month stands in 甲村's roster once more with 迁出 and in 乙社区's
    as 新增 (a floating person: 甲村's register with her 流出日期): as SPEC §3 asks. Both returns were
    rejected for "the same ID in two units"; only persons still registered in two units are."""
    leaving, arriving = _moved_within_the_street(street)
    drop(workspace, "甲.xlsx", leaving)
    drop(workspace, "乙.xlsx", arriving)
    assert run(workspace, street, now=RUN_DAY).exit_code == 0
    later = workspace.root / "later"
    later.mkdir()
    from pipeline.workspace import Workspace

    apart = Workspace.at(later, street.settings)
    apart.create()
    drop(apart, "甲.xlsx", leaving)
    run(apart, street, now=RUN_DAY)
    drop(apart, "乙.xlsx", arriving)
    assert run(apart, street, now=RUN_DAY).exit_code == 0  # 甲村 accepted the night before: no warning either
    for ws in (workspace, apart):
        assert not [f for f in report(ws)["findings"] if f["code"] == "id-in-other-unit"]
    arriving.roster.at[1, "身份证号"] = leaving.roster.at[1, "身份证号"]  # one still in 甲村's roster: told
    drop(workspace, "乙(改).xlsx", arriving)
    run(workspace, street, now=RUN_DAY)
    assert {(f["unit"], f["severity"]) for f in report(workspace)["findings"] if f["code"] == "id-in-other-unit"} \
        == {("U01", "warning"), ("U02", "error")}


def test_a_file_whose_cover_and_name_say_two_units_is_neither_s(workspace, street):
    """乙社区's clerk reused 甲村's file and left its cover as it was: filed as 甲村's correction, it replaced
    甲村's good return. A cover naming one unit and a file name another is quarantined, saying both."""
    drop(workspace, "甲村10月报表.xlsx", clean_return(street, "U01"))
    run(workspace, street, now=RUN_DAY)
    drop(workspace, "乙社区10月报表.xlsx", clean_return(street, "U01", first_serial=40))
    result = run(workspace, street, now=RUN_DAY)
    [outcome] = result.outcomes
    assert outcome.status == "quarantined" and result.exit_code == 1
    assert "封面“单位名称”写的是“甲村”,文件名却是“乙社区”的" in outcome.reason
    with History(workspace.history) as history:
        standing = [r for r in history.returns(period=PERIOD) if r.status == "accepted"]
    assert [r.file_name for r in standing] == ["甲村10月报表.xlsx"]
    drop(workspace, "测试街道甲村10月报表(改).xlsx", clean_return(street, "U01", first_serial=50))
    assert run(workspace, street, now=RUN_DAY).outcomes[0].status == "accepted"  # the street's name is no unit's


def test_this_months_file_under_last_months_cover_does_not_replace_last_month(workspace, street):
    """甲村's clerk copied September's file, entered October and named it 10月 but left the cover at 2026-09:
    filed as a September correction, it replaced the accepted September return. A file name naming a later
    month than its cover is quarantined; a file name kept from an earlier month is no matter."""
    from conftest import next_month

    september = clean_return(street, "U01", period="2026-09")
    drop(workspace, "甲村9月报表.xlsx", september)
    run(workspace, street, now=RUN_DAY)
    october = next_month(september)
    stale = copy.deepcopy(october)
    stale.cover["报告期"] = "2026-09"
    drop(workspace, "甲村10月报表.xlsx", stale)
    [outcome] = run(workspace, street, now=RUN_DAY).outcomes
    assert outcome.status == "quarantined"
    assert "封面“报告期”写的是 2026-09,文件名却是10月的" in outcome.reason
    with History(workspace.history) as history:
        assert [r.status for r in history.returns(period="2026-09")] == ["accepted"]  # September stands
    drop(workspace, "甲村9月报表(改).xlsx", october)  # September's name kept, the cover right: October's
    [outcome] = run(workspace, street, now=RUN_DAY).outcomes
    assert (outcome.status, outcome.period) == ("accepted", "2026-10")


def test_a_filling_date_typed_in_the_future_does_not_outrank_every_later_correction(workspace, street):
    """Of a unit's returns the later 填报日期 stands: one typed 2062-11-02 stood over every correction after it."""
    typo = clean_return(street, "U01")
    typo.cover["填报日期"] = dt.date(2062, 11, 2)
    drop(workspace, "甲村.xlsx", typo)
    run(workspace, street, now=RUN_DAY)
    corrected = clean_return(street, "U01", first_serial=40)
    corrected.cover["填报日期"] = dt.date(2026, 11, 3)
    path = drop(workspace, "甲村(改).xlsx", corrected)
    later = RUN_DAY.timestamp() + 600
    os.utime(path, (later, later))
    run(workspace, street, now=RUN_DAY + dt.timedelta(hours=1))
    with History(workspace.history) as history:
        assert {r.file_name: r.status for r in history.returns(period=PERIOD)} == {
            "甲村.xlsx": "superseded", "甲村(改).xlsx": "accepted"}
        [first] = [r for r in history.returns(period=PERIOD) if r.file_name == "甲村.xlsx"]
        told = [(f.code, f.severity.value, f.sheet, f.value) for f in history.findings_of([first.id])[first.id]
                if f.field == "填报日期"]
    assert told == [("date-future", "warning", "封面", "2062-11-02")]  # and she is told of the typo


def test_a_correction_without_a_filling_date_stands_and_a_stale_one_says_it_does_not(workspace, street):
    """A correction whose 填报日期 was left blank lost to the return it corrects, while the run said 已接收.
    A file that does not stand (an older 填报日期 sent again later) is now said to be not counted."""
    from pipeline.runlog import log_lines

    drop(workspace, "甲村.xlsx", clean_return(street, "U01"))  # 填报日期 2026-11-02
    run(workspace, street, now=RUN_DAY)
    blank = clean_return(street, "U01", first_serial=40)
    del blank.cover["填报日期"]
    path = drop(workspace, "甲村(改).xlsx", blank)
    os.utime(path, (RUN_DAY.timestamp() + 600,) * 2)
    [corrected] = run(workspace, street, now=RUN_DAY + dt.timedelta(hours=1)).outcomes
    stale = clean_return(street, "U01", first_serial=50)
    stale.cover["填报日期"] = dt.date(2026, 11, 1)
    path = drop(workspace, "甲村(旧).xlsx", stale)
    os.utime(path, (RUN_DAY.timestamp() + 1200,) * 2)
    result = run(workspace, street, now=RUN_DAY + dt.timedelta(hours=2))
    [old] = result.outcomes
    with History(workspace.history) as history:
        assert {r.file_name: r.status for r in history.returns(period=PERIOD)} == {
            "甲村.xlsx": "superseded", "甲村(改).xlsx": "accepted", "甲村(旧).xlsx": "superseded"}
    assert (corrected.status, corrected.stands) == ("accepted", True)
    assert (old.status, old.stands, result.exit_code) == ("accepted", False, 0)
    assert "未采用:本单位本月另有一份填报日期更晚的月报" in "\n".join(log_lines(result))
    logged = json.loads((workspace.root / "logs" / "runs.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert [o["stands"] for o in logged["outcomes"]] == [False]


def test_unit_workbooks_hold_only_their_own_unit(workspace, street):
    a, b = clean_return(street, "U01"), clean_return(street, "U02", first_serial=30)
    a.monthly.at[0, "期末人口"] += 1
    b.monthly.at[0, "期末人口"] += 1
    drop(workspace, "a.xlsx", a)
    drop(workspace, "b.xlsx", b)
    run(workspace, street, now=RUN_DAY)
    books = sorted((workspace.outbox / PERIOD / UNIT_FOLDER).glob("*.xlsx"))
    assert len(books) == 2
    for book_path, own, other in ((books[0], a, b), (books[1], b, a)):
        text = " ".join(str(v) for ws in openpyxl.load_workbook(book_path).worksheets
                        for row in ws.iter_rows(values_only=True) for v in row if v is not None)
        assert own.roster.at[0, "身份证号"] in text
        for person in list(other.roster["身份证号"]) + list(other.floating["身份证号"]):
            assert person not in text
        for name in list(other.roster["姓名"]) + list(other.floating["姓名"]):
            assert name not in text.replace(str(own.cover["单位名称"]), "")


def test_reports_in_english_when_asked(workspace, street):
    bad = clean_return(street, "U02", first_serial=30)
    bad.monthly.at[0, "期末人口"] += 7
    drop(workspace, "bad.xlsx", bad)
    run(workspace, street.in_language("en"), now=RUN_DAY)
    report_book = openpyxl.load_workbook(workspace.outbox / PERIOD / output_names(street, PERIOD)["errors"])
    texts = [str(v) for row in report_book.worksheets[0].iter_rows(values_only=True) for v in row if v]
    assert any("does not balance" in t for t in texts)
    [unit_book] = (workspace.outbox / PERIOD / UNIT_FOLDER).glob("*.xlsx")
    listing = openpyxl.load_workbook(unit_book).worksheets[0]
    assert any("does not balance" in str(v) for row in listing.iter_rows(values_only=True) for v in row if v)


def test_a_run_in_batches_of_one_gives_what_one_batch_gives(tmp_path, street, monkeypatch):
    """Memory is a batch's, the outcome is the run's: the street ID rule spans the batches."""
    import pipeline.run as pipeline_run
    from pipeline.workspace import Workspace

    first, second = clean_return(street, "U01"), clean_return(street, "U02", first_serial=30)
    third = clean_return(street, "U03", first_serial=60)
    second.floating.at[0, "身份证号"] = first.floating.at[0, "身份证号"]  # one person in two units
    third.monthly.at[0, "期末人口"] += 1  # and one return rejected for its own error
    results = {}
    for batch in (1, 250):
        ws = Workspace.at(tmp_path / str(batch), street.settings)
        ws.create()
        for name, data in (("a_甲村.xlsx", first), ("b_乙社区.xlsx", second), ("c_丙村.xlsx", third)):
            drop(ws, name, data)
        monkeypatch.setattr(pipeline_run, "BATCH_RETURNS", batch)
        result = run(ws, street, now=RUN_DAY, workers=1)
        report = json.loads((ws.outbox / PERIOD / "report.json").read_text(encoding="utf-8"))
        results[batch] = (sorted((o.file, o.status, o.errors, o.warnings) for o in result.outcomes),
                          report["findings"])
    assert results[1] == results[250]
    outcomes, findings = results[1]
    assert [o[:3] for o in outcomes] == [("a_甲村.xlsx", "rejected", 1), ("b_乙社区.xlsx", "rejected", 1),
                                         ("c_丙村.xlsx", "rejected", 1)]
    assert sorted(f["unit"] for f in findings if f["code"] == "id-in-other-unit" and f["severity"] == "error") == \
        ["U01", "U02"]


def test_floating_counts_read_a_chunk_at_a_time_equal_one_read(tmp_path, street, monkeypatch):
    """The summary's 流动人口汇总 counts do not depend on how many registers are read together."""
    import pipeline.period as period
    from pipeline.workspace import Workspace

    ws = Workspace.at(tmp_path, street.settings)
    ws.create()
    for n, code in enumerate(["U01", "U02", "U03"]):
        drop(ws, f"{code}.xlsx", clean_return(street, code, first_serial=1 + 30 * n))
    run(ws, street, now=RUN_DAY, workers=1)
    summary = next((ws.outbox / PERIOD).glob("*汇总.xlsx"))
    sheet = lambda: [[c.value for c in row] for row in openpyxl.load_workbook(summary)["流动人口汇总"].iter_rows()]  # noqa: E731
    whole = sheet()
    assert whole[-1][1] == sum(r[1] for r in whole[1:-1]) > 0  # 合计 of the units, somebody counted
    monkeypatch.setattr(period, "FLOATING_CHUNK", 1)
    (ws.outbox / PERIOD / ".outputs-state").unlink()  # outputs are rewritten only when stale
    run(ws, street, now=RUN_DAY, workers=1)
    assert sheet() == whole


def books_annotated(monkeypatch) -> list[str]:
    """The names of the unit books written from now on, in order."""
    import pipeline.outputs as outputs

    annotated: list[str] = []
    real = outputs.write_unit_book
    monkeypatch.setattr(outputs, "write_unit_book", lambda path, *args, **kw: (annotated.append(path.name),
                                                                               real(path, *args, **kw)))
    return annotated


def return_with_a_warning(street):
    data = clean_return(street, "U01")
    data.roster.at[1, "末次生育日期"] = dt.date(2026, 11, 2)  # date-after-period, a warning: a book goes back
    return data


def test_a_unit_book_is_annotated_again_only_when_what_it_shows_changed(workspace, street, monkeypatch):
    """Each night rewrites the month's street outputs; a unit's book only when its findings changed."""
    annotated = books_annotated(monkeypatch)
    first = return_with_a_warning(street)
    drop(workspace, "甲.xlsx", first)
    run(workspace, street, now=RUN_DAY)
    [book] = (workspace.outbox / PERIOD / UNIT_FOLDER).glob("*.xlsx")
    assert annotated == [book.name]

    drop(workspace, "丙.xlsx", clean_return(street, "U03", first_serial=60))  # the month changes, 甲村's book not
    assert run(workspace, street, now=RUN_DAY).periods_written == [PERIOD]
    assert annotated == [book.name] and book.is_file()

    second = clean_return(street, "U02", first_serial=30)
    second.roster.at[0, "身份证号"] = first.roster.at[0, "身份证号"]  # 甲村's return gains a warning
    drop(workspace, "乙.xlsx", second)
    run(workspace, street, now=RUN_DAY)
    assert annotated.count(book.name) == 2
    assert "id-in-other-unit" in {f["code"] for f in report(workspace)["findings"] if f["unit"] == "U01"}

    book.unlink()  # a book gone from the outbox is written again
    drop(workspace, "丙(改).xlsx", clean_return(street, "U03", first_serial=90))
    run(workspace, street, now=RUN_DAY)
    assert book.is_file() and annotated.count(book.name) == 3


def test_several_unit_books_are_written_by_writing_processes(workspace, street, monkeypatch):
    import pipeline.outputs as outputs

    monkeypatch.setattr(outputs, "BOOKS_IN_PARALLEL_FROM", 2)
    in_parallel = []
    real = outputs.write_in_parallel
    monkeypatch.setattr(outputs, "write_in_parallel", lambda calls, n: (in_parallel.append(n), real(calls, n))[1])
    for n, code in enumerate(["U01", "U02", "U03"]):
        data = clean_return(street, code, first_serial=30 * n)
        data.monthly.at[0, "期末人口"] += 1
        drop(workspace, f"{code}.xlsx", data)
    run(workspace, street, now=RUN_DAY, workers=2)
    assert in_parallel == [2]
    books = sorted((workspace.outbox / PERIOD / UNIT_FOLDER).glob("*.xlsx"))
    assert [b.name[:3] for b in books] == ["U01", "U02", "U03"]
    for book in books:
        sheet = openpyxl.load_workbook(book)["错误清单"]
        assert any("期末人口" in str(c.value) for row in sheet.iter_rows() for c in row)


def test_a_new_build_rewrites_the_outputs_the_same_data_gave(workspace, street, monkeypatch):
    """An upgrade (or an edited form) with the same version number still rewrites the outbox."""
    import pipeline.outputs as outputs
    import pipeline.period as period

    annotated = books_annotated(monkeypatch)
    drop(workspace, "甲.xlsx", return_with_a_warning(street))
    assert run(workspace, street, now=RUN_DAY).periods_written == [PERIOD]
    assert run(workspace, street, now=RUN_DAY).periods_written == []
    assert len(annotated) == 1

    for module in (outputs, period):
        monkeypatch.setattr(module, "build_digest", lambda: "another build")
    assert run(workspace, street, now=RUN_DAY).periods_written == [PERIOD]
    assert len(annotated) == 2


def test_the_build_digest_follows_code_and_forms_not_caches(tmp_path):
    import shutil

    from pipeline.resources import files_digest, schemas_dir

    package = Path(__file__).resolve().parents[1] / "pipeline"
    code, forms = tmp_path / "pipeline", tmp_path / "schemas"
    shutil.copytree(package, code, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(schemas_dir(), forms)
    first = files_digest([code, forms])
    assert files_digest([code, forms]) == first
    (code / "__pycache__").mkdir(exist_ok=True)
    (code / "__pycache__" / "run.cpython-311.pyc").write_bytes(b"compiled")  # not what the build is
    assert files_digest([code, forms]) == first
    form = forms / "template_v1.toml"
    form.write_text(form.read_text(encoding="utf-8") + "\n# 街道改了一个字段名\n", encoding="utf-8")
    edited_form = files_digest([code, forms])
    assert edited_form != first
    (code / "write" / "summary.py").write_text("# changed\n", encoding="utf-8")
    assert files_digest([code, forms]) not in (first, edited_form)


def test_a_return_held_open_in_the_inbox_is_filed_and_the_night_goes_on(workspace, street, monkeypatch):
    """On Windows a file open in Excel cannot be removed (a PermissionError, made here): it is filed and
    archived all the same, the other files too, and its inbox name goes at the first run after it is closed."""
    import os

    from pipeline.runlog import log_lines
    from pipeline.status import NAME_KEPT_ZH

    held = drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    drop(workspace, "乙社区.xlsx", clean_return(street, "U02", first_serial=30))
    open_in_excel(monkeypatch, held)
    first = run(workspace, street, now=RUN_DAY)
    assert {o.file: o.status for o in first.outcomes} == {"甲村.xlsx": "accepted", "乙社区.xlsx": "accepted"}
    assert first.exit_code == 0 and first.held_in_inbox == ["甲村.xlsx"]
    assert [p.name for p in workspace.inbox.iterdir()] == ["甲村.xlsx"]
    archived = next(workspace.archive.rglob("*甲村.xlsx"))
    assert os.path.samefile(archived, held)  # the archive holds it: nothing waits on the inbox name
    assert any("甲村.xlsx" in line and NAME_KEPT_ZH in line for line in log_lines(first))

    second = run(workspace, street, now=RUN_DAY)  # still open: nothing to do, no repeat filed
    assert not second.outcomes and second.held_in_inbox == ["甲村.xlsx"] and second.exit_code == 0
    monkeypatch.undo()  # closed
    third = run(workspace, street, now=RUN_DAY)
    assert not third.outcomes and not third.held_in_inbox and not any(workspace.inbox.iterdir())
    with History(workspace.history) as h:
        assert sorted(r.file_name for r in h.returns()) == ["乙社区.xlsx", "甲村.xlsx"]
    assert archived.is_file()


def test_a_correction_after_the_deadline_does_not_make_a_unit_that_reported_in_time_late(workspace, street):
    """甲村 reported in time, then corrected a cover field after the deadline; 乙社区's only return in time
    was rejected, and its accepted one came three days late."""
    import os

    from pipeline.status import period_status

    def received_on(path: Path, day: dt.datetime) -> None:
        os.utime(path, (day.timestamp(), day.timestamp()))

    drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    bad = clean_return(street, "U02", first_serial=30)
    bad.monthly.at[0, "期末人口"] += 5
    drop(workspace, "乙社区.xlsx", bad)
    run(workspace, street, now=RUN_DAY)
    corrected = clean_return(street, "U01")
    corrected.cover.update({"联系电话": "13900000001", "填报日期": dt.date(2026, 11, 20)})
    received_on(drop(workspace, "甲村(更正).xlsx", corrected), dt.datetime(2026, 11, 20, 9, 0))
    received_on(drop(workspace, "乙社区(改).xlsx", clean_return(street, "U02", first_serial=30)),
                dt.datetime(2026, 11, 8, 9, 0))
    later = dt.datetime(2026, 11, 21, 8, 0)
    assert [o.status for o in run(workspace, street, now=later).outcomes] == ["accepted", "accepted"]

    assert {u["unit"]: u["days_late"] for u in report(workspace)["units"]} == {"U01": 0, "U02": 3, "U03": 0}
    sheet = openpyxl.load_workbook(next((workspace.outbox / PERIOD).glob("*_汇总.xlsx")))["报送情况"]
    rows = {r[1].value: r for r in sheet.iter_rows() if r[1].value in ("甲村", "乙社区")}
    assert [c.value for c in rows["甲村"][4:7]] == ["2026-11-20 09:00", "2026-11-05", "按时(首次报送 11-03)"]
    assert [c.value for c in rows["乙社区"][4:7]] == ["2026-11-08 09:00", "2026-11-05", "逾期3天"]
    late_fill = {r: rows[r][6].fill.fgColor.rgb for r in rows}  # only the unit late is marked so
    assert late_fill["甲村"] != late_fill["乙社区"] and late_fill["乙社区"].endswith("FFEB9C")
    lines = {line.unit_code: line.timeliness for line in period_status(workspace, street, PERIOD, later.date()).lines}
    assert lines == {"U01": "按时(首次报送 11-03)", "U02": "逾期3天", "U03": "逾期未报"}

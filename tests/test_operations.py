"""Nightly operations: idempotent runs, one run at a time, and no loss when killed anywhere."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import openpyxl

from conftest import PERIOD, RUN_DAY, clean_return, drop
from pipeline.faults import KILL_AT, PAUSE_IN_LOCK
from pipeline.run import run
from pipeline.store.history import History
from pipeline.workspace import Workspace
from test_cli import registry_file

ROOT = Path(__file__).resolve().parent.parent


def files_under(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mixed_inbox(ws: Workspace, street) -> list[str]:
    """Two good returns, a rejected one and a file that is not a workbook; their hashes."""
    bad = clean_return(street, "U03", first_serial=60)
    bad.monthly.at[0, "期末人口"] += 3
    drop(ws, "甲村.xlsx", clean_return(street, "U01"))
    drop(ws, "乙社区.xlsx", clean_return(street, "U02", first_serial=30))
    drop(ws, "丙村.xlsx", bad)
    junk = ws.inbox / "说明.xlsx"
    junk.write_bytes(b"PK\x03\x04 truncated download")
    os.utime(junk, (RUN_DAY.timestamp() - 3600,) * 2)
    return sorted(sha(p) for p in ws.inbox.iterdir() if p.is_file() and p.name != ".gitkeep")


def test_second_run_changes_nothing(workspace, street):
    mixed_inbox(workspace, street)
    first = run(workspace, street, now=RUN_DAY)
    assert first.outcomes and first.periods_written
    before = {name: files_under(getattr(workspace, name)) for name in ("outbox", "archive", "quarantine")}
    history = workspace.history.read_bytes()
    second = run(workspace, street, now=RUN_DAY)
    assert second.outcomes == [] and second.periods_written == []
    assert {name: files_under(getattr(workspace, name)) for name in before} == before
    assert workspace.history.read_bytes() == history


def test_a_file_name_the_log_cannot_encode_prints_as_a_question_mark(tmp_path, street):
    """nightly.log on a Chinese Windows is written in GBK, which has no emoji: the name is printed with "?",
    and the run, its work done, does not end in an encoding error."""
    registry_file(tmp_path)
    ws = Workspace.at(tmp_path, street.settings)
    ws.create()
    drop(ws, "甲村😀.xlsx", clean_return(street, "U01"))
    command = [sys.executable, "-m", "pipeline", "run", "--workdir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "gbk"}
    done = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout.decode("gbk", "replace") + done.stderr.decode("gbk", "replace")
    assert "甲村?.xlsx" in done.stdout.decode("gbk") and "已接收" in done.stdout.decode("gbk")


def test_two_runs_at_once_one_works_the_other_exits_2(tmp_path, street):
    registry_file(tmp_path)
    ws = Workspace.at(tmp_path, street.settings)
    ws.create()
    mixed_inbox(ws, street)
    command = [sys.executable, "-m", "pipeline", "run", "--workdir", str(tmp_path), "--lock-timeout", "0.5"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), PAUSE_IN_LOCK: "4"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    while not ws.lock.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    second = subprocess.run(command, env={**env, PAUSE_IN_LOCK: "0"}, capture_output=True, text=True, timeout=60)
    out_first, _ = first.communicate(timeout=120)
    assert second.returncode == 2 and "另一个汇总任务正在运行" in second.stdout + second.stderr
    assert first.returncode == 1, out_first  # it did the work: one return rejected, one file quarantined
    for book in ws.outbox.rglob("*.xlsx"):
        openpyxl.load_workbook(book)
    with History(ws.history) as h:
        assert len([r for r in h.returns() if r.status != "duplicate"]) == 4


def test_a_full_disk_or_bad_folder_fails_loudly_and_the_next_run_completes(tmp_path, street):
    registry_file(tmp_path)
    ws = Workspace.at(tmp_path, street.settings)
    ws.create()
    drop(ws, "甲村.xlsx", clean_return(street, "U01"))
    (ws.outbox / "2026-10").write_text("a file where the period's folder should be")
    command = [sys.executable, "-m", "pipeline", "run", "--workdir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    failed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "运行失败" in failed.stdout + failed.stderr
    (ws.outbox / "2026-10").unlink()
    fixed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert list((ws.outbox / "2026-10").glob("*汇总.xlsx"))


# ---- the crash loop ---------------------------------------------------------------


def _child(root: str, kill_at: int | None) -> None:
    if kill_at is not None:
        os.environ[KILL_AT] = str(kill_at)
    from conftest import STREET as street_data
    from pipeline.registry import parse_registry

    street = parse_registry(street_data, Path("test-street.toml"))
    run(Workspace.at(Path(root), street.settings), street, now=RUN_DAY)
    os._exit(0)


# Children come from a fork server that has imported the pipeline once: fast to start, and
# free of whatever state the test process holds (worker pools, open files).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["pipeline.run", "pipeline.registry"])


def run_in_child(root: Path, kill_at: int | None) -> int:
    process = _CONTEXT.Process(target=_child, args=(str(root), kill_at))
    process.start()
    process.join(120)
    return process.exitcode


def outputs(folder: Path) -> dict:
    """What a reader of the outbox sees, minus what is allowed to differ (nothing, here)."""
    seen = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if path.suffix == ".xlsx":
            book = openpyxl.load_workbook(path)
            seen[name] = [(ws.title, c.coordinate, c.value) for ws in book.worksheets
                          for row in ws.iter_rows() for c in row if c.value is not None]
        elif path.suffix == ".json":
            seen[name] = json.loads(path.read_text(encoding="utf-8"))
        else:
            seen[name] = path.read_bytes()
    return seen


def readable(folder: Path) -> None:
    """Every output present is complete: the old file or the new one, never half of one."""
    for path in folder.rglob("*"):
        if path.suffix == ".xlsx" and not path.name.startswith(".~"):
            openpyxl.load_workbook(path)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))


def test_killed_at_every_write_loses_nothing(tmp_path, street):
    template = tmp_path / "template"
    ws = Workspace.at(template, street.settings)
    ws.create()
    dropped = mixed_inbox(ws, street)
    reference = tmp_path / "reference"
    shutil.copytree(template, reference)
    assert run_in_child(reference, None) == 0
    expected = outputs(reference / "outbox")
    n = 0
    while True:
        n += 1
        assert n < 200, "the run never finished"
        attempt = tmp_path / f"kill-{n}"
        shutil.copytree(template, attempt)
        code = run_in_child(attempt, n)
        readable(attempt / "outbox")
        assert run_in_child(attempt, None) == 0
        held = [p for sub in ("archive", "quarantine", "inbox") for p in (attempt / sub).rglob("*")
                if p.is_file() and p.name != ".gitkeep" and not p.name.endswith(".原因.txt")]
        assert Counter(sha(p) for p in held) == Counter(dropped), f"killed at write {n}"
        with History(attempt / "history.sqlite") as h:
            filed = Counter(r.sha256 for r in h.returns() if r.verdict != "duplicate")
        assert sorted(filed) == sorted(set(dropped)) and set(filed.values()) == {1}, f"killed at write {n}"
        assert outputs(attempt / "outbox") == expected, f"killed at write {n}"
        assert not list((attempt / "outbox").rglob(".~pipeline-*"))
        shutil.rmtree(attempt)
        if code != -signal.SIGKILL:
            break  # the kill came after the last write: every write point has been tried
    assert n > 10


def _month_written_again(ws: Workspace) -> None:
    """As after an upgrade: every output of the month, unit books too, is written at the next run."""
    from pipeline.outputs import BOOKS_STAMP, STAMP

    for stamp in (STAMP, BOOKS_STAMP):
        (ws.outbox / PERIOD / stamp).unlink()


def test_a_working_folder_moved_to_another_disk_goes_on_where_it_is(tmp_path, street):
    """The history keeps whole paths: after the folder moved (a new computer), a file sent again is kept
    beside its first copy in the folder as it is now, never sent to where the folder used to be, and the
    unit books are annotated again from the archive where it is now."""
    from pipeline.outputs import UNIT_FOLDER

    old = Workspace.at(tmp_path / "旧电脑", street.settings)
    old.create()
    bad = clean_return(street, "U02", first_serial=30)
    bad.monthly.at[0, "期末人口"] += 5
    sent = drop(old, "乙社区.xlsx", bad).read_bytes()
    drop(old, "甲村.xlsx", clean_return(street, "U01"))
    run(old, street, now=RUN_DAY)
    shutil.move(old.root, tmp_path / "新电脑")
    ws = Workspace.at(tmp_path / "新电脑", street.settings)
    _month_written_again(ws)
    (ws.inbox / "乙社区(又发一次).xlsx").write_bytes(sent)
    os.utime(ws.inbox / "乙社区(又发一次).xlsx", (RUN_DAY.timestamp() - 3600,) * 2)

    again = run(ws, street, now=RUN_DAY)

    assert [o.status for o in again.outcomes] == ["duplicate"] and again.exit_code in (0, 1)
    assert not old.root.exists()  # nothing went back to where the folder was
    kept = [p for p in ws.archive.rglob("*.xlsx") if p.read_bytes() == sent]
    assert len(kept) == 2 and kept[0].parent == kept[1].parent  # the copy beside the first
    [book] = (ws.outbox / PERIOD / UNIT_FOLDER).glob("U02_*.xlsx")
    assert openpyxl.load_workbook(book).sheetnames[1:] == ["封面", "月报", "育龄妇女", "流动人口"]


def test_a_return_gone_from_the_archive_still_gets_its_listing(workspace, street):
    """Someone tidied the archive by hand: her book cannot be marked, but the night's run goes on and
    the unit still gets what to correct."""
    from pipeline.outputs import UNIT_FOLDER
    from pipeline.write.unit_book import LIST_SHEET, NO_SOURCE_SHEET

    bad = clean_return(street, "U02", first_serial=30)
    bad.monthly.at[0, "期末人口"] += 5
    drop(workspace, "乙社区.xlsx", bad)
    run(workspace, street, now=RUN_DAY)
    for archived in workspace.archive.rglob("*乙社区*.xlsx"):
        archived.unlink()
    _month_written_again(workspace)

    again = run(workspace, street, now=RUN_DAY)

    assert again.exit_code == 0 and again.periods_written == [PERIOD]
    [book] = (workspace.outbox / PERIOD / UNIT_FOLDER).glob("U02_*.xlsx")
    made = openpyxl.load_workbook(book)
    assert made.sheetnames == [LIST_SHEET, NO_SOURCE_SHEET]
    assert any("期末人口" in str(c.value) for row in made[LIST_SHEET].iter_rows() for c in row)

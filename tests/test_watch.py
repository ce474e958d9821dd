"""`pipeline watch`: files dropped before, during and after a run are all filed; it outlives bad files."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

import pipeline.run
import pipeline.watch
from conftest import RUN_DAY, WINDOWS_IN_USE, clean_return, drop, open_in_excel
from pipeline.faults import PAUSE_AFTER_FILING
from pipeline.run import RunResult
from pipeline.watch import watch
from pipeline.workspace import Workspace
from test_cli import registry_file

REPO = Path(__file__).resolve().parent.parent
CORRUPT = b"PK\x03\x04 this is not a workbook"


def wait_for(condition, timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def inbox_names(ws: Workspace) -> set[str]:
    return {p.name for p in ws.inbox.iterdir()}


def corrupt(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(CORRUPT)
    old = RUN_DAY.timestamp() - 3600
    os.utime(path, (old, old))
    return path


class Watcher(logging.Handler):
    """watch() in a thread, with its results and log records collected; stopped on exit."""

    def __init__(self, ws: Workspace, registry, poll: bool = False):
        super().__init__(logging.INFO)
        self.results: list[RunResult] = []
        self.records: list[logging.LogRecord] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=watch, args=(ws, registry), daemon=True, kwargs=dict(
            poll=poll, interval=0.2, settle=0.1, stop=self.stop, on_result=self.results.append))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def logged(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]

    def __enter__(self) -> "Watcher":
        logger = logging.getLogger("pipeline.watch")
        self.level_before = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        self.thread.start()
        assert wait_for(lambda: self.logged("开始监视")), "watch() did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        logger = logging.getLogger("pipeline.watch")
        logger.removeHandler(self)
        logger.setLevel(self.level_before)
        assert not self.thread.is_alive(), "watch() did not stop on the stop event"

    def statuses(self) -> list[tuple[str, str]]:
        return sorted((o.file, o.status) for r in self.results for o in r.outcomes)


@pytest.mark.parametrize("poll", [False, True], ids=["events", "polling"])
def test_watch_files_what_arrives_before_during_and_after_a_run(workspace, street, monkeypatch, poll):
    drop(workspace, "早到.xlsx", clean_return(street, "U03", first_serial=60))
    during = []
    write_outputs = pipeline.run.write_period_outputs

    def drop_during_the_first_run(*args, **kwargs):  # the run has taken its files, not yet finished
        if not during:
            during.append(drop(workspace, "乙社区.xlsx", clean_return(street, "U02", first_serial=30)))
        return write_outputs(*args, **kwargs)

    monkeypatch.setattr(pipeline.run, "write_period_outputs", drop_during_the_first_run)
    with Watcher(workspace, street, poll) as w:
        assert wait_for(lambda: len(w.results) >= 1)
        drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
        assert wait_for(lambda: len(w.statuses()) == 3)
        corrupt(workspace.inbox, "坏文件.xlsx")
        assert wait_for(lambda: len(w.statuses()) == 4)
        assert w.thread.is_alive()
    assert w.statuses() == [("乙社区.xlsx", "accepted"), ("坏文件.xlsx", "quarantined"),
                            ("早到.xlsx", "accepted"), ("甲村.xlsx", "accepted")]
    assert [o.file for o in w.results[0].outcomes] == ["早到.xlsx"]  # 乙社区 came during that run
    assert not inbox_names(workspace)


def test_watch_waits_while_the_nightly_run_holds_the_lock(workspace, street):
    lock = FileLock(workspace.lock, timeout=1)
    lock.acquire()
    try:
        with Watcher(workspace, street) as w:
            drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
            time.sleep(2.5)  # two tries at least, each waiting a second for the lock
            assert w.results == [] and inbox_names(workspace) == {"甲村.xlsx"}
            lock.release()
            assert wait_for(lambda: w.statuses() == [("甲村.xlsx", "accepted")])
        assert len(w.logged("另一个汇总任务正在运行")) == 1  # said once, not at every try
    finally:
        lock.release(force=True)


def test_watch_logs_an_unexpected_failure_and_keeps_watching(workspace, street, monkeypatch):
    real_run, calls = pipeline.watch.run, []

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(pipeline.watch, "run", failing_once)
    monkeypatch.setattr(pipeline.watch, "RETRY_AFTER_FAILURE", 0.3)
    drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    with Watcher(workspace, street) as w:
        assert wait_for(lambda: w.statuses() == [("甲村.xlsx", "accepted")])
    failures = [r for r in w.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and failures[0].exc_info[0] is OSError
    assert w.logged("已接收") and w.logged("甲村.xlsx")


def test_watch_writes_again_the_outputs_someone_had_open(workspace, street, monkeypatch):
    """A summary open in Excel (Windows; a PermissionError made here) is tried again with no new file."""
    real_replace, refused = os.replace, []

    def open_once(source, target):
        if Path(target).name.endswith("_汇总.xlsx") and not refused:
            refused.append(target)
            raise PermissionError(13, WINDOWS_IN_USE)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", open_once)
    monkeypatch.setattr(pipeline.watch, "RETRY_AFTER_FAILURE", 0.3)
    drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    with Watcher(workspace, street) as w:
        assert wait_for(lambda: len(w.results) >= 2)
    first, second = w.results[:2]
    assert first.outputs_in_use == [str(refused[0])] and first.exit_code == 2
    assert not second.outcomes and not second.outputs_in_use and second.periods_written == ["2026-10"]
    assert Path(refused[0]).is_file() and w.logged("正被其他程序")


def test_watch_does_not_run_again_for_a_filed_return_held_open(workspace, street, monkeypatch):
    """Filed, its inbox name held open (Windows; a PermissionError made here): the watcher does not run
    every interval for it, but does for a new file."""
    open_in_excel(monkeypatch, drop(workspace, "甲村.xlsx", clean_return(street, "U01")))
    with Watcher(workspace, street) as w:
        assert wait_for(lambda: len(w.results) == 1)
        time.sleep(1.5)  # several intervals (0.2 s)
        assert len(w.results) == 1 and w.results[0].held_in_inbox == ["甲村.xlsx"]
        drop(workspace, "乙社区.xlsx", clean_return(street, "U02", first_serial=30))
        assert wait_for(lambda: ("乙社区.xlsx", "accepted") in w.statuses())
    assert w.statuses() == [("乙社区.xlsx", "accepted"), ("甲村.xlsx", "accepted")]


def test_watch_outlives_an_inbox_that_goes_away(workspace, street):
    """A network share that drops off at night: warnings, then the files once it is back."""
    with Watcher(workspace, street) as w:
        away = workspace.inbox.rename(workspace.root / "share-offline")
        assert wait_for(lambda: w.logged("无法读取收件箱"))
        drop(away, "甲村.xlsx", clean_return(street, "U01"))
        away.rename(workspace.inbox)
        assert wait_for(lambda: w.statuses() == [("甲村.xlsx", "accepted")])


# ---- the command, as a scheduler or a clerk starts it ------------------------------------------

FILED_IN_A_RUNNING_RUN = ("SELECT returns.id FROM returns JOIN runs ON returns.run_id = runs.id "
                          "WHERE runs.status = 'running'")


def history_rows(root: Path, sql: str) -> list[tuple]:
    path = root / "history.sqlite"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # created but not yet migrated
        return []


def test_pipeline_watch_command(tmp_path, street):
    """Acceptance 4: a file dropped after start, one dropped during a run, then a corrupt one."""
    registry_file(tmp_path)
    ws = Workspace.at(tmp_path, street.settings)
    staging = tmp_path / "staging"  # files are prepared here and renamed in, so each arrives at once
    staging.mkdir()
    during = drop(staging, "乙社区.xlsx", clean_return(street, "U02", first_serial=30))
    log = tmp_path / "watch.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           PAUSE_AFTER_FILING: "1"}  # each run stays open a second after filing: a drop then falls mid-run
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "watch", "--workdir", str(tmp_path),
                                 "--interval", "0.5"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        text = lambda: log.read_text(encoding="utf-8", errors="replace")  # noqa: E731
        assert wait_for(lambda: "开始监视" in text(), timeout=15), text()

        drop(ws, "甲村.xlsx", clean_return(street, "U01"))
        assert wait_for(lambda: history_rows(tmp_path, FILED_IN_A_RUNNING_RUN), step=0.05), text()
        os.replace(during, ws.inbox / during.name)  # that run has listed the inbox and not yet finished
        assert history_rows(tmp_path, FILED_IN_A_RUNNING_RUN), "the drop missed the run (it was too quick)"
        assert wait_for(lambda: len(history_rows(tmp_path, "SELECT id FROM returns")) == 2), text()

        corrupt(staging, "坏文件.xlsx").replace(ws.inbox / "坏文件.xlsx")
        assert wait_for(lambda: len(history_rows(tmp_path, "SELECT id FROM returns")) == 3), text()
        time.sleep(0.5)
        assert proc.poll() is None, text()
    finally:
        proc.terminate()
        code = proc.wait(timeout=15)
    rows = dict((name, (status, run)) for name, status, run in
                history_rows(tmp_path, "SELECT file_name, status, run_id FROM returns"))
    assert {name: status for name, (status, _) in rows.items()} == {
        "甲村.xlsx": "accepted", "乙社区.xlsx": "accepted", "坏文件.xlsx": "quarantined"}
    assert rows["甲村.xlsx"][1] < rows["乙社区.xlsx"][1] < rows["坏文件.xlsx"][1]  # each in a run of its own
    assert not inbox_names(ws) and len(list(ws.quarantine.rglob("*坏文件.xlsx"))) == 1
    assert code == 0, text()  # SIGTERM lets the current run finish and stops cleanly
    assert "已隔离" in text() and "坏文件.xlsx" in text() and "已停止监视" in text()



def _broken_history(workspace: Workspace, monkeypatch) -> None:
    workspace.history.write_bytes(b"not a database " * 300)


def _no_way_to_hold_reading_processes(workspace: Workspace, monkeypatch) -> None:
    from pipeline.intake import sandbox

    monkeypatch.setattr(sandbox, "PROCESS_LIMITS", False)  # as on Windows
    monkeypatch.setattr(sandbox, "psutil", None)  # and without what the run watches them with


@pytest.mark.parametrize("spoil, says", [(_broken_history, "历史库"), (_no_way_to_hold_reading_processes, "psutil")])
def test_watch_says_why_it_cannot_run_without_a_traceback(workspace, street, monkeypatch, spoil, says):
    """A history it cannot open, a machine where the reading processes cannot be held: said, and retried."""
    spoil(workspace, monkeypatch)
    monkeypatch.setattr(pipeline.watch, "RETRY_AFTER_FAILURE", 0.3)
    drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    with Watcher(workspace, street) as w:
        assert wait_for(lambda: any(r.levelno == logging.ERROR for r in w.records))
    failures = [r for r in w.records if r.levelno == logging.ERROR]
    assert says in failures[0].getMessage() and failures[0].exc_info is None
    assert (workspace.inbox / "甲村.xlsx").is_file()

"""One run, inbox to outbox: the stages in order, nothing else.

    take in → check → file (history, then archive or quarantine) → merge and write per period
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from pipeline.check import check_returns, no_earlier_persons, period_mismatch
from pipeline.faults import PAUSE_AFTER_FILING, PAUSE_IN_LOCK, pause
from pipeline.findings import Finding
from pipeline.forms import Form, load_form
from pipeline.intake.returns import ReturnFile, take_in_all, take_in_batches
from pipeline.outputs import write_period_outputs
from pipeline.registry import Registry
from pipeline.store.filing import (Outcome, earlier_persons, file_checked, file_quarantined, file_repeat,
                                   finish_interrupted, settle_outcomes)
from pipeline.store.recheck import reconcile_pending
from pipeline.runlog import summarise, write_run_log
from pipeline.store.backup import Restored, back_up_history, restore_history
from pipeline.store.history import History
from pipeline.workspace import CHANGED_WHILE_READ, Workspace, sort_inbox
from pipeline.write.safe import clean_stale_temporaries, in_use_message

EXIT_ALL_ACCEPTED, EXIT_SOME_REJECTED, EXIT_CANNOT_RUN = 0, 1, 2
Progress = Callable[[str, int, int], None]  # (stage, done, total), for a progress bar
DEFAULT_WORKERS = os.cpu_count() or 1  # one reading process per core
LOCK_TIMEOUT_SECONDS = 60.0
BATCH_RETURNS = 250  # returns of ordinary size (~40 KB) checked and filed together: memory stays a batch's
FIRST_BATCH = 25  # ... after batches of 25, 50, 100, 200 (and before the same at the end): checking starts once
#                    25 returns are read, not 250, and only 25 are left to check once reading has ended
RUN_GC_THRESHOLD = 20_000  # allocations between collections of the youngest objects (Python's default: 700)


@dataclass
class RunResult:
    started_at: dt.datetime
    run_id: int | None = None  # a history row is made only when a file is filed
    outcomes: list[Outcome] = field(default_factory=list)
    periods_written: list[str] = field(default_factory=list)
    left_in_inbox: list[str] = field(default_factory=list)
    waiting_in_inbox: list[tuple[str, str]] = field(default_factory=list)  # (name, why): left for the next run
    registry: str = ""  # the registry file the run used
    stage_seconds: dict[str, float] = field(default_factory=dict)  # intake … write, backup (a day's first run)
    history_backup: str = ""  # the day's copy of the history, when this run wrote it
    history_backup_failed: str = ""  # why the day's copy could not be written
    outputs_in_use: list[str] = field(default_factory=list)  # outputs another program held open: not updated
    held_in_inbox: list[str] = field(default_factory=list)  # filed, but their inbox names held open (Windows)
    _open_stages: list[str] = field(default_factory=list, repr=False)

    @property
    def outputs_in_use_message(self) -> str:
        """What to do about `outputs_in_use`, and that nothing else is missing; "" when there are none."""
        if not self.outputs_in_use:
            return ""
        return in_use_message([Path(p).name for p in self.outputs_in_use]) + ";其余结果都已写出,处理过的月报都已保存"

    def timed_batches(self, batches: Iterator[list[ReturnFile]]) -> Iterator[list[ReturnFile]]:
        """The batches, the wait for each counted as intake."""
        while True:
            with self.timed("intake"):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Count the time inside as `stage`; a stage timed inside another is taken out of the outer one."""
        outer = self._open_stages[-1] if self._open_stages else None
        self._open_stages.append(stage)
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            self._open_stages.pop()
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + spent
            if outer is not None and outer != stage:
                self.stage_seconds[outer] = self.stage_seconds.get(outer, 0.0) - spent

    @property
    def exit_code(self) -> int:
        if self.outputs_in_use:  # the night's outputs are not all there: someone must close them and run again
            return EXIT_CANNOT_RUN
        bad = any(o.status in ("rejected", "quarantined") for o in self.outcomes)
        return EXIT_SOME_REJECTED if bad else EXIT_ALL_ACCEPTED


class RunLocked(Exception):
    """Another run holds the working folder."""


def run(workspace: Workspace, registry: Registry, *, period: str | None = None,
        now: dt.datetime | None = None, lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        progress: Progress | None = None, workers: int = DEFAULT_WORKERS,
        executor: Executor | None = None) -> RunResult:
    """Process everything new in the inbox (or only `period`) and rewrite the touched periods' outputs.

    One run at a time per working folder: a second one waits `lock_timeout` seconds for the
    lock, then raises RunLocked. The lock is the operating system's, so a killed run's lock
    is released with its process. The per-file stage runs on `workers` local reading
    processes, or on `executor` (e.g. a Dask cluster's) when one is given.
    """
    now = now or dt.datetime.now()
    workspace.create()
    with holding_lock(workspace, lock_timeout), fewer_collections():
        pause(PAUSE_IN_LOCK)
        result = _run_locked(workspace, registry, period, now, progress or _silent, PerFile(workers, executor))
    write_run_log(workspace, result)
    return result


def restore(workspace: Workspace, backup: Path, *, now: dt.datetime | None = None,
            lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> Restored:
    """Put a backup of the history in place (`pipeline restore`), under the run lock: no run meanwhile."""
    with holding_lock(workspace, lock_timeout):
        return restore_history(workspace, backup, now or dt.datetime.now())


@contextmanager
def holding_lock(workspace: Workspace, timeout: float) -> Iterator[None]:
    """The working folder's lock (the operating system's: a killed holder releases it); RunLocked after `timeout`."""
    try:
        lock = FileLock(workspace.lock, timeout=timeout)
        lock.acquire()
    except Timeout as exc:
        raise RunLocked(f"另一个汇总任务正在运行(锁文件 {workspace.lock}),请稍后再试。") from exc
    try:
        yield
    finally:
        lock.release()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector every RUN_GC_THRESHOLD allocations, not every 700.

    A run allocates millions of cells, strings and findings that live until their batch is
    filed; with Python's default the collector ran ~1,450 times at 1,000 returns and walked
    the batch held each time (~1.3 s of the run's own process; ~0.4 s now). Reference
    counting still frees everything without cycles at once.
    """
    before = gc.get_threshold()
    gc.set_threshold(RUN_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@dataclass(frozen=True)
class PerFile:
    """Where the per-file stage runs."""

    workers: int = DEFAULT_WORKERS
    executor: Executor | None = None


def _run_locked(ws: Workspace, registry: Registry, period: str | None, now: dt.datetime,
                progress: Progress, per_file: PerFile) -> RunResult:
    clean_stale_temporaries(ws.outbox)
    form = load_form()
    result = RunResult(now, registry=str(registry.source))
    with History(ws.history) as history:
        with result.timed("intake"):
            inbox = sort_inbox(ws.inbox, registry.settings.settle_seconds)
            files, held = finish_interrupted(history, ws, inbox.ready)
        result.waiting_in_inbox = inbox.waiting
        batches = take_in_batches(files, registry, form, per_file.executor, workers=per_file.workers,
                                  progress=lambda done, total: progress("intake", done, total), batch=BATCH_RETURNS,
                                  first=FIRST_BATCH,
                                  on_changed=lambda path: result.waiting_in_inbox.append((path.name, CHANGED_WHILE_READ)))
        filed = []
        for taken in result.timed_batches(batches):
            filed += _file_batch(history, ws, registry, form, taken, period, now, result)
        pause(PAUSE_AFTER_FILING)
        progress("reconcile", 1, 1)
        with result.timed("reconcile"):
            reconcile_pending(history, registry, form)  # also what a killed run left undone
            settle_outcomes(history, filed)
        result.outcomes += filed
        result.held_in_inbox = [p.name for p in held] + [o.file for o in result.outcomes if o.name_kept]
        with result.timed("write"):
            result.periods_written, in_use = write_period_outputs(history, registry, ws, now, timed=result.timed,
                                                                  workers=per_file.workers or DEFAULT_WORKERS)
            result.outputs_in_use = [str(path) for path in in_use]
        progress("write", 1, 1)
        if result.run_id is not None:
            history.finish_run(result.run_id, dt.datetime.now(), "done", summarise(result))
            with result.timed("backup"):
                _back_up(history, ws, registry, now, result)
    return result


def _back_up(history: History, ws: Workspace, registry: Registry, now: dt.datetime, result: RunResult) -> None:
    """The day's copy of the history after a run that filed something; a failed copy does not fail the run."""
    try:
        copy = back_up_history(history, ws.backups, now.date(), registry.settings.history_backups)
    except (OSError, sqlite3.Error) as exc:
        result.history_backup_failed = f"{exc}(本次运行的结果不受影响;请检查 {ws.backups} 所在的磁盘)"
        return
    result.history_backup = str(copy) if copy else ""


def _file_batch(history: History, ws: Workspace, registry: Registry, form: Form, taken: list[ReturnFile],
                period: str | None, now: dt.datetime, result: RunResult) -> list[Outcome]:
    """Check and file one batch of taken-in returns; repeats and quarantined files go into `result` at once."""
    wanted = [f for f in taken if period is None or f.period in (period, None)]
    result.left_in_inbox += [f.name for f in taken if f not in wanted]
    with result.timed("file"):
        fresh, repeats = split_repeats(wanted, history)
        if wanted and result.run_id is None:
            result.run_id = history.start_run(now)
        result.outcomes += [file_repeat(history, ws, result.run_id, f) for f in repeats]
        result.outcomes += [file_quarantined(history, ws, result.run_id, f, now) for f in fresh if f.quarantine_reason]
    identified = [f for f in fresh if not f.quarantine_reason]
    with result.timed("validate"):
        checked, earlier_findings = check_returns(identified, registry, form, now.date(),
                                                  earlier_persons(history, identified, result.run_id, form))
    with result.timed("file"):
        return file_checked(history, ws, result.run_id, checked, earlier_findings)


def _silent(stage: str, done: int, total: int) -> None:
    return None


def split_repeats(files: list[ReturnFile], history: History) -> tuple[list[ReturnFile], list[ReturnFile]]:
    """Files whose content was filed before (or twice in this drop) are repeats, not new returns."""
    seen: set[str] = set()
    fresh, repeats = [], []
    for f in files:
        if f.sha256 in seen or history.returns(sha256=f.sha256):
            repeats.append(f)
        else:
            fresh.append(f)
        seen.add(f.sha256)
    return fresh, repeats


def validate_files(paths: list[Path], registry: Registry, period: str | None = None,
                   now: dt.datetime | None = None) -> list[tuple[ReturnFile, list[Finding]]]:
    """Check files without filing or merging them (`pipeline validate`): each file's findings."""
    now = now or dt.datetime.now()
    form = load_form()
    taken = take_in_all([(path, None) for path in paths], registry, form)
    identified = [f for f in taken if not f.quarantine_reason]
    checked, _ = check_returns(identified, registry, form, now.date(), no_earlier_persons())
    by_file = {id(c.file): c.findings for c in checked}
    results = []
    for f in taken:
        found = by_file.get(id(f), f.findings)
        if period and f.period and f.period != period:
            found = [period_mismatch(f, period), *found]
        results.append((f, found))
    return results

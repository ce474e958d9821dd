"""`pipeline watch`: run whenever new returns have settled in the inbox.

Change events (watchdog) make it prompt; a re-check every `interval` seconds catches a
file dropped during a run, one not yet settled when its events came, and everything on a
network share, where change events do not arrive (`poll=True` stats the folder instead).
Each run is the ordinary `run()`, under the same lock as the nightly job.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from pipeline.intake.safety import UnsafeEnvironment
from pipeline.registry import Registry
from pipeline.run import RunLocked, RunResult, run
from pipeline.runlog import log_lines
from pipeline.store.history import HistoryUnavailable
from pipeline.workspace import Workspace, ready_files

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0  # seconds between re-checks of the inbox when no event arrives
LOCK_WAIT = 1.0  # short, so a stop request is not held up behind the nightly run's lock
RETRY_AFTER_FAILURE = 60.0  # a run that failed (disk full, permissions) is not retried in a tight loop


class _LastEvent(FileSystemEventHandler):
    """Remembers when the inbox last changed and wakes the loop.

    Only changes count: our own reading of the inbox opens it, and on Linux that is an event too.
    """

    CHANGES = ("created", "modified", "moved", "deleted", "closed")

    def __init__(self) -> None:
        self.at = 0.0
        self.wake = threading.Event()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in self.CHANGES:
            return
        self.at = time.monotonic()
        self.wake.set()


def watch(workspace: Workspace, registry: Registry, *, poll: bool = False, interval: float = DEFAULT_INTERVAL,
          settle: float | None = None, stop: threading.Event | None = None,
          on_result: Callable[[RunResult], None] | None = None) -> None:
    """Watch the inbox and run once files have settled, until `stop` is set, SIGTERM or Ctrl-C."""
    stop = stop or threading.Event()
    settle = registry.settings.settle_seconds if settle is None else settle
    workspace.create()
    events = _LastEvent()
    observer = PollingObserver(timeout=interval) if poll else Observer()
    observer.schedule(events, str(workspace.inbox), recursive=False)
    observer.start()
    restore = _stop_on_sigterm(stop)
    log.info("开始监视收件箱 %s(%s,每 %s 秒复查一次)", workspace.inbox, "轮询" if poll else "文件变动通知", interval)
    try:
        _loop(workspace, registry, events, stop, interval, settle, on_result)
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        observer.stop()
        observer.join()
        log.info("已停止监视收件箱。")


def _loop(ws: Workspace, registry: Registry, events: _LastEvent, stop: threading.Event, interval: float,
          settle: float, on_result: Callable[[RunResult], None] | None) -> None:
    locked_before = outputs_left = False
    held: set[tuple[str, int, int]] = set()  # inbox files filed already, their names held open (Windows)
    while not stop.is_set():
        quiet = time.monotonic() - events.at
        if quiet < settle:  # still being copied: wait until the inbox has been quiet for `settle`
            stop.wait(settle - quiet)
            continue
        events.wake.clear()
        pause = interval
        # outputs left unwritten (open in Excel) are tried again, as are new files
        if outputs_left or _anything_ready(ws, registry, held):
            outcome, result = _run_once(ws, registry, on_result, quiet_if_locked=locked_before)
            locked_before = outcome == "locked"
            outputs_left = outcome == "outputs in use"
            if result is not None:  # not run again for those alone: they wait for a change, or the night's run
                held = {_identity(ws.inbox / name) for name in result.held_in_inbox} - {None}
            if outcome in ("failed", "outputs in use"):  # its own partial moves must not set off an immediate retry
                events.wake.clear()
                pause = RETRY_AFTER_FAILURE
        _wait(events.wake, stop, pause)


def _anything_ready(ws: Workspace, registry: Registry, held: set | frozenset = frozenset()) -> bool:
    """Whether a settled file waits (not one filed already whose name is `held` open, unchanged); a network
    share that has gone away is reported, not fatal."""
    try:
        return any(_identity(path) not in held for path in ready_files(ws.inbox, registry.settings.settle_seconds))
    except OSError as exc:
        log.warning("无法读取收件箱 %s:%s;稍后再试。", ws.inbox, exc)
        return False


def _identity(path: Path) -> tuple[str, int, int] | None:
    """A file as the watcher tells it apart: name, size, modification time (None once it is gone)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return path.name, stat.st_size, stat.st_mtime_ns


def _run_once(ws: Workspace, registry: Registry, on_result: Callable[[RunResult], None] | None, *,
              quiet_if_locked: bool) -> tuple[str, RunResult | None]:
    """One run: 'done', 'outputs in use' (some not written: retried later), 'locked' or 'failed', and its
    result (None if it did not run). Never raises: watching goes on whatever a run meets."""
    try:
        result = run(ws, registry, lock_timeout=LOCK_WAIT)
    except RunLocked:
        if not quiet_if_locked:
            log.info("另一个汇总任务正在运行,等它结束后再处理收件箱。")
        return "locked", None
    except HistoryUnavailable as exc:  # its message says what to do: no traceback
        log.error("%s。收件箱中的文件保持原样;%s 秒后重试。", exc, RETRY_AFTER_FAILURE)
        return "failed", None
    except UnsafeEnvironment as exc:  # the machine lacks a protection: says which, and nothing was read
        log.error("%s %s 秒后重试。", exc, RETRY_AFTER_FAILURE)
        return "failed", None
    except Exception:  # noqa: BLE001 - a watcher that dies at 2 a.m. is worse than one that logs and waits
        log.exception("本次运行失败,收件箱中未处理的文件保持原样;%s 秒后重试。", RETRY_AFTER_FAILURE)
        return "failed", None
    log_result(result)
    if on_result:
        on_result(result)
    if result.outputs_in_use:
        log.warning("发件箱中有文件正被其他程序打开(见上),%s 秒后再写一次。", RETRY_AFTER_FAILURE)
        return "outputs in use", result
    return "done", result


def log_result(result: RunResult) -> None:
    """The same lines as the run log (logs/运行日志.txt), to the watcher's own log."""
    for line in log_lines(result):
        log.info(line.strip())


def _wait(wake: threading.Event, stop: threading.Event, seconds: float) -> None:
    """Sleep until an inbox event, a stop request or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and not wake.is_set() and time.monotonic() < deadline:
        wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))


def _stop_on_sigterm(stop: threading.Event) -> Callable[[], None]:
    """Under systemd or `kill`, finish the current run and stop; returns the undo. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return lambda: signal.signal(signal.SIGTERM, previous)

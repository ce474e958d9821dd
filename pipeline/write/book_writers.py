"""Unit workbooks annotated by several processes at once.

A unit's return takes 20 ms–1 s to annotate (openpyxl's cleaning or rebuilding the most),
and unit workbooks are written after reading has ended, when one core would idle. Each
writing process is started afresh (`python -c`, like the reading processes), never forked
from the run's large process and never re-importing the caller's script; it is sent one
pickled write_unit_book call at a time and answers with "" or what went wrong.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pipeline.intake.read import RawWorkbook
from pipeline.intake.sandbox import ReaderPool, fresh_process_env
from pipeline.intake.worker import channels, receive, write_frame
from pipeline.write.safe import OutputInUse

_START = "from pipeline.write.book_writers import serve; serve()"
# openpyxl with the C XML parser, not defusedxml's pure-Python one (load 72 -> 56 ms a book):
# a book opens only parts that unit_book.annotatable has just found free of any DTD. Set in
# the writing process only while it imports openpyxl, so the reading processes it may start
# keep the guard. (An OPENPYXL_DEFUSEDXML the machine sets itself is kept.)
_DEFUSED = "OPENPYXL_DEFUSEDXML"
_STOP = None
_reader: ReaderPool | None = None  # this process's, for ArchivedValues


@dataclass(frozen=True)
class ArchivedValues:
    """An archived return's values, read as warily as at intake, and only if her book needs them
    (most are marked in their own parts without: ~16 ms a book not spent). Picklable, so a
    writing process reads them itself, by a reading process it starts on first need."""

    source: Path

    def __call__(self) -> RawWorkbook | None:
        global _reader
        if _reader is None:
            _reader = ReaderPool(1)
        return _reader.read(self.source).workbook


def close_archive_reader() -> None:
    """End the reading process ArchivedValues started in this process, if it did."""
    global _reader
    if _reader is not None:
        _reader.close()
        _reader = None


class BookWriteFailed(RuntimeError):
    """A writing process could not write a book (or died)."""


def write_in_parallel(calls: Iterable[tuple[tuple, dict]], processes: int) -> list[Path]:
    """Run write_unit_book(*args, **kwargs) for each call on `processes` processes; raise if one failed.

    Returns the books not written because someone has them open (OutputInUse): the others are.
    """
    work: queue.Queue = queue.Queue(maxsize=2 * processes)
    failures: list[str] = []
    in_use: list[Path] = []
    threads = [threading.Thread(target=_feed, args=(work, failures, in_use), daemon=True) for _ in range(processes)]
    for thread in threads:
        thread.start()
    try:
        for call in calls:
            work.put(call)
    finally:
        for _ in threads:
            work.put(_STOP)
        for thread in threads:
            thread.join()
    if failures:
        raise BookWriteFailed(f"{len(failures)} 份退回工作簿未能写出:{failures[0]}")
    return in_use


def _feed(work: queue.Queue, failures: list[str], in_use: list[Path]) -> None:
    """One writing process, fed calls from `work` until told to stop (and drained even if it cannot start)."""
    try:
        proc = subprocess.Popen([sys.executable, "-c", _START], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=fresh_process_env())
    except OSError as exc:
        proc = None
        failures.append(f"无法启动写出工作簿的进程({exc})")
    try:
        while (call := work.get()) is not _STOP:
            if failures or proc is None:  # one failed: the run fails, no need to write the rest
                continue
            try:
                write_frame(proc.stdin, pickle.dumps(call))
                answer = receive(proc.stdout)
            except (OSError, pickle.UnpicklingError):
                answer = None
            if isinstance(answer, OutputInUse):
                in_use += answer.paths
            elif answer != "":
                failures.append("写出工作簿的进程异常退出" if answer is None else str(answer))
    finally:
        if proc is not None:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Close its requests (it then returns) and reap it; a process already dead is only reaped."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    proc.wait()
    proc.stdout.close()


def serve() -> None:
    """In a writing process: write each book asked for, answer "", a book someone has open, or the error's text."""
    ours = _DEFUSED not in os.environ
    if ours:
        os.environ[_DEFUSED] = "False"
    from pipeline.write.unit_book import write_unit_book  # openpyxl reads the setting as it is imported
    if ours:
        del os.environ[_DEFUSED]

    requests, answers = channels()  # (nothing printed may garble the answers)
    try:
        while (call := receive(requests)) is not None:
            args, kwargs = call
            try:
                write_unit_book(*args, **kwargs)
                answer: object = ""
            except OutputInUse as exc:  # the run goes on with the other books, and says which were not written
                answer = exc
            except Exception as exc:  # said to the run, which fails as it would have writing the book itself
                answer = f"{type(exc).__name__}: {exc}"
            write_frame(answers, pickle.dumps(answer))
    finally:
        close_archive_reader()

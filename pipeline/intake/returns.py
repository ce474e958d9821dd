"""One file in, one return out: read it, find its sheets and tables, say whose it is."""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from pipeline.findings import Finding, finding
from pipeline.forms import Form
from pipeline.intake.identify import Identity
from pipeline.intake.locate import LocatedRows
from pipeline.intake.read import NOT_A_WORKBOOK_REASONS
from pipeline.intake.safety import require_defusedxml
from pipeline.intake.sandbox import Limits, ReaderPool, ReadReport
from pipeline.intake.sheets import TakenBook, take_workbook
from pipeline.registry import Registry, Unit

READ_WORKERS = 2  # FACTS: a 2-process pool gives ~1.8x on this machine
ORDINARY_RETURN_BYTES = 40 * 1024  # a return with a roster of 300–700 rows, as .xlsx: 40–55 KB
Snapshot = tuple[tuple[str, int, int], ...]  # (relative name, size, mtime_ns) of each file


@dataclass
class ReturnFile:
    """A return as taken in: where it came from, whose it is, and its located tables."""

    path: Path
    sha256: str
    received_at: dt.datetime
    tables: dict[str, LocatedRows] = field(default_factory=dict)  # form sheet key -> table
    identity: Identity | None = None
    findings: list[Finding] = field(default_factory=list)
    unreadable: str = ""  # why the file could not be read at all
    changed: bool = False  # the file changed while it was read: leave it for the next run
    read: ReadReport | None = None
    format: str = ""  # what the content turned out to be: xlsx, xls, ods, html, csv, bundle…

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def unit(self) -> Unit | None:
        return self.identity.unit if self.identity else None

    @property
    def period(self) -> str | None:
        return self.identity.period if self.identity else None

    @property
    def quarantine_reason(self) -> str:
        """Why this file cannot be filed under a unit and period (empty if it can)."""
        if self.unreadable:
            return f"{'不是月报工作簿' if self.unreadable in NOT_A_WORKBOOK_REASONS else '文件无法读取'}:{self.unreadable}"
        if self.unit is None:
            conflict = next((f.message for f in self.findings if f.code == "unit-conflict"), None)
            return conflict or "无法确定报送单位(封面、文件名和表格标题里都没有本街道登记的村(居)名称或代码)"
        if self.period is None:
            told = next((f.message for f in self.findings if f.code in ("period-ambiguous", "period-conflict")), None)
            return told or "无法确定报告期(封面、文件名和表格标题里都没有可识别的年月)"
        return ""


# ---- content hashes and snapshots --------------------------------------------------

def file_sha256(path: Path) -> str:
    """SHA-256 of a file's content; of a folder, over its files' relative names and contents."""
    if path.is_dir():
        digest = hashlib.sha256()
        for name, member in folder_files(path):
            digest.update(f"{len(name)}:{name}:".encode())
            digest.update(bytes.fromhex(file_sha256(member)))
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """A folder's regular files (not links) with their relative POSIX names, sorted."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return sorted((p.relative_to(folder).as_posix(), p) for p in files)


def snapshot(path: Path) -> Snapshot:
    """Sizes and modification times: a file still being written changes them."""
    members = folder_files(path) if path.is_dir() else [(path.name, path)]
    stats = [(name, p.stat()) for name, p in members]
    return tuple((name, s.st_size, s.st_mtime_ns) for name, s in stats)


def _use_taken(ret: ReturnFile, taken: TakenBook, registry: Registry) -> None:
    """The reading process's tables, identity and findings, as this process's objects."""
    ret.tables = taken.tables
    unit = registry.unit_by_code(taken.identity.unit.code) if taken.identity.unit else None
    ret.identity = replace(taken.identity, unit=unit)  # the registry's own Unit, not a copy from the pipe
    ret.findings += taken.findings


def _snapshot_or_none(path: Path) -> Snapshot | None:
    try:
        return snapshot(path)
    except OSError:
        return None


def _received(shot: Snapshot) -> dt.datetime:
    latest = max((ns for _, _, ns in shot), default=0)
    return dt.datetime.fromtimestamp(latest / 1e9)


# ---- taking files in ----------------------------------------------------------------

_WORKER_READER: ReaderPool | None = None


def worker_reader() -> ReaderPool:
    """This process's own reading process, started once (in a pool or cluster worker)."""
    global _WORKER_READER
    if _WORKER_READER is None:
        _WORKER_READER = ReaderPool(1)
        atexit.register(_WORKER_READER.close)
    return _WORKER_READER


def take_in_all(files: list[tuple[Path, str | None]], registry: Registry, form: Form,
                executor: Executor | None = None, limits: Limits = Limits(),
                progress: Callable[[int, int], None] | None = None, workers: int = READ_WORKERS) -> list[ReturnFile]:
    """Take in every (path, sha256); files that changed while being read are left for the next run."""
    batches = take_in_batches(files, registry, form, executor, limits, progress, workers, batch=max(len(files), 1))
    return [f for batch in batches for f in batch]


def take_in_batches(files: list[tuple[Path, str | None]], registry: Registry, form: Form,
                    executor: Executor | None = None, limits: Limits = Limits(),
                    progress: Callable[[int, int], None] | None = None, workers: int = READ_WORKERS,
                    batch: int = 250, first: int | None = None,
                    on_changed: Callable[[Path], None] | None = None) -> Iterator[list[ReturnFile]]:
    """Take in the files `batch` at a time, in their order; the next batch is read while one is used.

    A run then holds a batch or two of returns, not thousands, and the reading processes
    keep working while the caller checks and files the batch it was given. With `first`,
    the batches grow from that size, doubling, up to `batch`, and shrink the same way at
    the end: the caller starts on a few returns at once instead of waiting for a whole
    batch to be read, and has few left once reading has ended. Files that changed
    while being read are left out (for the next run), each told to `on_changed`.

    By default `workers` limited reading processes (see `sandbox`) parse the files and take
    them in (`sheets.take_workbook`: tables located, unit and period identified), fed by a
    thread pool twice that size that hashes each file and waits for its reading.
    Another executor may be passed (a process pool, or a Dask cluster's): its workers then
    do all the per-file work, each reading through a reading process of its own, kept for
    the worker's life.
    """
    require_defusedxml()
    chunks = [files[start:end] for start, end in _spans(return_weights(files), batch, first or batch)]
    if executor is not None:
        yield from _batches_on(executor, chunks, registry, form, None, progress, on_changed)
        return
    workers = max(1, min(workers, len(files)))
    with ReaderPool(workers, limits, context=(registry, form)) as reader, \
            ThreadPoolExecutor(max_workers=2 * workers) as threads:
        yield from _batches_on(threads, chunks, registry, form, reader, progress, on_changed)


def _spans(weights: list[float], batch: int, first: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each batch of files weighing `weights` (ordinary returns: 1): batches of first,
    2·first, … up to batch, then batch, and at the end the same back down to first; a file heavier than
    its batch goes alone.

    The last batch is checked and filed once reading has ended, on one core while the other
    idles: a small one keeps that short.
    """
    ramp, size = [], max(1, min(first, batch))
    while size < batch:
        ramp.append(size)
        size *= 2
    up: list[float] = []
    down: list[float] = []
    left = sum(weights)
    for size in ramp:  # each size once at the start, once at the end
        for sizes in (up, down):
            if left > 0:
                sizes.append(min(size, left))
                left -= sizes[-1]
    while left > 0:
        up.append(min(batch, left))
        left -= up[-1]
    sizes = up + down[::-1]
    # Files fill each batch whole, so a batch may hold a little less than its size; what is left
    # at the end goes in batches of the last size.
    start, count = 0, len(weights)
    for size in itertools.chain(sizes, itertools.repeat(sizes[-1] if sizes else batch)):
        if start >= count:
            return
        end, held = start + 1, weights[start]
        while end < count and held + weights[end] <= size + 1e-9:
            held += weights[end]
            end += 1
        yield start, end
        start = end


def return_weights(files: list[tuple[Path, str | None]]) -> list[float]:
    """Each file's size in ordinary returns (at least 1): a batch of 250 holds as many rows, and as much
    memory, in a district of 2,000-row rosters as in one of 500-row ones."""
    def bytes_of(path: Path) -> int:
        shot = _snapshot_or_none(path)  # a folder return: its files together
        return sum(size for _, size, _ in shot) if shot else 0
    return [max(1.0, bytes_of(path) / ORDINARY_RETURN_BYTES) for path, _ in files]


def _batches_on(executor: Executor, chunks: list[list[tuple[Path, str | None]]], registry: Registry, form: Form,
                reader: ReaderPool | None, progress: Callable[[int, int], None] | None,
                on_changed: Callable[[Path], None] | None = None) -> Iterator[list[ReturnFile]]:
    total, done = sum(map(len, chunks)), 0

    def submit(chunk: list[tuple[Path, str | None]]) -> list[Future]:
        return [executor.submit(take_in, path, registry, form, sha, reader) for path, sha in chunk]

    upcoming = submit(chunks[0]) if chunks else []
    try:
        for k in range(len(chunks)):
            futures, upcoming = upcoming, submit(chunks[k + 1]) if k + 1 < len(chunks) else []
            taken = []
            for future in futures:
                taken.append(future.result())
                done += 1
                if progress:
                    progress(done, total)
            for f in taken:
                if f.changed and on_changed:
                    on_changed(f.path)
            yield [f for f in taken if not f.changed]
    finally:  # the caller stopped early (an error while filing): read nothing more
        for future in upcoming:
            future.cancel()


def take_in(path: Path, registry: Registry, form: Form, sha256: str | None = None,
            reader: ReaderPool | None = None) -> ReturnFile:
    """Read one inbox file or folder into a ReturnFile; bad input becomes findings, never an exception."""
    try:
        before = snapshot(path)
        digest = file_sha256(path)
    except OSError:  # moved away or locked since it was listed: nothing to take in this run
        return ReturnFile(path, sha256 or "", dt.datetime.now(), changed=True)
    ret = ReturnFile(path, digest, _received(before), changed=sha256 is not None and sha256 != digest)
    result = (reader or worker_reader()).read(path)
    ret.read, ret.unreadable = result.report, result.reason
    if ret.unreadable:
        code = "not-a-workbook" if ret.unreadable in NOT_A_WORKBOOK_REASONS else "file-unreadable"
        ret.findings.append(finding(code, file=path.name, value=ret.unreadable))
    ret.changed |= _snapshot_or_none(path) != before
    taken = result.taken
    if taken is None and result.workbook is not None:  # a reading process without the form: take it here
        taken = take_workbook(result.workbook, ret.name, registry, form)
    if taken is not None:
        ret.format = taken.format
        if not ret.changed:
            _use_taken(ret, taken, registry)
    return ret

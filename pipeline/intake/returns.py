"""One file in, one return out: read it, find its sheets and tables, say whose it is."""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipeline.findings import Finding, finding
from pipeline.forms import Form, SheetSpec
from pipeline.intake.identify import Identity, identify, read_cover
from pipeline.intake.locate import LocatedTable, column_letter, find_header_row, locate_table
from pipeline.intake.read import RawSheet, RawWorkbook
from pipeline.intake.safety import require_defusedxml
from pipeline.intake.sandbox import Limits, ReaderPool, ReadReport
from pipeline.intake.untrusted import TextProblem, clean_sheet
from pipeline.periods import PERIOD_FORMS
from pipeline.registry import Registry, Unit
from pipeline.text import normalise_label
from pipeline.values import as_text

READ_WORKERS = 2  # FACTS: a 2-process pool gives ~1.8x on this machine
TITLE_ROWS = 5  # rows above a table's header searched for the unit and period
Snapshot = tuple[tuple[str, int, int], ...]  # (relative name, size, mtime_ns) of each file


@dataclass
class ReturnFile:
    """A return as taken in: where it came from, whose it is, and its located tables."""

    path: Path
    sha256: str
    received_at: dt.datetime
    workbook: RawWorkbook | None = None
    tables: dict[str, LocatedTable] = field(default_factory=dict)  # form sheet key -> table
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
            return f"文件无法读取:{self.unreadable}"
        if self.unit is None:
            return "无法确定报送单位(封面、文件名和表格标题里都没有本街道登记的村(居)名称或代码)"
        if self.period is None:
            return "无法确定报告期(封面、文件名和表格标题里都没有可识别的年月)"
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
                    batch: int = 250) -> Iterator[list[ReturnFile]]:
    """Take in the files `batch` at a time, in their order; the next batch is read while one is used.

    A run then holds a batch or two of returns, not thousands, and the reading processes
    keep working while the caller checks and files the batch it was given. Files that
    changed while being read are left out (for the next run).

    By default `workers` limited reading processes (see `sandbox`) parse the files while a
    thread pool twice that size does the rest of the per-file work: while one thread
    locates a table (holding the GIL), another has the next file in its reading process.
    Another executor may be passed (a process pool, or a Dask cluster's): its workers then
    do all the per-file work, each reading through a reading process of its own, kept for
    the worker's life.
    """
    require_defusedxml()
    chunks = [files[i:i + batch] for i in range(0, len(files), batch)]
    if executor is not None:
        yield from _batches_on(executor, chunks, registry, form, None, progress)
        return
    workers = max(1, min(workers, len(files)))
    with ReaderPool(workers, limits) as reader, ThreadPoolExecutor(max_workers=2 * workers) as threads:
        yield from _batches_on(threads, chunks, registry, form, reader, progress)


def _batches_on(executor: Executor, chunks: list[list[tuple[Path, str | None]]], registry: Registry, form: Form,
                reader: ReaderPool | None, progress: Callable[[int, int], None] | None) -> Iterator[list[ReturnFile]]:
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
    ret.workbook, ret.read, ret.unreadable = result.workbook, result.report, result.reason
    if ret.unreadable:
        ret.findings.append(finding("file-unreadable", file=path.name, value=ret.unreadable))
    ret.changed |= _snapshot_or_none(path) != before
    if ret.workbook is not None and not ret.changed:
        _take_sheets(ret, registry, form)
    if ret.workbook is not None:
        ret.format = ret.workbook.format
    ret.workbook = None  # the located tables hold what later stages need; a run holds thousands
    return ret


def _take_sheets(ret: ReturnFile, registry: Registry, form: Form) -> None:
    """Match sheets to the form, clean their text, locate tables, identify unit and period."""
    sheets = match_sheets(ret.workbook, form)
    for key, spec in form.sheets.items():
        if key not in sheets:
            ret.findings.append(finding("missing-sheet", file=ret.name, expected=spec.name))
    problems = {key: clean_sheet(sheet) for key, sheet in sheets.items()}
    cover = read_cover(sheets["cover"], form.cover) if "cover" in sheets else {}
    for key, sheet in sheets.items():
        if form.sheets[key].layout == "table":
            ret.tables[key] = locate_table(sheet, form.sheets[key])
    ret.identity = identify(cover, ret.name, registry, content_texts(sheets, ret.tables))
    cover_sheet = sheets["cover"].name if "cover" in sheets else form.cover.name
    ret.findings += _identity_findings(ret.identity, ret.name, cover_sheet)
    ret.findings += _header_findings(ret, ret.name)
    ret.findings += _text_findings(problems, sheets, ret.tables, ret.name)


def match_sheets(book: RawWorkbook, form: Form) -> dict[str, RawSheet]:
    """Form sheet key → the workbook's sheet: by name or alias, else by its header or cover labels."""
    matched: dict[str, RawSheet] = {}
    for key, spec in form.sheets.items():
        sheet = next((s for s in book.sheets if normalise_label(s.name) in spec.labels()), None)
        if sheet is not None:
            matched[key] = sheet
    free = [s for s in book.sheets if all(s is not m for m in matched.values())]
    for key, spec in form.sheets.items():
        if key in matched:
            continue
        sheet = next((s for s in free if _looks_like(s, spec)), None)
        if sheet is not None:
            matched[key] = sheet
            free.remove(sheet)
    return matched


def _looks_like(sheet: RawSheet, spec: SheetSpec) -> bool:
    """A table: half the required columns in its header; a cover: a unit and a period label."""
    if spec.layout != "table":
        found = read_cover(sheet, spec)
        return ("unit_name" in found or "unit_code" in found) and "period" in found
    if find_header_row(sheet, spec) is None:
        return False
    table = locate_table(sheet, spec)
    required = [c for c in spec.columns if c.required]
    return len([c for c in required if c.name in table.letters]) * 2 >= len(required)


def content_texts(sheets: dict[str, RawSheet], tables: dict[str, LocatedTable]) -> list[str]:
    """Title texts above each table's header, where a unit and month are often written."""
    texts = []
    for key, table in tables.items():
        sheet = sheets[key]
        for r in range(sheet.top, min(table.header_row - 1, sheet.top + TITLE_ROWS)):
            texts += [v for c in range(sheet.left, min(sheet.n_cols, sheet.left + 10))
                      if isinstance(v := sheet.cell(r, c), str)]
    return texts + [s.name for s in sheets.values()]


def _identity_findings(ident: Identity, file_name: str, sheet: str) -> list[Finding]:
    found: list[Finding] = []
    cover = ident.cover
    if ident.unit is None:
        entry = cover.get("unit_name") or cover.get("unit_code")
        found.append(finding("unknown-unit", file=file_name, sheet=sheet, cell=entry.cell if entry else "",
                             row=entry.row if entry else None, field="单位名称",
                             value=as_text(entry.value) if entry else "", expected="本街道登记的村(居)"))
    if ident.period is None:
        entry = cover.get("period")
        found.append(finding("period-missing", file=file_name, sheet=sheet, cell=entry.cell if entry else "",
                             row=entry.row if entry else None, field="报告期",
                             value=as_text(entry.value) if entry else "", expected=PERIOD_FORMS))
    return found


def _header_findings(ret: ReturnFile, file_name: str) -> list[Finding]:
    found = []
    for table in ret.tables.values():
        for p in table.problems:
            found.append(finding(p.kind, file=file_name, sheet=table.sheet, cell=p.cell, row=p.row,
                                 field=p.column, expected=p.column if p.kind == "missing-column" else ""))
    return found


def _text_findings(problems: dict[str, list[TextProblem]], sheets: dict[str, RawSheet],
                   tables: dict[str, LocatedTable], file_name: str) -> list[Finding]:
    """control-characters and text-too-long, named by the column (or cover label) of the cell."""
    found = []
    for key, items in problems.items():
        by_letter = {letter: name for name, letter in tables[key].letters.items()} if key in tables else {}
        for p in items:
            letter = column_letter(p.col)
            label = by_letter.get(letter) or _label_left_of(sheets[key], p.row, p.col) or f"{letter}{p.row + 1}"
            found.append(finding(p.code, file=file_name, sheet=sheets[key].name, cell=f"{letter}{p.row + 1}",
                                 row=p.row + 1, column=letter, field=label, value=p.value, expected=p.expected))
    return found


def _label_left_of(sheet: RawSheet, row: int, col: int) -> str:
    """On a cover, the label a value stands beside."""
    left = sheet.cell(row, col - 1) if col > sheet.left else None
    return normalise_label(left)[:20] if isinstance(left, str) else ""

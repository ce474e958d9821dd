"""Rewrite the outbox of every period whose inputs changed since its outputs were written.

A stamp file per period holds the fingerprint of what its outputs show; a run whose
fingerprint matches writes nothing (runs are idempotent), and a run killed before the
stamp was written rewrites that period next time (crashes lose nothing). Within a period
rewritten, a unit's workbook is annotated again only when what it shows has changed (a
second stamp file): a month's nights rewrite the street's outputs, not every unit's book.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, ContextManager

from pipeline.findings import Finding
from pipeline.forms import load_form
from pipeline.period import PeriodState, fingerprint, load_period
from pipeline.registry import Registry
from pipeline.resources import build_digest
from pipeline.store.history import History
from pipeline.store.ledger import safe_name
from pipeline.workspace import Workspace
from pipeline.write.book_writers import ArchivedValues, close_archive_reader, write_in_parallel
from pipeline.write.report import write_findings_csv, write_report_json
from pipeline.write.privacy import for_street
from pipeline.write.safe import OutputInUse, atomic_file, remove_output
from pipeline.write.street_report import write_street_report
from pipeline.write.summary import floating_counter, floating_fields, write_summary
from pipeline.write.unit_book import write_unit_book

STAMP = ".outputs-state"
BOOKS_STAMP = ".unit-books-state"  # unit workbook name → digest of what it shows, beside STAMP
BOOKS_IN_PARALLEL_FROM = 4  # books to write: fewer are written here (a writing process takes ~0.3 s to start)
UNIT_FOLDER = "退回各村居"


def output_names(registry: Registry, period: str) -> dict[str, str]:
    street = safe_name(registry.street.name)
    return {"summary": f"{street}_{period}_汇总.xlsx", "errors": f"{street}_{period}_错误报告.xlsx",
            "report": "report.json", "findings": "findings.csv"}


def write_period_outputs(history: History, registry: Registry, ws: Workspace, now: dt.datetime,
                         timed: Callable[[str], ContextManager] = lambda stage: nullcontext(),
                         workers: int = 1) -> tuple[list[str], list[Path]]:
    """Rewrite the outputs of each period whose fingerprint changed; return those periods, and the
    outputs that could not be replaced because another program has them open.

    `timed("merge")` is around the merging of each period's accepted returns (RunResult.timed);
    unit workbooks are written by up to `workers` processes. A period with an output in use
    is written but for that output, and not stamped: the next run writes it again.
    """
    written, in_use = [], []
    for period in history.periods():
        folder = ws.outbox / period
        stamp = fingerprint(history, registry, period)
        if (folder / STAMP).is_file() and (folder / STAMP).read_text() == stamp:
            continue
        with timed("merge"):
            state = load_period(history, registry, load_form(), period, now, floating_counter(period),
                                floating_fields())
        try:
            write_period(state, folder, workers, ws.filed)
        except OutputInUse as exc:
            in_use += exc.paths
            continue
        with atomic_file(folder / STAMP) as temp:
            temp.write_text(stamp)
        written.append(period)
    return written, in_use


def write_period(state: PeriodState, folder: Path, workers: int = 1, filed: Callable[[str], Path] = Path) -> None:
    """The summary, the street's error report, report.json, findings.csv and the unit workbooks
    (`filed`: where an archived return is now, Workspace.filed).

    An output someone has open (Windows keeps it from being replaced) does not stop the
    others: they are written, then OutputInUse names every one that was not.
    """
    names = output_names(state.registry, state.period)
    street = for_street(state.findings, state.registry.settings.mask_ids)  # masked once for the three outputs
    in_use: list[Path] = []
    for write in (lambda: write_summary(state, folder / names["summary"]),
                  lambda: write_street_report(state, folder / names["errors"], street),
                  lambda: write_report_json(state, folder / names["report"], street),
                  lambda: write_findings_csv(street, folder / names["findings"]),
                  lambda: write_unit_books(state, folder / UNIT_FOLDER, workers, filed)):
        try:
            write()
        except OutputInUse as exc:
            in_use += exc.paths
    if in_use:
        raise OutputInUse(in_use)


def write_unit_books(state: PeriodState, folder: Path, workers: int = 1, filed: Callable[[str], Path] = Path) -> None:
    """One annotated workbook per return with findings (superseded ones kept: they were sent back).

    A book already there is annotated again only when its digest (the return, its findings,
    due date, wording) has changed. A book takes 20 ms–1 s (more when openpyxl has to clean
    or rebuild it), after reading has ended and one core would idle: with several books,
    `workers` processes write them.
    """
    stamps_path = folder.parent / BOOKS_STAMP
    written = _read_stamps(stamps_path)
    stamps: dict[str, str] = {}
    lang = state.registry.settings.lang
    contact = (f"如有疑问请联系{state.registry.street.name}计生办。" if lang == "zh"
               else f"Questions: the {state.registry.street.name} family-planning office.")
    units = {u.code: u for u in state.registry.units}
    books = []  # (path, unit name, due, findings, archived return) of each book to write
    for r in state.returns:
        findings = [f for f in state.findings_by_return.get(r.id, []) if f.severity != "info"]
        if r.status not in ("accepted", "rejected", "superseded") or not findings or r.unit not in units:
            continue
        unit = units[r.unit]
        path = folder / safe_name(f"{unit.code}_{unit.name}_{state.period}_审核结果_{r.sha256[:8]}.xlsx")
        due = state.submission(unit.code).due
        stamps[path.name] = _book_digest(r.sha256, unit.name, state.period, due, findings, contact, lang)
        if written.get(path.name) != stamps[path.name] or not path.is_file():
            books.append((path, unit.name, due, findings, filed(r.archived_as)))
    in_use: list[Path] = []  # books someone has open: the others are written, these next run
    calls = [((path, name, state.period, due, findings, ArchivedValues(source), contact),
              {"source": source, "lang": lang}) for path, name, due, findings, source in books]
    if workers > 1 and len(books) >= BOOKS_IN_PARALLEL_FROM:
        in_use += write_in_parallel(calls, workers)
    else:
        try:
            for args, kwargs in calls:
                try:
                    write_unit_book(*args, **kwargs)
                except OutputInUse as exc:
                    in_use += exc.paths
        finally:
            close_archive_reader()
    for path in in_use:  # the old book is still there: stamped as it was, so the next run writes it
        stamps[path.name] = written.get(path.name, "")
    for old in folder.glob("*.xlsx") if folder.exists() else []:
        if old.name not in stamps:
            try:
                remove_output(old)
            except OutputInUse as exc:  # not stamped: the next run removes it
                in_use += exc.paths
    with atomic_file(stamps_path) as temp:
        temp.write_text(json.dumps(stamps, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    if in_use:
        raise OutputInUse(in_use)


def _book_digest(sha256: str, unit_name: str, period: str, due: dt.date, findings: list[Finding], contact: str,
                 lang: str) -> str:
    """What a unit's workbook shows, as one hash: equal hashes, equal books."""
    payload = json.dumps([build_digest(), sha256, unit_name, period, due.isoformat(), contact, lang,
                          [f.to_dict() for f in findings]], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _read_stamps(path: Path) -> dict[str, str]:
    """The digests of the books written last time; none when missing or unreadable (all are rewritten)."""
    try:
        stamps = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}

"""Filing: record each file's outcome in the history, then move it to archive or quarantine.

The order makes a crash harmless: the history row (with the file's destination) is
committed first, the file is moved second. A file left in the inbox whose hash the
history already knows, with its destination still empty, is moved on the next run.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.check import REGISTERS, CheckedReturn, no_earlier_persons
from pipeline.findings import Finding
from pipeline.intake.returns import ReturnFile, file_sha256
from pipeline.store.history import History, StoredReturn
from pipeline.store.ledger import archive_path, free_path, move_into, quarantine_path, safe_name, write_reason
from pipeline.workspace import Workspace


@dataclass
class Outcome:
    """What became of one inbox file in this run."""

    file: str
    sha256: str
    status: str  # accepted | rejected | quarantined | duplicate
    return_id: int = 0
    unit: str = ""
    unit_name: str = ""
    period: str = ""
    errors: int = 0
    warnings: int = 0
    filed_as: str = ""
    reason: str = ""


def finish_interrupted(history: History, paths: list[Path]) -> list[tuple[Path, str]]:
    """Complete the moves a killed run left undone; return the other files with their hashes."""
    pending = []
    for path in paths:
        sha = file_sha256(path)
        known = history.returns(sha256=sha)
        unfinished = [r for r in known if not Path(r.archived_as).exists()]
        if unfinished:
            _move(path, Path(unfinished[0].archived_as), unfinished[0])
        elif any(Path(r.archived_as).exists() and os.path.samefile(path, r.archived_as) for r in known):
            path.unlink()  # killed between linking into the archive and dropping the inbox name
        else:
            pending.append((path, sha))
    return pending


def _move(path: Path, target: Path, stored: StoredReturn) -> None:
    if stored.status == "quarantined":
        write_reason(target, stored.reason, stored.file_name, stored.sha256)
    move_into(path, target)


def file_quarantined(history: History, ws: Workspace, run_id: int, f: ReturnFile, now: dt.datetime) -> Outcome:
    """A file that cannot be filed under a unit and period goes to quarantine with its reason."""
    target = quarantine_path(ws.quarantine, f.sha256, f.name, now)
    stored = _stored(f, target, "quarantined", f.quarantine_reason)
    with history.transaction() as db:
        rid = history.add_return(db, stored, run_id)
        history.add_findings(db, rid, f.findings)
    _move(f.path, target, stored)
    return Outcome(f.name, f.sha256, "quarantined", rid, f.unit.code if f.unit else "",
                   f.unit.name if f.unit else "", f.period or "", filed_as=str(target), reason=f.quarantine_reason)


def file_repeat(history: History, ws: Workspace, run_id: int, f: ReturnFile) -> Outcome:
    """The same content again: kept beside the first copy, recorded, not processed twice."""
    first = history.returns(sha256=f.sha256)
    folder = Path(first[0].archived_as).parent if first else ws.archive / "重复文件"
    target = free_path(folder / f"重复_{f.sha256[:12]}_{safe_name(f.name)}")
    reason = f"与已处理的文件“{first[0].file_name}”内容相同" if first else "本次收到两份内容相同的文件"
    stored = _stored(f, target, "duplicate", reason)
    with history.transaction() as db:
        rid = history.add_return(db, stored, run_id)
    move_into(f.path, target)
    return Outcome(f.name, f.sha256, "duplicate", rid, stored.unit or "", "", stored.period or "",
                   filed_as=str(target), reason=reason)


def file_checked(history: History, ws: Workspace, run_id: int, checked: list[CheckedReturn],
                 earlier_warnings: dict[int, list[Finding]]) -> list[Outcome]:
    """Record each checked return with its figures, registers and findings; archive the file."""
    add_earlier_warnings(history, earlier_warnings)  # first: redone harmlessly if a crash follows
    outcomes = []
    for c in checked:
        f = c.file
        target = archive_path(ws.archive, f.period, f.unit, f.sha256, f.name, f.received_at)
        stored = _stored(f, target, c.verdict, "")
        with history.transaction() as db:
            rid = history.add_return(db, stored, run_id)
            history.add_figures(db, rid, c.figures)
            for key, persons in c.persons.items():
                history.add_persons(db, rid, key, persons)
            history.add_findings(db, rid, c.findings)
            for layout in c.layouts:
                history.add_layout(db, rid, layout)
            restand(history, db, f.unit.code, f.period)
            history.mark_pending(db, f.unit.code, f.period)
        move_into(f.path, target)
        outcomes.append(Outcome(f.name, f.sha256, c.verdict, rid, f.unit.code, f.unit.name, f.period,
                                filed_as=str(target)))
    return outcomes


def restand(history: History, db, unit: str, period: str) -> None:
    """The latest return of a unit and period stands (later 填报日期, then later arrival); older ones are superseded."""
    candidates = [r for r in history.returns(unit=unit, period=period) if r.verdict in ("accepted", "rejected")]
    if not candidates:
        return
    latest = max(candidates, key=lambda r: (r.filled_on or dt.date.min, r.received_at, r.id))
    for r in candidates:
        status = r.verdict if r is latest else "superseded"
        if r.status != status:
            history.set_status(db, r.id, status)


def add_earlier_warnings(history: History, warnings: dict[int, list[Finding]]) -> None:
    """Warnings found now about returns accepted before; each is added once only."""
    if not warnings:
        return
    held = history.findings_of(list(warnings))
    with history.transaction() as db:
        for rid, found in warnings.items():
            known = {(f.code, f.sheet, f.cell) for f in held[rid]}
            new = [f for f in found if (f.code, f.sheet, f.cell) not in known]
            history.add_findings(db, rid, list({(f.code, f.sheet, f.cell): f for f in new}.values()))


def earlier_persons(history: History, files: list[ReturnFile]) -> dict[str, pd.DataFrame]:
    """Registers of the accepted returns that stand for the periods of `files`, other units only."""
    result = no_earlier_persons()
    for period in sorted({f.period for f in files}):
        resubmitting = {f.unit.code for f in files if f.period == period}
        standing = [r for r in history.returns(period=period)
                    if r.status == "accepted" and r.unit not in resubmitting]
        if not standing:
            continue
        info = {r.id: r for r in standing}
        for key in REGISTERS:
            persons = history.persons_of(list(info), key)
            if persons.empty:
                continue
            frame = pd.DataFrame({
                "return_id": persons["return_id"], "unit": persons["return_id"].map(lambda i: info[i].unit),
                "unit_name": "", "period": period,
                "file": persons["return_id"].map(lambda i: info[i].file_name),
                "id_number": persons["id_number"], "cell": persons["record"].map(lambda r: r.get("_cell", "")),
                "row": persons["record"].map(lambda r: r.get("_row")),
                "column": persons["record"].map(lambda r: r.get("_column", "")),
            })
            result[key] = pd.concat([result[key], frame], ignore_index=True)
    return result


def _stored(f: ReturnFile, target: Path, verdict: str, reason: str) -> StoredReturn:
    return StoredReturn(0, f.sha256, f.name, str(target), f.unit.code if f.unit else None, f.period,
                        verdict, verdict, f.received_at, f.identity.filled_on if f.identity else None, reason)


def settle_outcomes(history: History, outcomes: list[Outcome]) -> None:
    """After reconciliation: each checked return's final verdict and finding counts."""
    found = history.findings_of([o.return_id for o in outcomes])
    for o in outcomes:
        o.errors = sum(f.severity == "error" for f in found[o.return_id])
        o.warnings = sum(f.severity == "warning" for f in found[o.return_id])
        if o.status in ("accepted", "rejected"):  # as recheck sets the verdict: any error rejects
            o.status = "rejected" if o.errors else "accepted"

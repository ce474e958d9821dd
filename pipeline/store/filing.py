"""Filing: record each file's outcome in the history, then move it to archive or quarantine.

The order makes a crash harmless: the history row (with the file's destination) is
committed first, the file is moved second. A file left in the inbox whose hash the
history already knows, with its destination still empty, is moved on the next run.
Checked returns are filed in batches: a batch's rows in one transaction, then its files.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.check import EARLIER_COLUMNS, CheckedReturn, EarlierPersons
from pipeline.findings import Finding
from pipeline.forms import Form, load_form
from pipeline.intake.returns import ReturnFile, file_sha256
from pipeline.periods import month_end
from pipeline.store.history import History, StoredReturn
from pipeline.store.ledger import (DUPLICATES_FOLDER, archive_path, drop_inbox_name, free_path, move_into,
                                   quarantine_path, safe_name, write_reason)
from pipeline.validate.registers import has_left
from pipeline.workspace import Workspace

# Returns recorded per transaction. Each commit syncs the disk, and a return's persons
# dirty index pages that the next returns touch again: one commit per batch, not per
# return. A crash loses at most the batch's history rows; its files are still in the inbox.
FILING_BATCH = 100
PLACE_FIELDS = ("_cell", "_row", "_column")  # where a person stood in the return
LEAVING_FIELDS = ("变动", "流出日期")  # and whether she left the register that month: all earlier_persons reads
CHECKED = ("accepted", "rejected")  # verdicts of returns that went through the checks (not quarantined, not repeats)


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
    name_kept: bool = False  # filed, but its inbox name stays: another program holds it open (a later run drops it)
    stands: bool = True  # filed, but another return of its unit and month stands (a later 填报日期): not counted


def finish_interrupted(history: History, ws: Workspace,
                       paths: list[Path]) -> tuple[list[tuple[Path, str]], list[Path]]:
    """Complete the moves a killed run left undone; return the other files with their hashes, and the
    files filed already whose inbox names are still held open (left for a later run).

    A move is completed only into this working folder's archive or quarantine: a file is never
    sent where a history copied from elsewhere says it once went.
    """
    pending, held = [], []
    for path in paths:
        sha = file_sha256(path)
        places = [(r, ws.filed(r.archived_as)) for r in history.returns(sha256=sha)]
        unfinished = [(r, place) for r, place in places if not place.exists() and ws.holds(place)]
        if unfinished:
            _move(path, unfinished[0][1], unfinished[0][0])
        elif any(place.exists() and os.path.samefile(path, place) for _, place in places):
            # killed between linking into the archive and dropping the inbox name, or the file was
            # open then (Windows), and maybe still is: then its name stays for a later run
            if not drop_inbox_name(path):
                held.append(path)
        else:
            pending.append((path, sha))
    return pending, held


def _move(path: Path, target: Path, stored: StoredReturn) -> bool:
    if stored.status == "quarantined":
        write_reason(target, stored.reason, stored.file_name, stored.sha256)
    return move_into(path, target)


def file_quarantined(history: History, ws: Workspace, run_id: int, f: ReturnFile, now: dt.datetime) -> Outcome:
    """A file that cannot be filed under a unit and period goes to quarantine with its reason."""
    target = quarantine_path(ws.quarantine, f.sha256, f.name, now)
    stored = _stored(f, target, "quarantined", f.quarantine_reason)
    with history.transaction() as db:
        rid = history.add_return(db, stored, run_id)
        history.add_findings(db, rid, f.findings)
    moved = _move(f.path, target, stored)
    return Outcome(f.name, f.sha256, "quarantined", rid, f.unit.code if f.unit else "",
                   f.unit.name if f.unit else "", f.period or "", filed_as=str(target), reason=f.quarantine_reason,
                   name_kept=not moved)


def file_repeat(history: History, ws: Workspace, run_id: int, f: ReturnFile) -> Outcome:
    """The same content again: kept beside the first copy, recorded, not processed twice."""
    first = history.returns(sha256=f.sha256)
    beside = ws.filed(first[0].archived_as).parent if first else None
    folder = beside if beside is not None and ws.holds(beside) else ws.archive / DUPLICATES_FOLDER
    target = free_path(folder / f"重复_{f.sha256[:12]}_{safe_name(f.name)}")
    reason = f"与已处理的文件“{first[0].file_name}”内容相同" if first else "本次收到两份内容相同的文件"
    stored = _stored(f, target, "duplicate", reason)
    with history.transaction() as db:
        rid = history.add_return(db, stored, run_id)
    moved = move_into(f.path, target)
    return Outcome(f.name, f.sha256, "duplicate", rid, stored.unit or "", "", stored.period or "",
                   filed_as=str(target), reason=reason, name_kept=not moved)


def file_checked(history: History, ws: Workspace, run_id: int, checked: list[CheckedReturn],
                 earlier_warnings: dict[int, list[Finding]]) -> list[Outcome]:
    """Record each checked return with its figures, registers and findings; archive the file."""
    add_earlier_warnings(history, earlier_warnings)  # first: redone harmlessly if a crash follows
    outcomes = []
    for start in range(0, len(checked), FILING_BATCH):
        outcomes += file_batch(history, ws, run_id, checked[start:start + FILING_BATCH])
    return outcomes


def file_batch(history: History, ws: Workspace, run_id: int, batch: list[CheckedReturn]) -> list[Outcome]:
    """Record a batch of returns in one transaction, then move their files (history first: see above)."""
    taken: set[Path] = set()
    targets = []
    for c in batch:
        f = c.file
        targets.append(archive_path(ws.archive, f.period, f.unit, f.sha256, f.name, f.received_at, taken))
        taken.add(targets[-1])
    with history.transaction() as db:
        ids = [record_checked(history, db, run_id, c, target) for c, target in zip(batch, targets)]
        for period in sorted({c.file.period for c in batch}):
            restand_units(history, db, period, {c.file.unit.code for c in batch if c.file.period == period})
    moved = [move_into(c.file.path, target) for c, target in zip(batch, targets)]
    return [Outcome(c.file.name, c.file.sha256, c.verdict, rid, c.file.unit.code, c.file.unit.name, c.file.period,
                    filed_as=str(target), name_kept=not done)
            for c, rid, target, done in zip(batch, ids, targets, moved)]


def record_checked(history: History, db, run_id: int, c: CheckedReturn, target: Path) -> int:
    """One checked return's history rows (its unit's months from this one on wait for reconciliation)."""
    f = c.file
    rid = history.add_return(db, _stored(f, target, c.verdict, ""), run_id)
    history.add_figures(db, rid, c.figures.groups, c.figures.names, c.figures.values)
    for key in c.persons:
        history.add_persons(db, rid, key, *c.persons.columns(key))
    history.add_findings(db, rid, c.findings)
    for layout in c.layouts:
        history.add_layout(db, rid, layout)
    history.mark_pending(db, f.unit.code, f.period)
    return rid


def restand_units(history: History, db, period: str, units: set[str]) -> None:
    """Which return stands for each of `units` in `period` (see _restand).

    Each unit's returns are looked up through the (unit, period) index: reading the whole
    period for every batch filed grew with the square of a city's returns (11 s at 10,000).
    """
    for unit in sorted(units):
        same_unit = history.returns(period=period, unit=unit)
        if same_unit:
            _restand(history, db, same_unit)


def _restand(history: History, db, returns: list[StoredReturn]) -> None:
    """The latest of one unit's returns of a period stands (later 填报日期, then later arrival); older ones are
    superseded. `returns`: all of that unit and period."""
    candidates = [r for r in returns if r.verdict in CHECKED]
    if not candidates:
        return
    latest = max(candidates, key=lambda r: (_filled_on(r), r.received_at, r.id))  # (see _filled_on)
    for r in candidates:
        status = r.verdict if r is latest else "superseded"
        if r.status != status:
            history.set_status(db, r.id, status)


def _filled_on(r: StoredReturn) -> dt.date:
    """The cover's 填报日期 as the order of a unit's returns, when it can be true; else the day the file
    arrived. A date after that (2062 for 2026) stood over every correction sent after it, and a correction
    whose 填报日期 was left blank lost to the return it corrects."""
    return r.filled_on if r.filled_on and r.filled_on <= r.received_at.date() else r.received_at.date()


def add_earlier_warnings(history: History, warnings: dict[int, list[Finding]]) -> None:
    """Findings made now about returns filed before (warnings; errors for this run's own); each added once only."""
    if not warnings:
        return
    held = history.findings_of(list(warnings))
    with history.transaction() as db:
        for rid, found in warnings.items():
            known = {(f.code, f.sheet, f.cell) for f in held[rid]}
            new = [f for f in found if (f.code, f.sheet, f.cell) not in known]
            history.add_findings(db, rid, list({(f.code, f.sheet, f.cell): f for f in new}.values()))


def earlier_persons(history: History, files: list[ReturnFile], run_id: int | None = None,
                    form: Form | None = None) -> EarlierPersons:
    """The persons already filed for the periods of `files` and still on their register at its end, looked up
    by ID for the street-wide ID rule.

    The accepted returns of earlier runs that stand (other units only: a unit sending again
    replaces hers), and every return this run (`run_id`) filed in an earlier batch, marked
    `this_run`: checked as if in one batch with `files`. Only the persons holding one of
    the IDs asked for are read: a city's period holds millions.
    """
    form = form or load_form()
    filed_by_period: dict[str, dict[int, StoredReturn]] = {}
    this_run: set[int] = set()
    for period in sorted({f.period for f in files}):
        resubmitting = {f.unit.code for f in files if f.period == period}
        mine = {r.id for r in history.returns(period=period, run_id=run_id)} if run_id is not None else set()
        this_run |= mine
        filed_by_period[period] = {r.id: r for r in history.returns(period=period)
                                   if r.verdict in CHECKED and r.id in mine
                                   or r.status == "accepted" and r.id not in mine and r.unit not in resubmitting}

    def holding(key: str, id_numbers: list[str]) -> pd.DataFrame:
        frames = [pd.DataFrame(columns=EARLIER_COLUMNS)]
        for period, info in filed_by_period.items():
            if not info or not id_numbers:
                continue
            persons = history.persons_of(list(info), key, PLACE_FIELDS + LEAVING_FIELDS, id_numbers=id_numbers)
            end, exits = month_end(period), form.roster.exits
            persons = persons[[not has_left(key, r.get("变动"), r.get("流出日期"), end, exits)
                               for r in persons["record"].tolist()]]
            if persons.empty:
                continue
            ids, records = persons["return_id"].tolist(), persons["record"].tolist()
            frames.append(pd.DataFrame({
                "return_id": persons["return_id"], "unit": [info[i].unit for i in ids],
                "unit_name": "", "period": period, "file": [info[i].file_name for i in ids],
                "id_number": persons["id_number"], "cell": [_text(r["_cell"]) for r in records],
                "row": [r["_row"] for r in records], "column": [_text(r["_column"]) for r in records],
                "this_run": [i in this_run for i in ids],
            }))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    return holding


def _text(value: object) -> object:
    """A record's place field: the pipeline always writes it; a record without one has ""."""
    return "" if value is None else value


def _stored(f: ReturnFile, target: Path, verdict: str, reason: str) -> StoredReturn:
    return StoredReturn(0, f.sha256, f.name, str(target), f.unit.code if f.unit else None, f.period,
                        verdict, verdict, f.received_at, f.identity.filled_on if f.identity else None, reason)


def settle_outcomes(history: History, outcomes: list[Outcome]) -> None:
    """After reconciliation: each checked return's final verdict and finding counts."""
    found = history.severities_of([o.return_id for o in outcomes])
    superseded = history.superseded([o.return_id for o in outcomes])
    for o in outcomes:
        o.stands = o.return_id not in superseded
        o.errors = found[o.return_id].count("error")
        o.warnings = found[o.return_id].count("warning")
        if o.status in ("accepted", "rejected"):  # as recheck sets the verdict: any error rejects
            o.status = "rejected" if o.errors else "accepted"

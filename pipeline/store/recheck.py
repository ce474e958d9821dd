"""Re-run reconciliation from the history store, in month order, wherever last month changed.

Reconciliation findings are derived: when a month is resubmitted (or arrives late), the
following months of that unit are checked again against it, and their verdicts follow.
"""

from __future__ import annotations

from pipeline.findings import Finding, with_severities
from pipeline.forms import Form
from pipeline.periods import shift
from pipeline.reconcile import MonthReturn, reconcile
from pipeline.registry import Registry
from pipeline.store.filing import restand
from pipeline.store.history import History, StoredReturn

STAGE = "reconcile"


def standing_return(history: History, unit: str, period: str) -> StoredReturn | None:
    return next((r for r in history.returns(unit=unit, period=period) if r.status in ("accepted", "rejected")), None)


def load_month(history: History, stored: StoredReturn, unit_name: str) -> MonthReturn:
    return MonthReturn(stored.unit, unit_name, stored.period, stored.file_name, history.figures_of([stored.id]),
                       history.persons_of([stored.id], "roster"), history.layouts_of(stored.id))


def reconcile_pending(history: History, registry: Registry, form: Form) -> None:
    """For each unit waiting, reconcile every month from its earliest waiting month on, then clear it."""
    names = {u.code: u.name for u in registry.units}
    periods = history.periods()
    for unit, first in sorted(history.pending().items()):
        for period in (p for p in periods if p >= first):
            this = standing_return(history, unit, period)
            if this is None:
                continue
            last = standing_return(history, unit, shift(period, -1))
            last = last if last is not None and last.status == "accepted" else None
            found = reconcile(load_month(history, this, names.get(unit, "")),
                              load_month(history, last, names.get(unit, "")) if last else None,
                              form, registry.settings)
            _record(history, this, with_severities(found, registry.settings.severity))
        history.clear_pending(unit)


def _record(history: History, stored: StoredReturn, found: list[Finding]) -> None:
    """Replace the return's reconciliation findings; its verdict follows all its findings."""
    with history.transaction() as db:
        history.replace_findings(db, stored.id, found, STAGE)
        every = history.findings_of([stored.id])[stored.id]
        history.set_verdict(db, stored.id, "rejected" if any(f.blocks for f in every) else "accepted")
        restand(history, db, stored.unit, stored.period)

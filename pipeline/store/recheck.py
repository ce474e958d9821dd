"""Re-run reconciliation from the history store, in month order, wherever last month changed.

Reconciliation findings are derived: when a month is resubmitted (or arrives late), the
following months of that unit are checked again against it, and their verdicts follow.

Months are done in order, all waiting units of a month together: their returns are read
in bulk (a few queries per UNITS_AT_ONCE units, not a few per unit) and their findings
recorded in one transaction. A crash leaves the units pending; the next run redoes them,
with the same result.
"""

from __future__ import annotations

from pipeline.findings import Finding, with_severities
from pipeline.forms import Form
from pipeline.periods import shift
from pipeline.reconcile import Figures, MonthReturn, Roster, reconcile, roster_fields
from pipeline.registry import Registry
from pipeline.store.filing import restand_units
from pipeline.store.history import History, StoredReturn, paused_gc

STAGE = "reconcile"
UNITS_AT_ONCE = 100  # returns read and recorded together: bounds the memory of the decoded rosters


def standing_returns(history: History, period: str) -> dict[str, StoredReturn]:
    """Unit → the return that stands for it in `period` (accepted or rejected), if any."""
    standing: dict[str, StoredReturn] = {}
    for r in history.returns(period=period):
        if r.status in ("accepted", "rejected"):
            standing.setdefault(r.unit, r)
    return standing


def load_months(history: History, returns: list[StoredReturn], names: dict[str, str],
                roster_fields: tuple[str, ...]) -> dict[int, MonthReturn]:
    """Return id → what reconciliation needs of it, for many returns in a few queries."""
    ids = [r.id for r in returns]
    figures: dict[int, list[tuple]] = {i: [] for i in ids}
    for rid, group, name, value in history.figure_rows(ids):
        figures[rid].append((group, name, value))
    rosters = history.person_fields(ids, "roster", roster_fields)
    layouts = history.layouts_by_return(ids)
    return {r.id: MonthReturn(r.unit, names.get(r.unit, ""), r.period, r.file_name, Figures(figures[r.id]),
                              Roster(rosters[r.id]), layouts[r.id]) for r in returns}


def reconcile_pending(history: History, registry: Registry, form: Form) -> None:
    """For each unit waiting, reconcile every month from its earliest waiting month on, then clear it."""
    waiting = history.pending()
    if not waiting:
        return
    for period in history.periods():
        units = sorted(u for u, first in waiting.items() if first <= period)
        if units:
            reconcile_period(history, registry, form, period, units)
    history.clear_pending(sorted(waiting))


def reconcile_period(history: History, registry: Registry, form: Form, period: str, units: list[str]) -> None:
    """Reconcile the standing returns of `units` in `period` against last month's accepted ones."""
    this = standing_returns(history, period)  # read now: the month before may just have changed
    last = {u: r for u, r in standing_returns(history, shift(period, -1)).items() if r.status == "accepted"}
    units = [u for u in units if u in this]
    for start in range(0, len(units), UNITS_AT_ONCE):
        chunk = units[start:start + UNITS_AT_ONCE]
        with paused_gc():  # what the chunk reads is freed inside, before the collector runs again
            found = reconcile_units(history, registry, form, [this[u] for u in chunk],
                                    {u: last[u] for u in chunk if u in last})
        _record(history, period, found)


def reconcile_units(history: History, registry: Registry, form: Form, this: list[StoredReturn],
                    last: dict[str, StoredReturn]) -> list[tuple[StoredReturn, list[Finding]]]:
    """Each of `this` with its findings against the same unit's return in `last` (if any)."""
    names = {u.code: u.name for u in registry.units}
    months = load_months(history, [r for r in this if r.unit not in last], names, roster_fields(baseline=True))
    months |= load_months(history, [r for r in this if r.unit in last] + list(last.values()), names,
                          roster_fields(baseline=False))
    return [(r, with_severities(reconcile(months[r.id], months[last[r.unit].id] if r.unit in last else None, form,
                                          registry.settings), registry.settings.severity)) for r in this]


def _record(history: History, period: str, results: list[tuple[StoredReturn, list[Finding]]]) -> None:
    """Replace each return's reconciliation findings; its verdict follows all its findings."""
    with history.transaction() as db:
        for stored, found in results:
            history.replace_findings(db, stored.id, found, STAGE)
        blocked = {stored.id for stored, found in results if any(f.blocks for f in found)}
        blocked |= history.blocked([stored.id for stored, _ in results if stored.id not in blocked])
        for stored, _ in results:
            history.set_verdict(db, stored.id, "rejected" if stored.id in blocked else "accepted")
        restand_units(history, db, period, {stored.unit for stored, _ in results})

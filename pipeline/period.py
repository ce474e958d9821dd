"""A period's state, assembled from the history store: what every output of the period shows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import pandas as pd

from pipeline.findings import Finding, sort_key
from pipeline.forms import Form
from pipeline.merge import YearToDate, street_table, unit_totals, year_to_date
from pipeline.periods import arrival_window, deadline, shift, stat_year_months
from pipeline.registry import Registry, Unit
from pipeline.resources import build_digest
from pipeline.status import days_late
from pipeline.store.history import History, StoredReturn, first_accepted_at


@dataclass
class Submission:
    """A registered unit's standing in the period (its standing return, if any)."""

    unit: Unit
    standing: StoredReturn | None
    findings: list[Finding]
    due: dt.date
    first_accepted: dt.datetime | None = None  # arrival of its first return accepted (history.first_accepted_at)

    @property
    def status(self) -> str:
        return self.standing.status if self.standing else "missing"

    @property
    def received(self) -> dt.datetime | None:
        return self.standing.received_at if self.standing else None

    @property
    def reported(self) -> dt.datetime | None:
        """When the unit reported, for timeliness: its first accepted return, else the one that stands."""
        return self.first_accepted or self.received

    @property
    def days_late(self) -> int:
        """Days after the deadline it reported (0 if on time, or nothing came): a correction sent later does not
        make it late."""
        return days_late(self.reported, self.due) if self.reported else 0

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)


FloatingCounter = Callable[[pd.DataFrame], pd.DataFrame]  # floating records with unit -> counts per unit
FLOATING_CHUNK = 500  # returns whose floating registers are read and counted together


@dataclass
class PeriodState:
    period: str
    registry: Registry
    submissions: list[Submission]
    returns: list[StoredReturn]  # every return of the period, superseded and quarantined too
    findings_by_return: dict[int, list[Finding]]
    table: pd.DataFrame  # one row per unit code and 合计; counts, year-to-date and rates
    last_table: pd.DataFrame | None  # last month's unit totals (accepted), if any
    ytd: YearToDate
    floating_counts: pd.DataFrame  # per unit code, the 流动人口汇总 counts of its accepted return
    generated_at: dt.datetime

    @cached_property
    def findings(self) -> list[Finding]:
        """Every finding that stands for the period, errors first (sorted once: several outputs list them)."""
        quarantined = [f for r in self.returns if r.status == "quarantined" for f in self.findings_by_return[r.id]]
        return sorted([f for s in self.submissions for f in s.findings] + quarantined, key=sort_key)

    def submission(self, code: str) -> Submission:
        return next(s for s in self.submissions if s.unit.code == code)


def load_period(history: History, registry: Registry, form: Form, period: str, now: dt.datetime,
                count_floating: FloatingCounter, floating_fields: tuple[str, ...] | None = None) -> PeriodState:
    """Everything the period's outputs show, read from the history store.

    `count_floating` makes the summary's counts per unit from floating-register records
    (with their unit); `floating_fields`: the fields it reads (the records hold only
    those, else every field).
    """
    returns = history.returns(period=period) + undated_quarantined(history, period)
    standing = {r.unit: r for r in returns if r.status in ("accepted", "rejected")}
    findings = history.findings_of([r.id for r in returns])
    due = deadline(period, registry.street.deadline_day)
    first = first_accepted_at(returns)
    submissions = [Submission(u, standing.get(u.code), findings[standing[u.code].id] if u.code in standing else [], due,
                              first.get(u.code)) for u in registry.units]
    counts = [c.name for c in form.monthly.columns if c.type == "count"]
    months = stat_year_months(period, registry.settings.stat_year_start_month)
    monthly = {m: accepted_totals(history, m, counts) for m in months}
    ytd = year_to_date({m: t for m, t in monthly.items() if not t.empty}, months)
    codes = [u.code for u in registry.units]
    previous = shift(period, -1)  # read once: usually a month of the same statistical year
    last = monthly[previous] if previous in monthly else accepted_totals(history, previous, counts)
    accepted = {r.id: r.unit for r in standing.values() if r.status == "accepted"}
    return PeriodState(period, registry, submissions, returns, findings,
                       street_table(monthly[period], ytd, codes), None if last.empty else last,
                       ytd, counted_floating(history, accepted, count_floating, floating_fields), now)


def counted_floating(history: History, units: dict[int, str], count: FloatingCounter,
                     fields: tuple[str, ...] | None) -> pd.DataFrame:
    """`count` over the floating registers of the returns `units` (return id → unit code), read a chunk at a time.

    Only counts per unit are kept: a city's month holds a million floating persons.
    """
    ids, parts = list(units), []
    for start in range(0, len(ids), FLOATING_CHUNK):
        records = history.persons_of(ids[start:start + FLOATING_CHUNK], "floating", fields)
        if not records.empty:
            records["unit"] = records["return_id"].map(units)
            parts.append(count(records))
    if not parts:  # nobody in any accepted floating register
        return count(pd.DataFrame(columns=["return_id", "id_number", "grp", "record", "unit"]))
    return pd.concat(parts).groupby(level=0).sum() if len(parts) > 1 else parts[0]


def accepted_totals(history: History, period: str, counts: list[str]) -> pd.DataFrame:
    """Unit totals (one row per unit code) of the accepted returns that stand for a period."""
    accepted = [r for r in history.returns(period=period) if r.status == "accepted"]
    figures = history.figure_totals([r.id for r in accepted])
    return unit_totals(figures, {r.id: r.unit for r in accepted}, counts)


def undated_quarantined(history: History, period: str) -> list[StoredReturn]:
    """Files quarantined while the period's returns arrive whose month could not be told (January or
    October?): shown with the period's own quarantined files, so the street sees them in its outputs."""
    return [r for r in history.quarantined(period, *arrival_window(period)) if r.period is None]


def fingerprint(history: History, registry: Registry, period: str) -> str:
    """Changes whenever anything the period's outputs show could change."""
    months = set(stat_year_months(period, registry.settings.stat_year_start_month)) | {shift(period, -1)}
    rows = [(r.id, r.status) for m in sorted(months) for r in history.returns(period=m)]
    rows += [(r.id, r.status) for r in undated_quarantined(history, period)]
    ids = [r.id for r in history.returns(period=period)]
    found = history.count_findings(ids)
    settings = repr((registry.street, registry.units, registry.settings))
    payload = json.dumps([build_digest(), rows, found, settings], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()

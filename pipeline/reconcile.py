"""Reconcile: a unit's return against its accepted return of the previous month (pure).

People do not appear and vanish without a record, and this month's opening population
is last month's closing one. Every finding points at a cell of this month's file and
names last month's value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from pipeline.findings import Finding, finding
from pipeline.forms import Form
from pipeline.periods import month_end, month_start, shift
from pipeline.registry import Settings
from pipeline.store.history import Layout
from pipeline.validate.rows import fmt

STOCK_FIGURES = ("期末人口", "已婚育龄妇女", "节育措施", "独生子女证", "流动人口", "流动育龄妇女", "持证人数")
# The roster fields the rules below read, so that the store decodes only these of each
# record (a field a record lacks reads as None): a first month needs only the birth dates
# (births_against_roster). A rule that reads another field must add it here.
ROSTER_FIELDS = ("身份证号", "姓名", "变动", "孕情", "末次生育日期", "备注", "_row")
BASELINE_FIELDS = ("末次生育日期",)


def roster_fields(baseline: bool) -> tuple[str, ...]:
    """The roster fields reconcile() reads of a return: of a first month, or of a month and its last month."""
    return BASELINE_FIELDS if baseline else ROSTER_FIELDS


class Roster:
    """One return's roster as columns (field → each row's value): only the fields the rules read."""

    def __init__(self, columns: dict[str, list]):
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def column(self, name: str) -> list:
        return self.columns[name]

    @cached_property
    def records(self) -> list[dict]:
        """Each row as a record {field: value}."""
        names = list(self.columns)
        return [dict(zip(names, row)) for row in zip(*self.columns.values())]


class Figures:
    """One return's long figures (grp, name, value), indexed once: a rule asks for dozens of sums."""

    def __init__(self, rows: Iterable[tuple[str, str, float | None]]):
        self.by_name: dict[str, list[float]] = {}
        self.by_group: dict[tuple[str, str], list[float]] = {}
        for group, name, value in rows:
            value = math.nan if value is None else value
            self.by_name.setdefault(name, []).append(value)
            self.by_group.setdefault((name, group), []).append(value)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Figures":
        return cls(zip(frame["grp"].tolist(), frame["name"].tolist(), frame["value"].tolist()))

    def total(self, name: str, group: str | None = None) -> float | None:
        """The sum of the rows of `name` (in `group`), blanks as 0, as pandas sums them; None if no row."""
        values = self.by_name.get(name) if group is None else self.by_group.get((name, group))
        return float(np.nansum(np.array(values, dtype=float))) if values else None


@dataclass
class MonthReturn:
    """What reconciliation needs of one unit's return for one month."""

    unit: str
    unit_name: str
    period: str
    file: str
    figures: Figures
    roster: Roster  # the typed values of roster_fields(…) of each row
    layouts: dict[str, Layout]

    def at(self, sheet_key: str, column: str, row: int | None) -> dict:
        layout = self.layouts.get(sheet_key)
        sheet = layout.sheet if layout else ""
        return {"unit": self.unit, "unit_name": self.unit_name, "period": self.period, "file": self.file,
                "sheet": sheet, "cell": layout.cell(column, row) if layout else "", "row": row,
                "column": layout.letters.get(column, "") if layout else ""}

    def figure(self, name: str, group: str | None = None) -> float | None:
        return self.figures.total(name, group)

    def summary_row(self) -> int | None:
        """The row that stands for the unit as a whole: its 合计 row, else the header."""
        layout = self.layouts.get("monthly")
        return (layout.total_row or layout.header_row) if layout else None


def reconcile(this: MonthReturn, last: MonthReturn | None, form: Form, settings: Settings) -> list[Finding]:
    """Every month-on-month rule; a first month (no accepted last month) is a baseline."""
    found = births_against_roster(this)
    if last is None:
        return [finding("reconcile-baseline", **this.at("monthly", "小组", None), expected=shift(this.period, -1))] + found
    return (found + opening_population(this, last) + roster_continuity(this, last, form)
            + pregnancies_ended(this, last) + stock_swings(this, last, settings))


def opening_population(this: MonthReturn, last: MonthReturn) -> list[Finding]:
    """Each group's 期初人口 equals last month's 期末人口 of that group."""
    rows = this.layouts["monthly"].group_rows if "monthly" in this.layouts else {}
    found = []
    for group, row in rows.items():
        opening, closing = this.figure("期初人口", group), last.figure("期末人口", group)
        if opening is not None and closing is not None and opening != closing:
            found.append(finding("opening-mismatch", **this.at("monthly", "期初人口", row), field="期初人口",
                                 value=fmt(opening), expected=f"{fmt(closing)}({group},{last.period})"))
    return found


def roster_continuity(this: MonthReturn, last: MonthReturn, form: Form) -> list[Finding]:
    """Who stays, who leaves with a record, who comes new: last month's roster against this one."""
    exits, new = set(form.roster.exits), form.roster.new_entry
    before = {r["身份证号"]: r for r in last.roster.records}
    now = {r["身份证号"]: r for r in this.roster.records}
    header = this.layouts["roster"].header_row if "roster" in this.layouts else None
    found = []
    for number, r in before.items():
        if number not in now and r.get("变动") not in exits:
            found.append(finding("missing-without-exit", **this.at("roster", "身份证号", header), field="身份证号",
                                 value=f"{r.get('姓名', '')} {number}", expected="本月保留此人并填写变动"))
    for number, r in now.items():
        change = r.get("变动")
        if number not in before and change != new:
            found.append(finding("new-without-flag", **this.at("roster", "变动", r["_row"]), field="变动",
                                 value=number, expected=change or ""))
        elif number in before and before[number].get("变动") in exits and change != new:
            found.append(finding("reappeared-after-exit", **this.at("roster", "变动", r["_row"]), field="变动",
                                 value=number, expected=before[number].get("变动")))
    return found


def pregnancies_ended(this: MonthReturn, last: MonthReturn) -> list[Finding]:
    """孕中 last month and 无 now needs a birth date in this month or a word in 备注."""
    first, end = month_start(this.period).isoformat(), month_end(this.period).isoformat()
    pregnant = {r["身份证号"] for r in last.roster.records if r.get("孕情") == "孕中"}
    found = []
    for r in this.roster.records:
        if r["身份证号"] in pregnant and r.get("孕情") == "无":
            born = r.get("末次生育日期") or ""
            if not (first <= born <= end) and not (r.get("备注") or "").strip():
                found.append(finding("pregnancy-ended-unexplained", **this.at("roster", "孕情", r["_row"]),
                                     field="孕情", value="无", expected="本月的末次生育日期或备注说明"))
    return found


def stock_swings(this: MonthReturn, last: MonthReturn, settings: Settings) -> list[Finding]:
    """A stock figure moving by more than both the share and the count thresholds (DHIS2 min-max style)."""
    found = []
    for name in STOCK_FIGURES:
        now, before = this.figure(name), last.figure(name)
        if now is None or before is None:
            continue
        change = now - before
        share = abs(change) / before if before else float("inf")
        if abs(change) > settings.swing_count and share > settings.swing_share:
            found.append(finding("stock-swing", **this.at("monthly", name, this.summary_row()), field=name,
                                 value=fmt(now), expected=f"{fmt(before)}(增减 {change:+,.0f})"))
    return found


def births_against_roster(this: MonthReturn) -> list[Finding]:
    """The table's births equal the roster's women with a 末次生育日期 in the month."""
    births = this.figure("出生")
    if births is None or not this.roster:
        return []
    first, end = month_start(this.period).isoformat(), month_end(this.period).isoformat()
    mothers = sum(first <= (born or "") <= end for born in this.roster.column("末次生育日期"))
    if mothers == births:
        return []
    return [finding("births-vs-roster", **this.at("monthly", "出生", this.summary_row()), field="出生",
                    value=fmt(births), expected=str(mothers))]

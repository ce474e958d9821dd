"""Who has submitted for a period, on time or late: read from the history store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pipeline.periods import arrival_window, deadline
from pipeline.registry import Registry
from pipeline.resources import SUMMARY_LAYOUT, load_schema_file
from pipeline.store.history import History, StoredReturn, first_accepted_at
from pipeline.workspace import Workspace


# What each outcome of a return is called wherever a person reads it.
STATUS_ZH = {"accepted": "已接收", "rejected": "已退回", "quarantined": "已隔离", "duplicate": "重复文件",
             "superseded": "已被更正件取代", "missing": "未报送"}
NOT_STANDING_ZH = "(未采用:本单位本月另有一份填报日期更晚的月报,以那份为准)"
# after a file's line: filed, but its inbox name stays (Windows: open in Excel) until a later run
NAME_KEPT_ZH = "(已归档;收件箱里的这份暂时移不走:正被其他程序打开,或无权删除。以后的运行会再试)"


@dataclass
class StatusLine:
    unit_code: str
    unit_name: str
    status: str
    received: str
    timeliness: str
    errors: int
    warnings: int


@dataclass
class PeriodStatus:
    period: str
    due: dt.date
    lines: list[StatusLine]
    quarantined: list[StoredReturn] = field(default_factory=list)  # its files no one could take, and why


def days_late(reported: dt.datetime, due: dt.date) -> int:
    """Whole days after the deadline a unit reported (0 on or before it)."""
    return max(0, (reported.date() - due).days)


def timeliness(received: dt.datetime | None, due: dt.date, today: dt.date, first: dt.datetime | None = None,
               words: dict[str, str] | None = None) -> str:
    """按时 / 逾期N天 / 未报送 (逾期未报 once the deadline has passed), in the summary layout's `words`.

    Judged by `first`, the arrival of the unit's first accepted return, where it has one: a
    correction sent after the deadline does not make a unit that reported in time late, and
    the day it first reported is said when a later return stands (`received`).
    """
    words = words or load_schema_file(SUMMARY_LAYOUT)["timeliness"]
    if received is None:
        return words["overdue"] if today > due else words["not_yet"]
    reported = first or received
    late = days_late(reported, due)
    word = words["late"].format(days=late) if late else words["on_time"]
    return word if reported == received else word + words["first_reported"].format(date=f"{reported:%m-%d}")


def period_status(ws: Workspace, registry: Registry, period: str | None,
                  today: dt.date | None = None) -> PeriodStatus | None:
    """Each registered unit's standing return for the period (the latest period if none given)."""
    if not ws.history.exists():
        return None
    today = today or dt.date.today()
    with History(ws.history) as history:
        periods = history.periods()
        if not periods:
            return None
        period = period or periods[-1]
        returns = history.returns(period=period)
        standing = {r.unit: r for r in returns if r.status in ("accepted", "rejected")}
        first = first_accepted_at(returns)
        found = history.findings_of([r.id for r in standing.values()])
        quarantined = history.quarantined(period, *arrival_window(period))
    due = deadline(period, registry.street.deadline_day)
    lines = []
    for unit in registry.units:
        r = standing.get(unit.code)
        fs = found.get(r.id, []) if r else []
        lines.append(StatusLine(unit.code, unit.name, r.status if r else "missing",
                                r.received_at.isoformat(sep=" ", timespec="minutes") if r else "",
                                timeliness(r.received_at if r else None, due, today, first.get(unit.code)),
                                sum(f.severity == "error" for f in fs), sum(f.severity == "warning" for f in fs)))
    return PeriodStatus(period, due, lines, quarantined)


@dataclass
class HistoryLine:
    period: str
    file: str
    received: str
    status: str
    errors: int
    warnings: int
    totals: dict[str, float]


KEY_TOTALS = ("期末人口", "出生", "死亡", "已婚育龄妇女", "节育措施", "流动人口")


def unit_history(ws: Workspace, registry: Registry, unit_text: str) -> tuple[str, list[HistoryLine]] | None:
    """Every return a unit has sent, month by month, with its outcome and key totals."""
    unit = registry.unit_by_code(unit_text) or registry.find_unit(unit_text)
    if unit is None or not ws.history.exists():
        return None
    with History(ws.history) as history:
        returns = [r for r in history.returns(unit=unit.code) if r.verdict != "duplicate"]
        found = history.findings_of([r.id for r in returns])
        figures = history.figures_of([r.id for r in returns])
    lines = []
    for r in sorted(returns, key=lambda r: (r.period or "", r.received_at)):
        mine = figures[figures["return_id"] == r.id]
        totals = {k: float(mine.loc[mine["name"] == k, "value"].sum()) for k in KEY_TOTALS if k in set(mine["name"])}
        lines.append(HistoryLine(r.period or "", r.file_name, r.received_at.isoformat(sep=" ", timespec="minutes"),
                                 r.status, sum(f.severity == "error" for f in found[r.id]),
                                 sum(f.severity == "warning" for f in found[r.id]), totals))
    return unit.name, lines

"""Merge: accepted returns to street tables, year-to-date figures and rates (pure functions).

Rates are always computed from merged counts, never averaged and never taken from a
unit's own rate columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TOTAL = "合计"
YTD_COLUMNS = ["本年累计出生", "本年累计死亡", "本年累计政策内出生", "年初人口"]
RATE_COLUMNS = ["出生率", "自然增长率", "综合节育率", "计划生育率", "流动育龄妇女节育率"]


@dataclass(frozen=True)
class YearToDate:
    """Per unit: the year's sums over accepted months, and which months are missing."""

    sums: pd.DataFrame  # index unit code; YTD_COLUMNS
    months: list[str]  # the statistical year's months up to the period
    missing: dict[str, list[str]]  # unit code -> months of the year with no accepted return
    year_start_from: dict[str, str]  # unit code -> the month whose 期初人口 stands for 年初人口


def unit_totals(figures: pd.DataFrame, unit_of: dict[int, str], columns: list[str]) -> pd.DataFrame:
    """Long figures of accepted returns → one row per unit, each column summed over groups."""
    if figures.empty:
        return pd.DataFrame(columns=columns, dtype=float)
    figures = figures.assign(unit=figures["return_id"].map(unit_of))
    wide = figures.pivot_table(index="unit", columns="name", values="value", aggfunc="sum", fill_value=np.nan)
    return wide.reindex(columns=columns)


YTD_SOURCES = {"本年累计出生": "出生", "本年累计死亡": "死亡", "本年累计政策内出生": "政策内出生", "年初人口": "期初人口"}


def year_to_date(monthly: dict[str, pd.DataFrame], months: list[str]) -> YearToDate:
    """Sum births and deaths over the months of the year; 年初人口 from the first month held.

    `monthly` maps each month of the year to that month's unit totals (accepted only); a
    blank figure counts as 0. Whole columns at a time: a city's year is 10^5 unit-months.
    """
    units = sorted({u for frame in monthly.values() for u in frame.index})
    held_months = [m for m in months if m in monthly]
    sources = list(YTD_SOURCES.values())
    # The year's months in order, so a unit's first row is its first month held; the empty
    # frame at the end lets concat run when no month is held.
    stacked = pd.concat([monthly[m].reindex(columns=sources).astype(float).fillna(0.0) for m in held_months]
                        + [pd.DataFrame(columns=sources, dtype=float)],
                        keys=[*held_months, ""], names=["month", "unit"])
    by_unit = stacked.groupby(level="unit", sort=True)
    sums = by_unit[sources[:3]].sum().set_axis(list(YTD_SOURCES)[:3], axis=1).reindex(units, fill_value=0.0)
    sums["年初人口"] = by_unit[sources[3]].first()  # (NaN for a unit held in no month asked)
    sums = sums[YTD_COLUMNS].rename_axis(None)
    held: dict[str, list[str]] = {}
    for month in held_months:
        for unit in monthly[month].index:
            held.setdefault(unit, []).append(month)
    missing = {unit: [m for m in months if m not in held.get(unit, [])] for unit in units}
    start_from = {unit: held[unit][0] if unit in held else "" for unit in units}
    return YearToDate(sums, months, missing, start_from)


def street_table(month: pd.DataFrame, ytd: YearToDate, unit_codes: list[str]) -> pd.DataFrame:
    """One row per registered unit (blank where none accepted) and the street's 合计 row, with rates."""
    table = month.reindex(unit_codes).join(ytd.sums.reindex(unit_codes))
    accepted = [u for u in unit_codes if u in month.index]
    total = table.loc[accepted].sum(min_count=1).rename(TOTAL)
    table = pd.concat([table, total.to_frame().T])
    return with_rates(table)


def with_rates(table: pd.DataFrame) -> pd.DataFrame:
    """The rates of SPEC §6 from the counts of each row."""
    t = table.copy()
    average = (t["年初人口"] + t["期末人口"]) / 2
    t["出生率"] = _ratio(t["本年累计出生"], average, 1000)
    t["自然增长率"] = _ratio(t["本年累计出生"] - t["本年累计死亡"], average, 1000)
    t["综合节育率"] = _ratio(t["节育措施"], t["已婚育龄妇女"], 100)
    t["计划生育率"] = _ratio(t["本年累计政策内出生"], t["本年累计出生"], 100)
    t["流动育龄妇女节育率"] = _ratio(t["流动节育措施"], t["流动育龄妇女"], 100)
    return t


def _ratio(numerator: pd.Series, denominator: pd.Series, scale: int) -> pd.Series:
    return numerator / denominator.where(denominator > 0) * scale


def month_on_month(this: pd.Series, last: pd.Series) -> pd.DataFrame:
    """Stock and flow figures this month against last: the change and its share."""
    frame = pd.DataFrame({"本月": this, "上月": last})
    frame["增减"] = frame["本月"] - frame["上月"]
    frame["增减%"] = _ratio(frame["增减"], frame["上月"], 100)
    return frame

"""Which unit and which month a return is: from its cover, the file name as fallback."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Sequence

from pipeline.forms import SheetSpec
from pipeline.intake.locate import column_letter, header_label
from pipeline.intake.read import Cell, RawSheet
from pipeline.periods import find_period_in, month_end, month_start, parse_period, shift
from pipeline.registry import Registry, Unit
from pipeline.text import normalise_label, normalise_text
from pipeline.values import as_text, parse_date

_MONTH = re.compile(r"(?<!\d)(\d{1,2})\s*月")
# Dates in a file name (the day it was sent: 2026-11-03, 11月3日) name no month of a return.
_FULL_DATE = re.compile(r"\d{4}\s*[-/._年]\s*\d{1,2}\s*[-/._月]\s*\d{1,2}\s*[日号]?"
                        r"|(?<!\d)\d{1,2}\s*月\s*\d{1,2}\s*[日号]")
_YEAR_MONTH = re.compile(r"(?<!\d)(\d{4})\s*(?:[-_.]|年)\s*(\d{1,2})(?!\d)")
_LABEL_VALUE = re.compile(r"^([^::]{2,12})[::](.+)$")


@dataclass
class CoverEntry:
    value: Cell
    cell: str  # A1 address of the value (or of the label where the value is blank)
    row: int


@dataclass
class Identity:
    unit: Unit | None
    period: str | None
    filled_on: dt.date | None
    unit_source: str  # cover | file name | ""
    period_source: str
    cover: dict[str, CoverEntry]
    period_ambiguous: bool = False  # the cover's 报告期 is a number like 2026.1, and nothing tells which month
    month_in_file_name: str = ""  # a later month than the cover's, named by the file name: a stale cover?
    named_in_file_name: Unit | None = None  # another unit than the cover's, named by the file name: which is it?


def read_cover(sheet: RawSheet, spec: SheetSpec) -> dict[str, CoverEntry]:
    """Label/value pairs: the value right of its label, or after a colon in the same cell."""
    labels = {label: f.key for f in spec.fields for label in f.labels()}
    found: dict[str, CoverEntry] = {}
    for r in range(sheet.top, sheet.n_rows):
        for c in range(sheet.left, sheet.n_cols):
            raw = sheet.cell(r, c)
            key = labels.get(header_label(raw, labels))  # (a label with a unit: 联系电话(手机))
            if key and key not in found:
                value_col = next((cc for cc in range(c + 1, min(sheet.n_cols, c + 4)) if sheet.cell(r, cc) is not None), c + 1)
                found[key] = CoverEntry(sheet.cell(r, value_col), f"{column_letter(value_col)}{r + 1}", r + 1)
            elif isinstance(raw, str) and (m := _LABEL_VALUE.match(raw.strip())):
                key = labels.get(header_label(m.group(1), labels))
                if key and key not in found:
                    found[key] = CoverEntry(m.group(2).strip(), f"{column_letter(c)}{r + 1}", r + 1)
    return found


def identify(cover: dict[str, CoverEntry], file_name: str, registry: Registry,
             texts: Sequence[str] = ()) -> Identity:
    """Unit and period from the cover; then the file name; then titles inside the file (`texts`).

    A file name naming another unit than the cover, or a later month, leaves it untold (the file is
    quarantined, saying both): filed, it could replace another unit's or month's good return."""
    unit, unit_source = _unit_from_cover(cover, registry), "cover"
    in_file_name = _unit_named_in([without_street(file_name, registry)], registry)
    conflict = in_file_name if unit is not None and in_file_name not in (None, unit) else None
    if conflict:  # a neighbour's file reused, its cover or its name left unchanged: filing it could replace
        unit = None  # the right unit's good return, so it is neither's
    elif unit is None:
        unit, unit_source = in_file_name, "file name"
    if unit is None and not conflict:
        unit, unit_source = _unit_named_in(texts, registry), "content"
    filled = parse_date(cover["filled_on"].value) if "filled_on" in cover else None
    period, period_source, ambiguous = None, "", False
    if "period" in cover:
        period, period_source = parse_period(cover["period"].value), "cover"
        if period and dropped_zero(cover["period"].value):
            period = _january_or_october(period, [file_name, *texts], filled)
            ambiguous = period is None
    later = _later_month_named(file_name, period) if period_source == "cover" and period else ""
    if later:  # last month's file copied and its cover left: filed, it would replace last month's return
        period = None
    if period is None and not ambiguous and not later:
        period, period_source = find_period_in(file_name), "file name"
    if period is None and not ambiguous and not later:
        period, period_source = next((p for t in texts if (p := find_period_in(t))), None), "content"
    return Identity(unit, period, filled, unit_source if unit else "", period_source if period else "", cover,
                    ambiguous, later, conflict)


def _later_month_named(file_name: str, period: str) -> str:
    """The month the file name names ("满春村10月报表", "2026-10"), when it is later than the cover's `period`
    (by one to three months when no year is named); "" otherwise, or when it names none or several.

    Only later: a file name kept from last month under an updated cover is common and harmless; a cover
    kept from last month under this month's name would replace last month's return with this month's."""
    text = _FULL_DATE.sub(" ", normalise_text(Path(file_name).stem))
    with_year = {(int(y), int(m)) for y, m in _YEAR_MONTH.findall(text) if 1 <= int(m) <= 12}
    bare = {int(m) for m in _MONTH.findall(_YEAR_MONTH.sub(" ", text)) if 1 <= int(m) <= 12}
    months = {m for _, m in with_year} | bare
    if len(months) != 1 or len(with_year) > 1:
        return ""
    year, month = int(period[:4]), int(period[5:7])
    if with_year:
        (named_year, named_month), = with_year
        ahead = named_year * 12 + named_month - (year * 12 + month)
        return f"{named_year}年{named_month}月" if ahead >= 1 else ""
    named_month = months.pop()
    return f"{named_month}月" if 1 <= (named_month - month) % 12 <= 3 else ""


def dropped_zero(value: Cell) -> bool:
    """A number like 2026.1: Excel keeps "2026.10" typed in a cell as 2026.1, so it may be January or October."""
    return isinstance(value, float) and f"{value:.4f}".endswith(".1000")


def _january_or_october(january: str, texts: Sequence[str], filled: dt.date | None) -> str | None:
    """The one of January and October the file name, a title or the filling date points to; None if none does."""
    october = january[:5] + "10"
    for text in texts:
        if (named := find_period_in(text)) in (january, october):
            return named
        months = {int(m) for m in _MONTH.findall(normalise_text(text))}  # "满春村10月报表": a month, no year
        if len(months & {1, 10}) == 1:
            return january if 1 in months else october
    if filled is not None:  # a return is filled in its month or the two after it
        for period in (january, october):
            if month_start(period) <= filled <= month_end(shift(period, 2)):
                return period
    return None


def without_street(text: str, registry: Registry) -> str:
    """A text without the street's own name (丽景街道, 丽景街道办…): it must not read as the unit 丽景社区."""
    core = normalise_label(registry.street.name)
    for suffix in ("街道办事处", "街道", "办事处"):
        if core.endswith(suffix) and len(core) > len(suffix):
            core = core[: -len(suffix)]
            break
    text = normalise_label(text)
    for suffix in ("街道办事处", "街道办", "街办", "街道"):
        text = text.replace(core + suffix, " ")
    return text


def _unit_named_in(texts: Sequence[str], registry: Registry) -> Unit | None:
    """The one unit named in the first text that names exactly one."""
    for text in texts:
        named = registry.units_named_in(text)
        if len(named) == 1:
            return named[0]
    return None


def _unit_from_cover(cover: dict[str, CoverEntry], registry: Registry) -> Unit | None:
    for key in ("unit_code", "unit_name"):
        if key in cover and (text := as_text(cover[key].value)):
            unit = registry.unit_by_code(text) or registry.find_unit(text)
            if unit:
                return unit
    return None

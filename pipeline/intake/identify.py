"""Which unit and which month a return is: from its cover, the file name as fallback."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Sequence

from pipeline.forms import SheetSpec
from pipeline.intake.locate import column_letter
from pipeline.intake.read import Cell, RawSheet
from pipeline.periods import find_period_in, parse_period
from pipeline.registry import Registry, Unit
from pipeline.text import normalise_label
from pipeline.values import as_text, parse_date

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


def read_cover(sheet: RawSheet, spec: SheetSpec) -> dict[str, CoverEntry]:
    """Label/value pairs: the value right of its label, or after a colon in the same cell."""
    labels = {label: f.key for f in spec.fields for label in f.labels()}
    found: dict[str, CoverEntry] = {}
    for r in range(sheet.top, sheet.n_rows):
        for c in range(sheet.left, sheet.n_cols):
            raw = sheet.cell(r, c)
            key = labels.get(normalise_label(raw))
            if key and key not in found:
                value_col = next((cc for cc in range(c + 1, min(sheet.n_cols, c + 4)) if sheet.cell(r, cc) is not None), c + 1)
                found[key] = CoverEntry(sheet.cell(r, value_col), f"{column_letter(value_col)}{r + 1}", r + 1)
            elif isinstance(raw, str) and (m := _LABEL_VALUE.match(raw.strip())):
                key = labels.get(normalise_label(m.group(1)))
                if key and key not in found:
                    found[key] = CoverEntry(m.group(2).strip(), f"{column_letter(c)}{r + 1}", r + 1)
    return found


def identify(cover: dict[str, CoverEntry], file_name: str, registry: Registry,
             texts: Sequence[str] = ()) -> Identity:
    """Unit and period from the cover; then the file name; then titles inside the file (`texts`)."""
    unit, unit_source = _unit_from_cover(cover, registry), "cover"
    if unit is None:
        unit, unit_source = _unit_named_in([file_name], registry), "file name"
    if unit is None:
        unit, unit_source = _unit_named_in(texts, registry), "content"
    period, period_source = None, ""
    if "period" in cover:
        period, period_source = parse_period(cover["period"].value), "cover"
    if period is None:
        period, period_source = find_period_in(file_name), "file name"
    if period is None:
        period, period_source = next((p for t in texts if (p := find_period_in(t))), None), "content"
    filled = parse_date(cover["filled_on"].value) if "filled_on" in cover else None
    return Identity(unit, period, filled, unit_source if unit else "", period_source if period else "", cover)


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

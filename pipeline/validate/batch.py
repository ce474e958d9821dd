"""Tables of many returns stacked into one frame per sheet kind.

Validation runs once per sheet kind for the whole run (pandera's cost is per call), and
each row keeps the return it came from (`_ret`) and its Excel row (`_row`), so every
finding still points at a cell of one clerk's file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipeline.forms import SheetSpec
from pipeline.intake.locate import LocatedTable
from pipeline.values import as_text

RET, ROW = "_ret", "_row"


@dataclass(frozen=True)
class ReturnKey:
    """What the checks need to know about a return besides its tables."""

    index: int
    unit: str
    unit_name: str
    period: str
    file: str
    groups: tuple[str, ...]


def stack_texts(tables: dict[int, LocatedTable], spec: SheetSpec) -> pd.DataFrame:
    """One frame of every return's table, each cell as the text a clerk sees (None if blank)."""
    columns = [c.name for c in spec.columns]
    parts = []
    for index, table in tables.items():
        part = table.values.map(as_text).reindex(columns=columns)
        part.insert(0, ROW, table.values.index.astype(int))
        part.insert(0, RET, index)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[RET, ROW, *columns])
    frame = pd.concat(parts, ignore_index=True)
    return frame.astype({c: object for c in columns})


def stack_raw(tables: dict[int, LocatedTable], spec: SheetSpec, column: str) -> pd.Series:
    """The raw cell values of one column across returns, aligned with stack_texts."""
    parts = [t.values[column] if column in t.values else pd.Series([None] * len(t.values), dtype=object)
             for t in tables.values()]
    if not parts:
        return pd.Series([], dtype=object)
    return pd.concat(parts, ignore_index=True)

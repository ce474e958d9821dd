"""Tables of many returns stacked into one frame per sheet kind.

Validation runs once per sheet kind for the whole run (pandera's cost is per call), and
each row keeps the return it came from (`_ret`) and its Excel row (`_row`), so every
finding still points at a cell of one clerk's file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.forms import SheetSpec
from pipeline.intake.locate import LocatedRows
from pipeline.values import column_texts

RET, ROW = "_ret", "_row"
_NAN = float("nan")


@dataclass(frozen=True)
class ReturnKey:
    """What the checks need to know about a return besides its tables."""

    index: int
    unit: str
    unit_name: str
    period: str
    file: str
    groups: tuple[str, ...]


def stack_texts(tables: dict[int, LocatedRows], spec: SheetSpec) -> pd.DataFrame:
    """One frame of every return's table, each cell as the text a clerk sees (None if blank).

    A blank cell is None where its return's column holds no text at all and NaN where it
    does, and a column a return lacks is NaN: what pandas gives when each table is mapped
    with `as_text` and the tables are stacked, which the rules were written against.
    """
    columns = [c.name for c in spec.columns]
    if not tables:
        return pd.DataFrame(columns=[RET, ROW, *columns])
    sizes = [len(t.rows) for t in tables.values()]
    data: dict[str, object] = {
        RET: np.repeat(np.array(list(tables), dtype=np.int64), sizes),
        ROW: np.array([row for t in tables.values() for row in t.rows], dtype=np.int64),
    }
    by_column = [table_texts(t) for t in tables.values()]
    for name in columns:
        cells: list = []
        for table, size in zip(by_column, sizes):
            cells += table[name] if name in table else [_NAN] * size
        data[name] = pd.Series(object_array(cells), dtype=object)  # dtype given, or pandas 3 makes texts "str"
    return pd.DataFrame(data)


def table_texts(table: LocatedRows) -> dict[str, list]:
    """A located table's columns as texts: as the reading process made them, else made here."""
    if table.texts is not None:
        return table.texts
    known: dict = {}  # numbers and dates repeat: convert each once
    return {name: column_texts(cells, known) for name, cells in table.columns.items()}


def object_array(items: list) -> np.ndarray:
    """An object array of exactly these items (numpy would turn a list of equal-length lists into 2-D)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def stack_raw(tables: dict[int, LocatedRows], spec: SheetSpec, column: str) -> pd.Series:
    """The raw cell values of one column across returns, aligned with stack_texts."""
    cells: list = []
    for t in tables.values():
        cells += t.columns[column] if column in t.columns else [None] * len(t.rows)
    return pd.Series(object_array(cells), dtype=object)


def row_spans(ret: pd.Series) -> dict[int, slice]:
    """Return index → the positions of its rows in a stacked frame (each return's rows are contiguous)."""
    values = ret.to_numpy()
    if not len(values):
        return {}
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    return {int(values[s]): slice(int(s), int(e)) for s, e in zip(starts, ends)}

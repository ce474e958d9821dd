"""Tables of many returns stacked into one frame per sheet kind.

Validation runs once per sheet kind for the whole run (pandera's cost is per call), and
each row keeps the return it came from (`_ret`) and its Excel row (`_row`), so every
finding still points at a cell of one clerk's file.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.forms import SheetSpec
from pipeline.intake.locate import LocatedTable
from pipeline.values import as_text

RET, ROW = "_ret", "_row"
_NAN = float("nan")
_UNSEEN = object()


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
    """One frame of every return's table, each cell as the text a clerk sees (None if blank).

    A blank cell is None where its return's column holds no text at all and NaN where it
    does, and a column a return lacks is NaN: what pandas gives when each table is mapped
    with `as_text` and the tables are stacked, which the rules were written against.
    """
    columns = [c.name for c in spec.columns]
    if not tables:
        return pd.DataFrame(columns=[RET, ROW, *columns])
    sizes = [len(t.values) for t in tables.values()]
    data: dict[str, object] = {
        RET: np.repeat(np.array(list(tables), dtype=np.int64), sizes),
        ROW: np.concatenate([t.values.index.to_numpy(dtype=np.int64) for t in tables.values()]),
    }
    by_column = [table_columns(t) for t in tables.values()]
    for name in columns:
        cells: list = []
        known: dict = {}  # texts of non-text cells (numbers, dates) repeat across tables: convert each once
        for table, size in zip(by_column, sizes):
            cells += column_texts(table[name], known) if name in table else [_NAN] * size
        data[name] = pd.Series(object_array(cells), dtype=object)  # dtype given, or pandas 3 makes texts "str"
    return pd.DataFrame(data)


def table_columns(table: LocatedTable) -> dict[str, list]:
    """A located table's columns as lists, in one step (a frame's column lookup costs more than its cells)."""
    frame = table.values
    return dict(zip(frame.columns, frame.to_numpy(dtype=object).T.tolist())) if len(frame.columns) else {}


def column_texts(values: list, known: dict | None = None) -> list:
    """One table column as texts (`as_text`, inlined for plain strings): blanks None, or NaN if any text."""
    known = {} if known is None else known
    texts, filled = [], False
    for v in values:
        if type(v) is str:  # as_text: NFKC, runs of white space to one space, trimmed (\s is isspace)
            text = " ".join(unicodedata.normalize("NFKC", v).split())
            if not text:
                texts.append(None)
                continue
            texts.append(v if text == v else text)  # the cell's own string when unchanged: less memory
            filled = True
            continue
        if v is None or (type(v) is float and v != v):
            texts.append(None)
            continue
        key = (type(v), v)  # 1, 1.0 and True are equal keys otherwise
        try:
            text = known.get(key, _UNSEEN)
            if text is _UNSEEN:
                text = known[key] = as_text(v)
        except TypeError:  # not hashable: no reader gives one, but never fail on a cell
            text = as_text(v)
        texts.append(text)
        filled = filled or text is not None
    if filled:
        texts = [_NAN if t is None else t for t in texts]
    return texts


def object_array(items: list) -> np.ndarray:
    """An object array of exactly these items (numpy would turn a list of equal-length lists into 2-D)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def stack_raw(tables: dict[int, LocatedTable], spec: SheetSpec, column: str) -> pd.Series:
    """The raw cell values of one column across returns, aligned with stack_texts."""
    cells: list = []
    for t in tables.values():
        cells += t.values[column].tolist() if column in t.values else [None] * len(t.values)
    return pd.Series(object_array(cells), dtype=object)


def row_spans(ret: pd.Series) -> dict[int, slice]:
    """Return index → the positions of its rows in a stacked frame (each return's rows are contiguous)."""
    values = ret.to_numpy()
    if not len(values):
        return {}
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    return {int(values[s]): slice(int(s), int(e)) for s, e in zip(starts, ends)}

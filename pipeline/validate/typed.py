"""From cell texts to typed columns: counts as numbers, dates as dates, groups as registered."""

from __future__ import annotations

import pandas as pd

from pipeline.findings import Finding, finding
from pipeline.forms import SheetSpec
from pipeline.text import normalise_label
from pipeline.validate.batch import RET, ROW, ReturnKey
from pipeline.validate.cells import where
from pipeline.values import is_plain_number, number_text, parse_date


def to_number(texts: pd.Series) -> pd.Series:
    """Numbers where the text is one (thousands separators, ‰ and % dropped), else NaN."""
    plain = texts.map(lambda t: number_text(t) if isinstance(t, str) else None)
    return pd.to_numeric(plain.where(plain.map(lambda t: isinstance(t, str) and is_plain_number(t))),
                         errors="coerce").astype(float)


def typed_frame(texts: pd.DataFrame, spec: SheetSpec) -> pd.DataFrame:
    """The stacked frame with counts and rates as floats, dates as dates, IDs upper-cased."""
    typed = texts.copy()
    for col in spec.columns:
        if col.type in ("count", "rate", "serial"):
            typed[col.name] = to_number(texts[col.name])
        elif col.type == "date":
            typed[col.name] = texts[col.name].map(lambda t: parse_date(t) if t is not None else None)
        elif col.type == "id":
            typed[col.name] = texts[col.name].map(lambda t: t.upper().replace(" ", "") if t else None)
    return typed


def resolve_groups(typed: pd.DataFrame, spec: SheetSpec, keys: dict[int, ReturnKey],
                   letters: dict[int, dict[str, str]]) -> tuple[pd.Series, list[Finding]]:
    """Each row's registered group name (None if unknown) and an unknown-group finding each."""
    column = spec.group_column
    lookup = {k: {normalise_label(g): g for g in key.groups} for k, key in keys.items()}
    names, found = [], []
    for ret, row, text in zip(typed[RET], typed[ROW], typed[column]):
        name = lookup[ret].get(normalise_label(text)) if text is not None else None
        names.append(name)
        if name is None and text is not None:
            key = keys[ret]
            found.append(finding("unknown-group", **where(key, spec.name, letters[ret].get(column, ""), row),
                                 field=column, value=text, expected="、".join(key.groups)))
    return pd.Series(names, index=typed.index, dtype=object), found

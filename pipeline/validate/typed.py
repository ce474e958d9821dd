"""From cell texts to typed columns: counts as numbers, dates as dates, groups as registered."""

from __future__ import annotations

import pandas as pd

from pipeline.findings import Finding, finding
from pipeline.forms import SheetSpec
from pipeline.text import group_key, normalise_label
from pipeline.validate.batch import RET, ROW, ReturnKey, object_array
from pipeline.validate.cells import where
from pipeline.values import id_text, is_plain_number, number_text, parse_date


def to_number(texts: pd.Series) -> pd.Series:
    """Numbers where the text is one (thousands separators, ‰ and % dropped), else NaN."""
    values = texts.tolist()
    distinct = list(dict.fromkeys(t for t in values if isinstance(t, str)))  # counts repeat: parse each once
    plain = [number_text(t) for t in distinct]
    numbers = pd.to_numeric(pd.Series([p if is_plain_number(p) else None for p in plain], dtype=object),
                            errors="coerce").astype(float).tolist()
    by_text = dict(zip(distinct, numbers))
    return pd.Series([by_text[t] if isinstance(t, str) else float("nan") for t in values], index=texts.index,
                     dtype=float)


def to_date(texts: pd.Series) -> pd.Series:
    """Dates where the text is one (`parse_date`), else None."""
    parsed: dict[str, object] = {}
    out = []
    for t in texts.tolist():
        if t is None:
            out.append(None)
        elif isinstance(t, str):
            if t not in parsed:
                parsed[t] = parse_date(t)
            out.append(parsed[t])
        else:
            out.append(parse_date(t))
    return pd.Series(object_array(out), index=texts.index, dtype=object)


def to_id(texts: pd.Series) -> pd.Series:
    """ID numbers upper-cased, spaces removed; None where blank."""
    out = [_id_of(t) if isinstance(t, str) and t else None for t in texts.tolist()]
    return pd.Series(object_array(out), index=texts.index, dtype=object)


def _id_of(text: str) -> str:
    number = id_text(text)
    return text if number == text else number  # the cell's own string when unchanged: less memory


def typed_frame(texts: pd.DataFrame, spec: SheetSpec) -> pd.DataFrame:
    """The stacked frame with counts and rates as floats, dates as dates, IDs upper-cased."""
    typed = texts.copy()
    for col in spec.columns:
        if col.type in ("count", "rate", "serial"):
            typed[col.name] = to_number(texts[col.name])
        elif col.type == "date":
            typed[col.name] = to_date(texts[col.name])
        elif col.type == "id":
            typed[col.name] = to_id(texts[col.name])
    return typed


def group_lookup(groups: tuple[str, ...]) -> dict[str, str]:
    """What a clerk may write for each registered group → the group: its name, and (keys marked "#") its
    number or core word, where no other group of the unit shares it (1组 and 第一组 are 一组)."""
    lookup = {normalise_label(g): g for g in groups}
    keys: dict[str, list[str]] = {}
    for g in groups:
        keys.setdefault("#" + group_key(g), []).append(g)
    return lookup | {key: found[0] for key, found in keys.items() if len(found) == 1}


def resolve_groups(typed: pd.DataFrame, spec: SheetSpec, keys: dict[int, ReturnKey],
                   letters: dict[int, dict[str, str]]) -> tuple[pd.Series, list[Finding]]:
    """Each row's registered group name (None if unknown) and an unknown-group finding each."""
    column = spec.group_column
    lookup = {k: group_lookup(key.groups) for k, key in keys.items()}
    labels: dict[object, tuple[str, str]] = {}  # group texts repeat: normalise each once
    names, found = [], []
    for ret, row, text in zip(typed[RET].tolist(), typed[ROW].tolist(), typed[column].tolist()):
        if not isinstance(text, str):  # blank (None, or NaN once pandas has stored it): blank-required says so
            names.append(None)
            continue
        label = labels.get(text)
        if label is None:
            label = labels[text] = (normalise_label(text), "#" + group_key(text))
        name = lookup[ret].get(label[0]) or lookup[ret].get(label[1])
        names.append(name)
        if name is None:
            key = keys[ret]
            found.append(finding("unknown-group", **where(key, spec.name, letters[ret].get(column, ""), row),
                                 field=column, value=text, expected="、".join(key.groups)))
    return pd.Series(object_array(names), index=typed.index, dtype=object), found

"""Reading one cell's value the way a clerk meant it: numbers, rates, dates, codes, IDs."""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
import unicodedata
from functools import lru_cache

from pipeline.periods import EXCEL_EPOCH
from pipeline.text import normalise_text

DATE_FORMS = "2026-11-03、2026/11/3 或 2026年11月3日"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
# 2012-5-1, 2012/5/1, 2012.5.1 (。 where a Chinese input method typed the dot), 2012年5月1日 or 号, and
# a time after it as text exports write one (spaces are taken out first).
_DATE = re.compile(r"^(\d{4})\s*[-/.。年]\s*(\d{1,2})\s*[-/.。月]\s*(\d{1,2})\s*[日号]?(?:\d{1,2}:\d{2}(?::\d{2})?)?$")
SERIAL_LIMIT = 109575  # 2200-01-01: a larger number in a date cell is no date of these people's lives
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NAN = float("nan")


def as_text(value: object) -> str | None:
    """A cell as the text a clerk sees: None for blank, whole floats without '.0'."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = normalise_text(str(value))
    return text or None


def column_texts(values: list, known: dict | None = None) -> list:
    """One table column as texts (`as_text`): blanks None, or NaN where the column holds any text.

    `known` (one per workbook) maps each value met to (that value, its text), so a repeated
    text or number is converted once, and `values` is made to hold one object per distinct
    text or nonzero number: groups, 无, 否 and counts repeat down every column, and a run
    holds these cells until they are filed. A column whose cells are already the texts is
    returned itself: pickled and held once.
    """
    known = {} if known is None else known
    texts, filled = [], False
    for i, v in enumerate(values):
        kind = type(v)
        if kind is str:  # most cells: the text itself is the key (a tuple key is never equal to it)
            seen = known.get(v)
            if seen is None:
                seen = known[v] = (v, _clerk_text(v))
            else:
                values[i] = seen[0]
        elif v is None or (kind is float and v != v):
            texts.append(None)
            continue
        else:
            key = (kind, v)  # 1, 1.0 and True are equal keys otherwise
            try:
                seen = known.get(key)
                if seen is None:
                    seen = known[key] = (v, as_text(v))
                elif kind is float and v:  # 0.0 == -0.0: a zero keeps its own sign
                    values[i] = seen[0]
            except TypeError:  # not hashable: no reader gives one, but never fail on a cell
                seen = (v, as_text(v))
        texts.append(seen[1])
        filled = filled or seen[1] is not None
    if filled:
        texts = [_NAN if t is None else t for t in texts]
    if all(map(operator.is_, texts, values)):  # texts as written (most text columns): one list for both
        return values
    return texts


def _clerk_text(text: str) -> str | None:
    """as_text of a string, inlined: NFKC, runs of white space to one space, trimmed (\\s is isspace)."""
    clean = " ".join(unicodedata.normalize("NFKC", text).split())
    return None if not clean else text if clean == text else clean  # the cell's own string when unchanged


def has_control_characters(value: object) -> bool:
    return isinstance(value, str) and bool(_CONTROL.search(value))


def strip_control_characters(text: str) -> str:
    return _CONTROL.sub(" ", text)


# Characters with no width a paste brings along (zero-width space and joiners, word joiner, BOM, soft
# hyphen): nobody sees them, so nothing she typed is lost when they go, and 上环 is 上环 again.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")


def has_invisible_characters(text: str) -> bool:
    return bool(_INVISIBLE.search(text))


_CONTROL_OR_INVISIBLE = re.compile(f"{_CONTROL.pattern}|{_INVISIBLE.pattern}")


def may_need_cleaning(text: str) -> bool:
    """Whether a text holds a control character or one no one sees: one pass for both."""
    return bool(_CONTROL_OR_INVISIBLE.search(text))


def strip_invisible_characters(text: str) -> str:
    return _INVISIBLE.sub("", text)


def number_text(text: str) -> str:
    """Drop what decorates a number: thousands separators, spaces, a trailing ‰ or %."""
    return text.replace(",", "").replace(" ", "").rstrip("‰%")


# Spaces of every kind (a no-break space, a full-width one, a tab): an ID number is read without them.
# (Characters with no width are gone from every cell before this: untrusted.clean_sheet.)
_SPACES_IN_IDS = str.maketrans("", "", " \t\u00a0\u3000")


def id_text(text: str) -> str:
    """An ID number as written: upper-case, without spaces."""
    return text.translate(_SPACES_IN_IDS).upper()


def is_plain_number(text: str) -> bool:
    """'12', '-3.5', '.5': a number once decorations are gone (see number_text)."""
    return bool(_NUMBER.match(text))


def parse_number(value: object) -> float | None:
    """The number in a cell (numbers stored as text and full-width digits included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    text = as_text(value)
    if text is None:
        return None
    text = number_text(text)
    return float(text) if _NUMBER.match(text) else None


def parse_date(value: object) -> dt.date | None:
    """A date from an Excel date, an Excel serial, or the written forms clerks use."""
    if type(value) is str:
        return _written_date_of_text(value)
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _serial_date(float(value)) or _written_date(value)  # 20121103 typed as a number
    return _written_date(value)


def _written_date(value: object) -> dt.date | None:
    """The date a cell writes, read from its text as a clerk sees it (as_text)."""
    text = as_text(value)
    return None if text is None else _parse_date_text(text)


_written_date_of_text = lru_cache(maxsize=65536)(_written_date)  # the check and the typing both read each date


@lru_cache(maxsize=65536)
def _parse_date_text(text: str) -> dt.date | None:
    text = text.replace(" ", "")
    m = _DATE.match(text) or _COMPACT_DATE.match(text)
    if m:
        try:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    if _NUMBER.match(text):
        return _serial_date(float(text))
    return None


def _serial_date(serial: float) -> dt.date | None:
    if 1 <= serial < SERIAL_LIMIT and serial.is_integer():
        return EXCEL_EPOCH + dt.timedelta(days=int(serial))
    return None

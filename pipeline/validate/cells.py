"""Cell rules: the form's column types as a pandera schema, and its failures as findings.

Each pandera check is named after the finding code it stands for, so the one adapter
below (`failures_to_findings`) can turn pandera's failure cases into findings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Callable

import numpy as np
import pandas as pd
import pandera.pandas as pa
from stdnum.cn import ric
from stdnum.exceptions import InvalidComponent

from pipeline.findings import Finding, finding
from pipeline.forms import ColumnSpec, SheetSpec
from pipeline.validate.batch import RET, ROW, ReturnKey
from pipeline.values import DATE_FORMS, id_text, is_plain_number, number_text, parse_date

# A mobile (11 digits from 1, +86 or 0086 before it or not), or a landline with its area code (010-12345678,
# 0951-6012345): the number is dialled from anywhere. Spaces and hyphens are taken out first.
_PHONE = re.compile(r"^(?:(?:\+?86|0086)?1\d{10}|0[1-9]\d{1,2}\d{7,8})$")
_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")


@lru_cache(maxsize=65536)
def count_problem(text: str) -> str | None:
    """not-a-number | negative | not-integer for a count cell, None if it is a count."""
    plain = number_text(text)
    if not is_plain_number(plain):
        return "not-a-number"
    number = float(plain)
    if number < 0:
        return "negative"
    return None if number.is_integer() else "not-integer"


@lru_cache(maxsize=65536)
def rate_problem(text: str) -> str | None:
    plain = number_text(text)
    if not is_plain_number(plain):
        return "not-a-number"
    return "negative" if float(plain) < 0 else None


@lru_cache(maxsize=65536)
def id_problem(text: str) -> tuple[str, str] | None:
    """(code, expected) for the first thing wrong with an 18-character ID, None if it is sound."""
    number = id_text(text)
    if len(number) != 18:
        return "id-length", f"现在是 {len(number)} 位"
    if not _ID_SHAPE.match(number):
        return "id-length", "前17位应为数字,最后一位为数字或X"
    try:
        ric.get_birth_date(number)
    except InvalidComponent:
        return "id-birthdate", ""
    check = ric.calc_check_digit(number)
    if number[-1] != check:
        return "id-checksum", check
    if not _known_region(number):
        return "id-region", number[:6]
    return None


_ID_WEIGHTS = np.array([pow(2, 16 - i, 11) for i in range(17)], dtype=np.int64)  # 13**k ≡ 2**k (mod 11)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


# Within `remembering_id_codes()`, the code of each ID number checked: a batch's IDs are
# checked as cells, then read again for births and sexes by the person rules.
_remembered_id_codes: dict[str, str | None] | None = None


@contextmanager
def remembering_id_codes() -> Iterator[None]:
    """Check each distinct ID number once inside (one batch's worth), forget them after."""
    global _remembered_id_codes
    _remembered_id_codes = {}
    try:
        yield
    finally:
        _remembered_id_codes = None


def id_codes(texts: list[str]) -> list[str | None]:
    """id_problem's code for each text (see checked_id_codes), remembered inside remembering_id_codes()."""
    known = _remembered_id_codes
    if known is None:
        return checked_id_codes(texts)
    new = [t for t in dict.fromkeys(texts) if t not in known]
    if new:
        known.update(zip(new, checked_id_codes(new)))
    return [known[t] for t in texts]


def checked_id_codes(texts: list[str]) -> list[str | None]:
    """id_problem's code for each text, the usual 18 ASCII characters checked as arrays.

    Anything else (another length, non-ASCII digits) goes through id_problem itself, so
    each code is the one id_problem gives: length, then shape, birth date, check digit
    (stdnum: (1 - 2·int(first 17, 13)) mod 11) and region, in that order.
    """
    numbers = [id_text(t) for t in texts]
    codes: list[str | None] = [None] * len(numbers)
    fast = []
    for i, number in enumerate(numbers):
        if len(number) != 18:
            codes[i] = "id-length"
        elif number.isascii():
            fast.append(i)
        else:
            problem = id_problem(texts[i])
            codes[i] = problem[0] if problem else None
    if not fast:
        return codes
    chars = np.frombuffer("".join(numbers[i] for i in fast).encode("ascii"), dtype=np.uint8).reshape(-1, 18)
    digits = chars.astype(np.int64) - ord("0")
    is_digit = (digits >= 0) & (digits <= 9)
    shape = is_digit[:, :17].all(axis=1) & (is_digit[:, 17] | (chars[:, 17] == ord("X")))
    year = digits[:, 6] * 1000 + digits[:, 7] * 100 + digits[:, 8] * 10 + digits[:, 9]
    month, day = digits[:, 10] * 10 + digits[:, 11], digits[:, 12] * 10 + digits[:, 13]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _DAYS_IN_MONTH[np.clip(month, 0, 12)] + ((month == 2) & leap)
    dated = (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    checksum = (1 - 2 * (np.where(is_digit[:, :17], digits[:, :17], 0) @ _ID_WEIGHTS)) % 11
    check = np.where(checksum == 10, ord("X"), checksum + ord("0"))
    checked = chars[:, 17] == check
    for i, shaped, is_dated, is_checked, born in zip(fast, shape.tolist(), dated.tolist(), checked.tolist(),
                                                     year.tolist()):
        if not shaped:
            codes[i] = "id-length"
        elif not is_dated:
            codes[i] = "id-birthdate"
        elif not is_checked:
            codes[i] = "id-checksum"
        else:
            codes[i] = None if _county_known(numbers[i][:6], born) else "id-region"
    return codes


def _known_region(number: str) -> bool:
    """Whether stdnum knows the county of the number's first six digits in its birth year (date sound)."""
    return _county_known(number[:6], int(number[6:10]))


@lru_cache(maxsize=65536)
def _county_known(county: str, year: int) -> bool:
    """stdnum's answer for any ID of this county code and birth year: it reads nothing else of the number.

    Its lookup walks a list of ~7,000 counties (~40 µs); a street's people come from a few
    counties, born in a few dozen years, so nearly every ID asks a pair already answered.
    """
    try:
        ric.get_birth_place(f"{county}{year:04d}01010000")  # (only its county code and year are read)
    except (InvalidComponent, KeyError):  # KeyError: a known province, an unknown county (stdnum 1.20)
        return False
    return True


def _count_codes(texts: list[str]) -> list[str | None]:
    return [count_problem(t) for t in texts]


def _rate_codes(texts: list[str]) -> list[str | None]:
    return [rate_problem(t) for t in texts]


# A column's codes are computed once for all of its checks: pandera hands each check the
# same cells (the column without its blanks), so the last result is kept per column and
# kind, and dropped when run_schema ends.
_codes_held: dict[tuple[str, object], tuple[pd.Index, pd.Series]] = {}


def _codes(cells: pd.Series, compute: Callable[[list], list]) -> pd.Series:
    key = (compute.__name__, cells.name)
    held = _codes_held.get(key)
    if held is not None and held[0].equals(cells.index):
        return held[1]
    codes = pd.Series(compute(cells.tolist()), index=cells.index, dtype=object)
    _codes_held[key] = (cells.index, codes)
    return codes


def _passes(compute: Callable[[list], list], code: str) -> Callable[[pd.Series], pd.Series]:
    return lambda s: _codes(s, compute) != code


def _dates_parse(s: pd.Series) -> pd.Series:
    parsed: dict[object, bool] = {}  # dates repeat: parse each text once
    passed = []
    for text in s.tolist():
        if text not in parsed:
            parsed[text] = parse_date(text) is not None
        passed.append(parsed[text])
    return pd.Series(passed, index=s.index, dtype=bool)


def _phones_valid(s: pd.Series) -> pd.Series:
    return pd.Series([bool(_PHONE.match(t.replace(" ", "").replace("-", ""))) for t in s.tolist()], index=s.index,
                     dtype=bool)


def _checks(col: ColumnSpec) -> list[pa.Check]:
    if col.type == "count":
        return [pa.Check(_passes(_count_codes, c), name=c, ignore_na=True)
                for c in ("not-a-number", "negative", "not-integer")]
    if col.type == "rate":
        return [pa.Check(_passes(_rate_codes, c), name=c, ignore_na=True) for c in ("not-a-number", "negative")]
    if col.type == "id":
        return [pa.Check(_passes(id_codes, c), name=c, ignore_na=True)
                for c in ("id-length", "id-birthdate", "id-checksum", "id-region")]
    if col.type == "code":
        allowed = set(col.list)
        return [pa.Check(lambda s: s.isin(allowed), name="not-in-list", ignore_na=True)]
    if col.type == "date":
        return [pa.Check(_dates_parse, name="date-unparseable", ignore_na=True)]
    if col.type == "phone":
        return [pa.Check(_phones_valid, name="phone-invalid", ignore_na=True)]
    return []


@cache
def schema_for(spec: SheetSpec) -> pa.DataFrameSchema:
    """The pandera schema of one sheet of the form (columns, blanks, types, lists)."""
    columns = {
        col.name: pa.Column(checks=_checks(col), nullable=col.blank_ok, required=False, coerce=False)
        for col in spec.columns
    }
    return pa.DataFrameSchema(columns, strict=False, name=spec.name)


def run_schema(frame: pd.DataFrame, spec: SheetSpec) -> pd.DataFrame:
    """pandera's failure cases for the whole stacked frame (empty if all cells pass)."""
    _codes_held.clear()
    try:
        schema_for(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return cases[cases["index"].notna()]
    finally:
        _codes_held.clear()
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])


def failures_to_findings(cases: pd.DataFrame, frame: pd.DataFrame, spec: SheetSpec,
                         keys: dict[int, ReturnKey], letters: dict[int, dict[str, str]],
                         already: set[tuple[int, int, str]]) -> list[Finding]:
    """The one place where pandera's failure cases become findings with A1 cells.

    Cells whose column is missing from a return, and cells `already` reported by an
    earlier check (ret, row, column), are left out: one finding per cell is enough.
    """
    found = []
    for case in cases.itertuples(index=False):
        position = int(case.index)
        ret, row = int(frame.at[position, RET]), int(frame.at[position, ROW])
        letter = letters[ret].get(case.column)
        if letter is None or (ret, row, case.column) in already:
            continue
        col = spec.column(case.column)
        code = "blank-required" if case.check == "not_nullable" else str(case.check)
        value = "" if code == "blank-required" else str(case.failure_case)
        found.append(finding(code, **where(keys[ret], spec.name, letter, row), field=col.name,
                             value=value, expected=expected_for(code, col, value)))
    return found


def expected_for(code: str, col: ColumnSpec, value: str) -> str:
    """What the clerk should have written, in words."""
    if code == "not-in-list":
        return "、".join(col.list)
    if code == "date-unparseable":
        return DATE_FORMS
    if code.startswith("id-"):
        problem = id_problem(value)
        return problem[1] if problem else ""
    if code == "phone-invalid":
        return "11位手机号(以1开头),或带区号的固定电话"
    if code in ("not-a-number", "negative", "not-integer"):
        return "不小于0的整数" if col.type == "count" else "数字"
    return ""


def where(key: ReturnKey, sheet: str, letter: str, row: int | None) -> dict:
    """The location fields of a finding in one return's sheet."""
    row = int(row) if row is not None else None
    return {"unit": key.unit, "unit_name": key.unit_name, "period": key.period, "file": key.file,
            "sheet": sheet, "cell": f"{letter}{row}" if letter and row else "", "row": row, "column": letter}

"""Cell rules: the form's column types as a pandera schema, and its failures as findings.

Each pandera check is named after the finding code it stands for, so the one adapter
below (`failures_to_findings`) can turn pandera's failure cases into findings.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import Callable

import pandas as pd
import pandera.pandas as pa
from stdnum.cn import ric
from stdnum.exceptions import InvalidComponent

from pipeline.findings import Finding, finding
from pipeline.forms import ColumnSpec, SheetSpec
from pipeline.validate.batch import RET, ROW, ReturnKey
from pipeline.values import DATE_FORMS, is_plain_number, number_text, parse_date

_MOBILE = re.compile(r"^1\d{10}$")
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
    number = text.upper().replace(" ", "")
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
    try:
        ric.get_birth_place(number)
    except InvalidComponent:
        return "id-region", number[:6]
    return None


def _id_code(text: str) -> str | None:
    problem = id_problem(text)
    return problem[0] if problem else None


def _passes(problem: Callable[[str], str | None], code: str) -> Callable[[pd.Series], pd.Series]:
    return lambda s: s.map(problem) != code


def _checks(col: ColumnSpec) -> list[pa.Check]:
    if col.type == "count":
        return [pa.Check(_passes(count_problem, c), name=c, ignore_na=True)
                for c in ("not-a-number", "negative", "not-integer")]
    if col.type == "rate":
        return [pa.Check(_passes(rate_problem, c), name=c, ignore_na=True) for c in ("not-a-number", "negative")]
    if col.type == "id":
        return [pa.Check(_passes(_id_code, c), name=c, ignore_na=True)
                for c in ("id-length", "id-birthdate", "id-checksum", "id-region")]
    if col.type == "code":
        allowed = set(col.list)
        return [pa.Check(lambda s: s.isin(allowed), name="not-in-list", ignore_na=True)]
    if col.type == "date":
        return [pa.Check(lambda s: s.map(parse_date).notna(), name="date-unparseable", ignore_na=True)]
    if col.type == "phone":
        return [pa.Check(lambda s: s.map(lambda t: bool(_MOBILE.match(t.replace(" ", "").replace("-", "")))),
                         name="phone-invalid", ignore_na=True)]
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
    try:
        schema_for(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return cases[cases["index"].notna()]
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
        return "11位手机号,以1开头"
    if code in ("not-a-number", "negative", "not-integer"):
        return "不小于0的整数" if col.type == "count" else "数字"
    return ""


def where(key: ReturnKey, sheet: str, letter: str, row: int | None) -> dict:
    """The location fields of a finding in one return's sheet."""
    row = int(row) if row is not None else None
    return {"unit": key.unit, "unit_name": key.unit_name, "period": key.period, "file": key.file,
            "sheet": sheet, "cell": f"{letter}{row}" if letter and row else "", "row": row, "column": letter}

"""Street-wide person rule: one person registered by two units of the street.

Each unit is told only that the person is also registered elsewhere, never where or by
whom: no unit is shown another unit's personal data.
"""

from __future__ import annotations

import itertools

import pandas as pd

from pipeline.findings import Finding, Severity, finding
from pipeline.validate.batch import RET, ROW, ReturnKey
from pipeline.validate.cells import where

ID = "身份证号"


def ids_in_other_units(this_run: pd.DataFrame, earlier: pd.DataFrame, sheet: str,
                       keys: dict[int, ReturnKey], letters: dict[int, dict[str, str]]
                       ) -> tuple[list[Finding], dict[int, list[Finding]]]:
    """IDs held by more than one unit in one register kind.

    `this_run`: typed rows of the returns being checked (RET, ROW, 身份证号).
    `earlier`: (return_id, unit, id_number, cell, row, this_run) of returns already filed:
    accepted in earlier runs, or filed by this run in an earlier batch (`this_run` true).
    Returns errors for the returns being checked, and findings keyed by earlier return id:
    warnings for earlier runs' returns (already sent on), errors for this run's, as if
    they had been checked in one batch.
    """
    units = {r: key.unit for r, key in keys.items()}
    mine = this_run.loc[this_run[ID].notna(), [RET, ROW, ID]]
    shared = _held_twice(zip(mine[ID].tolist(), (units[r] for r in mine[RET].tolist())),
                         zip(earlier["id_number"].tolist(), earlier["unit"].tolist()))
    errors = [finding("id-in-other-unit", **where(keys[r[RET]], sheet, letters[r[RET]].get(ID, ""), r[ROW]),
                      field=ID, value=r[ID], expected="只在一个村(居)登记")
              for _, r in mine[mine[ID].isin(shared)].iterrows()] if shared else []
    warnings: dict[int, list[Finding]] = {}
    for _, r in (earlier[earlier["id_number"].isin(shared)] if shared else earlier.iloc[:0]).iterrows():
        warnings.setdefault(int(r["return_id"]), []).append(finding(
            "id-in-other-unit", severity=None if r.get("this_run", False) else Severity.WARNING, unit=r["unit"], unit_name=r["unit_name"],
            period=r["period"], file=r["file"], sheet=sheet, cell=r["cell"], row=r["row"], column=r["column"],
            field=ID, value=r["id_number"], expected="只在一个村(居)登记"))
    return errors, warnings


def _held_twice(*pairs) -> set:
    """IDs registered by more than one unit, from (id, unit) pairs; a blank ID or unit counts for nothing."""
    first: dict = {}
    twice = set()
    for number, unit in itertools.chain(*pairs):
        if _blank(number) or _blank(unit):
            continue
        held = first.setdefault(number, unit)
        if held != unit:
            twice.add(number)
    return twice


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)

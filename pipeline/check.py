"""Check a run's returns: the form's rules, the street-wide person rule, severities, verdicts.

The glue between intake and the history store: everything here is computed, nothing is
written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import pandas as pd

from pipeline.findings import Finding, finding, with_severities
from pipeline.forms import Form
from pipeline.intake.returns import ReturnFile
from pipeline.registry import Registry
from pipeline.store.history import Layout
from pipeline.validate import Validated, validate_returns
from pipeline.validate.batch import RET, ROW, ReturnKey
from pipeline.validate.registers import GROUP
from pipeline.validate.street import ids_in_other_units

REGISTERS = {"roster": "women", "floating": "floating"}  # form sheet key -> Validated attribute


@dataclass
class CheckedReturn:
    """One identified return after every check: its verdict and what to keep of it."""

    file: ReturnFile
    findings: list[Finding]
    figures: pd.DataFrame  # long rows: grp, name, value
    persons: dict[str, pd.DataFrame] = field(default_factory=dict)  # sheet key -> id_number, grp, record
    layouts: list[Layout] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "rejected" if any(f.blocks for f in self.findings) else "accepted"


def return_keys(files: list[ReturnFile]) -> dict[int, ReturnKey]:
    return {i: ReturnKey(i, f.unit.code, f.unit.name, f.period, f.name, f.unit.groups)
            for i, f in enumerate(files)}


def check_returns(files: list[ReturnFile], registry: Registry, form: Form, today: dt.date,
                  earlier_persons: dict[str, pd.DataFrame]) -> tuple[list[CheckedReturn], dict[int, list[Finding]]]:
    """Findings and verdicts for identified returns, plus warnings for earlier accepted returns.

    `earlier_persons[sheet key]` holds the registers of returns accepted before this run
    (return_id, unit, id_number, cell, row, …), for the street-wide duplicate-ID rule.
    """
    keys = return_keys(files)
    validated = validate_returns({i: f.tables for i, f in enumerate(files)}, keys, form, today)
    found = {i: f.findings + validated.findings[i] for i, f in enumerate(files)}
    earlier_warnings: dict[int, list[Finding]] = {}
    for key, attr in REGISTERS.items():
        typed = getattr(validated, attr)
        letters = {i: f.tables[key].letters for i, f in enumerate(files) if key in f.tables}
        errors, warnings = ids_in_other_units(typed, earlier_persons[key], form.sheets[key].name, keys, letters)
        for f in errors:
            found[_index_of(keys, f)].append(f)
        for rid, ws in warnings.items():
            earlier_warnings.setdefault(rid, []).extend(ws)
    overrides = registry.settings.severity
    checked = [CheckedReturn(f, with_severities(_stamp(found[i], keys[i]), overrides), figures_of(validated, i, form),
                             {k: persons_of(validated, i, k, a, files[i]) for k, a in REGISTERS.items()},
                             layouts_of(validated, i, f))
               for i, f in enumerate(files)]
    return checked, {rid: with_severities(ws, overrides) for rid, ws in earlier_warnings.items()}


def _index_of(keys: dict[int, ReturnKey], f: Finding) -> int:
    return next(i for i, k in keys.items() if k.file == f.file)


def _stamp(findings: list[Finding], key: ReturnKey) -> list[Finding]:
    """Intake findings were made before the unit was known: give every finding its unit and period."""
    return [replace(f, unit=key.unit, unit_name=key.unit_name, period=key.period, file=key.file) for f in findings]


def figures_of(validated: Validated, index: int, form: Form) -> pd.DataFrame:
    """The return's monthly table as long rows (grp, name, value), rows of unknown groups left out."""
    rows = validated.monthly[(validated.monthly[RET] == index) & validated.monthly[GROUP].notna()]
    names = [c.name for c in form.monthly.columns if c.type == "count"]
    long = rows.melt(id_vars=[GROUP], value_vars=names, var_name="name", value_name="value")
    long = long.rename(columns={GROUP: "grp"}).dropna(subset=["value"])
    return long.groupby(["grp", "name"], as_index=False)["value"].sum()


def layouts_of(validated: Validated, index: int, file: ReturnFile) -> list[Layout]:
    """Where each table sat in the file, and the Excel row of each group of the monthly table."""
    rows = validated.monthly[(validated.monthly[RET] == index) & validated.monthly[GROUP].notna()]
    group_rows = {g: int(r) for g, r in zip(rows[GROUP], rows[ROW])}
    return [Layout(key, t.sheet, t.header_row, t.total_row, t.letters, group_rows if key == "monthly" else {})
            for key, t in file.tables.items()]


def persons_of(validated: Validated, index: int, key: str, attr: str, file: ReturnFile) -> pd.DataFrame:
    """One register's rows: id_number, grp, and the typed record (with its Excel cell)."""
    typed = getattr(validated, attr)
    rows = typed[(typed[RET] == index) & typed["身份证号"].notna()]
    letter = file.tables[key].letters.get("身份证号", "") if key in file.tables else ""
    records = [
        {**{k: _plain(v) for k, v in r.items() if not k.startswith("_")}, "_row": int(r[ROW]),
         "_column": letter, "_cell": f"{letter}{int(r[ROW])}"}
        for r in rows.to_dict("records")
    ]
    return pd.DataFrame({"id_number": rows["身份证号"].tolist(), "grp": rows[GROUP].tolist(), "record": records})


def _plain(value: object) -> object:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def no_earlier_persons() -> dict[str, pd.DataFrame]:
    """No returns accepted before: an empty register per kind."""
    columns = ["return_id", "unit", "unit_name", "period", "file", "id_number", "cell", "row", "column"]
    return {key: pd.DataFrame(columns=columns) for key in REGISTERS}


def period_mismatch(file: ReturnFile, period: str) -> Finding:
    entry = file.identity.cover.get("period") if file.identity else None
    return finding("period-mismatch", unit=file.unit.code if file.unit else "", file=file.name,
                   sheet="封面", cell=entry.cell if entry else "", row=entry.row if entry else None,
                   field="报告期", value=file.period, expected=period)

"""Check a run's returns: the form's rules, the street-wide person rule, severities, verdicts.

The glue between intake and the history store: everything here is computed, nothing is
written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from pipeline.findings import Finding, Severity, finding, with_severities
from pipeline.forms import Form
from pipeline.intake.returns import ReturnFile
from pipeline.registry import Registry
from pipeline.store.history import Layout
from pipeline.validate import Validated, validate_returns
from pipeline.validate.batch import RET, ROW, ReturnKey, row_spans, object_array
from pipeline.validate.registers import GROUP, still_registered
from pipeline.validate.street import ids_in_other_units

REGISTERS = {"roster": "women", "floating": "floating"}  # form sheet key -> Validated attribute
PERSON_COLUMNS = ("id_number", "grp", "record")
EarlierPersons = Callable[[str, list[str]], pd.DataFrame]  # (sheet key, ID numbers) -> filed persons holding them


@dataclass(frozen=True)
class FigureRows:
    """A return's monthly table as long rows, three lists in step: each figure's group, name and value.

    Lists, not a frame: filing writes them as they are, ~1,000 returns a run.
    """

    groups: list[str]
    names: list[str]
    values: list[float]

    def frame(self) -> pd.DataFrame:
        """The rows as a frame (grp, name, value), for people and tests."""
        return pd.DataFrame({"grp": pd.Series(object_array(self.groups), dtype=object),
                             "name": pd.Series(object_array(self.names), dtype=object),
                             "value": pd.Series(self.values, dtype=float)})


@dataclass
class CheckedReturn:
    """One identified return after every check: its verdict and what to keep of it."""

    file: ReturnFile
    findings: list[Finding]
    figures: FigureRows  # long rows: grp, name, value
    persons: Registers = field(default_factory=lambda: Registers({}))  # sheet key -> id_number, grp, record
    layouts: list[Layout] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "rejected" if any(f.blocks for f in self.findings) else "accepted"


def return_keys(files: list[ReturnFile]) -> dict[int, ReturnKey]:
    return {i: ReturnKey(i, f.unit.code, f.unit.name, f.period, f.name, f.unit.groups)
            for i, f in enumerate(files)}


def check_returns(files: list[ReturnFile], registry: Registry, form: Form, today: dt.date,
                  earlier_persons: EarlierPersons) -> tuple[list[CheckedReturn], dict[int, list[Finding]]]:
    """Findings and verdicts for identified returns, plus findings for returns filed before them.

    `earlier_persons(sheet key, ID numbers)` gives the persons holding those IDs in returns
    already filed (accepted in an earlier run, or filed by this run in an earlier batch),
    for the street-wide duplicate-ID rule (return_id, unit, id_number, cell, row, this_run, …).
    """
    keys = return_keys(files)
    names = {u.code: u.name for u in registry.units}
    validated = validate_returns({i: f.tables for i, f in enumerate(files)}, keys, form, today)
    found = {i: f.findings + validated.findings[i] + filled_in_future(f, form, today) for i, f in enumerate(files)}
    index_of = {k.file: i for i, k in reversed(keys.items())}  # the first return of that file name
    earlier_warnings: dict[int, list[Finding]] = {}
    for key, attr in REGISTERS.items():
        typed = getattr(validated, attr)
        typed = typed[still_registered(typed, key, keys, form)]  # one who left one unit for another: no double
        letters = {i: f.tables[key].letters for i, f in enumerate(files) if key in f.tables}
        earlier = earlier_persons(key, typed["身份证号"].dropna().unique().tolist())
        earlier["unit_name"] = [names.get(code, "") for code in earlier["unit"].tolist()]
        errors, warnings = ids_in_other_units(typed, earlier, form.sheets[key].name, keys, letters)
        for f in errors:
            found[index_of[f.file]].append(f)
        for rid, ws in warnings.items():
            earlier_warnings.setdefault(rid, []).extend(ws)
    overrides = registry.settings.severity
    figures = all_figures(validated, form)
    persons = {k: all_persons(validated, k, a, files) for k, a in REGISTERS.items()}
    group_rows = all_group_rows(validated)
    checked = [CheckedReturn(f, with_severities(_stamp(found[i], keys[i]), overrides),
                             figures.get(i, FigureRows([], [], [])),
                             Registers({k: persons[k].get(i) for k in REGISTERS}),
                             _layouts(f, group_rows.get(i, {})))
               for i, f in enumerate(files)]
    return checked, {rid: with_severities(ws, overrides) for rid, ws in earlier_warnings.items()}


def _stamp(findings: list[Finding], key: ReturnKey) -> list[Finding]:
    """Intake findings were made before the unit was known: give every finding its unit and period."""
    return [replace(f, unit=key.unit, unit_name=key.unit_name, period=key.period, file=key.file) for f in findings]


def all_figures(validated: Validated, form: Form) -> dict[int, FigureRows]:
    """Each return's monthly table as long rows (grp, name, value), from one pass over the stacked table.

    Rows of unknown groups are left out.
    """
    rows = validated.monthly[validated.monthly[GROUP].notna()]
    counts = [c.name for c in form.monthly.columns if c.type == "count"]
    long = rows.melt(id_vars=[RET, GROUP], value_vars=counts, var_name="name", value_name="value")
    long = long.rename(columns={GROUP: "grp"}).dropna(subset=["value"])
    summed = long.groupby([RET, "grp", "name"], as_index=False)["value"].sum()
    groups, names, values = (summed[c].tolist() for c in ("grp", "name", "value"))
    return {ret: FigureRows(groups[span], names[span], values[span]) for ret, span in row_spans(summed[RET]).items()}


def all_group_rows(validated: Validated) -> dict[int, dict[str, int]]:
    """Per return, the Excel row of each group of its monthly table (the last row, if one repeats)."""
    rows = validated.monthly[validated.monthly[GROUP].notna()]
    found: dict[int, dict[str, int]] = {}
    for ret, group, row in zip(rows[RET].tolist(), rows[GROUP].tolist(), rows[ROW].tolist()):
        found.setdefault(ret, {})[group] = int(row)
    return found


def _layouts(file: ReturnFile, group_rows: dict[str, int]) -> list[Layout]:
    return [Layout(key, t.sheet, t.header_row, t.total_row, t.letters, group_rows if key == "monthly" else {})
            for key, t in file.tables.items()]


class _Register:
    """A stacked register's columns as plain lists (references to the cells), for filing."""

    def __init__(self, rows: pd.DataFrame):
        self.names = [c for c in rows.columns if not c.startswith("_")]
        self.columns = [rows[c].tolist() for c in self.names]
        self.rows, self.ids, self.groups = rows[ROW].tolist(), rows["身份证号"].tolist(), rows[GROUP].tolist()


@dataclass(frozen=True)
class PersonRows:
    """One return's rows of a stacked register, and the letter of its ID column."""

    register: _Register
    span: slice
    letter: str

    def columns(self) -> tuple[list, list, dict[str, list]]:
        """id_number, grp and the register's columns as filing hands them to the history: each column's
        typed values (the history writes dates as ISO texts and NaN as blank), then where each person
        stood: _row, _column and _cell."""
        reg, span = self.register, self.span
        rows = [int(row) for row in reg.rows[span]]
        columns = {name: cells[span] for name, cells in zip(reg.names, reg.columns)}
        columns |= {"_row": rows, "_column": [self.letter] * len(rows), "_cell": [f"{self.letter}{r}" for r in rows]}
        return reg.ids[span], reg.groups[span], columns

    def frame(self) -> pd.DataFrame:
        """The register as the history gives it back: id_number, grp and a record (dict) per person."""
        ids, groups, columns = self.columns()
        columns = {name: plain_column(cells) for name, cells in columns.items()}
        records = [dict(zip(columns, values)) for values in zip(*columns.values())]
        return pd.DataFrame({name: object_array(column) for name, column in zip(PERSON_COLUMNS, (ids, groups, records))},
                            dtype=object)


class Registers(Mapping):
    """A return's registers (sheet key -> id_number, grp, record), each made when it is read.

    What is filed is made at filing time from the typed rows, one return at a time: a run
    holds the typed registers (references to cells already in memory), not every
    person's stored form at once.
    """

    def __init__(self, rows: dict[str, PersonRows | None]):
        self._rows = rows

    def __getitem__(self, key: str) -> pd.DataFrame:
        rows = self._rows[key]
        return rows.frame() if rows is not None else _no_persons()

    def columns(self, key: str) -> tuple[list, list, dict[str, list]]:
        """The register as lists (id_number, grp, columns): what filing writes, without a frame."""
        rows = self._rows[key]
        return rows.columns() if rows is not None else ([], [], {})

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def all_persons(validated: Validated, key: str, attr: str, files) -> dict[int, PersonRows]:
    """Each return's rows of one register (returns of `files`: a list, or a dict by index), ID filled."""
    typed = getattr(validated, attr)
    files = dict(enumerate(files)) if isinstance(files, list) else files
    rows = typed[typed[RET].isin(list(files)) & typed["身份证号"].notna()]
    letters = {i: f.tables[key].letters.get("身份证号", "") if key in f.tables else "" for i, f in files.items()}
    register = _Register(rows)
    return {ret: PersonRows(register, span, letters[ret]) for ret, span in row_spans(rows[RET]).items()}


def plain_column(cells: list) -> list:
    """A register column as the history gives it back: blanks (None, NaN) None, dates ISO texts; texts and
    numbers as they are."""
    kinds = set(map(type, cells))
    if kinds <= _AS_THEY_ARE:  # most columns (names, IDs, codes): no cell to look at
        return cells
    if kinds <= _NUMBERS:
        return [None if v != v else v for v in cells]  # (only NaN differs from itself)
    return [v.isoformat() if type(v) is dt.date else _plain(v) for v in cells]


_AS_THEY_ARE = {str, type(None), int, bool}
_NUMBERS = _AS_THEY_ARE - {str} | {float}


def _no_persons() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in PERSON_COLUMNS})


def _plain(value: object) -> object:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


EARLIER_COLUMNS = ["return_id", "unit", "unit_name", "period", "file", "id_number", "cell", "row", "column", "this_run"]


def no_earlier_persons() -> EarlierPersons:
    """No returns filed before: nobody holds any ID."""
    return lambda key, id_numbers: pd.DataFrame(columns=EARLIER_COLUMNS)


def filled_in_future(file: ReturnFile, form: Form, today: dt.date) -> list[Finding]:
    """A 填报日期 after the day of the run (2062 for 2026): a warning, as it orders a unit's returns."""
    filled = file.identity.filled_on if file.identity else None
    if filled is None or filled <= today:
        return []
    entry = file.identity.cover["filled_on"]
    return [finding("date-future", severity=Severity.WARNING, unit=file.unit.code if file.unit else "",
                    file=file.name, sheet=form.cover.name, cell=entry.cell, row=entry.row, field="填报日期",
                    value=filled.isoformat(), expected=today.isoformat())]


def period_mismatch(file: ReturnFile, period: str) -> Finding:
    entry = file.identity.cover.get("period") if file.identity else None
    return finding("period-mismatch", unit=file.unit.code if file.unit else "", file=file.name,
                   sheet="封面", cell=entry.cell if entry else "", row=entry.row if entry else None,
                   field="报告期", value=file.period, expected=period)

"""Validate: every rule of the form that needs no previous month, for a batch of returns.

The tables of all returns are stacked per sheet kind, checked in one pass each (pandera
for cells, pandas for rows and across sheets), and the findings go back to their returns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from pipeline.findings import Finding, finding
from pipeline.forms import Form, SheetSpec
from pipeline.intake.locate import LocatedRows
from pipeline.validate.batch import RET, ROW, ReturnKey, stack_raw, stack_texts
from pipeline.validate.cells import failures_to_findings, remembering_id_codes, run_schema, where
from pipeline.validate.registers import (GROUP, REGISTER_FIGURES, ROSTER_FIGURES, PersonChecker,
                                         compare_with_table, register_counts, roster_counts)
from pipeline.validate.rows import RowChecker
from pipeline.validate.typed import resolve_groups, typed_frame


@dataclass
class Sheet:
    """One sheet kind across the batch: its typed rows and what was found."""

    spec: SheetSpec
    tables: dict[int, LocatedRows]
    typed: pd.DataFrame
    findings: list[Finding]

    @property
    def letters(self) -> dict[int, dict[str, str]]:
        return {i: t.letters for i, t in self.tables.items()}


@dataclass
class Validated:
    findings: dict[int, list[Finding]]
    monthly: pd.DataFrame  # typed rows of every return, RET / ROW / GROUP columns included
    women: pd.DataFrame
    floating: pd.DataFrame


def validate_returns(tables: dict[int, dict[str, LocatedRows]], keys: dict[int, ReturnKey],
                     form: Form, today: dt.date) -> Validated:
    """Check a batch of identified returns; `tables[i]` maps form sheet key → located table."""
    with remembering_id_codes():
        sheets = {key: check_sheet({i: t[key] for i, t in tables.items() if key in t}, form.sheets[key], keys)
                  for key in ("monthly", "roster", "floating")}
        monthly, women, floating = sheets["monthly"], sheets["roster"], sheets["floating"]
        found = monthly.findings + women.findings + floating.findings
        found += monthly_rules(monthly, keys)
        found += roster_rules(women, keys, form, today)
        found += floating_rules(floating, keys, today)
        found += cross_sheet_rules(monthly, women, floating, keys, form)
    by_file = {key.file: i for i, key in keys.items()}
    per_return: dict[int, list[Finding]] = {i: [] for i in keys}
    for f in found:
        per_return[by_file[f.file]].append(f)
    return Validated(per_return, monthly.typed, women.typed, floating.typed)


def check_sheet(tables: dict[int, LocatedRows], spec: SheetSpec, keys: dict[int, ReturnKey]) -> Sheet:
    """Cell checks of one sheet kind over all returns, and its typed frame."""
    texts = stack_texts(tables, spec)
    read_value_aliases(texts, spec)
    for table in tables.values():  # stacked: the batch need not hold them twice (made again if asked for)
        table.texts = None
    letters = {i: t.letters for i, t in tables.items()}
    found, already, positions = numeric_ids(texts, tables, spec, keys, letters)
    found += failures_to_findings(run_schema(texts, spec), texts, spec, keys, letters, already)
    typed = typed_frame(texts, spec)
    for position, column in positions:  # a damaged ID is not compared with anything (its row: one per cell)
        typed.iat[position, typed.columns.get_loc(column)] = None
    typed[GROUP], unknown = resolve_groups(typed, spec, keys, letters)
    return Sheet(spec, tables, typed, found + unknown)


def read_value_aliases(texts: pd.DataFrame, spec: SheetSpec) -> None:
    """A listed value written another way (女性, 放环) as the value itself, in place, before any check."""
    for col in spec.columns:
        if col.value_aliases and col.name in texts:
            words = dict(col.value_aliases)
            written = texts[col.name].isin(words.keys())
            if written.any():
                texts.loc[written, col.name] = texts.loc[written, col.name].map(words)


def numeric_ids(texts: pd.DataFrame, tables: dict[int, LocatedRows], spec: SheetSpec,
                keys: dict[int, ReturnKey], letters: dict[int, dict[str, str]]
                ) -> tuple[list[Finding], set[tuple[int, int, str]], list[tuple[int, str]]]:
    """ID numbers Excel stored as numbers: their last digits are gone, even if the check digit passes.

    Returns the findings, their cells as (ret, row, column), and their (position, column).
    """
    found, cells, positions = [], set(), []
    rets, rows = texts[RET].tolist(), texts[ROW].tolist()
    for col in spec.columns_of_type("id"):
        raw = stack_raw(tables, spec, col.name).tolist()
        for i, value in enumerate(raw):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            ret, row = int(rets[i]), int(rows[i])
            shown = f"{value:.0f}" if value == value else str(value)
            found.append(finding("id-numeric", **where(keys[ret], spec.name, letters[ret][col.name], row),
                                 field=col.name, value=shown, expected="18位文本"))
            cells.add((ret, row, col.name))
            positions.append((i, col.name))
    return found, cells, positions


def monthly_rules(sheet: Sheet, keys: dict[int, ReturnKey]) -> list[Finding]:
    rows = RowChecker(sheet.typed, sheet.spec, keys, sheet.letters)
    return rows.balance() + rows.parts() + rows.birth_orders() + rows.totals(sheet.tables) + rows.rates()


def roster_rules(sheet: Sheet, keys: dict[int, ReturnKey], form: Form, today: dt.date) -> list[Finding]:
    persons = PersonChecker(sheet.typed, sheet.spec, keys, sheet.letters)
    return (persons.event_dates(today) + persons.duplicate_ids() + persons.roster_persons(form)
            + persons.date_order("measure-before-marriage", "措施日期", "结婚日期"))


def floating_rules(sheet: Sheet, keys: dict[int, ReturnKey], today: dt.date) -> list[Finding]:
    persons = PersonChecker(sheet.typed, sheet.spec, keys, sheet.letters)
    return (persons.event_dates(today) + persons.duplicate_ids()
            + persons.date_order("outflow-before-inflow", "流出日期", "流入日期"))


def cross_sheet_rules(monthly: Sheet, women: Sheet, floating: Sheet, keys: dict[int, ReturnKey],
                      form: Form) -> list[Finding]:
    """Per group, the table's figures equal what the registers give (where both sheets exist)."""
    headers = {i: t.header_row for i, t in monthly.tables.items()}
    args = (monthly.spec, keys, monthly.letters, headers)
    with_roster = set(monthly.tables) & set(women.tables)
    with_register = set(monthly.tables) & set(floating.tables)
    return (compare_with_table(monthly.typed, roster_counts(women.typed, form), ROSTER_FIGURES,
                               "roster-vs-table", with_roster, *args)
            + compare_with_table(monthly.typed, register_counts(floating.typed, keys, form), REGISTER_FIGURES,
                                 "register-vs-table", with_register, *args))

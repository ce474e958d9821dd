"""Person rules (ages, sexes, duplicates, date order) and the registers against the table."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd

from pipeline.findings import Finding, finding
from pipeline.forms import Form, SheetSpec
from pipeline.periods import month_end
from pipeline.validate.batch import RET, ROW, ReturnKey, object_array
from pipeline.validate.cells import id_codes, id_problem, where
from pipeline.validate.rows import fmt

GROUP = "_group"  # the registered group a row belongs to (None if unknown)

ROSTER_FIGURES = ("已婚育龄妇女", "节育措施", "怀孕")
REGISTER_FIGURES = ("流动人口", "流动育龄妇女", "流动节育措施", "持证人数", "验证人数")


@lru_cache(maxsize=65536)
def id_birth_date(number: str | None) -> dt.date | None:
    """The birth date an ID number holds, if the number is sound (an unknown region is fine)."""
    if not isinstance(number, str) or not number:
        return None
    problem = id_problem(number)
    if problem and problem[0] != "id-region":
        return None
    return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def birth_dates(numbers: list) -> list[dt.date | None]:
    """id_birth_date of each number, the numbers checked together (see cells.id_codes)."""
    given = [(i, n) for i, n in enumerate(numbers) if isinstance(n, str) and n]
    births: list[dt.date | None] = [None] * len(numbers)
    days: dict[str, dt.date] = {}  # birth days repeat: build each date once
    for (i, number), code in zip(given, id_codes([n for _, n in given])):
        if code is None or code == "id-region":
            digits = number[6:14]
            if digits not in days:
                days[digits] = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
            births[i] = days[digits]
    return births


def sex_of(number: object, birth: dt.date | None) -> str | None:
    """id_sex, given the number's birth date (None when the number is not sound)."""
    if birth is None:
        return None
    return "女" if int(number[16]) % 2 == 0 else "男"


def age_on(birth: dt.date | None, day: dt.date) -> int | None:
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def period_ends(rets: pd.Series, keys: dict[int, ReturnKey]) -> list[dt.date]:
    """The last day of each row's period."""
    ends = {r: month_end(keys[r].period) for r in set(rets.tolist())}
    return [ends[r] for r in rets.tolist()]


def ages(typed: pd.DataFrame, keys: dict[int, ReturnKey]) -> pd.Series:
    """Whole years at the last day of each row's period, from the ID (None if unknown)."""
    births = birth_dates(typed["身份证号"].tolist())
    return pd.Series(object_array([age_on(b, e) for b, e in zip(births, period_ends(typed[RET], keys))]),
                     index=typed.index, dtype=object)


def id_sex(number: object) -> str | None:
    if id_birth_date(number) is None:
        return None
    return "女" if int(number[16]) % 2 == 0 else "男"


def _dates(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the filled cells of a date column, and their dates."""
    filled = np.flatnonzero(column.notna().to_numpy())
    return filled, column.to_numpy(dtype=object)[filled]


class PersonChecker:
    """Rules over one stacked register (roster of women, or floating population)."""

    def __init__(self, typed: pd.DataFrame, spec: SheetSpec, keys: dict[int, ReturnKey],
                 letters: dict[int, dict[str, str]]):
        self.t, self.spec, self.keys, self.letters = typed, spec, keys, letters
        self.rets, self.rows = typed[RET].tolist(), typed[ROW].tolist()

    def at(self, ret: int, column: str, row: int) -> dict:
        return where(self.keys[ret], self.spec.name, self.letters[ret].get(column, ""), row)

    def event_dates(self, today: dt.date) -> list[Finding]:
        """After the period's end: a warning; after the day of the run: an error."""
        found = []
        ends = object_array(period_ends(self.t[RET], self.keys))
        for col in (c for c in self.spec.columns if c.event):
            filled, days = _dates(self.t[col.name])
            if not len(filled):
                continue
            late = np.flatnonzero((days > today) | (days > ends[filled]))
            for k in late:
                i, day = int(filled[k]), days[k]
                ret, end = self.rets[i], ends[filled[k]]
                code, expected = ("date-future", today.isoformat()) if day > today else \
                    ("date-after-period", end.isoformat())
                found.append(finding(code, **self.at(ret, col.name, self.rows[i]), field=col.name,
                                     value=day.isoformat(), expected=expected))
        return found

    def duplicate_ids(self) -> list[Finding]:
        ids = self.t.loc[self.t["身份证号"].notna(), [RET, ROW, "身份证号"]]
        dup = ids[ids.duplicated([RET, "身份证号"], keep=False)]
        found = []
        for (ret, number), rows in dup.groupby([RET, "身份证号"]):
            letter = self.letters[ret].get("身份证号", "")
            cells = [f"{letter}{r}" for r in rows[ROW]]
            for row, cell in zip(rows[ROW], cells):
                others = "、".join(c for c in cells if c != cell)
                found.append(finding("duplicate-id", **self.at(ret, "身份证号", row), field="身份证号",
                                     value=number, expected=others))
        return found

    def date_order(self, code: str, later: str, earlier: str) -> list[Finding]:
        """`later` must not be before `earlier` in the same row."""
        t = self.t
        both = np.flatnonzero((t[later].notna() & t[earlier].notna()).to_numpy())
        if not len(both):
            return []
        after = t[later].to_numpy(dtype=object)[both]
        before = t[earlier].to_numpy(dtype=object)[both]
        found = []
        for k in np.flatnonzero(after < before):
            i = int(both[k])
            found.append(finding(code, **self.at(self.rets[i], later, self.rows[i]), field=later,
                                 value=after[k].isoformat(), expected=before[k].isoformat()))
        return found

    def roster_persons(self, form: Form) -> list[Finding]:
        """On the roster: women only, aged 15–49; from 50 she leaves with 变动 超龄."""
        rules = form.roster
        numbers = self.t["身份证号"].tolist()
        births = birth_dates(numbers)
        ends = period_ends(self.t[RET], self.keys)
        changes = self.t["变动"].tolist()
        found = []
        for i, (number, birth) in enumerate(zip(numbers, births)):
            if birth is None:
                continue  # no sex and no age: nothing to say here (the ID's own finding says it)
            ret, row = self.rets[i], self.rows[i]
            if sex_of(number, birth) == "男":
                found.append(finding("roster-not-female", **self.at(ret, "身份证号", row), field="身份证号",
                                     value=number, expected="女性(第17位为双数)"))
            a = age_on(birth, ends[i])
            if a < rules.min_age:
                expected = f"未满{rules.min_age}岁,不应登记在育龄妇女花名册"
            elif a > rules.max_age and changes[i] != rules.over_age:
                expected = f"已满{rules.max_age + 1}岁,本月应在“变动”填“{rules.over_age}”"
            else:
                continue
            found.append(finding("roster-age", **self.at(ret, "身份证号", row), field="身份证号",
                                 value=str(a), expected=expected))
        return found


def still_registered(typed: pd.DataFrame, sheet_key: str, keys: dict[int, ReturnKey], form: Form) -> np.ndarray:
    """Each row's person is still on the register at the period's end: a roster row without an exit 变动,
    a floating person without a 流出日期 on or before it. (A leaver appears once more, with the exit.)"""
    if sheet_key == "roster":
        return ~typed["变动"].isin(form.roster.exits).to_numpy()  # as has_left, over the whole column
    ends = period_ends(typed[RET], keys)
    return np.array([not has_left("floating", None, o, e, ()) for o, e in zip(typed["流出日期"].tolist(), ends)],
                    dtype=bool)


def has_left(sheet_key: str, change: object, left_on: object, end: dt.date, exits: tuple[str, ...]) -> bool:
    """Whether a person left the register by the period's `end`: an exit 变动 on the roster; on the floating
    register a 流出日期 on or before it (a date, or the ISO text the history stores)."""
    if sheet_key == "roster":
        return change in exits
    if isinstance(left_on, str):
        left_on = dt.date.fromisoformat(left_on) if left_on else None
    return isinstance(left_on, dt.date) and left_on <= end


def roster_counts(typed: pd.DataFrame, form: Form) -> pd.DataFrame:
    """Per return and group, the table's roster figures as the roster gives them."""
    active = typed[typed[GROUP].notna() & ~typed["变动"].isin(form.roster.exits)]
    counts = pd.DataFrame({
        RET: active[RET], GROUP: active[GROUP],
        "已婚育龄妇女": 1,
        "节育措施": (active["节育措施"].notna() & (active["节育措施"] != "无")).astype(int),
        "怀孕": (active["孕情"] == "孕中").astype(int),
    })
    return counts.groupby([RET, GROUP]).sum()


def register_counts(typed: pd.DataFrame, keys: dict[int, ReturnKey], form: Form) -> pd.DataFrame:
    """Per return and group, the table's floating figures as the register gives them."""
    ends = period_ends(typed[RET], keys)
    keep = typed[GROUP].notna().to_numpy() & still_registered(typed, "floating", keys, form)
    present = typed[keep]
    numbers = present["身份证号"].tolist()
    present_ends = [e for e, k in zip(ends, keep) if k]
    rules = form.roster
    women = [(s if s is not None and s == s else sex_of(n, b)) == "女"
             and (a := age_on(b, e)) is not None and rules.min_age <= a <= rules.max_age
             for s, n, b, e in zip(present["性别"].tolist(), numbers, birth_dates(numbers), present_ends)]
    women = pd.Series(women, index=present.index, dtype=bool)
    measure = present["节育措施"].notna() & (present["节育措施"] != "无")
    counts = pd.DataFrame({
        RET: present[RET], GROUP: present[GROUP],
        "流动人口": 1,
        "流动育龄妇女": women.astype(int),
        "流动节育措施": (women & (present["婚姻状况"] == "已婚") & measure).astype(int),
        "持证人数": (present["婚育证明"] == "有").astype(int),
        "验证人数": (present["验证"] == "是").astype(int),
    })
    return counts.groupby([RET, GROUP]).sum()


def compare_with_table(table: pd.DataFrame, counts: pd.DataFrame, figures: tuple[str, ...], code: str,
                       returns: set[int], spec: SheetSpec, keys: dict[int, ReturnKey],
                       letters: dict[int, dict[str, str]], header_rows: dict[int, int]) -> list[Finding]:
    """Each group's figure in the table equals the count from the register (for `returns`)."""
    rows = table[table[RET].isin(returns) & table[GROUP].notna()].drop_duplicates([RET, GROUP])
    reported = rows.set_index([RET, GROUP])
    # A mistyped group name is reported once, as unknown-group: no echo for its missing row.
    misnamed = set(table.loc[table[GROUP].isna() & table[spec.group_column].notna(), RET])
    index = reported.index.union(counts.index[counts.index.get_level_values(0).isin(returns - misnamed)])
    if not len(index):
        return []
    held = index.isin(reported.index)
    on_table = reported.reindex(index)
    counted = index.isin(counts.index)
    by_count = counts.reindex(index)
    pairs = index.tolist()
    report_rows = on_table[ROW].tolist()
    found = []
    columns = {name: (on_table[name].tolist() if name in on_table else [np.nan] * len(index),
                      by_count[name].tolist() if name in by_count else [0] * len(index)) for name in figures}
    for k, (ret, group) in enumerate(pairs):
        for name in figures:
            letter = letters[ret].get(name)
            if letter is None:
                continue
            if held[k]:
                value, row = columns[name][0][k], int(report_rows[k])
            else:
                value, row = 0.0, header_rows[ret]  # the group has people but no row in the table
            count = int(columns[name][1][k]) if counted[k] else 0
            if pd.notna(value) and value != count:
                found.append(finding(code, **where(keys[ret], spec.name, letter, row), field=name,
                                     value=fmt(value), expected=f"{group} {fmt(count)} 人"))
    return found

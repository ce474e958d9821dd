"""Person rules (ages, sexes, duplicates, date order) and the registers against the table."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import pandas as pd

from pipeline.findings import Finding, finding
from pipeline.forms import Form, SheetSpec
from pipeline.periods import month_end
from pipeline.validate.batch import RET, ROW, ReturnKey
from pipeline.validate.cells import id_problem, where
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


def age_on(birth: dt.date | None, day: dt.date) -> int | None:
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def ages(typed: pd.DataFrame, keys: dict[int, ReturnKey]) -> pd.Series:
    """Whole years at the last day of each row's period, from the ID (None if unknown)."""
    ends = typed[RET].map(lambda r: month_end(keys[r].period))
    births = typed["身份证号"].map(id_birth_date)
    return pd.Series([age_on(b, e) for b, e in zip(births, ends)], index=typed.index, dtype=object)


def id_sex(number: object) -> str | None:
    if id_birth_date(number) is None:
        return None
    return "女" if int(number[16]) % 2 == 0 else "男"


class PersonChecker:
    """Rules over one stacked register (roster of women, or floating population)."""

    def __init__(self, typed: pd.DataFrame, spec: SheetSpec, keys: dict[int, ReturnKey],
                 letters: dict[int, dict[str, str]]):
        self.t, self.spec, self.keys, self.letters = typed, spec, keys, letters

    def at(self, ret: int, column: str, row: int) -> dict:
        return where(self.keys[ret], self.spec.name, self.letters[ret].get(column, ""), row)

    def event_dates(self, today: dt.date) -> list[Finding]:
        """After the period's end: a warning; after the day of the run: an error."""
        found = []
        for col in (c for c in self.spec.columns if c.event):
            for i in self.t.index[self.t[col.name].notna()]:
                ret, day = self.t.at[i, RET], self.t.at[i, col.name]
                end = month_end(self.keys[ret].period)
                if day > today:
                    code, expected = "date-future", today.isoformat()
                elif day > end:
                    code, expected = "date-after-period", end.isoformat()
                else:
                    continue
                found.append(finding(code, **self.at(ret, col.name, self.t.at[i, ROW]), field=col.name,
                                     value=day.isoformat(), expected=expected))
        return found

    def duplicate_ids(self) -> list[Finding]:
        ids = self.t[self.t["身份证号"].notna()]
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
        both = t[later].notna() & t[earlier].notna()
        found = []
        for i in t.index[both]:
            if t.at[i, later] < t.at[i, earlier]:
                found.append(finding(code, **self.at(t.at[i, RET], later, t.at[i, ROW]), field=later,
                                     value=t.at[i, later].isoformat(), expected=t.at[i, earlier].isoformat()))
        return found

    def roster_persons(self, form: Form) -> list[Finding]:
        """On the roster: women only, aged 15–49; from 50 she leaves with 变动 超龄."""
        t, rules = self.t, form.roster
        age = ages(t, self.keys)
        found = []
        for i in t.index:
            number, ret, row = t.at[i, "身份证号"], t.at[i, RET], t.at[i, ROW]
            if id_sex(number) == "男":
                found.append(finding("roster-not-female", **self.at(ret, "身份证号", row), field="身份证号",
                                     value=number, expected="女性(第17位为双数)"))
            a = age[i]
            if a is None:
                continue
            if a < rules.min_age:
                expected = f"未满{rules.min_age}岁,不应登记在育龄妇女花名册"
            elif a > rules.max_age and t.at[i, "变动"] != rules.over_age:
                expected = f"已满{rules.max_age + 1}岁,本月应在“变动”填“{rules.over_age}”"
            else:
                continue
            found.append(finding("roster-age", **self.at(ret, "身份证号", row), field="身份证号",
                                 value=str(a), expected=expected))
        return found


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
    ends = typed[RET].map(lambda r: month_end(keys[r].period))
    gone = typed["流出日期"].notna() & pd.Series([o is not None and o <= e for o, e in zip(typed["流出日期"], ends)],
                                             index=typed.index)
    present = typed[typed[GROUP].notna() & ~gone]
    age = ages(present, keys)
    sex = present["性别"].where(present["性别"].notna(), present["身份证号"].map(id_sex))
    women = (sex == "女") & age.map(lambda a: a is not None and form.roster.min_age <= a <= form.roster.max_age)
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
    found = []
    for ret, group in index:
        for name in figures:
            letter = letters[ret].get(name)
            if letter is None:
                continue
            if (ret, group) in reported.index:
                value, row = reported.at[(ret, group), name], int(reported.at[(ret, group), ROW])
            else:
                value, row = 0.0, header_rows[ret]  # the group has people but no row in the table
            count = int(counts.at[(ret, group), name]) if (ret, group) in counts.index else 0
            if pd.notna(value) and value != count:
                found.append(finding(code, **where(keys[ret], spec.name, letter, row), field=name,
                                     value=fmt(value), expected=f"{group} {fmt(count)} 人"))
    return found

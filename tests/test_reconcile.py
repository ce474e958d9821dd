"""Month on month: three consecutive months of a street, with one planted defect per rule."""

from __future__ import annotations

import datetime as dt
import sqlite3

import openpyxl

from conftest import RUN_DAY, clean_return, drop, next_month, retable, woman
from pipeline.outputs import output_names
from pipeline.run import run
from pipeline.store.history import MIGRATIONS, SCHEMA_VERSION, History

AUG, SEP, OCT = "2026-08", "2026-09", "2026-10"


def months(street, births=(0, 1, 1)):
    """Three clean, consecutive returns of 甲村 (U01)."""
    aug = clean_return(street, "U01", AUG)
    sep = next_month(aug, births[1])
    oct_ = next_month(sep, births[2])
    return aug, sep, oct_


def file_months(workspace, street, *returns, now=RUN_DAY):
    for data in returns:
        drop(workspace, f"甲村{data.cover['报告期']}.xlsx", data)
        run(workspace, street, now=now)


def findings(workspace, period, stage_codes=None):
    with History(workspace.history) as h:
        standing = [r for r in h.returns(period=period) if r.status in ("accepted", "rejected")]
        found = [f for fs in h.findings_of([r.id for r in standing]).values() for f in fs]
    return {(f.code, f.severity.value, f.sheet, f.cell) for f in found if f.severity.value != "info"}


def status(workspace, period):
    with History(workspace.history) as h:
        return next(r.status for r in h.returns(period=period) if r.status != "superseded")


def test_clean_months_reconcile_without_error(workspace, street):
    file_months(workspace, street, *months(street))
    for period in (AUG, SEP, OCT):
        assert findings(workspace, period) == set(), period
    with History(workspace.history) as h:
        aug = h.returns(period=AUG)[0]
        assert [f.code for f in h.findings_of([aug.id])[aug.id]] == ["reconcile-baseline"]


def test_opening_population_differs_from_last_closing(workspace, street):
    aug, sep, _ = months(street)
    sep.monthly.at[0, "期初人口"] += 5
    sep.monthly.at[0, "期末人口"] += 5
    file_months(workspace, street, aug, sep)
    assert findings(workspace, SEP) == {("opening-mismatch", "error", "月报", "B4")}
    assert status(workspace, SEP) == "rejected"


def test_woman_missing_without_exit(workspace, street):
    aug, sep, _ = months(street, births=(0, 0, 0))
    sep.roster = sep.roster.drop(index=0).reset_index(drop=True)
    retable(sep)
    file_months(workspace, street, aug, sep)
    assert findings(workspace, SEP) == {("missing-without-exit", "error", "育龄妇女", "C2")}


def test_new_woman_without_xinzeng(workspace, street):
    aug, sep, _ = months(street, births=(0, 0, 0))
    sep.roster.loc[len(sep.roster)] = woman("一组", 20)
    retable(sep)
    file_months(workspace, street, aug, sep)
    assert findings(workspace, SEP) == {("new-without-flag", "warning", "育龄妇女", f"K{3 + len(sep.roster) - 1}")}


def test_woman_reappearing_after_exit(workspace, street):
    aug, sep, _ = months(street, births=(0, 0, 0))
    sep.roster.at[0, "变动"] = "迁出"
    retable(sep)
    oct_ = next_month(sep)  # she has left: October's roster no longer has her …
    oct_.roster.loc[len(oct_.roster)] = sep.roster.loc[0].to_dict() | {"变动": "无"}  # … until she is back
    retable(oct_)
    file_months(workspace, street, aug, sep, oct_)
    assert findings(workspace, SEP) == set()
    assert findings(workspace, OCT) == {("reappeared-after-exit", "warning", "育龄妇女", f"K{3 + len(oct_.roster) - 1}")}


def test_pregnancy_ended_without_birth_or_note(workspace, street):
    aug, sep, _ = months(street, births=(0, 0, 0))
    sep.roster.at[1, "孕情"] = "无"  # pregnant in August, not in September, no birth date, no note
    retable(sep)
    file_months(workspace, street, aug, sep)
    assert findings(workspace, SEP) == {("pregnancy-ended-unexplained", "warning", "育龄妇女", "I4")}


def test_stock_swing(workspace, street):
    aug, sep, _ = months(street, births=(0, 0, 0))
    sep.monthly.at[0, "迁入"] += 150
    sep.monthly.at[0, "期末人口"] += 150
    file_months(workspace, street, aug, sep)
    assert findings(workspace, SEP) == {("stock-swing", "warning", "月报", "G6")}


def test_births_against_roster(workspace, street):
    aug, sep, _ = months(street, births=(0, 0, 0))
    sep.monthly.at[0, "出生"] += 1
    sep.monthly.at[0, "政策内出生"] += 1
    sep.monthly.at[0, "期末人口"] += 1
    file_months(workspace, street, aug, sep)
    assert findings(workspace, SEP) == {("births-vs-roster", "warning", "月报", "C6")}


def dump(path):
    """A workbook as (sheet, cell, value, number format) rows: timestamps inside the file do not count."""
    book = openpyxl.load_workbook(path)
    return [(ws.title, c.coordinate, c.value, c.number_format) for ws in book.worksheets
            for row in ws.iter_rows() for c in row if c.value is not None]


def test_all_at_once_equals_month_by_month(tmp_path, street):
    from pipeline.workspace import Workspace

    one, two = Workspace.at(tmp_path / "one", street.settings), Workspace.at(tmp_path / "two", street.settings)
    one.create(), two.create()
    data = months(street)
    data[1].monthly.at[1, "期初人口"] += 1  # one defect so that findings are compared too
    data[1].monthly.at[1, "期末人口"] += 1
    for d in data:
        drop(one, f"甲村{d.cover['报告期']}.xlsx", d)
    run(one, street, now=RUN_DAY)
    file_months(two, street, *data)
    for period in (AUG, SEP, OCT):
        assert findings(one, period) == findings(two, period)
        name = output_names(street, period)["summary"]
        assert dump(one.outbox / period / name) == dump(two.outbox / period / name)
    assert findings(one, SEP) == {("opening-mismatch", "error", "月报", "B5")}


def test_resubmitted_august_reevaluates_september(workspace, street):
    aug, sep, _ = months(street)
    sep.monthly.at[0, "期初人口"] += 5  # September starts from a corrected figure …
    sep.monthly.at[0, "期末人口"] += 5
    file_months(workspace, street, aug, sep)
    assert status(workspace, SEP) == "rejected"
    fixed = aug
    fixed.monthly.at[0, "迁入"] += 5  # … that August's resubmission now gives
    fixed.monthly.at[0, "期末人口"] += 5
    fixed.cover["填报日期"] = dt.date(2026, 10, 20)
    summary = workspace.outbox / AUG / output_names(street, AUG)["summary"]
    before = dump(summary)
    file_months(workspace, street, fixed)
    assert dump(summary) != before
    assert status(workspace, AUG) == "accepted" and status(workspace, SEP) == "accepted"
    assert findings(workspace, SEP) == set()
    with History(workspace.history) as h:
        assert sorted(r.status for r in h.returns(period=AUG)) == ["accepted", "superseded"]


def test_year_to_date_sums_accepted_months_and_flags_a_gap(workspace, street):
    aug, sep, oct_ = months(street, births=(0, 1, 1))
    file_months(workspace, street, aug, sep, oct_)
    sheet = openpyxl.load_workbook(workspace.outbox / OCT / output_names(street, OCT)["summary"])["汇总"]
    rows = list(sheet.iter_rows(values_only=True))
    header = next(r for r in rows if r[0] == "单位")
    jia = next(r for r in rows if r[0] == "甲村")
    births = sum(int(d.monthly["出生"].sum()) for d in (aug, sep, oct_))
    assert births == 2 and jia[header.index("本年累计出生")] == births
    notes = " ".join(str(r[0]) for r in rows if r[0] and str(r[0]).startswith("注"))
    assert "2026年1月" in notes and "2026年7月" in notes  # January to July are not in the history


def test_store_made_by_the_first_version_opens_with_the_current_code(tmp_path):
    path = tmp_path / "history.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO runs(started_at) VALUES ('2026-01-01T00:00:00')")
    db.execute("INSERT INTO returns(sha256, file_name, archived_as, unit, period, verdict, status, received_at)"
               " VALUES ('ab', 'a.xlsx', '/x/a.xlsx', 'U01', '2026-01', 'accepted', 'accepted', '2026-02-01T09:00:00')")
    db.execute("INSERT INTO findings VALUES (1, '{\"code\": \"negative\", \"severity\": \"error\"}')")
    db.commit()
    db.close()
    with History(path) as h:
        assert h.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        [r] = h.returns(period="2026-01")
        assert r.file_name == "a.xlsx" and [f.code for f in h.findings_of([r.id])[r.id]] == ["negative"]
        assert h.db.execute("SELECT stage FROM findings").fetchone()[0] == "form"

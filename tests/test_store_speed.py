"""The bulk paths of the history store (issue 7) give what the one-by-one paths gave.

Persons decoded in one call, fields picked out by SQLite, returns filed in batches,
reconciliation read per month: each is checked here against the plain way.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import shutil
import sqlite3
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import RUN_DAY, clean_return, drop, next_month
from pipeline.check import EARLIER_COLUMNS, REGISTERS
from pipeline.merge import YTD_COLUMNS
from pipeline.reconcile import Figures
from pipeline.run import run
from pipeline.store import filing, recheck
from pipeline.store.history import SCHEMA_VERSION, History, StoredReturn, columns_of
from pipeline.workspace import Workspace
from test_operations import mixed_inbox, outputs

NAN_RECORD = {"a": float("nan"), "_row": 4}  # a blank Python left as NaN: stored as null, read back as None
RECORDS = [
    {"身份证号": "640104198105246987", "姓名": "王梅", "变动": "无", "_row": 3, "_cell": "C3", "_column": "C"},
    {"身份证号": "11010119941031000X", "姓名": None, "备注": "说明\n\"引号\" \\ 反斜杠", "_row": 4},
    {"a": 0.1 + 0.2, "b": 1e-7, "c": 12345678901234567890, "d": True, "e": False, "f": [1, "x", None],
     "g": {"h": 1.5}, "i": -0.0, "j": "", "_row": 5},
]
FIELDS = ("身份证号", "姓名", "变动", "备注", "a", "b", "c", "d", "e", "f", "g", "i", "j", "_row", "absent")


def store(tmp_path: Path, records_by_return: list[list[dict]]) -> tuple[History, list[int]]:
    """A history holding one return per list of records, register 'roster'."""
    history = History(tmp_path / "history.sqlite")
    run_id = history.start_run(dt.datetime(2026, 11, 1))
    ids = []
    with history.transaction() as db:
        for n, records in enumerate(records_by_return):
            rid = history.add_return(db, StoredReturn(0, f"sha{n}", f"f{n}.xlsx", f"archive/f{n}.xlsx", "U01",
                                                      "2026-10", "accepted", "accepted", dt.datetime(2026, 11, 1),
                                                      None, ""), run_id)
            history.add_persons(db, rid, "roster", [f"ID{n}-{i}" for i in range(len(records))],
                                [None if i % 2 else "一组" for i in range(len(records))], columns_of(records))
            ids.append(rid)
    return history, ids


def same_value(a: object, b: object) -> bool:
    """`a` (read back) is `b` (as filed); a NaN filed reads back as None, a blank."""
    if isinstance(b, float) and math.isnan(b):
        return a is None
    return type(a) is type(b) and a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


def test_a_register_reads_back_as_it_was_filed(tmp_path):
    """Stored as columns in one compressed value: every person comes back with every value, in order."""
    by_return = [RECORDS, [NAN_RECORD], []]
    history, ids = store(tmp_path, by_return)
    for chosen in (ids, ids[:1], ids[2:], [], ids[::-1]):
        found = history.persons_of(chosen, "roster")
        expected = [(rid, f"ID{n}-{i}", None if i % 2 else "一组", record)
                    for n, rid in sorted(enumerate(ids), key=lambda x: x[1]) if rid in chosen
                    for i, record in enumerate(by_return[n])]
        assert [(rid, n, None if pd.isna(g) else g) for rid, n, g, _ in found.itertuples(index=False)] == \
            [e[:3] for e in expected]
        for rid, record, (*_, filed) in zip(found["return_id"], found["record"], expected):
            names = list(columns_of(by_return[ids.index(rid)]))
            assert list(record) == names  # the register's every column, in the order first met
            for name in names:  # a key a record lacked reads as None
                assert same_value(record[name], filed.get(name)), (name, filed)
    assert history.persons_of([ids[1]], "roster")["record"][0]["a"] is None


def test_what_orjson_cannot_write_and_registers_the_json_module_wrote_read_back_exactly(tmp_path):
    """Integers beyond 64 bits (orjson's reader would make them floats) and lone surrogates go through the
    json module, as every register did before orjson; such registers, NaN included, read back as written."""
    from pipeline.store.history import _packed

    beyond = [{"k": 2 ** 70, "l": -2 ** 63 - 1, "m": "\ud800断", "n": 2 ** 64 - 1, "_row": 3}]
    history, ids = store(tmp_path, [beyond])
    record = history.persons_of(ids, "roster")["record"][0]
    assert all(type(record[k]) is type(v) and record[k] == v for k, v in beyond[0].items()), record
    before_orjson = {"ids": ["ID9-0"], "groups": ["一组"], "names": ["a", "k"], "columns": [[float("nan")], [2 ** 70]]}
    with history.transaction() as db:
        db.execute("UPDATE registers SET persons=? WHERE return_id=?",
                   (zlib.compress(json.dumps(before_orjson, ensure_ascii=False).encode(), 1), ids[0]))
    record = history.persons_of(ids, "roster")["record"][0]
    assert math.isnan(record["a"]) and record["k"] == 2 ** 70
    assert zlib.decompress(_packed(["ID"], [None], {"a": [1]})).startswith(b'{"ids":[')  # orjson's, read by orjson


def test_typed_values_are_filed_as_they_read_back(tmp_path):
    """Filing hands over the typed values: dates and times come back as ISO texts, NaN as blank, numpy numbers
    as numbers."""
    filed = [dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 3, 4, 5), pd.Timestamp("2026-01-02 03:04:05"),
             float("nan"), np.float64(1.5), np.int64(3), "2026-01-02"]
    history, ids = store(tmp_path, [[{"v": v} for v in filed]])
    assert history.person_fields(ids, "roster", ("v",))[ids[0]]["v"] == \
        ["2026-01-02", "2026-01-02T03:04:05", "2026-01-02T03:04:05", None, 1.5, 3, "2026-01-02"]


@pytest.mark.parametrize("fields", [FIELDS, ("_row",), ("absent",), ("身份证号", "_row")])
def test_picked_fields_are_the_values_of_the_whole_record(tmp_path, fields):
    history, ids = store(tmp_path, [RECORDS, RECORDS[:1], [NAN_RECORD]])
    for chosen in (ids[:2], ids):
        whole = history.persons_of(chosen, "roster")
        picked = history.persons_of(chosen, "roster", fields)
        pd.testing.assert_frame_equal(picked.drop(columns="record"), whole.drop(columns="record"))
        columns = history.person_fields(chosen, "roster", fields)
        seen: dict[int, int] = {}
        for k, (rid, record) in enumerate(zip(whole["return_id"], whole["record"])):
            row = seen[rid] = seen.get(rid, -1) + 1  # the row's place within its return
            assert list(picked["record"][k]) == list(fields)
            for name in fields:
                assert same_value(picked["record"][k][name], record.get(name)), (name, record)
                assert same_value(columns[rid][name][row], record.get(name)), (name, record)
    assert history.person_fields([ids[0], 999], "roster", ("_row",))[999] == {"_row": []}


def test_figures_are_summed_as_pandas_summed_them():
    rng = random.Random(7)
    for _ in range(200):
        rows = [(rng.choice(["一组", "二组", "三组"]), rng.choice(["出生", "死亡", "期末人口"]),
                 rng.choice([None, float("nan"), rng.randint(0, 500), rng.random() * 1e3, 0.1]))
                for _ in range(rng.randint(0, 40))]
        frame = pd.DataFrame(rows, columns=["grp", "name", "value"])
        frame["value"] = frame["value"].astype(float)
        figures = Figures.of(frame)
        for name in ("出生", "死亡", "期末人口", "无此项"):
            for group in (None, "一组", "二组", "无此组"):
                picked = frame[frame["name"] == name]
                picked = picked if group is None else picked[picked["grp"] == group]
                expected = float(picked["value"].sum()) if len(picked) else None
                assert figures.total(name, group) == expected, (rows, name, group)


def history_contents(ws: Workspace) -> dict:
    db = sqlite3.connect(ws.history)
    root = str(ws.root)
    return {
        "returns": [tuple(str(v).replace(root, "") for v in row) for row in db.execute(
            "SELECT sha256, file_name, archived_as, unit, period, verdict, status, filled_on FROM returns ORDER BY id")],
        "figures": db.execute("SELECT * FROM figures ORDER BY return_id, grp, name").fetchall(),
        "registers": db.execute("SELECT * FROM registers ORDER BY return_id, register").fetchall(),
        "person_ids": db.execute("SELECT * FROM person_ids ORDER BY return_id, register, position").fetchall(),
        "findings": db.execute("SELECT return_id, stage, finding FROM findings ORDER BY return_id, rowid").fetchall(),
        "layouts": db.execute("SELECT * FROM layouts ORDER BY return_id, sheet_key").fetchall(),
        "pending": db.execute("SELECT * FROM pending ORDER BY rowid").fetchall(),
    }


@pytest.fixture
def inbox_template(tmp_path: Path, street) -> Path:
    """A working folder with a mixed inbox and a September return; copied so that every run files the same bytes."""
    ws = Workspace.at(tmp_path / "template", street.settings)
    ws.create()
    mixed_inbox(ws, street)
    drop(ws, "甲村九月.xlsx", clean_return(street, "U01", "2026-09", first_serial=80))
    return ws.root


def copy_of(template: Path, root: Path, street) -> Workspace:
    shutil.copytree(template, root)
    return Workspace.at(root, street.settings)


def filed_with_batches_of(size: int, template: Path, root: Path, street, monkeypatch) -> Workspace:
    monkeypatch.setattr(filing, "FILING_BATCH", size)
    ws = copy_of(template, root, street)
    run(ws, street, now=RUN_DAY)
    return ws


def test_filing_in_batches_records_what_filing_one_by_one_did(tmp_path, street, monkeypatch, inbox_template):
    one = filed_with_batches_of(1, inbox_template, tmp_path / "one", street, monkeypatch)
    for size in (2, 100):
        batched = filed_with_batches_of(size, inbox_template, tmp_path / f"batch-{size}", street, monkeypatch)
        assert history_contents(batched) == history_contents(one)
        assert outputs(batched.outbox) == outputs(one.outbox)
        assert not list(batched.inbox.glob("*.xlsx"))


def test_a_crash_after_a_batch_commit_leaves_its_files_for_the_next_run(tmp_path, street, monkeypatch,
                                                                       inbox_template):
    reference = filed_with_batches_of(100, inbox_template, tmp_path / "reference", street, monkeypatch)
    ws = copy_of(inbox_template, tmp_path / "crashed", street)
    moved = []
    real_move = filing.move_into

    def power_cut_after_one_move(source, target):  # into the archive; the junk file goes to quarantine before
        if moved:
            raise KeyboardInterrupt("power cut")
        done = real_move(source, target)
        if ws.archive in target.parents:
            moved.append(target)
        return done

    monkeypatch.setattr(filing, "move_into", power_cut_after_one_move)
    with pytest.raises(KeyboardInterrupt):
        run(ws, street, now=RUN_DAY)
    with History(ws.history) as h:
        assert len([r for r in h.returns() if r.verdict in ("accepted", "rejected")]) == 4  # committed, not moved
    assert len(list(ws.inbox.glob("*.xlsx"))) == 3
    monkeypatch.setattr(filing, "move_into", real_move)
    run(ws, street, now=RUN_DAY)
    assert not list(ws.inbox.glob("*.xlsx"))
    assert history_contents(ws) == history_contents(reference)
    assert outputs(ws.outbox) == outputs(reference.outbox)


def earlier_persons_one_by_one(history: History, files, run_id: int | None) -> dict[str, pd.DataFrame]:
    """earlier_persons the plain way: whole records, a lambda per row."""
    result = {key: pd.DataFrame(columns=EARLIER_COLUMNS) for key in REGISTERS}
    for period in sorted({f.period for f in files}):
        resubmitting = {f.unit.code for f in files if f.period == period}
        mine = {r.id for r in history.returns(period=period) if run_id is not None
                and history.db.execute("SELECT run_id FROM returns WHERE id=?", (r.id,)).fetchone()[0] == run_id}
        filed = [r for r in history.returns(period=period)
                 if (r.id in mine and r.verdict in ("accepted", "rejected"))
                 or (r.id not in mine and r.status == "accepted" and r.unit not in resubmitting)]
        if not filed:
            continue
        info = {r.id: r for r in filed}
        for key in REGISTERS:
            persons = history.persons_of(list(info), key)
            if persons.empty:
                continue
            frame = pd.DataFrame({
                "return_id": persons["return_id"], "unit": persons["return_id"].map(lambda i: info[i].unit),
                "unit_name": "", "period": period,
                "file": persons["return_id"].map(lambda i: info[i].file_name),
                "id_number": persons["id_number"], "cell": persons["record"].map(lambda r: r.get("_cell", "")),
                "row": persons["record"].map(lambda r: r.get("_row")),
                "column": persons["record"].map(lambda r: r.get("_column", "")),
                "this_run": persons["return_id"].map(lambda i: i in mine),
            })
            result[key] = pd.concat([result[key], frame], ignore_index=True)
    return result


def test_earlier_persons_are_those_whole_records_gave(workspace, street):
    mixed_inbox(workspace, street)
    run(workspace, street, now=RUN_DAY)
    with History(workspace.history) as h:
        run_id = h.db.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        for units in (["U03"], ["U01"], ["U01", "U02", "U03"]):
            files = [SimpleNamespace(period="2026-10", unit=SimpleNamespace(code=u)) for u in units]
            for this_run in (None, run_id, run_id + 1):
                lookup, plain = filing.earlier_persons(h, files, this_run), earlier_persons_one_by_one(h, files, this_run)
                for key in REGISTERS:
                    every = plain[key]["id_number"].unique().tolist()
                    assert_same_rows(lookup(key, every + ["110101199001011234"]), plain[key])
                    some = every[::7]  # asked for a few IDs: only the persons holding them
                    assert_same_rows(lookup(key, some), plain[key][plain[key]["id_number"].isin(some)])
        files = [SimpleNamespace(period="2026-10", unit=SimpleNamespace(code="U01"))]
        everyone = h.db.execute("SELECT DISTINCT id_number FROM person_ids WHERE register='roster'").fetchall()
        roster = filing.earlier_persons(h, files, run_id)("roster", [n for (n,) in everyone])
        assert set(roster["unit"]) == {"U01", "U02", "U03"} and roster["this_run"].all()  # U03's is rejected
        assert set(filing.earlier_persons(h, files, None)("roster", [n for (n,) in everyone])["unit"]) == {"U02"}


def assert_same_rows(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    order = ["return_id", "cell"]
    pd.testing.assert_frame_equal(found.sort_values(order).reset_index(drop=True).astype(object),
                                  expected.sort_values(order).reset_index(drop=True).astype(object))


def test_reconciling_units_together_equals_one_at_a_time(tmp_path, street, monkeypatch):
    template = Workspace.at(tmp_path / "template", street.settings)
    template.create()
    for n, code in enumerate(["U01", "U02", "U03"]):
        sep = clean_return(street, code, "2026-09", first_serial=1 + 30 * n)
        oct_ = next_month(sep)
        if code == "U02":
            oct_.monthly.at[0, "期初人口"] += 4  # one defect, so that findings and verdicts are compared too
            oct_.monthly.at[0, "期末人口"] += 4
        drop(template, f"{code}-sep.xlsx", sep)
        drop(template, f"{code}-oct.xlsx", oct_)
    contents = []
    for at_once in (1, recheck.UNITS_AT_ONCE):
        monkeypatch.setattr(recheck, "UNITS_AT_ONCE", at_once)
        ws = copy_of(template.root, tmp_path / f"at-once-{at_once}", street)
        run(ws, street, now=RUN_DAY)
        contents.append((history_contents(ws), outputs(ws.outbox)))
    assert contents[0] == contents[1]
    findings = [json.loads(f)["code"] for _, stage, f in contents[0][0]["findings"] if stage == "reconcile"]
    assert findings.count("opening-mismatch") == 1 and findings.count("reconcile-baseline") == 3


def test_a_filed_register_reads_back_as_the_typed_rows(tmp_path, street):
    """Registers are filed as columns for speed; each person must read back as its typed row."""
    from pipeline.check import _plain, check_returns, no_earlier_persons, return_keys
    from pipeline.forms import load_form
    from pipeline.intake.returns import take_in_all
    from pipeline.validate import validate_returns

    data = clean_return(street, "U01")
    data.roster.loc[0, "姓名"] = '王"%s\\n小%d红 😀'  # quotes, a backslash, %-formats and a non-BMP character
    data.roster.loc[1, "备注"] = "50% 已核实"
    data.roster.loc[2, "现有子女数"] = None
    data.floating.loc[0, "户籍地"] = "%(name)s 省"
    [ret] = take_in_all([(drop(tmp_path, "甲村.xlsx", data), None)], street, load_form())
    [checked], _ = check_returns([ret], street, load_form(), RUN_DAY.date(), no_earlier_persons())
    validated = validate_returns({0: ret.tables}, return_keys([ret]), load_form(), RUN_DAY.date())
    history, [rid] = store(tmp_path, [[]])
    for key, typed in (("roster", validated.women), ("floating", validated.floating)):
        letter = ret.tables[key].letters["身份证号"]
        rows = typed[typed["身份证号"].notna()]
        expected = [{**{c: _plain(v) for c, v in row.items() if not c.startswith("_")},
                     "_row": int(row["_row"]), "_column": letter, "_cell": f"{letter}{int(row['_row'])}"}
                    for _, row in rows.iterrows()]
        with history.transaction() as db:
            history.add_persons(db, rid, key, *checked.persons.columns(key))
        filed = history.persons_of([rid], key)
        for records in (checked.persons[key]["record"].tolist(), filed["record"].tolist()):
            assert len(records) == len(expected) == len(data.roster if key == "roster" else data.floating)
            for record, row in zip(records, expected):
                assert list(record) == list(row)
                assert all(same_value(record[c], row[c]) for c in row), (record, row)
        assert filed["id_number"].tolist() == rows["身份证号"].tolist()
    assert history.persons_of([rid], "roster")["record"][0]["姓名"] == '王"%s\\n小%d红 😀'


def test_restanding_a_unit_reads_only_that_units_returns(tmp_path):
    """Filing a batch must not read the whole period again (quadratic in a city's returns)."""
    history = History(tmp_path / "history.sqlite")
    run_id = history.start_run(dt.datetime(2026, 11, 1))
    day = dt.datetime(2026, 11, 1)
    with history.transaction() as db:
        for n, (unit, filled) in enumerate([("U01", dt.date(2026, 11, 2)), ("U01", dt.date(2026, 11, 3)),
                                             ("U02", None), ("U03", None)]):
            history.add_return(db, StoredReturn(0, f"sha{n}", f"f{n}.xlsx", f"archive/f{n}.xlsx", unit, "2026-10",
                                                "accepted", "accepted", day, filled, ""), run_id)
    statements: list[str] = []
    history.db.set_trace_callback(statements.append)
    with history.transaction() as db:
        filing.restand_units(history, db, "2026-10", {"U01"})
    history.db.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM returns" in s]
    assert reads and all("unit='U01'" in s.replace(" ", "") or "unit=?" in s for s in reads), reads
    assert {r.file_name: r.status for r in history.returns(period="2026-10")} == {
        "f0.xlsx": "superseded", "f1.xlsx": "accepted", "f2.xlsx": "accepted", "f3.xlsx": "accepted"}


def test_the_street_id_lookup_passes_over_other_months_in_the_index(tmp_path):
    """A year of history: the persons asked for are found without reading their other months' rows."""
    months = [f"2026-{m:02d}" for m in range(1, 13)]
    history = History(tmp_path / "history.sqlite")
    run_id = history.start_run(dt.datetime(2026, 11, 1))
    by_month: dict[str, list[int]] = {}
    with history.transaction() as db:
        for month in months:
            for unit in ("U01", "U02"):
                rid = history.add_return(db, StoredReturn(0, f"{month}{unit}", "f.xlsx", "a/f.xlsx", unit, month,
                                                          "accepted", "accepted", dt.datetime(2026, 11, 1), None, ""),
                                         run_id)
                history.add_persons(db, rid, "roster", [f"{unit}-{i}" for i in range(5)], [None] * 5,
                                    {"_row": [i + 4 for i in range(5)], "_cell": [f"C{i + 4}" for i in range(5)],
                                     "_column": ["C"] * 5})
                by_month.setdefault(month, []).append(rid)
    statements: list[str] = []
    history.db.set_trace_callback(statements.append)
    found = history.persons_of(by_month["2026-12"], "roster", ("_cell",), id_numbers=["U01-1", "U02-3", "U03-0"])
    history.db.set_trace_callback(None)
    assert sorted(zip(found["return_id"], found["id_number"])) == sorted(zip(by_month["2026-12"], ["U01-1", "U02-3"]))
    assert sorted(found["record"].map(lambda r: r["_cell"])) == ["C5", "C7"]
    [lookup] = [s for s in statements if "asked_ids CROSS JOIN person_ids" in s]
    plan = " ".join(str(row[-1]) for row in history.db.execute("EXPLAIN QUERY PLAN " + lookup))
    assert "PRIMARY KEY (id_number=?)" in plan, plan  # return and register read from the key
    assert "return_id=?" not in plan, plan  # not one probe per asked return


def store_of_version_four(path: Path) -> tuple[dict[tuple[int, str], list[tuple]], dict[str, int]]:
    """A store as versions 1–4 wrote it: three returns, each person a JSON row, filed in shuffled order.

    Returns the persons filed per (return, register), and each ID number's place in filing order.
    """
    from pipeline.store.history import MIGRATIONS

    db = sqlite3.connect(path)
    for version, script in enumerate(MIGRATIONS[:4], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {version}")
    db.execute("INSERT INTO runs(started_at) VALUES ('2026-11-01T00:00:00')")
    rng = random.Random(3)
    filed: dict[tuple[int, str], list[tuple[str, str | None, dict]]] = {}
    for rid in (1, 2, 3):
        db.execute("INSERT INTO returns(id, sha256, file_name, archived_as, unit, period, verdict, status, received_at)"
                   f" VALUES ({rid}, 's{rid}', 'f.xlsx', 'a/f.xlsx', 'U0{rid}', '2026-10', 'accepted', 'accepted',"
                   " '2026-11-01T09:00:00')")
        for register in ("roster", "floating"):
            for i in range(rng.randint(0, 300)):
                record = {"姓名": rng.choice(["王梅", "李红", None]), "现有子女数": rng.choice([0.0, 1.0, float("nan")]),
                          "措施日期": "2022-10-11", "_row": i + 3, "_column": "C", "_cell": f"C{i + 3}"}
                if i == 5:
                    record["备注"] = "只有这一行有的列"
                person = (f"{rid}{register}{i:04d}", rng.choice(["一组", None]), record)
                filed.setdefault((rid, register), []).append(person)
    rows = [(rid, register, n, g, json.dumps(r, ensure_ascii=False))  # NaN written as NaN, as json.dumps did
            for (rid, register), persons in filed.items() for n, g, r in persons]
    rows = rng.sample(rows, len(rows))  # the order filed (rowid) is not the order of return, register, ID
    db.executemany("INSERT INTO persons VALUES (?,?,?,?,?)", rows)
    db.commit()
    db.close()
    return filed, {row[2]: i for i, row in enumerate(rows)}


def test_a_store_of_version_four_moves_its_persons_into_registers_and_shrinks(tmp_path, caplog):
    """Persons filed one JSON row each (versions 1–4) read back the same from registers, and the file is smaller."""
    History(tmp_path / "new.sqlite").close()
    assert "历史库正在升级" not in caplog.text  # a new store has nothing to move: nothing to say
    path = tmp_path / "history.sqlite"
    filed, place = store_of_version_four(path)
    before = path.stat().st_size
    with History(path) as h:
        assert "历史库正在升级到第 5 版" in caplog.text  # a long first run says why (stderr: the nightly log)
        tables = {name for (name,) in h.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert h.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION and "persons" not in tables
        for (rid, register), persons in filed.items():
            found = h.persons_of([rid], register)
            order = sorted(persons, key=lambda p: place[p[0]])
            assert found["id_number"].tolist() == [n for n, _, _ in order]  # in the order they were filed
            assert [None if pd.isna(g) else g for g in found["grp"]] == [g for _, g, _ in order]
            for record, (_, _, row) in zip(found["record"], order):
                assert all(same_value(record[k], v) for k, v in row.items()) and record.get("备注") == row.get("备注")
        asked = [persons[0][0] for persons in filed.values()]
        held = h.persons_of([1, 2, 3], "roster", ("_cell",), id_numbers=asked)
        assert sorted(held["id_number"]) == sorted(n for n in asked if "roster" in n)
    assert path.stat().st_size < before / 2  # the rows' pages given back to the disk


def test_an_upgrade_the_disk_cuts_short_leaves_the_store_as_it_was_and_is_taken_up_again(tmp_path, monkeypatch):
    """Moving the persons is one transaction: a full disk halfway leaves version 4 whole, and the next open moves them."""
    from pipeline.store import history as store
    from pipeline.store.history import HistoryUnavailable

    path = tmp_path / "history.sqlite"
    filed, _ = store_of_version_four(path)
    moved = []
    insert = store._insert_register

    def disk_fills(db, return_id, *args):
        if len(moved) == 2:  # two registers in
            raise sqlite3.OperationalError("database or disk is full")
        moved.append(return_id)
        insert(db, return_id, *args)

    monkeypatch.setattr(store, "_insert_register", disk_fills)
    with pytest.raises(HistoryUnavailable, match="磁盘空间"):
        History(path)
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert db.execute("PRAGMA user_version").fetchone()[0] == 4 and "registers" not in tables
    assert db.execute("SELECT COUNT(*) FROM persons").fetchone()[0] == sum(map(len, filed.values()))
    db.close()
    monkeypatch.undo()
    with History(path) as h:
        assert h.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert h.db.execute("SELECT COUNT(*) FROM person_ids").fetchone()[0] == sum(map(len, filed.values()))


def test_figures_summed_by_sqlite_are_what_pandas_summed_from_every_group(tmp_path):
    """Accepted returns hold whole counts or blanks: summed in SQLite or in pandas, the same totals."""
    from pipeline.merge import unit_totals

    rng = random.Random(11)
    names = ["出生", "死亡", "期末人口", "政策内出生"]
    for trial in range(30):
        history = History(tmp_path / f"history{trial}.sqlite")
        run_id = history.start_run(dt.datetime(2026, 11, 1))
        units = {}
        with history.transaction() as db:
            for n in range(rng.randint(0, 6)):
                rid = history.add_return(db, StoredReturn(0, f"s{n}", "f.xlsx", "a/f.xlsx", f"U{n}", "2026-10",
                                                          "accepted", "accepted", dt.datetime(2026, 11, 1), None, ""),
                                         run_id)
                units[rid] = f"U{n}"
                cells = {(g, name) for g in ("一组", "二组", "三组", "合计") for name in names if rng.random() < 0.7}
                rows = sorted(cells)
                history.add_figures(db, rid, [g for g, _ in rows], [name for _, name in rows],
                                    [rng.choice([None, rng.randint(0, 900), 0]) for _ in rows])
        ids = list(units)
        by_sqlite = unit_totals(history.figure_totals(ids), units, names + ["无此项"])
        by_pandas = unit_totals(history.figures_of(ids), units, names + ["无此项"])
        pd.testing.assert_frame_equal(by_sqlite, by_pandas, check_dtype=False, obj=f"trial {trial}")
        history.close()


def year_to_date_unit_by_unit(monthly: dict[str, pd.DataFrame], months: list[str]):
    """year_to_date as it was: a unit and a cell at a time (the reference)."""
    def get(frame, unit, column):
        value = frame.at[unit, column] if column in frame.columns else float("nan")
        return 0.0 if pd.isna(value) else float(value)

    units = sorted({u for frame in monthly.values() for u in frame.index})
    rows, missing, start_from = {}, {}, {}
    for unit in units:
        held = [m for m in months if m in monthly and unit in monthly[m].index]
        missing[unit] = [m for m in months if m not in held]
        sums = {c: sum(get(monthly[m], unit, n) for m in held)
                for c, n in (("本年累计出生", "出生"), ("本年累计死亡", "死亡"), ("本年累计政策内出生", "政策内出生"))}
        start_from[unit] = held[0] if held else ""
        sums["年初人口"] = get(monthly[held[0]], unit, "期初人口") if held else float("nan")
        rows[unit] = sums
    return pd.DataFrame.from_dict(rows, orient="index", columns=YTD_COLUMNS), missing, start_from


def test_year_to_date_by_whole_columns_is_what_it_was_unit_by_unit():
    from pipeline.merge import year_to_date

    rng = random.Random(5)
    months = [f"2026-{m:02d}" for m in range(1, 13)]
    for trial in range(60):
        monthly = {}
        for month in rng.sample(months, rng.randint(0, 12)):
            columns = [c for c in ("出生", "死亡", "政策内出生", "期初人口", "期末人口") if rng.random() < 0.9]
            units = rng.sample([f"U{n:02d}" for n in range(12)], rng.randint(1, 12))
            monthly[month] = pd.DataFrame([[rng.choice([float("nan"), rng.randint(0, 2000)]) for _ in columns]
                                           for _ in units], index=pd.Index(units, name="unit"),
                                          columns=columns, dtype=float)
        asked = months[:rng.randint(1, 12)]
        ytd = year_to_date(monthly, asked)
        sums, missing, start_from = year_to_date_unit_by_unit(monthly, asked)
        pd.testing.assert_frame_equal(ytd.sums, sums, check_index_type=False, check_dtype=False,  # (0 was int)
                                      obj=f"trial {trial}")
        assert ytd.missing == missing and ytd.year_start_from == start_from and ytd.months == asked

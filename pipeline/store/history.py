"""The history store: every return, its outcome, findings and figures, in one SQLite file.

All SQL of the product lives in this module, so that a district can later point the
store at a server database by replacing one module. The schema is versioned with
PRAGMA user_version; MIGRATIONS upgrade any older file in place, never from scratch.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import itertools
import json
import logging
import operator
import sqlite3
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson
import pandas as pd

from pipeline.faults import durable_write
from pipeline.store.disks import network_filesystem
from pipeline.findings import Finding, Severity

# Each entry upgrades the store from version i to i + 1. Append; never edit a released one.
# An entry is SQL, or a function for what SQL alone cannot do (it runs in the same transaction).
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        summary TEXT
    );
    CREATE TABLE returns (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        file_name TEXT NOT NULL,
        archived_as TEXT NOT NULL,
        unit TEXT,
        period TEXT,
        verdict TEXT NOT NULL,
        status TEXT NOT NULL,
        received_at TEXT NOT NULL,
        filled_on TEXT,
        run_id INTEGER REFERENCES runs(id),
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX returns_by_unit_period ON returns(unit, period);
    CREATE INDEX returns_by_sha ON returns(sha256);
    CREATE TABLE figures (
        return_id INTEGER NOT NULL REFERENCES returns(id),
        grp TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL,
        PRIMARY KEY (return_id, grp, name)
    );
    CREATE TABLE persons (
        return_id INTEGER NOT NULL REFERENCES returns(id),
        register TEXT NOT NULL,
        id_number TEXT NOT NULL,
        grp TEXT,
        record TEXT NOT NULL
    );
    CREATE INDEX persons_by_id ON persons(id_number);
    CREATE TABLE findings (
        return_id INTEGER NOT NULL REFERENCES returns(id),
        finding TEXT NOT NULL
    );
    CREATE INDEX findings_by_return ON findings(return_id);
    """,
    # 2: reconciliation findings are recomputed when last month changes, so they are
    # kept apart from the form's; each return's table layout, for cells of later checks.
    """
    ALTER TABLE findings ADD COLUMN stage TEXT NOT NULL DEFAULT 'form';
    CREATE TABLE layouts (
        return_id INTEGER NOT NULL REFERENCES returns(id),
        sheet_key TEXT NOT NULL,
        sheet TEXT NOT NULL,
        header_row INTEGER NOT NULL,
        total_row INTEGER,
        letters TEXT NOT NULL,
        group_rows TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (return_id, sheet_key)
    );
    CREATE TABLE pending (
        unit TEXT NOT NULL,
        period TEXT NOT NULL
    );
    """,
    # 3: one return's registers are read by reconciliation and the summary: without this
    # index each read scanned every person of every return (quadratic in the returns).
    """
    CREATE INDEX persons_by_return ON persons(return_id, register);
    """,
    # 4: the street ID rule asks which of a period's returns hold an ID. Through an index on
    # id_number alone it read that person's row of every month held (a year: twelve rows for
    # one); with the return and register in the index, the other months are passed over there.
    """
    CREATE INDEX persons_by_id_return ON persons(id_number, return_id, register);
    DROP INDEX persons_by_id;
    """,
    # 5: a register is stored as one compressed value per return (see registers_as_columns).
    lambda db: registers_as_columns(db),
]
SCHEMA_VERSION = len(MIGRATIONS)
log = logging.getLogger(__name__)
# Filing writes returns in transactions of a batch each (store/filing.py), and every person
# goes into person_ids, keyed by ID number (random), so each commit dirties many scattered
# pages. A larger page cache keeps the index's upper levels and recent
# leaves in memory, and a longer WAL (checkpointed every ~80 MB rather than every 4 MB)
# copies a page that several returns touched back into the file once, not each time.
# Measured on 3,000 returns of ~560 persons: 54 s → 28–34 s. Durability is unchanged:
# synchronous=FULL still syncs the WAL at every commit.
CACHE_KIB = 65536
WAL_CHECKPOINT_PAGES = 20000


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while bulk reads build many containers at once.

    A run holds the returns it took in (millions of objects); each full collection that a
    burst of allocations sets off walks them all (0.1–0.3 s at 1,000 returns, several times
    per stage). What the bulk reads build holds no reference cycles, so nothing waits for
    the collector meanwhile; refcounting frees it as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _bulk_read(method: Callable) -> Callable:
    """A read that builds a container per row (records, findings): run with the collector paused."""
    @functools.wraps(method)
    def read(*args, **kwargs):
        with paused_gc():
            return method(*args, **kwargs)
    return read


@dataclass(frozen=True)
class StoredReturn:
    id: int
    sha256: str
    file_name: str
    archived_as: str
    unit: str | None
    period: str | None
    verdict: str  # accepted | rejected | quarantined | duplicate: what the checks said, once
    status: str  # the verdict while the return stands; superseded once a newer one does
    received_at: dt.datetime
    filled_on: dt.date | None
    reason: str


def first_accepted_at(returns: list[StoredReturn]) -> dict[str, dt.datetime]:
    """Per unit, when its first return the checks accepted arrived: when it reported on time, or late.

    A unit that reported in time and sends a correction after the deadline was not late;
    one whose only returns in time were rejected was. Units with none accepted are absent.
    """
    first: dict[str, dt.datetime] = {}
    for r in returns:
        if r.verdict == "accepted" and r.unit is not None and (r.unit not in first or r.received_at < first[r.unit]):
            first[r.unit] = r.received_at
    return first


@dataclass(frozen=True)
class Layout:
    """Where a return's table sat in the clerk's sheet: enough to point later findings at cells."""

    sheet_key: str
    sheet: str
    header_row: int
    total_row: int | None
    letters: dict[str, str]
    group_rows: dict[str, int] = field(default_factory=dict)  # monthly table: group -> Excel row

    def cell(self, column: str, row: int | None) -> str:
        letter = self.letters.get(column, "")
        return f"{letter}{row}" if letter and row else ""


class HistoryUnavailable(RuntimeError):
    """The history store cannot be opened: damaged, made by a newer version, or held too long."""


class History:
    """One open history file; use as a context manager or call close()."""

    def __init__(self, path: Path):
        self.path = path
        self.db = _open(path)

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: a crash inside leaves the store as it was before."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        durable_write()
        self.db.execute("COMMIT")
        durable_write()

    # ---- runs ---------------------------------------------------------------
    def start_run(self, now: dt.datetime) -> int:
        with self.transaction() as db:
            return db.execute("INSERT INTO runs(started_at) VALUES (?)", (now.isoformat(),)).lastrowid

    def finish_run(self, run_id: int, now: dt.datetime, status: str, summary: dict) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished_at=?, status=?, summary=? WHERE id=?",
                       (now.isoformat(), status, json.dumps(summary, ensure_ascii=False), run_id))

    # ---- returns ------------------------------------------------------------
    def add_return(self, db: sqlite3.Connection, ret: StoredReturn, run_id: int) -> int:
        return db.execute(
            "INSERT INTO returns(sha256, file_name, archived_as, unit, period, verdict, status, received_at,"
            " filled_on, run_id, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (ret.sha256, ret.file_name, ret.archived_as, ret.unit, ret.period, ret.verdict, ret.status,
             ret.received_at.isoformat(), ret.filled_on.isoformat() if ret.filled_on else None, run_id,
             ret.reason),
        ).lastrowid

    def set_status(self, db: sqlite3.Connection, return_id: int, status: str) -> None:
        db.execute("UPDATE returns SET status=? WHERE id=?", (status, return_id))

    def add_figures(self, db: sqlite3.Connection, return_id: int, groups: list, names: list, values: list) -> None:
        """One accepted return's monthly table as long rows, three lists in step: grp, name, value."""
        db.executemany("INSERT INTO figures VALUES (?,?,?,?)",
                       ((return_id, g, n, None if v is None or v != v else float(v))
                        for g, n, v in zip(groups, names, values)))

    def add_persons(self, db: sqlite3.Connection, return_id: int, register: str, id_numbers: list, groups: list,
                    columns: dict[str, list]) -> None:
        """One return's register: each person's ID number and group, and its columns (name → a value per person).

        Stored as one compressed value (a register reads whole or not at all) and one index
        row per person (ID number → return and place), for the street ID rule.
        """
        _insert_register(db, return_id, register, id_numbers, groups, columns)

    def add_findings(self, db: sqlite3.Connection, return_id: int, findings: list[Finding],
                     stage: str = "form") -> None:
        db.executemany("INSERT INTO findings(return_id, finding, stage) VALUES (?,?,?)",
                       ((return_id, json.dumps(f.to_dict(), ensure_ascii=False), stage) for f in findings))

    def replace_findings(self, db: sqlite3.Connection, return_id: int, findings: list[Finding], stage: str) -> None:
        """Swap one stage's findings of a return for a fresh set."""
        db.execute("DELETE FROM findings WHERE return_id=? AND stage=?", (return_id, stage))
        self.add_findings(db, return_id, findings, stage)

    def set_verdict(self, db: sqlite3.Connection, return_id: int, verdict: str) -> None:
        db.execute("UPDATE returns SET verdict=? WHERE id=?", (verdict, return_id))

    def add_layout(self, db: sqlite3.Connection, return_id: int, layout: "Layout") -> None:
        db.execute("INSERT INTO layouts VALUES (?,?,?,?,?,?,?)",
                   (return_id, layout.sheet_key, layout.sheet, layout.header_row, layout.total_row,
                    json.dumps(layout.letters, ensure_ascii=False), json.dumps(layout.group_rows, ensure_ascii=False)))

    def layouts_of(self, return_id: int) -> dict[str, "Layout"]:
        return self.layouts_by_return([return_id])[return_id]

    @_bulk_read
    def layouts_by_return(self, return_ids: list[int]) -> dict[int, dict[str, "Layout"]]:
        """Each given return's layouts by sheet key."""
        found: dict[int, dict[str, Layout]] = {i: {} for i in return_ids}
        for chunk in _chunks(return_ids):
            rows = self.db.execute("SELECT return_id, sheet_key, sheet, header_row, total_row, letters, group_rows"
                                   f" FROM layouts WHERE return_id IN ({_marks(chunk)})", chunk)
            for rid, k, s, h, t, letters, groups in rows:
                found[rid][k] = Layout(k, s, h, t, json.loads(letters), json.loads(groups))
        return found

    def returns(self, *, period: str | None = None, unit: str | None = None,
                sha256: str | None = None, run_id: int | None = None) -> list[StoredReturn]:
        sql, args = "SELECT id, sha256, file_name, archived_as, unit, period, verdict, status, received_at, filled_on," \
                    " reason FROM returns WHERE 1=1", []
        for column, value in (("period", period), ("unit", unit), ("sha256", sha256), ("run_id", run_id)):
            if value is not None:
                sql += f" AND {column}=?"
                args.append(value)
        return [_stored(row) for row in self.db.execute(sql + " ORDER BY id", args)]

    def quarantined(self, period: str, since: dt.datetime, until: dt.datetime) -> list[StoredReturn]:
        """Files quarantined for `period`, or for no month one could tell, received from `since` to `until`
        (periods.arrival_window)."""
        sql = ("SELECT id, sha256, file_name, archived_as, unit, period, verdict, status, received_at, filled_on,"
               " reason FROM returns WHERE status='quarantined'"
               " AND (period=? OR (period IS NULL AND received_at>=? AND received_at<?)) ORDER BY id")
        return [_stored(row) for row in self.db.execute(sql, (period, since.isoformat(), until.isoformat()))]

    def mark_pending(self, db: sqlite3.Connection, unit: str, period: str) -> None:
        """A unit's months from `period` on need reconciling (kept until done, across crashes)."""
        db.execute("INSERT INTO pending VALUES (?,?)", (unit, period))

    def pending(self) -> dict[str, str]:
        """Unit → earliest month waiting for reconciliation."""
        return dict(self.db.execute("SELECT unit, MIN(period) FROM pending GROUP BY unit"))

    def clear_pending(self, units: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM pending WHERE unit=?", ((unit,) for unit in units))

    def periods(self) -> list[str]:
        return [p for (p,) in self.db.execute(
            "SELECT DISTINCT period FROM returns WHERE period IS NOT NULL ORDER BY period")]

    @_bulk_read
    def findings_of(self, return_ids: list[int]) -> dict[int, list[Finding]]:
        found: dict[int, list[Finding]] = {i: [] for i in return_ids}
        for chunk in _chunks(return_ids):
            marks = ",".join("?" * len(chunk))
            for rid, text in self.db.execute(f"SELECT return_id, finding FROM findings WHERE return_id IN ({marks})",
                                             chunk):
                found[rid].append(Finding.from_dict(json.loads(text)))
        return found

    def count_findings(self, return_ids: list[int]) -> int:
        """How many findings the given returns have."""
        return sum(self.db.execute(f"SELECT COUNT(*) FROM findings WHERE return_id IN ({_marks(chunk)})",
                                   chunk).fetchone()[0] for chunk in _chunks(return_ids))

    @_bulk_read
    def severities_of(self, return_ids: list[int]) -> dict[int, list[str]]:
        """The severity of each finding of the given returns: findings_of without building the findings."""
        found: dict[int, list[str]] = {i: [] for i in return_ids}
        for chunk in _chunks(return_ids):
            for rid, text in self.db.execute(f"SELECT return_id, finding FROM findings WHERE return_id IN "
                                             f"({_marks(chunk)})", chunk):
                found[rid].append(json.loads(text)["severity"])
        return found

    def superseded(self, return_ids: list[int]) -> set[int]:
        """Those of the given returns another return of their unit and month stands over."""
        return {rid for chunk in _chunks(return_ids) for (rid,) in self.db.execute(
            f"SELECT id FROM returns WHERE id IN ({_marks(chunk)}) AND status='superseded'", chunk)}

    def blocked(self, return_ids: list[int]) -> set[int]:
        """Those of the given returns with an error among their findings (an error blocks acceptance)."""
        found = set()
        for chunk in _chunks(return_ids):
            # Only a finding whose text holds "error" can be one; decoding says whether it is.
            for rid, text in self.db.execute(f"SELECT return_id, finding FROM findings WHERE return_id IN "
                                             f"({_marks(chunk)}) AND instr(finding, 'error')", chunk):
                if json.loads(text)["severity"] == Severity.ERROR:
                    found.add(rid)
        return found

    def figure_rows(self, return_ids: list[int]) -> list[tuple[int, str, str, float | None]]:
        """figures_of as plain rows (return_id, grp, name, value), for code that looks figures up one by one."""
        rows = []
        for chunk in _chunks(return_ids):
            rows += self.db.execute(f"SELECT return_id, grp, name, value FROM figures WHERE return_id IN "
                                    f"({_marks(chunk)})", chunk).fetchall()
        return rows

    def figure_totals(self, return_ids: list[int]) -> pd.DataFrame:
        """(return_id, name, value): each return's figures summed over its groups, by SQLite.

        What summing figures_of over groups gives, in a tenth of the rows a year-to-date
        merge reads: a blank counts as nothing (TOTAL: a name whose every value is blank
        sums to 0, as pandas' sum does) and a name the return lacks has no row.
        """
        frames = [pd.read_sql_query(
            f"SELECT return_id, name, TOTAL(value) AS value FROM figures WHERE return_id IN ({_marks(c)})"
            " GROUP BY return_id, name", self.db, params=c) for c in _chunks(return_ids)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["return_id", "name", "value"])

    def figures_of(self, return_ids: list[int]) -> pd.DataFrame:
        """Long figures (return_id, grp, name, value) of the given returns."""
        frames = [pd.read_sql_query(
            f"SELECT return_id, grp, name, value FROM figures WHERE return_id IN ({','.join('?' * len(c))})",
            self.db, params=c) for c in _chunks(return_ids)]
        return pd.concat(frames, ignore_index=True) if frames else \
            pd.DataFrame(columns=["return_id", "grp", "name", "value"])

    @_bulk_read
    def persons_of(self, return_ids: list[int], register: str, fields: tuple[str, ...] | None = None,
                   id_numbers: Iterable[str] | None = None) -> pd.DataFrame:
        """(return_id, id_number, grp, record) of the given returns' register, in row order; with `fields`,
        each record holds only those (None where absent); with `id_numbers`, only the persons holding one."""
        rows, records = [], []
        picks = None if id_numbers is None else self._positions_holding(return_ids, register, id_numbers)
        for rid, stored in self._registers(return_ids if picks is None else list(picks), register):
            names = stored["names"] if fields is None else list(fields)
            columns = [_column(stored, name) for name in names]
            ids, groups = stored["ids"], stored["groups"]
            places = range(len(ids)) if picks is None else picks[rid]
            rows += [(rid, ids[i], groups[i]) for i in places]
            records += [dict(zip(names, [column[i] for column in columns])) for i in places]
        frame = pd.DataFrame(rows, columns=["return_id", "id_number", "grp"])
        frame["record"] = pd.Series(records, index=frame.index, dtype=object)
        return frame

    @_bulk_read
    def person_fields(self, return_ids: list[int], register: str,
                      fields: tuple[str, ...]) -> dict[int, dict[str, list]]:
        """Each given return's register as columns: field → the value of each row, in row order (None if absent)."""
        found = {rid: {name: _column(stored, name) for name in fields}
                 for rid, stored in self._registers(return_ids, register)}
        return {rid: found.get(rid) or {name: [] for name in fields} for rid in return_ids}

    def _registers(self, return_ids: list[int], register: str) -> Iterator[tuple[int, dict]]:
        """(return id, its register as stored) of the given returns that have one, by return id in each chunk."""
        for chunk in _chunks(return_ids):
            rows = self.db.execute(f"SELECT return_id, persons FROM registers WHERE register=? AND return_id IN "
                                   f"({_marks(chunk)}) ORDER BY return_id", [register, *chunk]).fetchall()
            for rid, blob in rows:
                yield rid, _unpacked(blob)

    def _positions_holding(self, return_ids: list[int], register: str,
                           id_numbers: Iterable[str]) -> dict[int, list[int]]:
        """Return id → the places in its register of the persons holding one of `id_numbers`.

        Both lists go into temporary tables and the lookup starts from the IDs (CROSS JOIN
        keeps that order), through person_ids' key (id_number, return_id, register, position):
        a batch asks about ~10^5 IDs, a city's period holds ~10^7 persons, and only the few
        matching entries are touched; a person's entries of other months are passed over in
        the key. `+return_id` keeps SQLite from probing once per asked return for each ID
        instead (thousands of probes an ID).
        """
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS asked_ids (number TEXT PRIMARY KEY)")
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS asked_returns (id INTEGER PRIMARY KEY)")
        self.db.execute("DELETE FROM asked_ids")
        self.db.execute("DELETE FROM asked_returns")
        # one statement each: row by row, every insert would be a transaction of its own (autocommit)
        self.db.execute("INSERT OR IGNORE INTO asked_ids SELECT value FROM json_each(?)",
                        (json.dumps(list(id_numbers), ensure_ascii=False),))
        self.db.execute("INSERT OR IGNORE INTO asked_returns SELECT value FROM json_each(?)", (json.dumps(return_ids),))
        rows = self.db.execute(
            "SELECT p.return_id, p.position FROM asked_ids CROSS JOIN person_ids AS p ON p.id_number = asked_ids.number"
            " WHERE p.register=? AND +p.return_id IN (SELECT id FROM asked_returns) ORDER BY p.return_id, p.position",
            [register]).fetchall()
        picks: dict[int, list[int]] = {}
        for rid, place in rows:
            picks.setdefault(rid, []).append(place)
        return picks


# ---- registers, one compressed value per return -------------------------------------------------
def _insert_register(db: sqlite3.Connection, return_id: int, register: str, id_numbers: list, groups: list,
                     columns: dict[str, list]) -> None:
    if not id_numbers:
        return
    db.execute("INSERT INTO registers VALUES (?,?,?)", (return_id, register, _packed(id_numbers, groups, columns)))
    db.executemany("INSERT INTO person_ids VALUES (?,?,?,?)",
                   ((n, return_id, register, i) for i, n in enumerate(id_numbers)))


def _packed(id_numbers: list, groups: list, columns: dict[str, list]) -> bytes:
    """A register as stored: JSON of its columns, deflated (zlib level 1: ~30 bytes a person, ~0.3 ms a return).

    Filing hands over the typed values. orjson writes them ~6× faster than the json module
    (filing is on the run's critical lane), compact, which is how _unpacked knows it: dates as
    ISO texts, a NaN as null (a blank), anything else it cannot write as its ISO text or str().
    What orjson refuses (an integer beyond 64 bits, which its reader would turn into a float;
    a lone surrogate) the json module writes, as it wrote every register before orjson.
    """
    data = {"ids": id_numbers, "groups": groups, "names": list(columns), "columns": list(columns.values())}
    try:
        text = orjson.dumps(data, default=_as_text, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:
        text = json.dumps(data, default=_as_text).encode()  # '{"ids": [': never taken for orjson's
    return zlib.compress(text, 1)


def _as_text(value: object) -> str:
    """What JSON cannot hold as it is: a date or time (a pandas Timestamp: orjson writes only the exact types) as
    its ISO text, anything else as its str()."""
    return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)


def _unpacked(blob: bytes) -> dict:
    text = zlib.decompress(blob)
    return orjson.loads(text) if text.startswith(_ORJSON_HEAD) else json.loads(text)


_ORJSON_HEAD = b'{"ids":['  # orjson's compact form; the json module writes '{"ids": ['


def _column(stored: dict, name: str) -> list:
    """One column of a stored register; a column it does not have reads as None in every row."""
    try:
        return stored["columns"][stored["names"].index(name)]
    except ValueError:
        return [None] * len(stored["ids"])


def columns_of(records: list[dict]) -> dict[str, list]:
    """Records (dicts) as columns: every key any record has, in order of first appearance; None where absent."""
    names = list(dict.fromkeys(name for record in records for name in record))
    return {name: [record.get(name) for record in records] for name in names}


def registers_as_columns(db: sqlite3.Connection) -> None:
    """Migration 5: persons stored one row each as a JSON record (~540 bytes a person with its
    indexes) become one compressed value per return and register, and an index of ID numbers
    (~100 bytes a person). Records are moved as they are: a key a record lacked reads as None."""
    db.execute("CREATE TABLE registers (return_id INTEGER NOT NULL REFERENCES returns(id), register TEXT NOT NULL,"
               " persons BLOB NOT NULL, PRIMARY KEY (return_id, register))")
    db.execute("CREATE TABLE person_ids (id_number TEXT NOT NULL, return_id INTEGER NOT NULL REFERENCES returns(id),"
               " register TEXT NOT NULL, position INTEGER NOT NULL,"
               " PRIMARY KEY (id_number, return_id, register, position)) WITHOUT ROWID")
    rows = db.execute("SELECT return_id, register, id_number, grp, record FROM persons ORDER BY return_id, register, rowid")
    for (rid, register), persons in itertools.groupby(rows, key=operator.itemgetter(0, 1)):
        persons = list(persons)
        _insert_register(db, rid, register, [p[2] for p in persons], [p[3] for p in persons],
                         columns_of(_decode([p[4] for p in persons])))
    db.execute("DROP TABLE persons")


def stored_version(db: sqlite3.Connection) -> int:
    """The store's schema version; HistoryUnavailable when a newer pipeline wrote it."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise HistoryUnavailable(f"历史库是新版程序写的(库版本 {version},本程序只认到 {SCHEMA_VERSION})。"
                                 "请把本程序升级到与写这个库的相同或更新的版本")
    return version


def migrate(db: sqlite3.Connection) -> None:
    """Bring the store to SCHEMA_VERSION, one migration at a time, each in a transaction."""
    version = stored_version(db)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            step = MIGRATIONS[target - 1]
            if callable(step):
                if version:  # data moves in a store that holds some: minutes for a city's (said on stderr, the log)
                    log.warning("历史库正在升级到第 %d 版(只在升级后第一次运行时做一次;库大时需要几分钟,"
                                "每千份月报约 8 秒)。中途停止也不要紧:历史库保持原样,下次运行时重新升级", target)
                step(db)
            else:
                for statement in _statements(step):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    if version and any(callable(step) for step in MIGRATIONS[version:]):
        _give_room_back(db)


def _give_room_back(db: sqlite3.Connection) -> None:
    """After data moved in an existing store, return the pages it left free to the disk (once, at the upgrade).

    VACUUM needs room for a copy of what the store holds; without it the store stays as
    large as it was and fills its free pages first.
    """
    try:
        db.execute("VACUUM")
    except sqlite3.OperationalError:
        pass


def _open(path: Path) -> sqlite3.Connection:
    """The store, set up and migrated; HistoryUnavailable (with what to do) when it cannot be."""
    network = network_filesystem(path.parent)
    if network is not None:
        raise HistoryUnavailable(
            f"历史库 {path} 在网络共享盘上({network}),SQLite 在网络盘上可能写坏数据,本次没有打开它。"
            "请把工作目录放在运行本程序的这台电脑的磁盘上(各村居仍可通过共享文件夹往收件箱里放月报)")
    db = None
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        stored_version(db)  # a newer store is refused before anything (WAL mode too) is written to it
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        migrate(db)
        return db
    except HistoryUnavailable:
        db.close()
        raise
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        raise HistoryUnavailable(_cannot_open(path, exc)) from exc


def _cannot_open(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return (f"历史库 {path} 正被另一个程序占用(等了 30 秒)。"
                "请稍后再运行;若一直如此,请关闭打开该文件的程序")
    if isinstance(exc, sqlite3.OperationalError):  # no room, no permission, no such folder, an I/O error
        return f"历史库 {path} 无法使用({text})。请检查磁盘空间和文件权限后重新运行"
    return (f"历史库 {path} 打不开({text}):文件可能已损坏,或不是本程序的历史库。"
            "请用 pipeline restore 从 backups/ 里的备份恢复;或把它移走后重新运行,将从空的历史开始(以前各月的记录不在新库里)")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _decode(texts: list[str]) -> list:
    """json.loads of each text, in one call: one JSON array of them all."""
    return json.loads("[" + ",".join(texts) + "]")


def _marks(values: list) -> str:
    return ",".join("?" * len(values))


def _chunks(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _stored(row: tuple) -> StoredReturn:
    rid, sha, name, archived, unit, period, verdict, status, received, filled, reason = row
    return StoredReturn(rid, sha, name, archived, unit, period, verdict, status, dt.datetime.fromisoformat(received),
                        dt.date.fromisoformat(filled) if filled else None, reason)

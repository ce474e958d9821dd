"""The history store: every return, its outcome, findings and figures, in one SQLite file.

All SQL of the product lives in this module, so that a district can later point the
store at a server database by replacing one module. The schema is versioned with
PRAGMA user_version; MIGRATIONS upgrade any older file in place, never from scratch.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from pipeline.faults import durable_write
from pipeline.findings import Finding, Severity

# Each entry upgrades the store from version i to i + 1. Append; never edit a released one.
MIGRATIONS: list[str] = [
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
]
SCHEMA_VERSION = len(MIGRATIONS)
# Filing writes returns in transactions of a batch each (store/filing.py), and every person
# goes into the random-keyed index persons_by_id_return, so each commit dirties many scattered
# index pages. A larger page cache keeps the index's upper levels and recent
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
                    records: list) -> None:
        """One return's register as three columns: id_number, grp, record (a dict or its JSON text)."""
        db.executemany("INSERT INTO persons VALUES (?,?,?,?,?)",
                       ((return_id, register, n, g, r if isinstance(r, str) else json.dumps(r, ensure_ascii=False,
                                                                                         default=str))
                        for n, g, r in zip(id_numbers, groups, records)))

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
        """(return_id, id_number, grp, record) of the given returns' register; with `fields`, each record
        holds only those (see person_fields); with `id_numbers`, only the persons holding one of them."""
        if fields is None:
            rows = self._persons(return_ids, register, "return_id, id_number, grp, record", id_numbers=id_numbers)
            records = _decode([row[3] for row in rows])
        else:
            rows, values = self._picked(return_ids, register, fields, "return_id, id_number, grp", id_numbers)
            records = [dict(zip(fields, row)) for row in values]
        frame = pd.DataFrame([row[:3] for row in rows], columns=["return_id", "id_number", "grp"])
        frame["record"] = pd.Series(records, index=frame.index, dtype=object)
        return frame

    @_bulk_read
    def person_fields(self, return_ids: list[int], register: str,
                      fields: tuple[str, ...]) -> dict[int, dict[str, list]]:
        """Each given return's register as columns: field → the value of each row, in row order (None if absent)."""
        rows, values = self._picked(return_ids, register, fields, "return_id")
        by_return: dict[int, list[list]] = {i: [] for i in return_ids}
        for (rid, *_), row in zip(rows, values):
            by_return[rid].append(row)
        return {rid: {name: list(column) for name, column in zip(fields, zip(*found))} if found
                else {name: [] for name in fields} for rid, found in by_return.items()}

    def _picked(self, return_ids: list[int], register: str, fields: tuple[str, ...],
                columns: str, id_numbers: Iterable[str] | None = None) -> tuple[list[tuple], list[list]]:
        """`columns` of each row of the given returns' register, and the values of `fields` in its record.

        SQLite picks the fields out of each stored record and only those are decoded: a few
        times cheaper than whole records. With two or more paths json_extract returns a JSON
        array of each value's own text, so Python decodes the very values it would from the
        whole record. A record SQLite cannot parse (Python writes NaN) is decoded whole instead.
        """
        paths = [f'$."{name}"' for name in fields] * (2 if len(fields) == 1 else 1)
        try:
            rows = self._persons(return_ids, register, f"{columns}, json_extract(record, {_marks(paths)})", paths,
                                 id_numbers)
            values = _decode([row[-1] for row in rows])
        except sqlite3.OperationalError:  # malformed JSON for SQLite
            rows = self._persons(return_ids, register, f"{columns}, record", id_numbers=id_numbers)
            values = [[record.get(name) for name in fields] for record in _decode([row[-1] for row in rows])]
        return rows, values

    def _persons(self, return_ids: list[int], register: str, columns: str,
                 column_args: list[str] | None = None, id_numbers: Iterable[str] | None = None) -> list[tuple]:
        """`columns` of the given returns' register, in row order; with `id_numbers`, only rows holding one."""
        if id_numbers is not None:
            return self._persons_holding(return_ids, register, columns, column_args, id_numbers)
        rows = []
        for chunk in _chunks(return_ids):
            rows += self.db.execute(f"SELECT {columns} FROM persons WHERE register=? AND return_id IN ({_marks(chunk)})",
                                    [*(column_args or []), register, *chunk]).fetchall()
        return rows

    def _persons_holding(self, return_ids: list[int], register: str, columns: str, column_args: list[str] | None,
                         id_numbers: Iterable[str]) -> list[tuple]:
        """`columns` of the rows of the given returns' register that hold one of `id_numbers`.

        Both lists go into temporary tables and the lookup starts from the IDs (CROSS JOIN
        keeps that order), through the index on (id_number, return_id, register): a batch
        asks about ~10^5 IDs, a city's period holds ~10^7 persons, and only the few matching
        rows are touched. The index entry answers return and register, so a person's rows
        of other months are never read; `+return_id` keeps SQLite from probing the index
        once per asked return for each ID instead (thousands of probes an ID).
        """
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS asked_ids (number TEXT PRIMARY KEY)")
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS asked_returns (id INTEGER PRIMARY KEY)")
        self.db.execute("DELETE FROM asked_ids")
        self.db.execute("DELETE FROM asked_returns")
        # one statement each: row by row, every insert would be a transaction of its own (autocommit)
        self.db.execute("INSERT OR IGNORE INTO asked_ids SELECT value FROM json_each(?)",
                        (json.dumps(list(id_numbers), ensure_ascii=False),))
        self.db.execute("INSERT OR IGNORE INTO asked_returns SELECT value FROM json_each(?)", (json.dumps(return_ids),))
        return self.db.execute(
            f"SELECT {columns} FROM asked_ids CROSS JOIN persons ON persons.id_number = asked_ids.number"
            " WHERE register=? AND +return_id IN (SELECT id FROM asked_returns) ORDER BY persons.rowid",
            [*(column_args or []), register]).fetchall()


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
            for statement in _statements(MIGRATIONS[target - 1]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _open(path: Path) -> sqlite3.Connection:
    """The store, set up and migrated; HistoryUnavailable (with what to do) when it cannot be."""
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

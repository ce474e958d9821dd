"""A copy of the history store a day, the newest few kept; and putting one back.

The store is the only record of which return stands for which unit and month, and last
month's accepted return is what this month's is reconciled with. A damaged disk sector or
a deleted file would otherwise leave a street without it. SQLite's online backup copies a
consistent state while the connection stays open; the copy is written under a temporary
name, synced and then renamed, so a copy in the folder is always whole.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from pipeline.store.history import SCHEMA_VERSION, History, HistoryUnavailable
from pipeline.store.ledger import DUPLICATES_FOLDER, REASON_SUFFIX, free_path
from pipeline.workspace import Workspace

PREFIX = "history-"
SUFFIX = ".sqlite"


def backup_name(day: dt.date) -> str:
    return f"{PREFIX}{day.isoformat()}{SUFFIX}"


def back_up_history(history: History, folder: Path, day: dt.date, keep: int) -> Path | None:
    """Copy the store to folder/history-<day>.sqlite unless that day has its copy; keep the newest `keep`.

    Returns the copy written, or None (no copy wanted, or the day already has one).
    Raises OSError or sqlite3.Error when the copy cannot be made; nothing half-made stays.
    """
    if keep <= 0:
        return None
    target = folder / backup_name(day)
    if target.exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (target.name + ".partial")
    try:
        _copy_into(history.db, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    for old in backups(folder)[:-keep]:
        old.unlink()
    return target


def backups(folder: Path) -> list[Path]:
    """The copies in the folder, oldest first (their names sort by day)."""
    return sorted(p for p in folder.glob(f"{PREFIX}*{SUFFIX}") if p.is_file()) if folder.is_dir() else []


@dataclass
class Restored:
    """What restoring did: the store's files set aside, and the files put back into the inbox."""

    set_aside: list[Path]
    returned: list[Path]


# What the ledger puts before a file's own name: archive "<received>_<hash12>_", duplicate
# "重复_<hash12>_", quarantine "<hash12>_".
_LEDGER_PREFIX = re.compile(r"^(?:\d{8}-\d{6}_|重复_)?[0-9a-f]{12}_")


def restore_history(ws: Workspace, backup: Path, now: dt.datetime) -> Restored:
    """Put `backup` in place of the store; every file filed after it goes back to the inbox.

    The caller holds the working folder's lock. The store's own files are renamed, never
    deleted; the backup is checked whole before anything moves. A file in the archive or
    in quarantine that the backup does not know was filed after it: a copy goes back to
    the inbox under its own name and modification time (the time it came in), so the
    next run takes it in again as it did the first time.
    """
    known = _check_backup(backup)
    restoring = ws.history.with_name(ws.history.name + ".restoring")
    _copy_store(backup, restoring)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    set_aside = []
    for suffix in ("", "-wal", "-shm"):
        current = Path(f"{ws.history}{suffix}")
        if current.exists():
            target = Path(f"{ws.history}.before-restore-{stamp}{suffix}")  # the store and its WAL stay a pair
            os.replace(current, target)
            set_aside.append(target)
    os.replace(restoring, ws.history)
    ws.inbox.mkdir(parents=True, exist_ok=True)
    returned = []
    for entry in filed_entries(ws):
        if (entry.parent.name, entry.name) in known:
            continue
        target = free_path(ws.inbox / (_LEDGER_PREFIX.sub("", entry.name) or entry.name))
        if entry.is_dir():
            shutil.copytree(entry, target, copy_function=shutil.copy2)
        else:
            shutil.copy2(entry, target)
        returned.append(target)
    return Restored(set_aside, returned)


def filed_entries(ws: Workspace) -> list[Path]:
    """Every file or folder the ledger holds: archive/<period>/<unit>/*, archive/重复文件/*, quarantine/<month>/*."""
    archived = [e for e in ws.archive.glob("*/*/*") if e.parent.parent.name != DUPLICATES_FOLDER]
    archived += ws.archive.glob(f"{DUPLICATES_FOLDER}/*")
    quarantined = [e for e in ws.quarantine.glob("*/*") if not e.name.endswith(REASON_SUFFIX)]
    return sorted(e for e in archived + quarantined if not e.name.startswith("."))


def _check_backup(backup: Path) -> set[tuple[str, str]]:
    """The places (folder, name) of the files the backup knows; HistoryUnavailable if it is not a whole store."""
    try:
        db = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            checked = db.execute("PRAGMA integrity_check").fetchone()[0]
            places = db.execute("SELECT archived_as FROM returns").fetchall() if checked == "ok" else []
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise HistoryUnavailable(f"备份 {backup} 打不开({exc}),历史库没有改动") from exc
    if checked != "ok" or not 0 < version <= SCHEMA_VERSION:
        raise HistoryUnavailable(f"备份 {backup} 不完整或不是本程序的历史库(检查结果:{checked},"
                                 f"库版本 {version}),历史库没有改动")
    return {(Path(p).parent.name, Path(p).name) for (p,) in places}


def _copy_store(source: Path, target: Path) -> None:
    """A consistent copy of the store at `source` (opened read-only) at `target`."""
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        _copy_into(src, target)
    finally:
        src.close()


def _copy_into(db: sqlite3.Connection, target: Path) -> None:
    """SQLite's online backup of `db` into a fresh file at `target`, synced to disk."""
    target.unlink(missing_ok=True)
    copy = sqlite3.connect(target)
    try:
        db.backup(copy)
    finally:
        copy.close()
    with open(target, "rb") as fh:
        os.fsync(fh.fileno())

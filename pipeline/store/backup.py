"""A copy of the history store a day, the newest few kept.

The store is the only record of which return stands for which unit and month, and last
month's accepted return is what this month's is reconciled with. A damaged disk sector or
a deleted file would otherwise leave a street without it. SQLite's online backup copies a
consistent state while the connection stays open; the copy is written under a temporary
name, synced and then renamed, so a copy in the folder is always whole.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

from pipeline.store.history import History

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
        copy = sqlite3.connect(partial)
        try:
            history.db.backup(copy)
        finally:
            copy.close()
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    for old in backups(folder)[:-keep]:
        old.unlink()
    return target


def backups(folder: Path) -> list[Path]:
    """The copies in the folder, oldest first (their names sort by day)."""
    return sorted(p for p in folder.glob(f"{PREFIX}*{SUFFIX}") if p.is_file()) if folder.is_dir() else []

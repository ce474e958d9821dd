"""The working folder: where the inbox, outbox, archive, quarantine, history and its backups are."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.registry import Settings

LOCK_FILE = ".pipeline.lock"
# Names that are someone's work in progress, not a return: Excel/WPS lock files, temporaries.
IGNORED_PREFIXES = ("~$", ".~lock", ".", "~")
IGNORED_SUFFIXES = (".tmp", ".temp", ".crdownload", ".part", ".partial", ".download", "#", ".swp")


@dataclass(frozen=True)
class Workspace:
    root: Path
    inbox: Path
    outbox: Path
    archive: Path
    quarantine: Path
    history: Path
    backups: Path

    @classmethod
    def at(cls, root: Path, settings: Settings, inbox: Path | None = None, outbox: Path | None = None) -> "Workspace":
        """Folders from the settings, relative to the working folder; --inbox/--outbox win."""
        root = root.resolve()
        return cls(root, (inbox or root / settings.inbox).resolve(), (outbox or root / settings.outbox).resolve(),
                   (root / settings.archive).resolve(), (root / settings.quarantine).resolve(),
                   (root / settings.history).resolve(), (root / settings.backups).resolve())

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    def create(self) -> None:
        for folder in (self.inbox, self.outbox, self.archive, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)


def is_work_in_progress(path: Path) -> bool:
    """Lock files, hidden files and temporaries are left alone in the inbox."""
    name = path.name
    return name.startswith(IGNORED_PREFIXES) or name.lower().endswith(IGNORED_SUFFIXES)


def _is_lock_or_temporary(path: Path) -> bool:
    """Inside a folder, hidden files (.DS_Store) are harmless; lock and temporary files mean work goes on."""
    name = path.name
    return name.startswith(("~$", ".~lock", "~")) or name.lower().endswith(IGNORED_SUFFIXES)


def ready_files(inbox: Path, settle_seconds: float, now: float | None = None) -> list[Path]:
    """Inbox files and folders that are complete: not in progress, unchanged for `settle_seconds`.

    A file still being copied grows or has a fresh modification time; it is taken next
    run. A folder is one return (one file per sheet): it is ready when every file in it
    has settled and none is a lock file (someone still has a sheet open). Links and
    special files are never followed: they stay in the inbox.
    """
    now = time.time() if now is None else now
    ready = []
    for path in sorted(inbox.iterdir()):
        if is_work_in_progress(path) or path.is_symlink():
            continue
        if path.is_dir() and folder_settled(path, settle_seconds, now):
            ready.append(path)
        elif path.is_file() and now - path.stat().st_mtime >= settle_seconds:
            ready.append(path)
    return ready


def folder_settled(folder: Path, settle_seconds: float, now: float) -> bool:
    """Every file of the folder old enough, at least one of them, and none a lock or temporary file."""
    entries = [folder, *folder.rglob("*")]
    files = [p for p in entries if p.is_file() and not p.is_symlink()]
    if not files or any(_is_lock_or_temporary(p) for p in files):
        return False
    return all(now - p.lstat().st_mtime >= settle_seconds for p in entries)

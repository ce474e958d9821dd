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
SYSTEM_FILES = {"thumbs.db", "ehthumbs.db", "desktop.ini", ".ds_store"}  # what Windows and macOS leave in a folder


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

    def filed(self, recorded: str) -> Path:
        """Where a file the history recorded at `recorded` is now: there, or at the same place in this
        working folder's archive or quarantine when the folder has moved since (a new disk or
        computer: the history keeps whole paths); the recorded place when neither can be told."""
        path = Path(recorded)
        if path.exists():
            return path
        above = path.parts[:-1]
        for folder in (self.archive, self.quarantine):
            if folder.name in above:
                at = max(i for i, part in enumerate(above) if part == folder.name)
                return folder.joinpath(*path.parts[at + 1:])
        return path

    def holds(self, path: Path) -> bool:
        """Whether `path` is in this working folder's archive or quarantine: the only places filing moves a file to."""
        return any(path.resolve().is_relative_to(folder) for folder in (self.archive, self.quarantine))


def _is_lock_or_temporary(path: Path) -> bool:
    """Inside a folder, hidden files (.DS_Store) are harmless; lock and temporary files mean work goes on."""
    name = path.name
    return name.startswith(("~$", ".~lock", "~")) or name.lower().endswith(IGNORED_SUFFIXES)


# Why a run leaves an inbox entry for later, in the words the clerk reads (lock and hidden files: silently).
NOT_SETTLED = "刚放入或仍在复制,下次运行时处理"
UNFINISHED = "是未下载完或未保存完的临时文件,完成后下次运行时处理"
FOLDER_IN_USE = "文件夹里有文件正被打开或未保存完,关闭后下次运行时处理"
EMPTY_FOLDER = "是空文件夹,里面没有报表"
A_LINK = "是链接(快捷方式),不会读取;请放入文件本身"
CHANGED_WHILE_READ = "读取时文件仍在变化或被占用,下次运行时处理"
CANNOT_OPEN = "无法访问(权限或网络问题),下次运行时再试"


@dataclass(frozen=True)
class InboxEntries:
    ready: list[Path]  # complete: this run takes them
    waiting: list[tuple[str, str]]  # (name, why it waits): a person should know, the next run looks again


def sort_inbox(inbox: Path, settle_seconds: float, now: float | None = None) -> InboxEntries:
    """Inbox files and folders that are complete (not in progress, unchanged for `settle_seconds`), and the rest.

    A file still being copied grows or has a fresh modification time; it is taken next
    run. A folder is one return (one file per sheet): it is ready when every file in it
    has settled and none is a lock file (someone still has a sheet open). Links and
    special files are never followed: they stay in the inbox. Lock, hidden and system files
    (Thumbs.db) are nobody's return and are not mentioned; whatever else waits is, with its reason.
    """
    now = time.time() if now is None else now
    ready, waiting = [], []
    for path in sorted(inbox.iterdir()):
        try:
            why = _why_it_waits(path, settle_seconds, now)
        except FileNotFoundError:  # taken away since the listing
            continue
        except OSError:  # a share's permissions, a network hiccup: looked at again next run
            why = CANNOT_OPEN
        if why == "":
            ready.append(path)
        elif why is not None:
            waiting.append((path.name, why))
    return InboxEntries(ready, waiting)


def _why_it_waits(path: Path, settle_seconds: float, now: float) -> str | None:
    """"" for an entry ready to take, the reason it waits, or None for a lock, hidden or system file."""
    if path.name.startswith(IGNORED_PREFIXES) or path.name.lower() in SYSTEM_FILES:
        return None
    if path.is_symlink():
        return A_LINK
    if path.name.lower().endswith(IGNORED_SUFFIXES):
        return UNFINISHED
    if path.is_dir():
        return folder_waits(path, settle_seconds, now)
    if not path.is_file():
        return None  # a device or pipe: nothing a clerk drops
    return "" if now - path.stat().st_mtime >= settle_seconds else NOT_SETTLED


def ready_files(inbox: Path, settle_seconds: float, now: float | None = None) -> list[Path]:
    """The inbox entries a run takes now (see sort_inbox)."""
    return sort_inbox(inbox, settle_seconds, now).ready


def folder_waits(folder: Path, settle_seconds: float, now: float) -> str:
    """Why a folder of sheets is not ready yet; "" once every file is old enough, there is one, and none
    is a lock or temporary file."""
    entries = [folder, *folder.rglob("*")]
    files = [p for p in entries if p.is_file() and not p.is_symlink()]
    if not files:
        return EMPTY_FOLDER
    if any(_is_lock_or_temporary(p) for p in files):
        return FOLDER_IN_USE
    return "" if all(now - p.lstat().st_mtime >= settle_seconds for p in entries) else NOT_SETTLED

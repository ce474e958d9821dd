"""The ledger's files: every inbox file ends in the archive or in quarantine, never lost.

Paths are built from the registry (unit code and name) and the content hash, never from
names inside a file; the original file name is kept only after it is made harmless.
Nothing is ever overwritten: a name already taken gets a numbered suffix.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

from pipeline.faults import durable_write
from pipeline.registry import Unit

DUPLICATES_FOLDER = "重复文件"  # in the archive: a repeat whose first copy the history does not know
REASON_SUFFIX = ".原因.txt"  # beside a quarantined file: why

_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def safe_name(name: str, limit: int = 80) -> str:
    """A file name that is harmless on Windows and POSIX: no separators, no '..', no reserved name."""
    cleaned = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).strip(" .")
    stem = cleaned.split(".")[0].upper()
    if not cleaned or stem in _RESERVED:
        cleaned = f"_{cleaned or 'file'}"
    if len(cleaned) > limit:
        suffix = Path(cleaned).suffix[:10]
        cleaned = cleaned[: limit - len(suffix)] + suffix
    return cleaned


def unit_folder(unit: Unit) -> str:
    return safe_name(f"{unit.code}_{unit.name}")


def archive_path(root: Path, period: str, unit: Unit, sha256: str, file_name: str, received: dt.datetime,
                 taken: set[Path] | None = None) -> Path:
    """archive/<period>/<code_name>/<received>_<hash12>_<original name>; not one of `taken` either."""
    stamp = received.strftime("%Y%m%d-%H%M%S")
    return free_path(root / period / unit_folder(unit) / f"{stamp}_{sha256[:12]}_{safe_name(file_name)}", taken)


def quarantine_path(root: Path, sha256: str, file_name: str, now: dt.datetime) -> Path:
    return free_path(root / now.strftime("%Y-%m") / f"{sha256[:12]}_{safe_name(file_name)}")


def free_path(path: Path, taken: set[Path] | None = None) -> Path:
    """`path`, or path with ' (2)', ' (3)'… before its suffix if the name is taken (on disk or in `taken`)."""
    candidate, n = path, 1
    while candidate.exists() or candidate in (taken or ()):
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def move_into(source: Path, target: Path) -> bool:
    """Move a file into place without ever replacing another (same disk: an atomic rename).

    Linked into place, a file whose inbox name cannot be dropped (on Windows: someone has it
    open in Excel) is filed all the same, and False returned; a later run drops that name
    (filing.finish_interrupted).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(target)
    durable_write()
    try:
        os.link(source, target)  # fails rather than overwrite; then drop the inbox name
    except OSError:
        if target.exists():
            raise
        shutil.move(str(source), str(target))  # another disk, or no hard links on this one
        return True
    durable_write()
    return drop_inbox_name(source)


def drop_inbox_name(path: Path) -> bool:
    """Remove an inbox name whose file is in the archive too; False while another program holds it open."""
    try:
        path.unlink()
    except PermissionError:
        return False
    return True


def _move_folder(source: Path, target: Path) -> None:
    """A folder moves whole: one rename on the same disk; elsewhere copied first, the original removed last."""
    try:
        os.rename(source, target)  # target checked absent above; rename never merges into a folder with content
    except OSError:
        if target.exists():
            raise
        shutil.copytree(source, target, symlinks=True)
        shutil.rmtree(source)


def write_reason(target: Path, reason: str, original_name: str, sha256: str) -> Path:
    """A plain-text note beside a quarantined file that a clerk can read."""
    note = target.with_name(target.name + REASON_SUFFIX)
    note.parent.mkdir(parents=True, exist_ok=True)
    durable_write()
    note.write_text(
        f"文件:{original_name}\n内容哈希(SHA-256):{sha256}\n隔离原因:{reason}\n"
        "处理办法:请检查文件后重新放入收件箱;如有疑问请联系街道计生办。\n",
        encoding="utf-8-sig",
    )
    return note

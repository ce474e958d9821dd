"""A return sent as one file per sheet, in a zip or a folder: 月报.csv, 育龄妇女.xls, …

Each member is read by content like any file; a member holding one sheet gives a sheet
named after the member (its file stem), one holding several keeps their own names.
Members are read from memory: nothing inside a zip is ever written to disk, so names
inside it (with '..' or '/') never decide where anything goes. A member that is no table
at all (the scan of a stamped letter, a photo, a Word note) is an attachment: named to the
street, archived with the return, not read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from pipeline.intake.delimited import stem
from pipeline.intake.htmltables import unique_name
from pipeline.intake.safety import DAMAGED_ZIP
from pipeline.intake.read import (ATTACHMENT_REASONS, MAX_FILE_BYTES, ONLY_ATTACHMENTS, RawSheet, RawWorkbook,
                                  UnreadableFile, read_bytes, read_limited)
from pipeline.text import normalise_label
from pipeline.workspace import IGNORED_PREFIXES, SYSTEM_FILES

MAX_MEMBERS = 40


def is_member_noise(name: str) -> bool:
    """Lock files, hidden files and system droppings are not sheets."""
    base = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return not base or base.startswith(IGNORED_PREFIXES) or base.lower() in SYSTEM_FILES or "__MACOSX/" in name


def member_name(info: zipfile.ZipInfo) -> str:
    """An entry's name as its author saw it: Chinese Windows zips store GBK without saying so."""
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437", errors="replace")
    for codec in ("utf-8", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return info.filename


def read_zip_bundle(archive: zipfile.ZipFile) -> RawWorkbook:
    """Every member of a (checked) zip of per-sheet files."""
    members = [(member_name(i), i) for i in archive.infolist() if not i.is_dir()]
    members = [(name, info) for name, info in members if not is_member_noise(name)]
    return _bundle([(name, lambda info=info: _member_bytes(archive, info)) for name, info in members])


def read_folder(folder: Path) -> RawWorkbook:
    """Every regular file of a folder (and its subfolders) as per-sheet files; links are not followed."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                   and not is_member_noise(str(p.relative_to(folder))))
    return _bundle([(str(p.relative_to(folder)), lambda p=p: read_limited(p)) for p in files])


def _member_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.file_size > MAX_FILE_BYTES:
        raise UnreadableFile(f"压缩包里的“{info.filename[:60]}”太大")
    try:
        return archive.read(info)
    except DAMAGED_ZIP as exc:
        raise UnreadableFile(f"压缩包里的“{info.filename[:60]}”已损坏,无法解压") from exc


def _bundle(members: list[tuple[str, object]]) -> RawWorkbook:
    """Read each member; a member that cannot be read makes the whole return unreadable, with its name,
    unless it is an attachment."""
    if not members:
        raise UnreadableFile("文件夹或压缩包里没有任何表格文件")
    if len(members) > MAX_MEMBERS:
        raise UnreadableFile(f"文件夹或压缩包里有 {len(members)} 个文件,不像是一份月报")
    sheets: list[RawSheet] = []
    taken: set[str] = set()
    owners: dict[str, str] = {}  # a sheet's name, as the form would read it → the member it came from
    attachments: list[str] = []
    for name, load in members:
        try:
            book = read_bytes(load(), name, member=True)
        except UnreadableFile as exc:
            if str(exc) in ATTACHMENT_REASONS:
                attachments.append(name)
                continue
            raise UnreadableFile(f"“{stem(name)[:40]}”:{exc}") from exc
        filled = [s for s in book.sheets if any(any(v not in (None, "") for v in row) for row in s.grid)]
        for sheet in filled:
            wanted = stem(name) if len(filled) == 1 else sheet.name
            owner = owners.setdefault(normalise_label(wanted), name)
            if owner != name:  # whole returns side by side, or two versions of one sheet: never pick one
                raise UnreadableFile(f"“{stem(owner)[:40]}”和“{stem(name)[:40]}”里都有“{wanted[:31]}”,像是几份月报"
                                     "或同一张表的几个版本放在了一起。请每份月报单独报送")
            sheet.name = unique_name(wanted, taken)
            sheets.append(sheet)
    if not sheets and attachments:
        raise UnreadableFile(ONLY_ATTACHMENTS)
    return RawWorkbook("bundle", sheets, attachments)

"""Acceptance 3 and 5: nothing dropped into the inbox is ever lost or taken half-written.

The multiset of content hashes in archive + quarantine + inbox always equals that of the
files dropped (every file of a folder return counted on its own).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

from conftest import PERIOD, RUN_DAY, clean_return, drop
from pipeline.intake import returns
from pipeline.run import run
from pipeline.store.history import History
from pipeline.workspace import (A_LINK, CANNOT_OPEN, CHANGED_WHILE_READ, EMPTY_FOLDER, FOLDER_IN_USE, NOT_SETTLED,
                                UNFINISHED, sort_inbox)
from test_intake_builders import csv_text, csv_zip, return_grids, settle, sheet_folder

NOTE = ".原因.txt"


def hashes_under(*folders: Path) -> Counter:
    """Content hashes of every file below the folders (quarantine reason notes are ours, not dropped)."""
    return Counter(hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders for p in folder.rglob("*")
                   if p.is_file() and not p.name.endswith(NOTE) and p.name != ".gitkeep")


def mixed_drop(street, inbox: Path) -> None:
    """Every kind of thing a shared folder receives, settled (old modification times)."""
    bad = clean_return(street, "U02", first_serial=30)
    bad.monthly.at[0, "期末人口"] += 5
    shutil.copy2(drop(inbox, "甲村.xlsx", clean_return(street, "U01")), inbox / "甲村(再发一次).xlsx")
    drop(inbox, "乙社区.xlsx", bad)
    csv_zip(inbox / "乙社区分表.zip", return_grids(clean_return(street, "U02", first_serial=30)))
    sheet_folder(inbox / "丙村十月", return_grids(clean_return(street, "U03", first_serial=60)))
    settle(_write(inbox / "说明.xlsx", b"PK\x03\x04 truncated download"))
    settle(_write(inbox / "空文件.xls", b""))
    settle(_write(inbox / "~$甲村.xlsx", b"lock"))
    _traversal_zip(inbox / "路径.zip")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _traversal_zip(path: Path) -> None:
    """Member names that try to climb out: read from memory, never written anywhere."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("../../../escaped.csv", csv_text([["单位名称", "外村"], ["报告期", "2026-10"]]))
        z.writestr("/etc/cron.d/x.csv", "a,b\r\n1,2\r\n")
    settle(path)


def copy_in(staging: Path, inbox: Path, *, locks: bool = True) -> None:
    """Drop the staged files (byte for byte, times kept) into the inbox."""
    for item in staging.iterdir():
        if item.name.startswith("~$") and not locks:
            continue
        if item.is_dir():
            shutil.copytree(item, inbox / item.name, copy_function=shutil.copy2)
            settle(inbox / item.name)
        else:
            shutil.copy2(item, inbox / item.name)


def test_every_dropped_file_ends_in_exactly_one_place_twice_over(workspace, street, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    mixed_drop(street, staging)
    copy_in(staging, workspace.inbox)
    dropped = hashes_under(workspace.inbox)
    first = run(workspace, street, now=RUN_DAY)
    held = (workspace.archive, workspace.quarantine, workspace.inbox)
    assert hashes_under(*held) == dropped
    status = {o.file: o.status for o in first.outcomes}
    assert sorted([status.pop("甲村.xlsx"), status.pop("甲村(再发一次).xlsx")]) == ["accepted", "duplicate"]
    assert status == {"乙社区.xlsx": "rejected",
                      "乙社区分表.zip": "accepted", "丙村十月": "accepted", "说明.xlsx": "quarantined",
                      "空文件.xls": "quarantined", "路径.zip": "quarantined"}
    assert [p.name for p in workspace.inbox.iterdir()] == ["~$甲村.xlsx"]
    assert [p for p in (workspace.archive / PERIOD).rglob("*丙村十月") if p.is_dir()]  # the folder is one item
    assert not list(tmp_path.parent.glob("escaped*")) and not list(tmp_path.rglob("escaped*"))

    copy_in(staging, workspace.inbox, locks=False)  # the same files again
    dropped += hashes_under(workspace.inbox) - Counter([hashlib.sha256(b"lock").hexdigest()])
    second = run(workspace, street, now=RUN_DAY)
    assert hashes_under(*held) == dropped
    assert {o.status for o in second.outcomes} == {"duplicate"} and len(second.outcomes) == len(status) + 2
    with History(workspace.history) as h:
        filed = Counter(r.sha256 for r in h.returns() if r.status != "duplicate")
    assert set(filed.values()) == {1}


def test_a_file_still_being_copied_is_left_and_taken_next_run(workspace, street, tmp_path):
    data = (drop(tmp_path, "source.xlsx", clean_return(street, "U01"))).read_bytes()
    target = workspace.inbox / "甲村.xlsx"
    done = threading.Event()

    def copy_slowly() -> None:
        with open(target, "wb") as out:
            for i in range(0, len(data), 512):
                out.write(data[i:i + 512])
                out.flush()
                time.sleep(0.02)
        done.set()

    writer = threading.Thread(target=copy_slowly)
    writer.start()
    time.sleep(0.05)
    first = run(workspace, street, now=RUN_DAY)
    writer.join()
    assert first.outcomes == [] and target.read_bytes() == data
    assert first.waiting_in_inbox == [("甲村.xlsx", NOT_SETTLED)]  # said, not silently skipped
    settle(target)
    second = run(workspace, street, now=RUN_DAY)
    assert [(o.file, o.status) for o in second.outcomes] == [("甲村.xlsx", "accepted")]
    assert second.waiting_in_inbox == []


def test_a_file_that_grows_while_it_is_read_is_left_for_the_next_run(workspace, street, monkeypatch):
    """A copy that stalled long enough to look settled, then went on while we read it."""
    path = drop(workspace, "甲村.xlsx", clean_return(street, "U01"))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    settle(path)
    real = returns.snapshot
    calls = []

    def snapshot_then_grow(p: Path):
        shot = real(p)
        if p == path and not calls:
            calls.append(p)
            path.write_bytes(whole)  # the copier resumes after our first look
        return shot

    monkeypatch.setattr(returns, "snapshot", snapshot_then_grow)
    first = run(workspace, street, now=RUN_DAY)
    assert first.outcomes == [] and path.exists()
    assert first.waiting_in_inbox == [("甲村.xlsx", CHANGED_WHILE_READ)]
    monkeypatch.setattr(returns, "snapshot", real)
    settle(path)
    second = run(workspace, street, now=RUN_DAY)
    assert [(o.file, o.status) for o in second.outcomes] == [("甲村.xlsx", "accepted")]


def test_a_folder_with_a_sheet_still_open_waits(workspace, street):
    folder = sheet_folder(workspace.inbox / "丙村", return_grids(clean_return(street, "U03", first_serial=60)))
    lock = folder / "~$月报.xls"
    lock.write_bytes(b"owner")
    settle(folder)
    waiting = run(workspace, street, now=RUN_DAY)
    assert waiting.outcomes == [] and waiting.waiting_in_inbox == [("丙村", FOLDER_IN_USE)]
    lock.unlink()
    settle(folder)
    assert [o.status for o in run(workspace, street, now=RUN_DAY).outcomes] == ["accepted"]
    assert not folder.exists()


def test_what_waits_in_the_inbox_is_named_with_its_reason(tmp_path):
    """A clerk who asks for a run is told why her file was not taken; lock and hidden files are nobody's return."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settle(_write(inbox / "甲村.xlsx", b"settled"))
    _write(inbox / "乙村.xlsx", b"just dropped")
    settle(_write(inbox / "~$甲村.xlsx", b"Excel's lock"))
    settle(_write(inbox / ".DS_Store", b"hidden"))
    settle(_write(inbox / "Thumbs.db", b"Windows' thumbnails"))  # what Explorer leaves in a shared folder
    settle(_write(inbox / "desktop.ini", b"[.ShellClassInfo]"))
    settle(_write(inbox / "丙村.xlsx.crdownload", b"half"))
    (inbox / "丁村").mkdir()
    settle(_write(inbox / "丁村" / "月报.csv", b"a,b"))
    settle(_write(inbox / "丁村" / "~$月报.csv", b"open"))
    (inbox / "空文件夹").mkdir()
    (inbox / "戊村.xlsx").symlink_to(inbox / "甲村.xlsx")
    sheets = inbox / "己村"
    sheets.mkdir()
    settle(_write(sheets / "月报.csv", b"a,b"))
    settle(sheets)

    found = sort_inbox(inbox, settle_seconds=2.0)

    assert sorted(p.name for p in found.ready) == ["己村", "甲村.xlsx"]
    assert sorted(found.waiting) == sorted([("乙村.xlsx", NOT_SETTLED), ("丙村.xlsx.crdownload", UNFINISHED),
                                            ("丁村", FOLDER_IN_USE), ("空文件夹", EMPTY_FOLDER),
                                            ("戊村.xlsx", A_LINK)])


def test_an_entry_the_inbox_cannot_show_waits_and_one_gone_since_the_listing_is_passed_over(tmp_path, monkeypatch):
    """A network share refusing one file must not stop the night's run for the others."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("甲村.xlsx", "乙村.xlsx", "丙村.xlsx"):
        settle(_write(inbox / name, b"settled"))
    real_stat = Path.stat

    def stat(self, *args, **kwargs):
        if self.name == "乙村.xlsx":
            raise PermissionError(13, "Permission denied", str(self))
        if self.name == "丙村.xlsx":
            raise FileNotFoundError(2, "No such file", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    found = sort_inbox(inbox, settle_seconds=2.0)
    assert [p.name for p in found.ready] == ["甲村.xlsx"]
    assert found.waiting == [("乙村.xlsx", CANNOT_OPEN)]

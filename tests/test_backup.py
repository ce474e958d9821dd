"""The day's copy of the history: made after a run that filed, one a day, the newest few kept."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace

import pytest

from conftest import PERIOD, RUN_DAY, clean_return, drop
from pipeline.run import run
from pipeline.store.backup import backup_name
from pipeline.store.history import History


def test_a_run_that_files_leaves_a_whole_copy_of_the_history(workspace, street):
    drop(workspace, "甲.xlsx", clean_return(street, "U01"))
    result = run(workspace, street, now=RUN_DAY)
    copy = workspace.backups / backup_name(RUN_DAY.date())
    assert result.history_backup == str(copy) and not result.history_backup_failed
    with History(copy) as kept, History(workspace.history) as live:
        assert [(r.unit, r.period, r.status) for r in kept.returns(period=PERIOD)] == \
            [(r.unit, r.period, r.status) for r in live.returns(period=PERIOD)] == [("U01", PERIOD, "accepted")]
        assert kept.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert kept.db.execute("SELECT COUNT(*) FROM person_ids").fetchone()[0] == \
            live.db.execute("SELECT COUNT(*) FROM person_ids").fetchone()[0] > 0
    last = json.loads((workspace.root / "logs" / "runs.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert last["history_backup"] == str(copy)
    assert "已备份历史库" in (workspace.root / "logs" / "运行日志.txt").read_text(encoding="utf-8")

    drop(workspace, "乙.xlsx", clean_return(street, "U02", first_serial=30))  # the same day: no second copy
    assert run(workspace, street, now=RUN_DAY + dt.timedelta(hours=2)).history_backup == ""
    assert [p.name for p in workspace.backups.iterdir()] == [copy.name]


def test_only_the_newest_copies_are_kept_and_a_run_with_nothing_new_copies_nothing(workspace, street):
    workspace.backups.mkdir(parents=True)
    for day in (1, 2, 3):
        (workspace.backups / backup_name(dt.date(2026, 10, day))).write_bytes(b"an older copy")
    street = replace(street, settings=replace(street.settings, history_backups=2))
    assert run(workspace, street, now=RUN_DAY).history_backup == ""  # empty inbox: nothing changed
    assert len(list(workspace.backups.iterdir())) == 3
    drop(workspace, "甲.xlsx", clean_return(street, "U01"))
    run(workspace, street, now=RUN_DAY)
    assert sorted(p.name for p in workspace.backups.iterdir()) == [
        backup_name(dt.date(2026, 10, 3)), backup_name(RUN_DAY.date())]


def test_no_copies_when_the_street_says_so(workspace, street):
    street = replace(street, settings=replace(street.settings, history_backups=0))
    drop(workspace, "甲.xlsx", clean_return(street, "U01"))
    assert run(workspace, street, now=RUN_DAY).history_backup == ""
    assert not workspace.backups.exists()


def test_a_copy_that_cannot_be_made_is_reported_and_the_run_stands(workspace, street):
    workspace.backups.parent.mkdir(parents=True, exist_ok=True)
    workspace.backups.write_text("a file where the folder should be", encoding="utf-8")
    drop(workspace, "甲.xlsx", clean_return(street, "U01"))
    result = run(workspace, street, now=RUN_DAY)
    assert result.exit_code == 0 and [o.status for o in result.outcomes] == ["accepted"]
    assert result.history_backup == "" and "不受影响" in result.history_backup_failed
    assert "历史库备份失败" in (workspace.root / "logs" / "运行日志.txt").read_text(encoding="utf-8")
    assert not list(workspace.root.glob("**/*.partial"))


def test_history_backups_must_be_a_count():
    from pipeline.registry import RegistryError, parse_settings

    assert parse_settings({"history_backups": 3}).history_backups == 3
    for wrong in (-1, "7", 2.5):
        with pytest.raises(RegistryError, match="history_backups"):
            parse_settings({"history_backups": wrong})


def test_restoring_a_backup_puts_back_into_the_inbox_what_came_after_it(workspace, street):
    from pipeline.run import restore

    drop(workspace, "甲.xlsx", clean_return(street, "U01"))
    run(workspace, street, now=RUN_DAY)
    day_one = workspace.backups / backup_name(RUN_DAY.date())
    later = RUN_DAY + dt.timedelta(days=1)
    second = drop(workspace, "乙社区10月.xlsx", clean_return(street, "U02", first_serial=30))
    came_in = second.stat().st_mtime
    scan = workspace.inbox / "扫描件.xlsx"
    scan.write_bytes(b"not a workbook at all")
    os.utime(scan, (came_in, came_in))
    run(workspace, street, now=later)
    with History(workspace.history) as h:
        assert sorted(r.unit or "" for r in h.returns()) == ["", "U01", "U02"]

    restored = restore(workspace, day_one, now=later + dt.timedelta(hours=1))
    assert sorted(p.name for p in restored.returned) == ["乙社区10月.xlsx", "扫描件.xlsx"]
    assert sorted(p.name for p in workspace.inbox.iterdir()) == ["乙社区10月.xlsx", "扫描件.xlsx"]
    assert (workspace.inbox / "乙社区10月.xlsx").stat().st_mtime == came_in  # received as the first time
    assert restored.set_aside and all(p.is_file() for p in restored.set_aside)
    with History(restored.set_aside[0]) as before:  # the store as it was is kept, whole
        assert len(before.returns()) == 3
    with History(workspace.history) as h:
        assert [r.unit for r in h.returns()] == ["U01"]

    again = run(workspace, street, now=later + dt.timedelta(hours=2))
    assert sorted((o.file, o.status) for o in again.outcomes) == [("乙社区10月.xlsx", "accepted"),
                                                                   ("扫描件.xlsx", "quarantined")]
    with History(workspace.history) as h:
        assert sorted((r.unit or "", r.status) for r in h.returns()) == [
            ("", "quarantined"), ("U01", "accepted"), ("U02", "accepted")]


def test_a_backup_that_is_not_whole_is_refused_and_nothing_moves(workspace, street, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipeline.cli import main
    from test_cli import registry_file

    registry_file(workspace.root)
    drop(workspace, "甲.xlsx", clean_return(street, "U01"))
    run(workspace, street, now=RUN_DAY)
    store = workspace.history.read_bytes()
    broken = tmp_path / "history-2026-11-02.sqlite"
    broken.write_bytes((workspace.backups / backup_name(RUN_DAY.date())).read_bytes()[:5000])  # cut short
    monkeypatch.chdir(workspace.root)
    result = CliRunner().invoke(main, ["restore", str(broken)])
    assert result.exit_code == 2 and "历史库没有改动" in result.output, result.output
    assert workspace.history.read_bytes() == store and not list(workspace.inbox.iterdir())
    whole = CliRunner().invoke(main, ["restore", str(workspace.backups / backup_name(RUN_DAY.date()))])
    assert whole.exit_code == 0 and "已用备份" in whole.output and "0 个已放回收件箱" in whole.output, whole.output


def test_restoring_waits_for_a_run_in_progress(workspace, street):
    from filelock import FileLock

    from pipeline.run import RunLocked, restore

    drop(workspace, "甲.xlsx", clean_return(street, "U01"))
    run(workspace, street, now=RUN_DAY)
    with FileLock(workspace.lock), pytest.raises(RunLocked):
        restore(workspace, workspace.backups / backup_name(RUN_DAY.date()), lock_timeout=0.2)

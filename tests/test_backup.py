"""The day's copy of the history: made after a run that filed, one a day, the newest few kept."""

from __future__ import annotations

import datetime as dt
import json
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
        assert kept.db.execute("SELECT COUNT(*) FROM persons").fetchone()[0] == \
            live.db.execute("SELECT COUNT(*) FROM persons").fetchone()[0] > 0
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

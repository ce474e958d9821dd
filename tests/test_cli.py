"""The command line: help for every command, validate's output and exit codes, run and status."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from conftest import RUN_DAY, STREET, WINDOWS_IN_USE, clean_return, drop
from pipeline.cli import main
from pipeline.returnbook import write_return

README = Path(__file__).resolve().parent.parent / "README.md"


def registry_file(tmp_path: Path) -> Path:
    lines = [f'[street]\ncode = "{STREET["street"]["code"]}"\nname = "{STREET["street"]["name"]}"\n'
             f'district = "{STREET["street"]["district"]}"\ndeadline_day = 5\n']
    for u in STREET["units"]:
        lines.append(f'[[units]]\ncode = "{u["code"]}"\nname = "{u["name"]}"\nkind = "{u["kind"]}"\n'
                     f'aliases = {u["aliases"]!r}\ngroups = {list(u["groups"])!r}\n'.replace("'", '"'))
    path = tmp_path / "pipeline.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    tomllib.loads(path.read_text(encoding="utf-8"))
    return path


def working_folder_with_a_return(tmp_path: Path, street, monkeypatch) -> None:
    """tmp_path as the working folder (the current one): a registry, and 甲村's clean return in the inbox."""
    registry_file(tmp_path)
    (tmp_path / "inbox").mkdir()
    drop(tmp_path / "inbox", "甲村.xlsx", clean_return(street))
    monkeypatch.chdir(tmp_path)


def test_every_command_has_help_and_a_readme_mention():
    readme = README.read_text(encoding="utf-8")
    for name, command in main.commands.items():
        assert command.help, name
        assert f"pipeline {name}" in readme, name


def test_validate_prints_findings_in_chinese_and_exits_1(tmp_path, street):
    config = registry_file(tmp_path)
    data = clean_return(street)
    data.monthly.at[0, "期末人口"] += 2
    path = write_return(tmp_path / "甲村.xlsx", data)
    result = CliRunner().invoke(main, ["validate", str(path), "--config", str(config)])
    assert result.exit_code == 1
    assert "错误 月报!G4" in result.output and "期末人口" in result.output and "与计算结果不符" in result.output


def test_validate_clean_file_exits_0(tmp_path, street):
    config = registry_file(tmp_path)
    path = write_return(tmp_path / "甲村.xlsx", clean_return(street))
    result = CliRunner().invoke(main, ["validate", str(path), "--config", str(config)])
    assert result.exit_code == 0, result.output


def test_run_and_status(tmp_path, street, monkeypatch):
    working_folder_with_a_return(tmp_path, street, monkeypatch)
    before = CliRunner().invoke(main, ["status", "--period", "2026-10"])
    assert before.exit_code == 0 and "收件箱中待处理 甲村.xlsx:下次运行时处理" in before.output, before.output
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    assert "已接收" in result.output
    status = CliRunner().invoke(main, ["status", "--period", "2026-10"])
    assert status.exit_code == 0
    assert re.search(r"甲村\s+已接收", status.output) and re.search(r"乙社区\s+未报送", status.output)
    assert "收件箱" not in status.output
    history = CliRunner().invoke(main, ["history", "--unit", "甲村委会"])
    assert history.exit_code == 0 and "2026-10" in history.output and "期末人口 902" in history.output


def test_status_names_the_months_quarantined_files_and_why(tmp_path, street, monkeypatch):
    """A clerk asks whether her file arrived: it did, was quarantined, and she is told why (it read 未报送)."""
    working_folder_with_a_return(tmp_path, street, monkeypatch)
    unsure = clean_return(street, "U02", first_serial=30)
    unsure.cover["报告期"] = 2026.1  # "2026.10" as Excel keeps it, and nothing else says which month
    del unsure.cover["填报日期"]
    drop(tmp_path / "inbox", "乙.xlsx", unsure, title_rows=False)  # (a title would name the month)
    scan = tmp_path / "inbox" / "扫描件.pdf"
    scan.write_bytes(b"%PDF-1.7\n" + bytes(200))
    os.utime(scan, (RUN_DAY.timestamp(), RUN_DAY.timestamp()))
    assert CliRunner().invoke(main, ["run"]).exit_code == 1
    status = CliRunner().invoke(main, ["status", "--period", "2026-10"])
    assert status.exit_code == 0 and re.search(r"乙社区\s+未报送", status.output)
    lines = [line.strip() for line in status.output.splitlines() if line.strip().startswith("已隔离")]
    assert [line.split("):", 1)[0] for line in lines] == ["已隔离 乙.xlsx(收到 2026-11-03 19:00",
                                                          "已隔离 扫描件.pdf(收到 2026-11-03 20:00"]
    assert "可能是1月,也可能是10月" in lines[0] and "不是月报工作簿:这是PDF文件" in lines[1]
    earlier = CliRunner().invoke(main, ["status", "--period", "2026-09"])  # arrived in November: not September's
    assert earlier.exit_code == 0 and "已隔离" not in earlier.output
    report = json.loads((tmp_path / "outbox" / "2026-10" / "report.json").read_text(encoding="utf-8"))
    assert {(r["file"], r["period"], r["status"]) for r in report["returns"]} >= {("乙.xlsx", "", "quarantined")}
    summary = openpyxl.load_workbook(next((tmp_path / "outbox" / "2026-10").glob("*汇总.xlsx")), read_only=True)
    shown = [v for row in summary["报送情况"].iter_rows(values_only=True) for v in row if isinstance(v, str)]
    assert "乙.xlsx" in shown and any("可能是1月,也可能是10月" in v for v in shown)  # in the month's outputs too


def test_a_run_that_takes_nothing_says_what_waits_and_why(tmp_path, street, monkeypatch):
    working_folder_with_a_return(tmp_path, street, monkeypatch)
    for path in (tmp_path / "inbox").iterdir():
        os.utime(path)  # just dropped: not settled yet
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    assert "没有新的月报" not in result.output
    assert "暂时没有可处理的月报" in result.output and "暂未处理 甲村.xlsx:刚放入或仍在复制,下次运行时处理" in result.output
    logged = json.loads((tmp_path / "logs" / "runs.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert logged["waiting_in_inbox"] == [{"file": "甲村.xlsx", "reason": "刚放入或仍在复制,下次运行时处理"}]
    assert "暂未处理 甲村.xlsx" in (tmp_path / "logs" / "运行日志.txt").read_text(encoding="utf-8")


def test_run_with_a_broken_registry_exits_2(tmp_path):
    bad = tmp_path / "pipeline.toml"
    bad.write_text("[street\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["run", "--config", str(bad), "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "格式有误" in result.output


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk", "utf-16"])
def test_a_registry_saved_by_notepad_in_any_of_its_encodings_is_read(tmp_path, street, monkeypatch, encoding):
    """Notepad saves "UTF-8 with BOM", "ANSI" (GBK on a Chinese Windows) or "Unicode" (UTF-16)."""
    working_folder_with_a_return(tmp_path, street, monkeypatch)
    registry = tmp_path / "pipeline.toml"
    registry.write_bytes(registry.read_text(encoding="utf-8").encode(encoding))
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0 and "已接收    甲村" in result.output, result.output


def test_a_registry_in_no_known_encoding_says_how_to_save_it(tmp_path):
    bad = tmp_path / "pipeline.toml"
    bad.write_bytes(b'[street]\nname = "\xff\xfe\x81"\n')
    result = CliRunner().invoke(main, ["run", "--config", str(bad), "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "另存为时编码选 UTF-8" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("value", ["2026-13", "十月"])
def test_bad_period_option_is_refused(value):
    result = CliRunner().invoke(main, ["run", "--period", value])
    assert result.exit_code == 2


def test_run_profile_prints_each_stage_and_the_run_log_keeps_them(tmp_path, street, monkeypatch):
    working_folder_with_a_return(tmp_path, street, monkeypatch)
    monkeypatch.setenv("PIPELINE_XLSX_READER", "calamine")  # recorded: the variable the command sets is undone
    result = CliRunner().invoke(main, ["run", "--profile", "--workers", "1"])
    assert result.exit_code == 0, result.output
    for label in ("读取", "校验", "归档入库", "与上月核对", "合并汇总", "写出报表", "备份历史库", "合计"):
        assert re.search(rf"{label}\s+\d+\.\d\d 秒", result.output), label
    logged = json.loads((tmp_path / "logs" / "runs.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert set(logged["stage_seconds"]) == {"intake", "validate", "file", "reconcile", "merge", "write", "backup"}
    assert all(seconds >= 0 for seconds in logged["stage_seconds"].values())


def test_openpyxl_as_xlsx_reader_gives_the_same_outcome(tmp_path, street, monkeypatch):
    registry_file(tmp_path)
    (tmp_path / "inbox").mkdir()
    data = clean_return(street)
    data.monthly.at[0, "期末人口"] += 2
    drop(tmp_path / "inbox", "甲村.xlsx", data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_XLSX_READER", "calamine")  # recorded: the variable the command sets is undone
    result = CliRunner().invoke(main, ["run", "--xlsx-reader", "openpyxl"])
    assert result.exit_code == 1 and "已退回" in result.output and "错误 1" in result.output, result.output
    report = json.loads(next((tmp_path / "outbox" / "2026-10").glob("report.json")).read_text(encoding="utf-8"))
    assert [f["cell"] for f in report["findings"] if f["severity"] == "error"] == ["G4"]


@pytest.mark.parametrize("store, says", [
    (b"these are not the pages of a database " * 200, "文件可能已损坏"),
    ("newer", "新版程序"),
], ids=["damaged", "newer"])
def test_a_history_that_cannot_be_opened_stops_the_run_with_what_to_do(tmp_path, street, monkeypatch, store, says):
    import sqlite3

    working_folder_with_a_return(tmp_path, street, monkeypatch)
    history = tmp_path / "history.sqlite"
    if store == "newer":
        db = sqlite3.connect(history)
        db.execute("PRAGMA user_version = 99")  # a store a later version of the pipeline wrote
        db.close()
    else:
        history.write_bytes(store)
    before = history.read_bytes()
    for command in (["run"], ["status", "--period", "2026-10"], ["history", "--unit", "甲村"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert says in result.output and "历史库" in result.output  # (an uncaught exception exits 1)
    assert (tmp_path / "inbox" / "甲村.xlsx").is_file()  # nothing was taken in
    assert history.read_bytes() == before  # nor the store touched


def test_a_disk_that_fills_while_filing_exits_2_and_keeps_the_inbox(tmp_path, street, monkeypatch):
    import sqlite3

    from pipeline.store.history import History

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    working_folder_with_a_return(tmp_path, street, monkeypatch)
    monkeypatch.setattr(History, "add_persons", full)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2 and "磁盘可能已满" in result.output, result.output
    assert (tmp_path / "inbox" / "甲村.xlsx").is_file()
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["run"]).exit_code == 0  # room again: the same file goes through



MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 259:1 / / rw,relatime - ext4 /dev/vda1 rw
40 27 0:44 / /mnt/village\\040share rw,relatime - cifs //nas/share rw,vers=3.0
41 40 259:2 / /mnt/village\\040share/local rw,relatime - ext4 /dev/vdb1 rw
42 27 0:45 / /srv/nfs rw,relatime - nfs4 nas:/export rw
"""


@pytest.mark.parametrize("folder, kind", [
    ("/srv/village-returns", None), ("/mnt/village share/街道", "cifs"), ("/mnt/village share", "cifs"),
    ("/mnt/village share/local/街道", None), ("/srv/nfs/街道", "nfs4"), ("/srv/nfsx", None)])
def test_the_filesystem_a_folder_is_on_is_told_by_its_deepest_mount(folder, kind):
    from pathlib import PurePosixPath

    from pipeline.store.disks import network_type_in

    assert network_type_in(MOUNTINFO, PurePosixPath(folder)) == kind


def test_a_history_on_a_network_drive_is_not_opened(tmp_path, street, monkeypatch):
    """SQLite's write-ahead log is not safe over SMB or NFS: the run stops before touching the store."""
    import pipeline.store.history as history

    working_folder_with_a_return(tmp_path, street, monkeypatch)
    monkeypatch.setattr(history, "network_filesystem", lambda folder: "cifs")  # as on a mapped drive
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2 and "网络共享盘" in result.output and "cifs" in result.output, result.output
    assert not (tmp_path / "history.sqlite").exists() and (tmp_path / "inbox" / "甲村.xlsx").is_file()


@pytest.mark.parametrize("self_limited", [True, False])
def test_reading_processes_that_cannot_start_stop_the_run_and_no_return_is_blamed(tmp_path, street, monkeypatch,
                                                                                  self_limited):
    """A reading process that dies at once for every file (a broken installation) would make every return
    look like a hostile file; it stops the run instead: exit 2, the inbox as it was, nothing quarantined."""
    from pipeline.intake import sandbox

    working_folder_with_a_return(tmp_path, street, monkeypatch)
    monkeypatch.setattr(sandbox, "PROCESS_LIMITS", self_limited)
    monkeypatch.setattr(sandbox, "_START", "import sys; sys.exit(3)")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2 and "读取月报的进程无法启动" in result.output, result.output
    assert "Traceback" not in result.output
    assert [p.name for p in (tmp_path / "inbox").iterdir()] == ["甲村.xlsx"]
    assert not any((tmp_path / "quarantine").rglob("*.xlsx")) and not any((tmp_path / "archive").rglob("*.xlsx"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["run"]).exit_code == 0  # installed again: the same file goes through


def test_outputs_someone_has_open_are_named_the_rest_written_and_the_next_run_writes_them(tmp_path, street,
                                                                                          monkeypatch):
    """On Windows a workbook open in Excel cannot be replaced (PermissionError, made here): the run writes
    every other output, names those it could not, exits 2; the next run, once they are closed, writes them."""
    import os

    working_folder_with_a_return(tmp_path, street, monkeypatch)
    assert CliRunner().invoke(main, ["run"]).exit_code == 0
    outbox = tmp_path / "outbox" / "2026-10"
    summary = next(outbox.glob("*_汇总.xlsx"))
    errors = next(outbox.glob("*_错误报告.xlsx"))
    before = summary.read_bytes(), errors.read_bytes()
    faulty = clean_return(street, "U02", first_serial=30)
    faulty.monthly.at[0, "期末人口"] += 2
    drop(tmp_path / "inbox", "乙社区.xlsx", faulty)
    real_replace = os.replace

    def held_open(source, target):
        if Path(target).name == summary.name or Path(target).name.startswith("U02_"):
            raise PermissionError(13, WINDOWS_IN_USE)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", held_open)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert summary.name in result.output and "U02_乙社区" in result.output and "正被其他程序" in result.output
    assert summary.read_bytes() == before[0] and errors.read_bytes() != before[1]  # the rest was written
    assert not any(outbox.rglob("U02_*.xlsx")) and not any(outbox.rglob(".~pipeline-*"))
    logged = json.loads((tmp_path / "logs" / "runs.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert logged["exit_code"] == 2 and len(logged["outputs_in_use"]) == 2
    assert "正被其他程序" in (tmp_path / "logs" / "运行日志.txt").read_text(encoding="utf-8")

    monkeypatch.setattr(os, "replace", real_replace)  # closed
    again = CliRunner().invoke(main, ["run"])
    assert again.exit_code == 0 and "已更新" in again.output, again.output
    assert summary.read_bytes() != before[0] and len(list(outbox.rglob("U02_*.xlsx"))) == 1


def test_where_reading_processes_cannot_limit_themselves_the_run_watches_them(tmp_path, street, monkeypatch):
    """On Windows (no rlimits, alarms or wait4) the run holds the reading processes itself; without
    psutil, which it watches them with, it reads nothing: exit 2, in words, the inbox as it was."""
    import psutil

    from pipeline.intake import sandbox

    working_folder_with_a_return(tmp_path, street, monkeypatch)
    monkeypatch.setattr(sandbox, "PROCESS_LIMITS", False)
    monkeypatch.setattr(sandbox, "psutil", None)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2 and "psutil" in result.output and "收件箱保持原样" in result.output, result.output
    assert [p.name for p in (tmp_path / "inbox").iterdir()] == ["甲村.xlsx"]
    assert not any((tmp_path / "archive").rglob("*.xlsx")) and not any((tmp_path / "quarantine").rglob("*.xlsx"))
    checked = CliRunner().invoke(main, ["validate", str(tmp_path / "inbox" / "甲村.xlsx")])
    assert checked.exit_code == 2 and "psutil" in checked.output and "Traceback" not in checked.output, \
        checked.output
    monkeypatch.setattr(sandbox, "psutil", psutil)
    result = CliRunner().invoke(main, ["run"])  # watched: the same file goes through
    assert result.exit_code == 0 and "已接收" in result.output, result.output
    assert not any((tmp_path / "inbox").iterdir()) and len(list((tmp_path / "archive").rglob("*甲村*.xlsx"))) == 1


def test_a_fault_of_the_program_exits_2_not_1_and_the_next_run_writes_the_outputs(tmp_path, street, monkeypatch):
    import pipeline.outputs

    def broken(*args, **kwargs):
        raise ValueError("a bug in the summary")

    working_folder_with_a_return(tmp_path, street, monkeypatch)
    monkeypatch.setattr(pipeline.outputs, "write_summary", broken)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2, result.output  # 1 would tell the scheduler "some returns rejected"
    assert "程序内部错误" in result.output and "a bug in the summary" in result.output
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["run"]).exit_code == 0
    assert list((tmp_path / "outbox" / "2026-10").glob("*_汇总.xlsx"))


def test_a_run_without_a_registry_says_it_uses_the_demo_street(tmp_path, monkeypatch):
    """A scheduled job started in the wrong folder: the contract says the demo street is used, so the
    run goes on, but it says so on stderr and in both run logs, where the morning's reader looks."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    assert f"工作目录 {tmp_path} 里没有登记文件 pipeline.toml,使用的是内置的示范街道" in result.stderr
    assert "没有找到登记文件 pipeline.toml" in (tmp_path / "logs" / "运行日志.txt").read_text(encoding="utf-8")
    logged = json.loads((tmp_path / "logs" / "runs.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert logged["registry"].endswith("demo_street.toml")
    registry_file(tmp_path)
    quiet = CliRunner().invoke(main, ["run"])
    assert quiet.exit_code == 0 and "没有登记文件" not in quiet.stderr

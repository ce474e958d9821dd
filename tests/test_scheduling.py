"""The scheduling examples in deploy/ and the README are correct as written (acceptance 5).

systemd units: `systemd-analyze verify` where it exists, and always the keys that matter;
the cron line: five valid time fields and a command that runs `pipeline run`;
the schtasks line: the switches Task Scheduler needs, a valid /ST time, a /TR it accepts.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
README = ROOT / "README.md"
UNIT_FILES = ["village-returns.service", "village-returns.timer", "village-returns-watch.service"]
PIPELINE_PLACEHOLDER = "/opt/village-returns/venv/bin/pipeline"
CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]  # minute, hour, day of month, month, day of week
CRON_NAMES = [{}, {}, {}, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
              {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}]
TR_LIMIT = 261  # schtasks refuses a longer /TR


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / name, encoding="utf-8")
    return parser


# ---- systemd -----------------------------------------------------------------------------------

def test_nightly_service_is_a_oneshot_that_accepts_exit_1():
    service = unit("village-returns.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["WorkingDirectory"].startswith("/")
    assert service["ExecStart"].split() == [PIPELINE_PLACEHOLDER, "run"]
    assert service["SuccessExitStatus"].split() == ["1"]  # some rejected: a normal night; 2 stays a failure


def test_timer_runs_the_service_at_0130_and_catches_up():
    timer = unit("village-returns.timer")
    assert timer["Timer"]["OnCalendar"] == "*-*-* 01:30:00"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "village-returns.service" and (DEPLOY / timer["Timer"]["Unit"]).exists()
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_watch_service_polls_and_restarts():
    watch = unit("village-returns-watch.service")
    assert watch["Service"]["Type"] == "simple"
    assert watch["Service"]["ExecStart"].split()[:3] == [PIPELINE_PLACEHOLDER, "watch", "--poll"]
    assert watch["Service"]["Restart"] == "on-failure"
    assert watch["Install"]["WantedBy"] == "multi-user.target"


def test_every_unit_has_only_known_sections():
    for name in UNIT_FILES:
        sections = set(unit(name).sections())
        assert sections <= {"Unit", "Service", "Timer", "Install"} and "Unit" in sections, name
        assert unit(name)["Unit"]["Description"], name


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed; "
                    "the configparser tests above check the units")
def test_units_pass_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart's program exists: stand the placeholder in with a real one
    for name in UNIT_FILES:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace(PIPELINE_PLACEHOLDER, sys.executable), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNIT_FILES)],
                          capture_output=True, text=True, timeout=60)
    # it warns (exit 0) about unknown keys and bad values: any message is a failure
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


# ---- cron --------------------------------------------------------------------------------------

def cron_jobs(text: str) -> list[str]:
    """Job lines: not comments, blank lines or VAR=value settings."""
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#") and not re.match(r"^\w+\s*=", line)]


def cron_field_ok(field: str, low: int, high: int, names: dict[str, int]) -> bool:
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2:
            return False
        values = [names.get(b.lower(), int(b) if b.isdigit() else None) for b in bounds]
        if any(v is None or not low <= v <= high for v in values) or values != sorted(values):
            return False
    return True


def check_cron_job(line: str) -> None:
    fields = line.split(None, 5)
    assert len(fields) == 6, f"five time fields and a command: {line}"
    for field, (low, high), names in zip(fields[:5], CRON_RANGES, CRON_NAMES):
        assert cron_field_ok(field, low, high, names), f"bad time field {field!r} in {line}"
    command = fields[5]
    assert re.search(r"(^|/|\s)pipeline run\b", command), command
    assert "%" not in command.replace(r"\%", ""), "cron turns an unescaped % into a new line"
    program = re.search(r"(\S*pipeline)\s+run", command).group(1)
    assert program.startswith("/"), "cron's PATH is minimal: the command needs its absolute path"


def test_cron_line_is_well_formed_and_runs_at_0130():
    jobs = cron_jobs((DEPLOY / "crontab.txt").read_text(encoding="utf-8"))
    assert len(jobs) == 1
    check_cron_job(jobs[0])
    minute, hour, *_ = jobs[0].split()
    assert (minute, hour) == ("30", "1")
    assert ">> " in jobs[0] and jobs[0].endswith("2>&1")  # appended, errors included
    assert re.search(r"^30 1 \* \* \* cd /\S+ && ", jobs[0])  # in the working folder, or not at all


@pytest.mark.parametrize("line", ["61 1 * * * /x/pipeline run", "30 1 * * /x/pipeline run",
                                  "30 1 * * * pipeline run", "30 1 * * * /x/pipeline status",
                                  "30 1 32 * * /x/pipeline run", "30 5-1 * * * /x/pipeline run"])
def test_the_cron_check_refuses_a_bad_line(line):
    with pytest.raises(AssertionError):
        check_cron_job(line)


# ---- Windows Task Scheduler --------------------------------------------------------------------

def schtasks_switches(line: str) -> dict[str, str]:
    """`schtasks /Create /SC DAILY /TR "…"` as {'/CREATE': '', '/SC': 'DAILY', '/TR': '…'}."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', line)
    assert tokens[0].lower() == "schtasks", line
    switches: dict[str, str] = {}
    key = None
    for token in tokens[1:]:
        if token.startswith("/") and re.fullmatch(r"/[A-Za-z]+", token):
            key = token.upper()
            switches[key] = ""
        else:
            assert key is not None, f"a value without a switch: {token}"
            switches[key] = token[1:-1] if token.startswith('"') else token
    return switches


def check_schtasks(line: str) -> dict[str, str]:
    s = schtasks_switches(line)
    assert "/CREATE" in s and s["/SC"].upper() == "DAILY", line
    assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", s["/ST"]), f"/ST wants HH:mm (24 h): {s['/ST']}"
    assert s["/TN"] and s["/TR"], line
    assert len(s["/TR"]) <= TR_LIMIT, f"/TR is {len(s['/TR'])} characters; schtasks takes {TR_LIMIT}"
    assert re.search(r"pipeline(\.exe)?\s+run\b", s["/TR"]), s["/TR"]
    return s


def test_schtasks_line_creates_a_daily_task_at_0130():
    text = (DEPLOY / "schtasks.cmd").read_text(encoding="ascii")  # cmd.exe reads a batch file in the OEM code page
    lines = [line for line in text.splitlines() if line.lower().startswith("schtasks ")]
    assert len(lines) == 1
    s = check_schtasks(lines[0])
    assert s["/ST"] == "01:30"
    assert s["/TR"].startswith("cmd /c cd /d ") and ">> " in s["/TR"] and s["/TR"].endswith("2>&1")
    assert "/RU" in s  # without a user and password the task runs only while someone is logged on
    assert (DEPLOY / "schtasks.cmd").read_bytes().count(b"\r\n") == text.count("\n")  # CRLF, as cmd.exe expects


@pytest.mark.parametrize("line", ['schtasks /Create /SC DAILY /ST 1:30 /TN t /TR "x\\pipeline.exe run"',
                                  'schtasks /Create /SC DAILY /ST 24:00 /TN t /TR "x\\pipeline.exe run"',
                                  'schtasks /Create /SC WEEKLY /ST 01:30 /TN t /TR "x\\pipeline.exe run"',
                                  'schtasks /Create /SC DAILY /ST 01:30 /TR "x\\pipeline.exe run"',
                                  f'schtasks /Create /SC DAILY /ST 01:30 /TN t /TR "{"x" * 260}\\pipeline.exe run"'])
def test_the_schtasks_check_refuses_a_bad_line(line):
    with pytest.raises((AssertionError, KeyError)):
        check_schtasks(line)


# ---- the README shows the same, correct examples -----------------------------------------------

def readme_code_lines() -> list[str]:
    blocks = re.findall(r"```[^\n]*\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()]


def test_readme_scheduling_examples_are_the_checked_ones():
    lines = readme_code_lines()
    cron = [line for line in lines if re.match(r"^([\d*/,-]+\s+){5}\S", line)]
    schtasks = [line for line in lines if line.lower().startswith("schtasks /create")]
    assert cron and schtasks, "README: section 'Running it every night' with its cron and schtasks examples"
    for line in cron:
        check_cron_job(line)
    for line in schtasks:
        check_schtasks(line)
    assert cron_jobs((DEPLOY / "crontab.txt").read_text(encoding="utf-8"))[0] in cron
    readme = README.read_text(encoding="utf-8")
    for name in [*UNIT_FILES, "crontab.txt", "schtasks.cmd"]:
        assert f"deploy/{name}" in readme, name

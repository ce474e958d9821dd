"""The demo street plays one month the way it happens.

Six units send their returns by the 3rd; 满春村's has a few typical mistakes and is
rejected by the first run, which sends it back an annotated error workbook. The clerk
corrects it and sends it again on the 4th; the second run accepts it, and the street
totals are those of seed plan 3.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.demo_data import demo_month, with_clerk_mistakes
from pipeline.periods import label_zh, shift
from pipeline.registry import REGISTRY_FILE, demo_registry_path, load_registry
from pipeline.returnbook import ReturnData, write_return
from pipeline.run import RunResult, run
from pipeline.workspace import Workspace

MISTAKEN_UNIT = "满春村"


@dataclass
class DemoResult:
    folder: Path
    period: str
    first: RunResult
    second: RunResult


def demo_period(today: dt.date) -> str:
    """The latest month whose returns (due on the 5th) could all be in by today."""
    this_month = f"{today.year:04d}-{today.month:02d}"
    return shift(this_month, -1 if today.day >= 5 else -2)


def play_demo(folder: Path, today: dt.date | None = None) -> DemoResult:
    """Write the demo street's returns into folder/inbox and run them twice, as the month goes."""
    today = today or dt.date.today()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / REGISTRY_FILE
    if not config.exists():
        shutil.copyfile(demo_registry_path(), config)
    registry = load_registry(config)
    workspace = Workspace.at(folder, registry.settings)
    workspace.create()
    period = demo_period(today)
    returns = demo_month(registry, period)
    mistaken = next(u for u in registry.units if u.name == MISTAKEN_UNIT)
    first_day, second_day = _day_of_next_month(period, 3), _day_of_next_month(period, 4)
    for unit in registry.units:
        data = with_clerk_mistakes(returns[unit.code]) if unit == mistaken else returns[unit.code]
        _drop(workspace.inbox / f"{unit.name}{_month_name(period)}报表.xlsx", data, first_day)
    first = run(workspace, registry, now=dt.datetime.combine(first_day, dt.time(20)))
    corrected = _refilled(returns[mistaken.code], second_day)
    _drop(workspace.inbox / f"{mistaken.name}{_month_name(period)}报表(改).xlsx", corrected, second_day)
    second = run(workspace, registry, now=dt.datetime.combine(second_day, dt.time(20)))
    return DemoResult(folder, period, first, second)


def _drop(path: Path, data: ReturnData, day: dt.date) -> None:
    """A clerk's file lands in the inbox on `day` at 9 o'clock."""
    write_return(path, data)
    stamp = dt.datetime.combine(day, dt.time(9)).timestamp()
    os.utime(path, (stamp, stamp))


def _refilled(data: ReturnData, day: dt.date) -> ReturnData:
    return dataclasses.replace(data, cover={**data.cover, "填报日期": day})


def _day_of_next_month(period: str, day: int) -> dt.date:
    nxt = shift(period, 1)
    return dt.date(int(nxt[:4]), int(nxt[5:7]), day)


def _month_name(period: str) -> str:
    return label_zh(period).split("年")[1]


"""The run log: what each run did, for the person who checks in the morning.

Two files beside the history (not in the outbox, whose files change only when their
inputs do): `logs/运行日志.txt`, lines a person reads, and `logs/runs.jsonl`, one JSON
object per run for monitoring tools.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from pipeline.registry import demo_registry_path
from pipeline.status import NAME_KEPT_ZH, NOT_STANDING_ZH, STATUS_ZH
from pipeline.workspace import Workspace

if TYPE_CHECKING:
    from pipeline.run import RunResult

EXIT_ZH = {0: "全部接收", 1: "有退回或隔离", 2: "无法运行"}


def summarise(result: "RunResult") -> dict:
    """The run as one flat record."""
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return {"started_at": result.started_at.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now().isoformat(timespec="seconds"), "run_id": result.run_id,
            "files": len(result.outcomes), **counts, "periods_written": result.periods_written,
            "left_in_inbox": result.left_in_inbox, "exit_code": result.exit_code,
            "waiting_in_inbox": [{"file": name, "reason": why} for name, why in result.waiting_in_inbox],
            "registry": result.registry,
            "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
            "history_backup": result.history_backup, "history_backup_failed": result.history_backup_failed,
            "outputs_in_use": result.outputs_in_use, "held_in_inbox": result.held_in_inbox,
            "outcomes": [{"file": o.file, "status": o.status, "unit": o.unit, "period": o.period,
                          "errors": o.errors, "warnings": o.warnings, "reason": o.reason, "stands": o.stands}
                         for o in result.outcomes]}


def log_lines(result: "RunResult") -> list[str]:
    """The run in words, one line per file."""
    when = result.started_at.strftime("%Y-%m-%d %H:%M")
    lines = [f"[{when}] 运行结束:{EXIT_ZH[result.exit_code]}(退出码 {result.exit_code}),"
             f"处理文件 {len(result.outcomes)} 个。"]
    if result.registry == str(demo_registry_path()):
        lines.append("    注意:没有找到登记文件 pipeline.toml,用的是内置的示范街道")
    for o in result.outcomes:
        detail = f"错误 {o.errors},警告 {o.warnings}" if o.status in ("accepted", "rejected") else o.reason
        lines.append(f"    {STATUS_ZH.get(o.status, o.status)} {o.unit_name or '单位不明'} {o.period or ''} "
                     f"{o.file} {detail}{'' if o.stands else NOT_STANDING_ZH}{NAME_KEPT_ZH if o.name_kept else ''}"
                     .rstrip())
    lines += [f"    未处理(非指定报告期):{name}" for name in result.left_in_inbox]
    lines += [f"    {waiting_line(name, why)}" for name, why in result.waiting_in_inbox]
    lines += [f"    已更新发件箱 {period}" for period in result.periods_written]
    if result.history_backup:
        lines.append(f"    已备份历史库 {result.history_backup}")
    if result.history_backup_failed:
        lines.append(f"    历史库备份失败:{result.history_backup_failed}")
    if result.outputs_in_use:
        lines.append(f"    {result.outputs_in_use_message}")
    return lines


def waiting_line(name: str, why: str) -> str:
    """A file the run left in the inbox for later, and why."""
    return f"暂未处理 {name}:{why}"


def write_run_log(ws: Workspace, result: "RunResult") -> None:
    folder = ws.root / "logs"
    folder.mkdir(exist_ok=True)
    with open(folder / "runs.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(summarise(result), ensure_ascii=False) + "\n")
    with open(folder / "运行日志.txt", "a", encoding="utf-8") as fh:
        fh.write("\n".join(log_lines(result)) + "\n")

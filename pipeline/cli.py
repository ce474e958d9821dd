"""The command line (SPEC §10): each command parses its options and calls one library function."""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from pathlib import Path

import click

from pipeline.intake.read import READER_ENV, XLSX_READERS
from pipeline.intake.safety import UnsafeEnvironment
from pipeline.periods import parse_period
from pipeline.registry import (REGISTRY_FILE, RegistryError, Registry, demo_registry_path, find_registry,
                               load_registry)
from pipeline.executors import ExecutorUnavailable, per_file_executor
from pipeline.run import (DEFAULT_WORKERS, EXIT_CANNOT_RUN, LOCK_TIMEOUT_SECONDS, RunLocked, RunResult, run,
                          validate_files)
from pipeline.runlog import waiting_line
from pipeline.workspace import Workspace, sort_inbox
from pipeline.status import NAME_KEPT_ZH, NOT_STANDING_ZH, STATUS_ZH
from pipeline.store.history import HistoryUnavailable
from pipeline.write.safe import OutputInUse



class CannotRun(click.ClickException):
    exit_code = EXIT_CANNOT_RUN


def _period_option(value: str | None) -> str | None:
    if value is None:
        return None
    period = parse_period(value)
    if period is None:
        raise click.BadParameter(f"“{value}”不是年月,应写成 2026-11")
    return period


def _registry(workdir: Path, config: Path | None) -> Registry:
    path = find_registry(workdir, config)
    if path == demo_registry_path():  # a scheduled job started in the wrong folder must not pass unnoticed
        click.echo(f"注意:工作目录 {workdir.resolve()} 里没有登记文件 {REGISTRY_FILE},使用的是内置的示范街道"
                   f"(丽景街道)。正式使用请把 {REGISTRY_FILE} 放在工作目录,或用 --config 指定。", err=True)
    try:
        return load_registry(path)
    except RegistryError as exc:
        raise CannotRun(str(exc)) from exc


class _Commands(click.Group):
    """Whatever stops a command ends in a message and exit 2 ("could not run"), never exit 1.

    An exception left to click would exit 1, which a scheduler reads as a normal night
    with rejections. A store that cannot be opened or written says what to do; anything
    else is a fault of the program: its details go to stderr (the nightly log) for whoever
    maintains it.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except HistoryUnavailable as exc:
            raise CannotRun(f"{exc}。") from exc
        except UnsafeEnvironment as exc:  # the machine lacks a protection (every command that reads a file)
            raise CannotRun(str(exc)) from exc
        except OutputInUse as exc:  # a file it writes is open in Excel (Windows): said by name
            raise CannotRun(str(exc)) from exc
        except sqlite3.Error as exc:  # the disk filled or failed while the store was written
            raise CannotRun(f"历史库读写失败({exc}):磁盘可能已满或出了故障。已经完成的部分都已保存,"
                            "收件箱中未处理的文件保持原样;腾出空间或修复后重新运行即可。") from exc
        except Exception as exc:  # noqa: BLE001 - exit 2 with the details, not exit 1
            traceback.print_exc()
            raise CannotRun(f"程序内部错误({type(exc).__name__}: {exc})。收件箱中未处理的文件保持原样,"
                            "已经完成的部分都已保存;请把上面的错误详情发给维护人员。") from exc


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="village-returns-pipeline")
def main() -> None:
    """村(居)月报汇总流水线:收件箱里的月报 → 校验 → 与上月核对 → 街道汇总 → 发件箱。"""
    for stream in (sys.stdout, sys.stderr):
        # A file name with a character the output cannot encode (Windows writes nightly.log in GBK,
        # which has no emoji) prints as "?" instead of failing the run after its work is done.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


@main.command("run")
@click.option("--inbox", type=click.Path(file_okay=False, path_type=Path), help="收件箱文件夹(默认 工作目录/inbox)")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path), help="发件箱文件夹(默认 工作目录/outbox)")
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="登记文件 pipeline.toml")
@click.option("--period", help="只处理这个报告期(YYYY-MM)")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="工作目录:归档、隔离区和历史库所在")
@click.option("--lock-timeout", type=float, default=LOCK_TIMEOUT_SECONDS, show_default=True,
              help="另一个任务正在运行时最多等待的秒数")
@click.option("--lang", type=click.Choice(["zh", "en"]), help="报告中说明的语言(默认取 pipeline.toml,即中文)")
@click.option("--workers", type=click.IntRange(min=1), default=DEFAULT_WORKERS, show_default=True,
              help="同时读取文件的进程数(默认每个CPU核一个)")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="逐个文件的处理在哪里做:本机,或已有的 Dask 集群")
@click.option("--scheduler", help="Dask 调度器地址,如 tcp://10.0.0.5:8786(--executor dask 时)")
@click.option("--xlsx-reader", type=click.Choice(XLSX_READERS), envvar=READER_ENV, default="calamine",
              show_default=True, help="读取 .xlsx 的解析器(openpyxl 慢 10 倍以上,仅供比对或排查)")
@click.option("--profile", is_flag=True, help="最后列出各阶段用时(读取、校验、归档、核对、汇总、写出)")
def run_command(inbox: Path | None, outbox: Path | None, config: Path | None, period: str | None,
                workdir: Path, lock_timeout: float, lang: str | None, workers: int, executor: str,
                scheduler: str | None, xlsx_reader: str, profile: bool) -> None:
    """处理收件箱中所有新到的月报,重写受影响月份的汇总表和错误报告。

    退出码:0 全部接收;1 有月报被退回或隔离;2 无法运行。
    """
    os.environ[READER_ENV] = xlsx_reader  # the reading processes inherit it
    registry = _registry(workdir, config).in_language(lang)
    workspace = Workspace.at(workdir, registry.settings, inbox, outbox)
    try:
        with per_file_executor(executor, scheduler) as pool:
            result = run(workspace, registry, period=_period_option(period), lock_timeout=lock_timeout,
                         progress=TerminalProgress(), workers=workers, executor=pool)
    except (RunLocked, UnsafeEnvironment, ExecutorUnavailable) as exc:
        raise CannotRun(str(exc)) from exc
    except HistoryUnavailable as exc:
        raise CannotRun(f"{exc}。收件箱中的文件保持原样,修复后重新运行即可。") from exc
    except OSError as exc:
        raise CannotRun(f"运行失败(磁盘或权限问题):{exc}。收件箱中未处理的文件保持原样,修复后重新运行即可。") from exc
    print_result(result, workspace)
    if profile:
        print_stage_times(result)
    sys.exit(result.exit_code)


class TerminalProgress:
    """A progress bar per stage on a terminal; nothing under a scheduler (stdout not a tty)."""

    LABELS = {"intake": "读取月报", "validate": "校验", "reconcile": "与上月核对", "write": "写出汇总"}

    def __init__(self) -> None:
        self.enabled = sys.stdout.isatty()
        self.stage, self.bar = "", None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = click.progressbar(length=max(total, 1), label=self.LABELS.get(stage, stage))
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def print_result(result: RunResult, workspace: Workspace) -> None:
    if not result.outcomes:
        click.echo("收件箱中暂时没有可处理的月报:" if result.waiting_in_inbox else "收件箱中没有新的月报。")
    for o in result.outcomes:
        where = f"{o.unit_name or '?'} {o.period or '?'}"
        line = f"{STATUS_ZH.get(o.status, o.status):6} {where:16} {o.file}"
        if o.errors or o.warnings:
            line += f"  (错误 {o.errors},警告 {o.warnings})"
        if o.reason:
            line += f"  原因:{o.reason}"
        if not o.stands:
            line += f"  {NOT_STANDING_ZH}"
        if o.name_kept:
            line += f"  {NAME_KEPT_ZH}"
        click.echo(line)
    for name in result.left_in_inbox:
        click.echo(f"未处理(不是本次指定的报告期):{name}")
    for name, why in result.waiting_in_inbox:
        click.echo(waiting_line(name, why))
    for period in result.periods_written:
        click.echo(f"已更新 {workspace.outbox / period}")
    if result.history_backup_failed:
        click.echo(f"历史库备份失败:{result.history_backup_failed}")
    if result.outputs_in_use:
        click.echo(result.outputs_in_use_message)


STAGE_ZH = {"intake": "读取", "validate": "校验", "file": "归档入库", "reconcile": "与上月核对", "merge": "合并汇总",
            "write": "写出报表", "backup": "备份历史库"}


def print_stage_times(result: RunResult) -> None:
    """Seconds per stage, for whoever keeps the nightly job within its window."""
    files = max(len(result.outcomes), 1)
    click.echo("各阶段用时:")
    for stage, seconds in result.stage_seconds.items():
        click.echo(f"  {STAGE_ZH.get(stage, stage):8} {seconds:8.2f} 秒  (每份 {seconds / files * 1000:.1f} 毫秒)")
    click.echo(f"  {'合计':8} {sum(result.stage_seconds.values()):8.2f} 秒")


@main.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="登记文件 pipeline.toml")
@click.option("--period", help="应为这个报告期(YYYY-MM)")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True, help="说明的语言")
def validate_command(files: tuple[Path, ...], config: Path | None, period: str | None, lang: str) -> None:
    """只检查文件,不归档、不汇总;列出问题。有错误时退出码为 1。"""
    registry = _registry(Path("."), config)
    any_error = False
    for ret, findings in validate_files(list(files), registry, _period_option(period)):
        errors = sum(f.blocks for f in findings)
        any_error |= errors > 0 or bool(ret.quarantine_reason)
        unit = ret.unit.name if ret.unit else "单位不明"
        click.echo(f"{ret.path}  [{unit} {ret.period or '报告期不明'}]  错误 {errors},其他 {len(findings) - errors}")
        for f in findings:
            place = "!".join(x for x in (f.sheet, f.cell) if x) or "文件"
            message = f.message_en if lang == "en" else f.message
            click.echo(f"  {f.severity.zh} {place:14} {message}  [{f.code}]")
    sys.exit(1 if any_error else 0)


@main.command("status")
@click.option("--period", help="报告期(YYYY-MM),默认最近一期")
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="登记文件 pipeline.toml")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
def status_command(period: str | None, config: Path | None, workdir: Path) -> None:
    """各村(居)本期报送情况:收到时间、是否按时、接收或退回。"""
    from pipeline.status import period_status

    registry = _registry(workdir, config)
    workspace = Workspace.at(workdir, registry.settings)
    report = period_status(workspace, registry, _period_option(period))
    if report is None:
        click.echo("还没有任何报送记录。")
    else:
        click.echo(f"{registry.street.name} {report.period} 报送情况(截止日期 {report.due})")
        for line in report.lines:
            click.echo(f"  {line.unit_name:8} {STATUS_ZH.get(line.status, line.status):6} {line.timeliness:10} "
                       f"{line.received or '':19} 错误 {line.errors} 警告 {line.warnings}")
        for r in report.quarantined:  # "did my file arrive?": it did, and here is why it was not taken
            click.echo(f"  已隔离 {r.file_name}(收到 {r.received_at:%Y-%m-%d %H:%M}):{r.reason}")
    if workspace.inbox.is_dir():  # what is not in the table yet: a clerk asking "did my file arrive?"
        inbox = sort_inbox(workspace.inbox, registry.settings.settle_seconds)
        for path in inbox.ready:
            click.echo(f"收件箱中待处理 {path.name}:下次运行时处理")
        for name, why in inbox.waiting:
            click.echo(waiting_line(name, why))


@main.command("restore")
@click.argument("backup", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="登记文件 pipeline.toml")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="工作目录:归档、隔离区和历史库所在")
@click.option("--lock-timeout", type=float, default=LOCK_TIMEOUT_SECONDS, show_default=True,
              help="另一个任务正在运行时最多等多少秒")
def restore_command(backup: Path, config: Path | None, workdir: Path, lock_timeout: float) -> None:
    """用 backups/ 里的一份备份替换历史库(原来的改名保留);备份之后收到的文件放回收件箱,下次运行时重新处理。"""
    from pipeline.run import restore

    registry = _registry(workdir, config)
    workspace = Workspace.at(workdir, registry.settings)
    try:
        restored = restore(workspace, backup, lock_timeout=lock_timeout)
    except RunLocked as exc:
        raise CannotRun(str(exc)) from exc
    click.echo(f"已用备份 {backup} 恢复历史库 {workspace.history}。")
    for path in restored.set_aside:
        click.echo(f"原来的历史库文件已改名保留:{path}")
    click.echo(f"备份之后收到的文件 {len(restored.returned)} 个已放回收件箱,下次运行 pipeline run 时重新处理:")
    for path in restored.returned:
        click.echo(f"  {path.name}")


@main.command("history")
@click.option("--unit", "unit_text", required=True, help="单位名称、简称或代码,如 满春村")
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="登记文件 pipeline.toml")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
def history_command(unit_text: str, config: Path | None, workdir: Path) -> None:
    """某村(居)历次报送:各月的文件、结果和主要合计数(如"8月报的是什么?")。"""
    from pipeline.status import unit_history

    registry = _registry(workdir, config)
    found = unit_history(Workspace.at(workdir, registry.settings), registry, unit_text)
    if found is None:
        raise click.ClickException(f"没有找到单位“{unit_text}”的报送记录。")
    name, lines = found
    click.echo(f"{name} 历次报送")
    for line in lines:
        totals = ",".join(f"{k} {v:,.0f}" for k, v in line.totals.items())
        click.echo(f"  {line.period}  {STATUS_ZH.get(line.status, line.status):8} {line.received}  {line.file}"
                   f"  错误 {line.errors} 警告 {line.warnings}  {totals}")


@main.command("template")
@click.option("--unit", "unit_code", required=True, help="单位代码(或名称)")
@click.option("--period", required=True, help="报告期(YYYY-MM)")
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="登记文件 pipeline.toml")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="写到这个 .xlsx 文件")
@click.option("--from-history", is_flag=True, help="按上月已接收的月报预填(期初人口、花名册)")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
def template_command(unit_code: str, period: str, config: Path | None, output: Path, from_history: bool,
                     workdir: Path) -> None:
    """某村(居)某月的月报模板:封面已填、列好小组、带下拉列表和输入检查;可按上月已接收的月报预填。"""
    from pipeline.template import TemplateError, make_template

    registry = _registry(workdir, config)
    history = Workspace.at(workdir, registry.settings).history if from_history else None
    try:
        made = make_template(output, registry, unit_code, _period_option(period), history=history)
    except TemplateError as exc:
        raise CannotRun(str(exc)) from exc
    carried = f"(已按 {made.carried_from} 已接收的月报预填)" if made.carried_from else ""
    click.echo(f"已写出 {made.unit.name} {made.period} 月报模板{carried}:{made.path}")


@main.command("watch")
@click.option("--inbox", type=click.Path(file_okay=False, path_type=Path), help="收件箱文件夹(默认 工作目录/inbox)")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path), help="发件箱文件夹(默认 工作目录/outbox)")
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="登记文件 pipeline.toml")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="工作目录:归档、隔离区和历史库所在")
@click.option("--poll", is_flag=True, help="定时扫描收件箱,不靠变动通知(收件箱在网络共享文件夹上时用)")
@click.option("--interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="每隔多少秒复查一次收件箱")
@click.option("--settle", type=click.FloatRange(min=0), help="收件箱静止多少秒后才处理(默认取 pipeline.toml 的 settle_seconds)")
def watch_command(inbox: Path | None, outbox: Path | None, config: Path | None, workdir: Path, poll: bool,
                  interval: float, settle: float | None) -> None:
    """监视收件箱:新月报放进来、复制完毕后自动处理,与每晚的任务共用一把锁。按 Ctrl-C 停止。"""
    import logging

    from pipeline.watch import watch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    registry = _registry(workdir, config)
    workspace = Workspace.at(workdir, registry.settings, inbox, outbox)
    try:
        watch(workspace, registry, poll=poll, interval=interval, settle=settle)
    except OSError as exc:
        raise CannotRun(f"无法监视收件箱 {workspace.inbox}:{exc}") from exc


@main.command("demo")
@click.argument("folder", required=False, default="demo-street", type=click.Path(file_okay=False, path_type=Path))
def demo_command(folder: Path) -> None:
    """生成示范街道(丽景街道)一个月的月报,放进收件箱并运行两次:第一次退回满春村,第二次接收其更正件。"""
    from pipeline.demo import play_demo

    result = play_demo(folder)
    workspace = Workspace.at(folder, load_registry(folder / "pipeline.toml").settings)
    click.echo(f"== 第一次运行({result.period} 月报到齐后)==")
    print_result(result.first, workspace)
    click.echo("== 第二次运行(满春村报来更正件后)==")
    print_result(result.second, workspace)
    click.echo(f"发件箱:{workspace.outbox / result.period}")

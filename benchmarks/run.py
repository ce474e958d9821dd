"""Time `pipeline run` against a plain fastexcel read of the same files, for N = 100, 1,000, 10,000.

    python -m benchmarks.run                         # sizes 100,1000,10000; data cached in bench-data/
    python -m benchmarks.run --sizes 1000 --workers 2
    python -m benchmarks.run --sizes 100 --reader openpyxl
    python -m benchmarks.run --sizes 100 --roster-rows 2000

For each size the street is generated once (benchmarks.generate, cached under --out),
then, in the same session and each in a fresh process: the baseline (benchmarks.baseline,
every sheet of every file to pandas with fastexcel, one process), and one pipeline run
on a fresh working folder holding hard links to the same files (`pipeline.run.run`, as
`pipeline run` calls it). Printed: the ratio run / baseline, the peak resident memory of
the run's process and of its largest child (the reading processes), the size of the
history store it leaves, the time of each stage, the CPU time of the run's process and of
its children (what two cores share: wall time cannot go below half their sum), and a
table of cost per return.

Stages come from the run's own clock (RunResult.stage_seconds, what `pipeline run
--profile` prints); for a checkout whose run timed "merge" within "write", load_period is
wrapped here to split it off. A run
reads the next batch of returns while it checks and files one, so "intake" is the time
spent waiting for a batch to be read, not all the reading.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("intake", "validate", "file", "reconcile", "merge", "write", "backup", "other")
# (module, function, stage): wrapped to time a stage an older run's own clock did not split off.
TIMED = [("pipeline.outputs", "load_period", "merge")]


# ---- one measured run (a child process) ----------------------------------------------------

def one_run(folder: Path, workers: int | None, reader: str, keep: Path | None) -> dict:
    """Run the pipeline once over a copy of `folder`/inbox; times, stages and memory."""
    os.environ["PIPELINE_XLSX_READER"] = reader  # the run's reading processes inherit it
    import pipeline.run as pipeline_run
    from pipeline.registry import load_registry
    from pipeline.workspace import Workspace

    registry = load_registry(folder / "pipeline.toml")
    work = Path(tempfile.mkdtemp(prefix="bench-run-", dir=keep))
    ws = Workspace.at(work, registry.settings)
    ws.create()
    link_files(folder / "inbox", ws.inbox)
    merging = {"merge": 0.0}
    _wrap_stages(merging)
    kwargs = {"workers": workers} if workers is not None else {}
    from benchmarks.generate import described
    now = _run_day(described(folder)["period"])
    started, own_before = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
    result = pipeline_run.run(ws, registry, now=now, **kwargs)
    total = time.perf_counter() - started
    own_cpu = _cpu_seconds(resource.RUSAGE_SELF) - own_before
    spent = {s: result.stage_seconds.get(s, 0.0) for s in STAGES}  # the run's own clock (`pipeline run --profile`)
    if "merge" not in result.stage_seconds:  # an older run: its "write" includes loading the period
        spent["merge"] = merging["merge"]
        spent["write"] -= spent["merge"]
    spent["other"] = total - sum(v for k, v in spent.items() if k != "other")
    statuses: dict[str, int] = {}
    for o in result.outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    figures = {"files": len(result.outcomes), "seconds": total, "stages": spent, "statuses": statuses,
               "errors": sum(o.errors for o in result.outcomes), "warnings": sum(o.warnings for o in result.outcomes),
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "children_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
               "store_mb": _store_mb(ws.history), "workers": kwargs.get("workers"), "reader": reader,
               # CPU, not wall: what two cores must share. Children are the reading processes (and the
               # writing processes of a night with unit books), all ended and reaped by the time run() returns.
               "cpu_s": {"run": own_cpu, "children": _cpu_seconds(resource.RUSAGE_CHILDREN)}}
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def _cpu_seconds(who: int) -> float:
    used = resource.getrusage(who)
    return used.ru_utime + used.ru_stime


def _store_mb(history: Path) -> float:
    """The history store's size on disk after the run (with its write-ahead log, if one is left)."""
    parts = [history, history.with_name(history.name + "-wal")]
    return sum(part.stat().st_size for part in parts if part.is_file()) / 1e6


def _wrap_stages(spent: dict[str, float]) -> None:
    for module_name, name, stage in TIMED:
        module = importlib.import_module(module_name)
        inner = getattr(module, name, None)
        if inner is None:
            warnings.warn(f"{module_name}.{name} not found: stage {stage} not timed")
            continue
        setattr(module, name, _timed(inner, stage, spent))


def _timed(inner, stage: str, spent: dict[str, float]):
    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - started
    return wrapper


def _run_day(period: str) -> dt.datetime:
    """The evening of the 3rd of the following month: every return is in, none is late."""
    year, month = int(period[:4]), int(period[5:])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return dt.datetime(year, month, 3, 20, 0)


def link_files(source: Path, target: Path) -> None:
    """Hard links (the run moves inbox files away; the cached ones stay), copies across disks."""
    for path in source.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)


# ---- the session (the parent process) --------------------------------------------------------

def child(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    for line in done.stderr.splitlines():
        if "Warning" in line:
            print("  " + line, file=sys.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_size(n: int, opts: argparse.Namespace) -> dict:
    from benchmarks.generate import generate

    folder = generate(n, opts.out, roster_rows=opts.roster_rows, faulty=opts.faulty, period=opts.period,
                      log=lambda m: print(m, file=sys.stderr))
    base = child(["-m", "benchmarks.baseline", str(folder / "inbox"), "--json"])
    one = ["-m", "benchmarks.run", "--one", str(folder), "--reader", opts.reader]
    if opts.workers is not None:
        one += ["--workers", str(opts.workers)]
    run = child(one)
    return {"n": n, "baseline": base, "run": run, "ratio": run["seconds"] / base["seconds"]}


def report_one(m: dict) -> None:
    run, base = m["run"], m["baseline"]
    print(f"\nN = {m['n']:,}  ({run['reader']} reader, workers {run['workers'] or 'default'}; "
          f"outcomes {run['statuses']}, {run['errors']} errors, {run['warnings']} warnings)")
    print(f"  baseline fastexcel read  {base['seconds']:8.2f} s   peak {base['peak_mb']:6.0f} MB")
    print(f"  pipeline run             {run['seconds']:8.2f} s   peak {run['peak_mb']:6.0f} MB"
          f" (largest child {run['children_peak_mb']:.0f} MB)   ratio {m['ratio']:.2f}x"
          f"   history {run.get('store_mb', 0):.0f} MB")
    print("  stages: " + "  ".join(f"{s} {run['stages'][s]:.2f}s" for s in STAGES))
    if "cpu_s" in run:  # (absent from an older checkout's figures)
        cpu, n = run["cpu_s"], m["n"]
        print(f"  CPU: the run's process {cpu['run']:.1f} s ({1000 * cpu['run'] / n:.1f} ms a return), its reading"
              f" and writing processes {cpu['children']:.1f} s ({1000 * cpu['children'] / n:.1f} ms a return)")


def report_table(results: list[dict]) -> None:
    print(f"\n{'N':>7} {'baseline s':>11} {'run s':>9} {'ratio':>6} {'ms/return':>10} {'base ms/ret':>12} "
          f"{'peak MB':>8} {'child MB':>9} {'store MB':>9}  " + " ".join(f"{s:>9}" for s in STAGES))
    for m in results:
        run, base, n = m["run"], m["baseline"], m["n"]
        print(f"{n:>7,} {base['seconds']:>11.2f} {run['seconds']:>9.2f} {m['ratio']:>6.2f} "
              f"{1000 * run['seconds'] / n:>10.1f} {1000 * base['seconds'] / n:>12.1f} {run['peak_mb']:>8.0f} "
              f"{run['children_peak_mb']:>9.0f} {run.get('store_mb', 0):>9.0f}  "
              + " ".join(f"{run['stages'][s]:>9.2f}" for s in STAGES))
    print(f"\n{dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.platform()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time pipeline run against a fastexcel read of the same files.")
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated numbers of returns")
    parser.add_argument("--out", type=Path, default=Path("bench-data"), help="cache of generated streets")
    parser.add_argument("--roster-rows", type=int, default=None, help="rows of every roster (default 300–700)")
    parser.add_argument("--faulty", type=float, default=0.0, help="share of returns with two clerk mistakes")
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--reader", choices=["calamine", "openpyxl"], default="calamine",
                        help="the pipeline's xlsx parser (openpyxl: proof the fast path is in use)")
    parser.add_argument("--workers", type=int, default=None, help="reading processes, if run() takes `workers`")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    parser.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)  # child: one run of a folder
    parser.add_argument("--keep", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_run(args.one, args.workers, args.reader, args.keep)))
        return 0
    args.out = args.out.resolve()
    results = []
    for n in (int(x.replace("_", "")) for x in args.sizes.split(",")):
        results.append(measure_size(n, args))
        report_one(results[-1])
    report_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

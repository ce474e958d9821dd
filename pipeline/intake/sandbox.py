"""Read each file in a separate, limited process, so a hostile file harms nothing else.

python-calamine aborts the whole process (no exception to catch) on some hostile files,
and a zip bomb or a huge sheet can exhaust memory. So files are parsed by a small pool
of reading processes (`worker`), started once per run with only the readers imported.
Each process limits its own address space and its CPU time per file; the parent waits
at most `seconds` for an answer. A process that dies, aborts or overruns is replaced,
and only the file it was reading is refused, with the reason. A new process must first
answer that it is ready: one that cannot start at all (a broken installation) would
otherwise make every file look hostile, so it stops the run instead.

Where the system gives a process no such limits (Windows: no rlimits, alarms, select on
pipes or wait4), the run holds each reading process instead (`_WatchedWorker`): a thread
receives its answers, and the run kills it when its time is up or its memory, looked at
every few milliseconds, passes the limit. That bound is looser (a process may overshoot
by what it allocates between two looks), so POSIX systems keep the limits of their own.

Measured on the 2-core machine (FACTS.md style: trust the ratios): starting a reading
process costs ~60 ms; sending one clean return through a started one adds ~2 ms to the
~45 ms calamine needs. A process per file would add ~60 ms to every file, hence a pool.
"""

from __future__ import annotations

import io
import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.forms import Form
from pipeline.intake.read import RawWorkbook
from pipeline.intake.safety import UnsafeEnvironment
from pipeline.intake.sheets import TakenBook
from pipeline.intake.worker import HEADER, READY
from pipeline.registry import Registry

try:
    import psutil  # watches a reading process where it cannot limit itself (Windows)
except ImportError:  # a dependency; without it such a host reads nothing (ReaderPool)
    psutil = None

CRASHED = "读取时程序异常退出,文件可能已损坏或被恶意构造(如“压缩炸弹”、超远单元格)"
TOO_SLOW = "读取时间过长被终止,文件可能被恶意构造"
TOO_BIG = "读取时占用内存过多被终止,文件可能被恶意构造"
SIGNAL_REASONS = {getattr(signal, name, None): reason for name, reason in
                  (("SIGXCPU", TOO_SLOW), ("SIGALRM", TOO_SLOW), ("SIGKILL", TOO_BIG))}  # (none on Windows)
# Whether a reading process can hold itself to its memory and time (rlimits and an alarm
# in it; select, waitid and wait4 here). Elsewhere (Windows) the run watches it.
PROCESS_LIMITS = os.name == "posix"
WATCH_SECONDS = 0.01  # how often the run looks at a watched process's memory
NO_WATCHING = ("缺少组件 psutil,无法限制读取进程的内存,为防止恶意文件,本次不处理任何文件,收件箱保持原样。"
               "请在本程序的 Python 环境中运行 pip install psutil 后重试")
_START = "from pipeline.intake.worker import main; main()"
START_SECONDS = 30.0  # for a reading process to start and say it is ready (a slow disk, a virus scan)
NOT_STARTING = ("读取月报的进程无法启动(Python 环境可能不完整,或被安全软件拦截)。为免把月报误判为损坏文件,"
                "本次运行到此停止,未处理的文件都留在收件箱中。请检查安装(pip install .)后重新运行")
ANSWER_PIPE_BYTES = 1 << 20
_ALLOWED = {("datetime", "date"), ("datetime", "datetime"), ("datetime", "time"), ("datetime", "timedelta"),
            ("pipeline.intake.read", "RawSheet"), ("pipeline.intake.read", "RawWorkbook"),
            ("pipeline.intake.sheets", "TakenBook"), ("pipeline.intake.locate", "LocatedRows"),
            ("pipeline.intake.locate", "HeaderProblem"), ("pipeline.intake.identify", "Identity"),
            ("pipeline.intake.identify", "CoverEntry"), ("pipeline.registry", "Unit"),
            ("pipeline.findings", "Finding"), ("pipeline.findings", "Severity")}


@dataclass(frozen=True)
class Limits:
    """What one file may cost to read (a village return takes well under 1 s and 100 MB)."""

    memory_mb: int = 480  # address space of a reading process, interpreter included
    seconds: float = 20.0


@dataclass(frozen=True)
class ReadReport:
    """What reading one file cost: peak memory of its reading process, wall time seen here."""

    peak_mb: float | None
    seconds: float


@dataclass(frozen=True)
class ReadResult:
    """The workbook (taken in already, if the pool knows the form), or why there is none; and what reading cost."""

    workbook: RawWorkbook | None
    reason: str
    report: ReadReport
    taken: TakenBook | None = None


class _Worker:
    """One reading process, which limits itself, and its pipes."""

    def __init__(self, context: bytes | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _START], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=fresh_process_env(), close_fds=True)
        _widen(self.proc.stdout.fileno())
        if context is not None:  # the registry and form, once: the process then takes each workbook in
            self._write(context)

    def started(self) -> bool:
        """Whether the process has started and answers (else every file would seem to kill it)."""
        try:
            self._write(pickle.dumps(READY))
            return _load(self._answer(time.monotonic() + START_SECONDS))[0] == "ready"
        except Exception:  # no answer in time, or a garbled one
            return False

    def _answer(self, deadline: float) -> bytes:
        """One framed answer, or TimeoutError / EOFError."""
        head = self._read(HEADER.size, deadline)
        return self._read(HEADER.unpack(head)[0], deadline)

    def _write(self, request: bytes) -> None:
        self.proc.stdin.write(HEADER.pack(len(request)) + request)
        self.proc.stdin.flush()

    def send(self, path: Path, limits: Limits | None) -> None:
        """One request: the file, and the limits the process sets itself (None: it sets none)."""
        self._write(pickle.dumps((str(path), *((limits.memory_mb, limits.seconds) if limits else (None, None)))))

    def ask(self, path: Path, limits: Limits) -> tuple[str, object, float | None]:
        """Send one request; the answer, or ('died', reason, peak) if the process did not answer in time."""
        deadline = time.monotonic() + limits.seconds
        try:
            self.send(path, limits)
            head = self._read(HEADER.size, deadline)
            return _load(self._read(HEADER.unpack(head)[0], deadline + limits.seconds))
        except TimeoutError:
            return ("died", TOO_SLOW, self.end())
        except Exception:  # no answer, or a garbled one: that process cannot be trusted any more
            return ("died", None, self.end())

    def _read(self, size: int, deadline: float) -> bytes:
        """Exactly `size` bytes from the process, or TimeoutError / EOFError."""
        fd, chunks, left = self.proc.stdout.fileno(), [], size
        while left:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def end(self) -> float | None:
        """Stop the process (killed if it does not stop at once), reap it, and return its peak memory in MB."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if not _exits_within(self.proc.pid, 0.5):
            self.proc.kill()
        self.proc.stdout.close()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        except ChildProcessError:
            return None
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_maxrss / 1024  # an upper bound: Linux counts the parent's pages before exec

    def death_reason(self) -> str:
        code = self.proc.returncode
        return SIGNAL_REASONS.get(-code, CRASHED) if code is not None and code < 0 else CRASHED


class _WatchedWorker(_Worker):
    """A reading process held by the run, where it cannot limit itself (see the module's note).

    A thread receives its answers (nothing else waits on a pipe with a deadline on Windows);
    meanwhile the run looks at the process's memory every WATCH_SECONDS and kills it past
    its limit or its time. What killed it is remembered for `death_reason`.
    """

    def __init__(self, context: bytes | None = None) -> None:
        super().__init__(context)
        self.watched = psutil.Process(self.proc.pid)
        self.answers: queue.Queue[bytes | None] = queue.Queue()
        self.peak_mb: float | None = None
        self.killed_for: str | None = None
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        """Each framed answer onto `answers`; None once the process has closed its end."""
        stream = self.proc.stdout
        try:
            while len(head := stream.read(HEADER.size)) == HEADER.size:
                size = HEADER.unpack(head)[0]
                body = stream.read(size)
                if len(body) < size:
                    break
                self.answers.put(body)
        except (OSError, ValueError):  # closed by end()
            pass
        self.answers.put(None)

    def _answer(self, deadline: float) -> bytes:
        try:
            answer = self.answers.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError from None
        if answer is None:
            raise EOFError
        return answer

    def ask(self, path: Path, limits: Limits) -> tuple[str, object, float | None]:
        deadline = time.monotonic() + limits.seconds
        try:
            self.send(path, None)
            while True:
                try:
                    answer = self.answers.get(timeout=WATCH_SECONDS)
                    break
                except queue.Empty:
                    self._watch(limits, deadline)
            if self.killed_for is None and answer is not None:
                status, payload, peak = _load(answer)
                return status, payload, peak if peak is not None else self.peak_mb
        except Exception:  # no answer, or a garbled one: that process cannot be trusted any more
            pass
        return ("died", self.killed_for, self.end())

    def _watch(self, limits: Limits, deadline: float) -> None:
        """Kill the process past its time or its memory; note its peak (resident memory) as seen.

        The limit is on `vms` (Linux: the address space, as RLIMIT_AS; Windows: the private
        memory committed), which grows at the allocation, before the memory is filled.
        """
        try:
            memory = self.watched.memory_info()
        except psutil.Error:  # already gone: its answers end, and ask sees that
            return
        self.peak_mb = max(self.peak_mb or 0.0, memory.rss / (1024 * 1024))
        if memory.vms > limits.memory_mb * 1024 * 1024:
            self._kill(TOO_BIG)
        elif time.monotonic() > deadline:
            self._kill(TOO_SLOW)

    def _kill(self, reason: str) -> None:
        self.killed_for = self.killed_for or reason
        try:
            self.proc.kill()
        except OSError:  # ended meanwhile
            pass

    def end(self) -> float | None:
        """Stop the process (killed if it does not stop at once) and reap it; its peak memory as seen."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        return self.peak_mb

    def death_reason(self) -> str:
        return self.killed_for or CRASHED


def fresh_process_env() -> dict[str, str]:
    """The environment of a Python process started afresh (`python -c`): this package importable in it."""
    package_root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}


def _widen(fd: int) -> None:
    """Let the answers pipe hold several answers (Linux: 64 KiB → 1 MiB, the default cap).

    An answer is ~75 KiB; with the default pipe a reading process waits, answer half
    written, until this process reads it, and this process is busy checking the previous
    batch. With room for a dozen answers it goes on to the next file at once.
    """
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, ANSWER_PIPE_BYTES)
    except (ImportError, AttributeError, OSError):  # not Linux, or capped lower: the default pipe works too
        pass


def _exits_within(pid: int, seconds: float) -> bool:
    """Whether the process ends within `seconds` (looked at without reaping it)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


class _Restricted(pickle.Unpickler):
    """Answers hold only plain values, dates and the two grid classes: nothing else is loaded."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name}")
        return super().find_class(module, name)


def _load(data: bytes) -> tuple[str, object, float | None]:
    return _Restricted(io.BytesIO(data)).load()


class ReaderPool:
    """Reading processes shared by a run's threads; create once per run, close when done."""

    def __init__(self, workers: int = 2, limits: Limits = Limits(), context: tuple[Registry, Form] | None = None) -> None:
        if not PROCESS_LIMITS and psutil is None:
            raise UnsafeEnvironment(NO_WATCHING)
        self._kind = _Worker if PROCESS_LIMITS else _WatchedWorker
        self.limits = limits
        # With (registry, form), the reading processes also take each workbook in (sheets.take_workbook).
        self._context = pickle.dumps(("context", *context)) if context is not None else None
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(max(1, workers)):
            self._idle.put(None)  # started on first use
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def read(self, path: Path) -> ReadResult:
        """Read one file in a reading process; a failure gives the reason, never an exception, but for a
        reading process that cannot start (UnsafeEnvironment: the machine is at fault, not the file)."""
        started = time.monotonic()
        worker = self._idle.get()
        if worker is None:
            try:
                worker = self._start()
            except BaseException:
                self._idle.put(None)  # the slot stays: another thread waiting for it learns the same
                raise
        status, payload, peak = worker.ask(path, self.limits)
        ok = status == "ok" and isinstance(payload, (RawWorkbook, TakenBook))
        if ok or status == "refused":  # the readers refused cleanly: the process is as it was
            self._idle.put(worker)
        else:
            end_peak = worker.end() if status != "died" else None
            peak = peak or end_peak
            self._idle.put(None)  # a fresh process next time
        report = ReadReport(peak, time.monotonic() - started)
        if ok:
            return ReadResult(None, "", report, payload) if isinstance(payload, TakenBook) else \
                ReadResult(payload, "", report)
        if status == "died":
            return ReadResult(None, str(payload or worker.death_reason()), report)
        return ReadResult(None, str(payload) if status in ("refused", "spent") else CRASHED, report)

    def _start(self) -> _Worker:
        """A new reading process, ready; UnsafeEnvironment if it cannot start (the files are not to blame)."""
        try:
            worker = self._kind(self._context)
        except Exception as exc:  # not even started (or not to be watched)
            raise UnsafeEnvironment(NOT_STARTING) from exc
        with self._lock:
            self._all.append(worker)
        if not worker.started():
            worker.end()
            raise UnsafeEnvironment(NOT_STARTING)
        return worker

    def close(self) -> None:
        with self._lock:
            for worker in self._all:
                if worker.proc.returncode is None:
                    worker.end()
            self._all.clear()

    def __enter__(self) -> "ReaderPool":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def read_isolated(path: Path, limits: Limits = Limits()) -> ReadResult:
    """Read one file in a reading process of its own (for a single file; a run uses a ReaderPool)."""
    with ReaderPool(1, limits) as pool:
        return pool.read(path)

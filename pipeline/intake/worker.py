"""The reading process: reads files named on stdin, answers on stdout, within its limits.

Started by `sandbox.ReaderPool` as `python -c "...worker.main()"` with only the readers
imported (no pandas: ~60 ms to start). A first message ("context", registry, form), if
sent, makes it take each workbook in too (`sheets.take_workbook`); ("ready",) is answered
("ready", None, peak MB), so the run knows the process works. Each request is a
pickled (path, memory_mb, seconds); each answer a pickled (status, workbook or taken book
or reason, peak MB), both framed by an 8-byte length. The process limits its own address
space for good and its CPU time per file (where the request gives limits: the run watches
it instead where it cannot, see `sandbox`); Rust's abort messages go to the null device.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from pathlib import Path
from typing import BinaryIO

try:
    import resource
except ImportError:  # not POSIX (Windows): the run sends no limits and watches this process itself
    resource = None

from pipeline.intake.read import READER_ENV, UnreadableFile, read_workbook, share_equal_values
from pipeline.intake.sheets import take_workbook

HEADER = struct.Struct("<Q")
READY = ("ready",)  # asked once a process has started: it answers in kind when it can read files
MEMORY_ERROR = "文件太大,读取时超出内存限制,可能被恶意构造"


def main() -> None:
    """Serve requests until stdin closes."""
    requests, answers = channels()
    xlsx_reader = os.environ.get(READER_ENV, "calamine")  # inherited from the run (`--xlsx-reader`)
    limited, context = False, None
    while (request := receive(requests)) is not None:
        if request[0] == "context":  # (registry, form): take each workbook in here, not in the run
            context = request[1:]
            continue
        if request == READY:
            send(answers, ("ready", None, peak_mb()))
            continue
        path, memory_mb, seconds = request
        if memory_mb is not None and not limited:
            _limit_memory(memory_mb)
            limited = True
        if seconds is not None:
            _limit_time(seconds)
        send(answers, answer_for(Path(path), xlsx_reader, context))
        if seconds is not None:
            signal.alarm(0)


def channels() -> tuple[BinaryIO, BinaryIO]:
    """stdin/stdout for frames only; anything printed goes to stderr, which goes nowhere."""
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stdout = sys.stderr
    return sys.stdin.buffer, answers


def answer_for(path: Path, xlsx_reader: str = "calamine", context: tuple | None = None) -> tuple[str, object, float | None]:
    """('ok', workbook), ('refused', reason), or ('spent', reason) when this process should be replaced.

    A refusal by the readers leaves the process as it was; running out of memory or an
    unexpected error may not, so the parent starts a fresh process after those.
    """
    try:
        book = read_workbook(path, xlsx_reader)
        if context is None:
            share_equal_values(book)
        answer: tuple[str, object] = ("ok", take_workbook(book, path.name, *context) if context else book)
    except UnreadableFile as exc:
        answer = ("refused", str(exc))
    except MemoryError:
        answer = ("spent", MEMORY_ERROR)
    except RecursionError:
        answer = ("spent", "文件结构异常(嵌套过深),可能被恶意构造")
    except Exception as exc:  # a reader bug on a strange file: that file is unreadable, nothing more
        answer = ("spent", f"文件已损坏,无法读取({type(exc).__name__})")
    return (*answer, peak_mb())


def peak_mb() -> float | None:
    """This process's own peak resident memory (VmHWM; ru_maxrss would count the parent before exec);
    None where neither is known (Windows: the run, which watches the process, knows it)."""
    try:
        with open("/proc/self/status") as fh:
            line = next(x for x in fh if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if resource is not None else None


def _limit_memory(memory_mb: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # a reader never writes a file
    os.environ["RUST_BACKTRACE"] = "0"


def _limit_time(seconds: float) -> None:
    """CPU seconds for this file on top of what was used; the alarm ends a process stuck waiting."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (spent + int(seconds) + 1, hard))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(seconds) + 2)


def receive(stream: BinaryIO) -> object | None:
    """One framed pickle from the parent (trusted), None at end of input."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    return pickle.loads(stream.read(HEADER.unpack(head)[0]))


def send(stream: BinaryIO, answer: tuple[str, object, float | None]) -> None:
    try:
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        data = pickle.dumps(("spent", MEMORY_ERROR, answer[2]))
    write_frame(stream, data)


def write_frame(stream: BinaryIO, data: bytes) -> None:
    """`data` framed by its 8-byte length, as `receive` reads it."""
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()

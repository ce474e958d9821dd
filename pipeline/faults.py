"""Crash points: the crash-loop test kills a run at its N-th durable write.

Every place where the product makes something durable (a history commit, a file moved or
replaced) calls `durable_write()`. With PIPELINE_KILL_AT_WRITE=N in the environment the
process kills itself with SIGKILL at the N-th call, as a power cut would; otherwise the
call costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import time

KILL_AT = "PIPELINE_KILL_AT_WRITE"
_writes = 0


def durable_write() -> None:
    global _writes
    limit = os.environ.get(KILL_AT)
    if not limit:
        return
    _writes += 1
    if _writes == int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


PAUSE_IN_LOCK = "PIPELINE_PAUSE_IN_LOCK"  # just after taking the lock: a test races two runs
PAUSE_AFTER_FILING = "PIPELINE_PAUSE_AFTER_FILING"  # the inbox listed and filed: a test drops a file mid-run


def pause(point: str) -> None:
    """Wait there as many seconds as the environment variable `point` says (none if unset)."""
    seconds = os.environ.get(point)
    if seconds:
        time.sleep(float(seconds))

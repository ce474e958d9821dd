"""Where the per-file stage runs: local reading processes, or an existing Dask cluster.

Beyond one machine the product uses Dask's own concurrent.futures executor rather than
anything home-made. The inbox and archive must then be on a path every worker sees.
"""

from __future__ import annotations

from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Iterator


class ExecutorUnavailable(Exception):
    """The requested executor cannot be used here; the message says why, in Chinese."""


@contextmanager
def per_file_executor(kind: str, scheduler: str | None = None) -> Iterator[Executor | None]:
    """None for the local pool (`kind` "local"), or a Dask client's executor (`kind` "dask")."""
    if kind == "local":
        yield None
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise ExecutorUnavailable("使用 Dask 集群需要先安装:pip install 'dask[distributed]'") from exc
    if not scheduler:
        raise ExecutorUnavailable("使用 Dask 集群时须用 --scheduler 指明调度器地址,如 tcp://10.0.0.5:8786")
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise ExecutorUnavailable(f"连不上 Dask 调度器 {scheduler}:{exc}") from exc
    try:
        yield client.get_executor()
    finally:
        client.close()

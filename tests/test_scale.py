"""Where the per-file stage runs changes nothing: one worker, two, or a Dask cluster."""

from __future__ import annotations

import json
import os

import distributed
import pytest

from conftest import PERIOD, RUN_DAY, clean_return, drop
from pipeline.executors import ExecutorUnavailable, per_file_executor
from pipeline.run import run
from pipeline.workspace import Workspace


def street_inbox(ws: Workspace, street) -> None:
    a, b, c = (clean_return(street, "U01"), clean_return(street, "U02", first_serial=30),
               clean_return(street, "U03", first_serial=60))
    b.monthly.at[0, "期末人口"] += 4
    c.roster.at[0, "节育措施"] = "上环术"
    for name, data in (("甲村.xlsx", a), ("乙社区.xlsx", b), ("丙村.xlsx", c)):
        drop(ws, name, data)
    (ws.inbox / "坏文件.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 broken")


def findings_of(tmp_path, street, name, **how) -> bytes:
    ws = Workspace.at(tmp_path / name, street.settings)
    ws.create()
    street_inbox(ws, street)
    for p in ws.inbox.iterdir():
        os.utime(p, (RUN_DAY.timestamp() - 3600,) * 2)
    run(ws, street, now=RUN_DAY, **how)
    report = json.loads((ws.outbox / PERIOD / "report.json").read_text(encoding="utf-8"))
    return json.dumps(report["findings"], ensure_ascii=False, sort_keys=True).encode()


def test_two_workers_give_the_findings_of_one(tmp_path, street):
    one = findings_of(tmp_path, street, "one", workers=1)
    assert b"population-balance" in one and b"not-in-list" in one
    assert findings_of(tmp_path, street, "two", workers=2) == one


def test_a_dask_cluster_gives_the_findings_of_the_local_pool(tmp_path, street):
    local = findings_of(tmp_path, street, "local", workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            per_file_executor("dask", cluster.scheduler_address) as executor:
        assert findings_of(tmp_path, street, "dask", executor=executor) == local


def test_dask_without_a_scheduler_address_is_refused():
    with pytest.raises(ExecutorUnavailable, match="--scheduler"):
        with per_file_executor("dask", None):
            pass

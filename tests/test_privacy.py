"""Street-level reports hold no readable ID and no age beside a masked ID."""

from __future__ import annotations

import datetime as dt
import json

from conftest import PERIOD, RUN_DAY, clean_return, drop, make_id
from pipeline.findings import finding
from pipeline.run import run
from pipeline.write.privacy import mask_ids, masked


def test_ids_are_masked_in_text():
    assert mask_ids("身份证号“64010419810524698X”重复") == "身份证号“640104********698X”重复"
    assert mask_ids("old 640104810524123 id") == "old 640104******123 id"
    assert mask_ids("电话 13800001111") == "电话 13800001111"


def test_age_from_an_id_becomes_a_band():
    f = masked(finding("roster-age", unit="U01", sheet="育龄妇女", cell="C3", value="56", expected="应填超龄"))
    assert f.value == "满50" and "56" not in f.message + f.message_en and f.cell == "C3"


def test_street_report_never_pairs_a_masked_id_with_an_age(workspace, street):
    a, b = clean_return(street, "U01"), clean_return(street, "U02", first_serial=30)
    shared = make_id("640121", dt.date(1970, 5, 3), 50, True)
    a.roster.at[0, "身份证号"] = shared
    b.roster.at[0, "身份证号"] = shared
    drop(workspace, "a.xlsx", a)
    drop(workspace, "b.xlsx", b)
    run(workspace, street, now=RUN_DAY)
    text = (workspace.outbox / PERIOD / "report.json").read_text(encoding="utf-8")
    csv = (workspace.outbox / PERIOD / "findings.csv").read_text(encoding="utf-8-sig")
    for shared_text in (text, csv):
        assert shared not in shared_text and "19700503" not in shared_text
        assert " 56 " not in shared_text and "56岁" not in shared_text
    codes = {f["code"] for f in json.loads(text)["findings"]}
    assert {"roster-age", "id-in-other-unit"} <= codes

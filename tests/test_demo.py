"""The demo street, end to end: a rejected return, its correction, and seed plan 3's totals."""

from __future__ import annotations

import datetime as dt
import json

import openpyxl
import pytest

from pipeline.demo import play_demo
from pipeline.demo_data import STREET_TOTALS, demo_month
from pipeline.outputs import UNIT_FOLDER, output_names
from pipeline.registry import load_registry

TODAY = dt.date(2026, 11, 29)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return play_demo(tmp_path_factory.mktemp("demo"), today=TODAY)


def summary_rows(demo) -> tuple[list, dict]:
    registry = load_registry(demo.folder / "pipeline.toml")
    path = demo.folder / "outbox" / demo.period / output_names(registry, demo.period)["summary"]
    sheet = openpyxl.load_workbook(path)["汇总"]
    rows = list(sheet.iter_rows())
    header_at = next(i for i, r in enumerate(rows) if r[0].value == "单位")
    header = [c.value for c in rows[header_at]]
    body = {r[0].value: {h: c for h, c in zip(header, r)} for r in rows[header_at + 1:] if r[0].value}
    return header, body


def test_first_run_rejects_manchun_and_second_accepts_its_correction(demo):
    assert demo.period == "2026-10"
    assert {o.unit_name: o.status for o in demo.first.outcomes}["满春村"] == "rejected"
    assert demo.first.exit_code == 1
    assert [(o.unit_name, o.status) for o in demo.second.outcomes] == [("满春村", "accepted")]
    assert demo.second.exit_code == 0


def test_final_summary_shows_seed_plan_totals(demo):
    header, body = summary_rows(demo)
    total = body["合计"]
    for column, value in STREET_TOTALS.items():
        assert total[column].value == value, column
        assert isinstance(total[column].value, (int, float)) and total[column].number_format == "#,##0"
    rate = total["综合节育率%"]
    assert round(rate.value, 1) == 92.3 and rate.number_format == "0.0"
    assert set(body) >= {"满春村", "红星村", "东风村", "丰收村", "丽景社区", "新华社区"}


def test_rejected_return_keeps_its_error_workbook_and_both_files_are_archived(demo):
    archived = sorted((demo.folder / "archive" / demo.period).glob("*满春村/*.xlsx"))
    assert len(archived) == 2
    books = list((demo.folder / "outbox" / demo.period / UNIT_FOLDER).glob("*满春村*.xlsx"))
    assert len(books) == 1
    listing = openpyxl.load_workbook(books[0])["错误清单"]
    messages = " ".join(str(v) for row in listing.iter_rows(values_only=True) for v in row if v)
    assert "期末人口" in messages and "上环术" in messages and "8组" in messages


def test_outbox_holds_every_output(demo):
    registry = load_registry(demo.folder / "pipeline.toml")
    folder = demo.folder / "outbox" / demo.period
    for name in output_names(registry, demo.period).values():
        assert (folder / name).is_file(), name
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    statuses = sorted(r["status"] for r in report["returns"])
    assert statuses == ["accepted"] * 6 + ["superseded"]
    assert (folder / "findings.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_unit_error_workbook_holds_no_other_units_people(demo):
    registry = load_registry(demo.folder / "pipeline.toml")
    data = demo_month(registry, demo.period)
    [book] = (demo.folder / "outbox" / demo.period / UNIT_FOLDER).glob("*.xlsx")
    text = "\n".join(str(v) for ws in openpyxl.load_workbook(book).worksheets
                     for row in ws.iter_rows(values_only=True) for v in row if v is not None)
    own = next(u for u in registry.units if u.name == "满春村")
    assert data[own.code].roster.at[1, "身份证号"] in text
    cells = set(text.split("\n"))
    own_names = set(data[own.code].roster["姓名"]) | set(data[own.code].floating["姓名"])
    for unit in registry.units:
        if unit is own:
            continue
        others = data[unit.code]
        names = (set(others.roster["姓名"]) | set(others.floating["姓名"])) - own_names  # namesakes are not leaks
        people = set(others.roster["身份证号"]) | set(others.floating["身份证号"]) | names
        assert not people & cells, unit.name

"""The benchmark's own tools: the generated street is clean, and the openpyxl reader reads what calamine reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from stdnum.cn import ric

from benchmarks.generate import described, generate, make_ids
from pipeline.intake.read import calamine_workbook, openpyxl_workbook
from pipeline.registry import load_registry
from pipeline.run import run
from pipeline.validate.registers import age_on, id_birth_date, id_sex
from pipeline.values import as_text
from pipeline.workspace import Workspace


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(3, tmp_path_factory.mktemp("bench"), roster_rows=40, period="2026-10", workers=1)


def test_generated_returns_are_accepted_without_findings(street: Path, tmp_path: Path) -> None:
    registry = load_registry(street / "pipeline.toml")
    ws = Workspace.at(tmp_path, registry.settings)
    ws.create()
    for path in (street / "inbox").iterdir():
        (ws.inbox / path.name).write_bytes(path.read_bytes())
    result = run(ws, registry, now=dt.datetime(2026, 11, 3, 20))
    assert [(o.status, o.errors, o.warnings) for o in result.outcomes] == [("accepted", 0, 0)] * 3
    assert described(street)["returns"] == 3


def test_generated_ids_are_valid_unique_and_keep_age_and_sex() -> None:
    end = dt.date(2026, 10, 31)
    ages = np.array([22, 46, 5, 64] * 500)
    female = np.array([True, False, True, False] * 500)
    ids = make_ids(ages, female, 123_456, end)
    assert len(set(ids)) == len(ids)
    assert all(ric.is_valid(n) for n in ids)
    assert [age_on(id_birth_date(n), end) for n in ids] == ages.tolist()
    assert [id_sex(n) == "女" for n in ids] == female.tolist()


def test_openpyxl_reader_reads_the_same_texts_as_calamine(street: Path) -> None:
    path = sorted((street / "inbox").iterdir())[0]
    data = path.read_bytes()
    fast, slow = calamine_workbook(data, "xlsx"), openpyxl_workbook(data, "xlsx")
    assert [s.name for s in fast.sheets] == [s.name for s in slow.sheets]
    for a, b in zip(fast.sheets, slow.sheets):
        rows, cols = max(a.n_rows, b.n_rows), max(a.n_cols, b.n_cols)
        assert [[as_text(a.cell(r, c)) for c in range(cols)] for r in range(rows)] == \
               [[as_text(b.cell(r, c)) for c in range(cols)] for r in range(rows)]

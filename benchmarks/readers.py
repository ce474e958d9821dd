"""An openpyxl reader with the fast reader's output shape, for the `--reader openpyxl` comparison.

The pipeline reads with python-calamine inside its reading processes. Until intake has a
reader switch of its own, `install()` replaces `pipeline.intake.read.calamine_workbook`
(the parser call behind every xlsx) in whichever process imports this; `benchmarks/shim/
sitecustomize.py` calls it in the reading processes the pipeline starts, when the
environment variable below says so. Safety checks and everything after parsing stay the
pipeline's own, so the comparison is the parser and nothing else.
"""

from __future__ import annotations

import io
import os

READER_ENV = "PIPELINE_BENCH_READER"
OOXML = ("xlsx", "xlsm")


def openpyxl_workbook(data: bytes, fmt: str):
    """Every worksheet's values read with openpyxl (read-only, cached formula values) as a RawWorkbook."""
    import openpyxl

    from pipeline.intake.read import RawSheet, RawWorkbook, UnreadableFile

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # as calamine_workbook: any parser error means unreadable
        raise UnreadableFile(f"工作簿已损坏,无法读取({type(exc).__name__})") from exc
    sheets = []
    try:
        for ws in book.worksheets:
            ws.reset_dimensions()  # a stale <dimension> would silently drop rows (FACTS.md)
            grid = [list(row) for row in ws.iter_rows(values_only=True)]
            while grid and all(v is None for v in grid[-1]):
                grid.pop()
            sheets.append(RawSheet(ws.title, grid))  # read-only mode knows no merged ranges
    finally:
        book.close()
    return RawWorkbook(fmt, sheets)


def install(reader: str | None = None) -> bool:
    """Make this process's pipeline parse xlsx with `reader` (default: the environment's choice)."""
    reader = reader or os.environ.get(READER_ENV, "")
    if reader != "openpyxl":
        return False
    from pipeline.intake import read

    fast = read.calamine_workbook

    def parse(data: bytes, fmt: str):
        return openpyxl_workbook(data, fmt) if fmt in OOXML else fast(data, fmt)

    read.calamine_workbook = parse
    return True

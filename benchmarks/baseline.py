"""The floor to compare a run with: read every return's every sheet with fastexcel, nothing else.

    python -m benchmarks.baseline bench-data/n1000-…/inbox

One process, files one after another, each sheet to a pandas frame (fastexcel reads
through calamine into Arrow). Headers are not interpreted (`header_row=None`), so title
rows above a table cost what they cost the pipeline. FACTS.md measures this reader at
0.8–0.9× "unzip + tokenise the XML", i.e. at the floor of any reader.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

RETURN_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")


def read_all(paths: list[Path]) -> tuple[int, int]:
    """Read every sheet of every file to pandas; (sheets, cells) read."""
    import fastexcel

    sheets = cells = 0
    for path in paths:
        reader = fastexcel.read_excel(path)
        for name in reader.sheet_names:
            frame = reader.load_sheet(name, header_row=None).to_pandas()
            sheets += 1
            cells += frame.size
    return sheets, cells


def return_files(inbox: Path) -> list[Path]:
    return sorted(p for p in inbox.iterdir() if p.suffix.lower() in RETURN_SUFFIXES)


def measure(inbox: Path) -> dict:
    """Seconds to read the inbox (imports excluded), with the process's peak memory."""
    import fastexcel  # noqa: F401  imports are paid once per process, not per file
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    paths = return_files(inbox)
    started = time.perf_counter()
    sheets, cells = read_all(paths)
    seconds = time.perf_counter() - started
    return {"files": len(paths), "sheets": sheets, "cells": cells, "seconds": seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Read every sheet of every return with fastexcel, timed.")
    parser.add_argument("inbox", type=Path)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = measure(args.inbox)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['files']} files, {result['sheets']} sheets, {result['cells']:,} cells: "
              f"{result['seconds']:.2f} s ({1000 * result['seconds'] / max(1, result['files']):.1f} ms a file), "
              f"peak {result['peak_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

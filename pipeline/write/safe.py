"""The one way the product writes files a person will open.

Untrusted text is always written as text: xlsxwriter's automatic conversions are off, so
'=cmd|…', '+1', '@SUM(…)' and URLs stay inert strings; control characters are replaced.
Every file is written to a temporary name beside its target and moved into place
atomically, so a reader never sees half a workbook and a crash leaves the old one whole.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from pipeline.faults import durable_write
from pipeline.values import strip_control_characters

TEMP_PREFIX = ".~pipeline-"
_UMASK = os.umask(0)
os.umask(_UMASK)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
EXCEL_TEXT_LIMIT = 32767


class OutputInUse(OSError):
    """Outputs another program holds open (on Windows, Excel or WPS keep a workbook they show from being
    replaced or removed): said by name; the rest was written, and the next run writes these."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(in_use_message([p.name for p in paths]))
        self.paths = paths

    def __reduce__(self) -> tuple:  # sent back by a writing process (book_writers)
        return OutputInUse, (self.paths,)


def in_use_message(names: list[str]) -> str:
    return (f"{'、'.join(f'“{name}”' for name in names)} 无法更新:正被其他程序(如 Excel 或 WPS)打开,"
            "或没有改写它的权限。请关闭后重新运行")


def remove_output(path: Path) -> None:
    """Remove an output no longer wanted (OutputInUse if someone has it open)."""
    try:
        path.unlink(missing_ok=True)
    except PermissionError as exc:
        raise OutputInUse([path]) from exc


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success fsync it and os.replace it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=target.suffix, dir=target.parent)
    os.close(fd)
    temp = Path(name)
    os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are for everyone on the share
    try:
        yield temp
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        durable_write()
        try:
            os.replace(temp, target)
        except PermissionError as exc:  # open in Excel (Windows), or not ours to replace
            raise OutputInUse([target]) from exc
        durable_write()
    finally:
        temp.unlink(missing_ok=True)


def clean_stale_temporaries(folder: Path) -> int:
    """Remove temporaries left by a run that was killed mid-write; returns how many."""
    stale = list(folder.rglob(f"{TEMP_PREFIX}*")) if folder.exists() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def new_workbook(path: Path) -> xlsxwriter.Workbook:
    """An xlsxwriter workbook that never turns text into formulas, links or numbers."""
    return xlsxwriter.Workbook(str(path), {
        "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False,
        "nan_inf_to_errors": False, "remove_timezone": True,
    })


def safe_text(value: str) -> str:
    """Text fit for a cell: control characters replaced, cut to Excel's limit."""
    return strip_control_characters(value)[:EXCEL_TEXT_LIMIT]


def write_cell(ws: Worksheet, row: int, col: int, value: Any, fmt: Any = None) -> None:
    """Write one value by its type; text always as a string, blanks as blank cells."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        ws.write_blank(row, col, None, fmt)
    elif isinstance(value, bool):
        ws.write_string(row, col, "是" if value else "否", fmt)
    elif isinstance(value, (int, float)):
        ws.write_number(row, col, value, fmt)
    elif isinstance(value, (dt.date, dt.datetime)):
        ws.write_string(row, col, value.isoformat(), fmt)
    else:
        ws.write_string(row, col, safe_text(str(value)), fmt)


def print_one_page_wide(ws: Worksheet, header_row: int) -> None:
    """Printed as a statistician reads a list: landscape A4, every column on one page wide, the header
    row (0-based) on each page."""
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(header_row)
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)


def csv_safe(value: Any) -> str:
    """A CSV field that spreadsheet programs will not run as a formula."""
    text = "" if value is None else safe_text(str(value))
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text

"""One file in, one return out: read it, find its sheets and tables, say whose it is."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.findings import Finding, finding
from pipeline.forms import Form, SheetSpec
from pipeline.intake.identify import Identity, identify, read_cover
from pipeline.intake.locate import LocatedTable, find_header_row, locate_table
from pipeline.intake.read import RawSheet, RawWorkbook, UnreadableFile, read_workbook
from pipeline.periods import PERIOD_FORMS
from pipeline.registry import Registry, Unit
from pipeline.text import normalise_label
from pipeline.values import as_text


@dataclass
class ReturnFile:
    """A return as taken in: where it came from, whose it is, and its located tables."""

    path: Path
    sha256: str
    received_at: dt.datetime
    workbook: RawWorkbook | None = None
    tables: dict[str, LocatedTable] = field(default_factory=dict)  # form sheet key -> table
    identity: Identity | None = None
    findings: list[Finding] = field(default_factory=list)
    unreadable: str = ""  # why the file could not be read at all

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def unit(self) -> Unit | None:
        return self.identity.unit if self.identity else None

    @property
    def period(self) -> str | None:
        return self.identity.period if self.identity else None

    @property
    def quarantine_reason(self) -> str:
        """Why this file cannot be filed under a unit and period (empty if it can)."""
        if self.unreadable:
            return f"文件无法读取:{self.unreadable}"
        if self.unit is None:
            return "无法确定报送单位(封面和文件名都没有本街道登记的村(居)名称或代码)"
        if self.period is None:
            return "无法确定报告期(封面和文件名都没有可识别的年月)"
        return ""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def take_in(path: Path, registry: Registry, form: Form, sha256: str | None = None) -> ReturnFile:
    """Read one inbox file into a ReturnFile; bad input becomes findings, never an exception."""
    stat = path.stat()
    ret = ReturnFile(path, sha256 or file_sha256(path), dt.datetime.fromtimestamp(stat.st_mtime))
    try:
        ret.workbook = read_workbook(path)
    except UnreadableFile as exc:
        ret.unreadable = str(exc)
        ret.findings.append(finding("file-unreadable", file=path.name, value=str(exc)))
        return ret
    sheets = match_sheets(ret.workbook, form)
    for key, spec in form.sheets.items():
        if key not in sheets:
            ret.findings.append(finding("missing-sheet", file=path.name, expected=spec.name))
    cover = read_cover(sheets["cover"], form.cover) if "cover" in sheets else {}
    ret.identity = identify(cover, path.name, registry)
    for key, sheet in sheets.items():
        spec = form.sheets[key]
        if spec.layout == "table":
            ret.tables[key] = locate_table(sheet, spec)
    cover_sheet = sheets["cover"].name if "cover" in sheets else form.cover.name
    ret.findings += _identity_findings(ret.identity, path.name, cover_sheet)
    ret.findings += _header_findings(ret, path.name)
    return ret


def match_sheets(book: RawWorkbook, form: Form) -> dict[str, RawSheet]:
    """Form sheet key → the workbook's sheet: by name or alias, else by its header."""
    matched: dict[str, RawSheet] = {}
    for key, spec in form.sheets.items():
        sheet = next((s for s in book.sheets if normalise_label(s.name) in spec.labels()), None)
        if sheet is not None:
            matched[key] = sheet
    free = [s for s in book.sheets if s not in matched.values()]
    for key, spec in form.sheets.items():
        if key not in matched and spec.layout == "table":
            sheet = next((s for s in free if find_header_row(s, spec) is not None and _looks_like(s, spec)), None)
            if sheet is not None:
                matched[key] = sheet
                free.remove(sheet)
    return matched


def _looks_like(sheet: RawSheet, spec: SheetSpec) -> bool:
    """At least half the form's required columns are in the sheet's header."""
    table = locate_table(sheet, spec)
    required = [c for c in spec.columns if c.required]
    return len([c for c in required if c.name in table.letters]) * 2 >= len(required)


def _identity_findings(ident: Identity, file_name: str, sheet: str) -> list[Finding]:
    found: list[Finding] = []
    cover = ident.cover
    if ident.unit is None:
        entry = cover.get("unit_name") or cover.get("unit_code")
        found.append(finding("unknown-unit", file=file_name, sheet=sheet, cell=entry.cell if entry else "",
                             row=entry.row if entry else None, field="单位名称",
                             value=as_text(entry.value) if entry else "", expected="本街道登记的村(居)"))
    if ident.period is None:
        entry = cover.get("period")
        found.append(finding("period-missing", file=file_name, sheet=sheet, cell=entry.cell if entry else "",
                             row=entry.row if entry else None, field="报告期",
                             value=as_text(entry.value) if entry else "", expected=PERIOD_FORMS))
    return found


def _header_findings(ret: ReturnFile, file_name: str) -> list[Finding]:
    found = []
    for table in ret.tables.values():
        for p in table.problems:
            found.append(finding(p.kind, file=file_name, sheet=table.sheet, cell=p.cell, row=p.row,
                                 field=p.column, expected=p.column if p.kind == "missing-column" else ""))
    return found

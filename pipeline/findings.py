"""Findings: the one type every stage reports, and the catalogue that words them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from functools import cache
from typing import Any, Iterable

from pipeline.resources import load_schema_file

RULES_FILE = "rules.toml"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return ["error", "warning", "info"].index(self.value)

    @property
    def zh(self) -> str:
        return {"error": "错误", "warning": "警告", "info": "提示"}[self.value]


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth saying) about a return, located in the clerk's own file.

    `cell` is in A1 form where one cell is at fault; otherwise `row` and/or `column`
    (the Excel row number and column letter) say where. `field` is the form's column name.
    """

    code: str
    severity: Severity
    unit: str = ""  # the unit's registry code, "" while unknown
    file: str = ""
    sheet: str = ""
    cell: str = ""
    row: int | None = None
    column: str = ""
    value: str = ""
    expected: str = ""
    message: str = ""
    message_en: str = ""
    field: str = ""
    unit_name: str = ""
    period: str = ""

    @property
    def blocks(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["severity"] = Severity(known["severity"])
        return cls(**known)


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    zh: str
    en: str


@cache
def catalogue() -> dict[str, Rule]:
    """Every finding code with its default severity and both message templates."""
    raw = load_schema_file(RULES_FILE)
    return {
        code: Rule(code, Severity(entry["severity"]), entry["zh"], entry["en"])
        for code, entry in raw.items()
    }


class _Blank(dict):
    """Template words: a placeholder a finding does not fill stays empty."""

    def __missing__(self, key: str) -> str:
        return ""


def finding(code: str, *, severity: Severity | None = None, row: int | None = None,
            **texts: Any) -> Finding:
    """Build a finding of `code`, its messages filled from its own fields."""
    rule = catalogue()[code]
    fields = {k: _as_text(v) for k, v in texts.items()}
    words = _Blank(fields)
    return Finding(
        code=code,
        severity=severity or rule.severity,
        row=row,
        message=rule.zh.format_map(words),
        message_en=rule.en.format_map(words),
        **fields,
    )


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def with_severities(findings: Iterable[Finding], overrides: dict[str, str]) -> list[Finding]:
    """Apply a street's severity choices (pipeline.toml [settings.severity])."""
    return [
        replace(f, severity=Severity(overrides[f.code])) if f.code in overrides else f
        for f in findings
    ]


def sort_key(f: Finding) -> tuple:
    """Errors first, then by unit, sheet and position in the sheet."""
    return (f.severity.rank, f.unit, f.file, f.sheet, f.row or 0, len(f.column), f.column, f.code)

"""Personal data in shared reports: ID numbers masked (first 6 and last 4 digits shown).

With its check digit, a birth date alone narrows a masked ID to one person; so a street-
level report never shows an age or birth date taken from an ID beside the masked ID:
such values are reduced to the band that made them a finding.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pipeline.findings import Finding, finding

_ID18 = re.compile(r"(?<![0-9])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9Xx])")
_ID15 = re.compile(r"(?<![0-9])(\d{6})\d{6}(\d{3})(?![0-9])")  # old IDs: YYMMDD in the middle
AGE_FROM_ID = {"roster-age"}  # codes whose value is an age read from the ID


def mask_ids(text: str) -> str:
    """'640104198105246987' → '640104********6987' wherever an ID number stands in the text."""
    text = _ID18.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    return _ID15.sub(lambda m: f"{m.group(1)}******{m.group(2)}", text)


def age_band(age: str) -> str:
    """An age, as wide as the rule needs: under 15, or 50 and over."""
    return "不足15" if age.isdigit() and int(age) < 15 else "满50"


def masked(f: Finding) -> Finding:
    """The finding as a street-level report shows it."""
    if f.code in AGE_FROM_ID:
        f = replace(finding(f.code, severity=f.severity, row=f.row, **{
            k: v for k, v in f.to_dict().items() if k not in ("code", "severity", "row", "message", "message_en", "value")},
            value=age_band(f.value)))
    return replace(f, value=mask_ids(f.value), expected=mask_ids(f.expected),
                   message=mask_ids(f.message), message_en=mask_ids(f.message_en))


def for_street(findings: list[Finding], mask: bool) -> list[Finding]:
    return [masked(f) for f in findings] if mask else list(findings)

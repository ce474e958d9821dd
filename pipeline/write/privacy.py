"""Personal data in shared reports: ID numbers masked (first 6 and last 4 digits shown)."""

from __future__ import annotations

import re
from dataclasses import replace

from pipeline.findings import Finding

_ID = re.compile(r"(?<![0-9])(\d{6})\d{7,8}(\d{3}[\dXx])(?![0-9Xx])")


def mask_ids(text: str) -> str:
    """'640104198105246987' → '640104********6987' wherever an ID number stands in the text."""
    return _ID.sub(lambda m: m.group(1) + "*" * (len(m.group(0)) - 10) + m.group(2), text)


def masked(finding: Finding) -> Finding:
    """The finding as a street-level report shows it."""
    return replace(finding, value=mask_ids(finding.value), expected=mask_ids(finding.expected),
                   message=mask_ids(finding.message), message_en=mask_ids(finding.message_en))


def for_street(findings: list[Finding], mask: bool) -> list[Finding]:
    return [masked(f) for f in findings] if mask else list(findings)

"""Text from a clerk's file is untrusted: control characters replaced, over-long text flagged.

Both are reported as findings (control-characters, text-too-long) so a clerk sees what
was changed; long text is never cut, only reported. Characters no one sees (a zero-width
space pasted with a name or an ID) are taken out without a word: nothing visible changes.
Formula-like text ('=…', '+…') is made harmless where it is written (pipeline.write.safe),
not here: the value itself is the clerk's and stays as she typed it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.intake.read import RawSheet
from pipeline.values import (has_control_characters, has_invisible_characters, may_need_cleaning,
                             strip_control_characters, strip_invisible_characters)

MAX_TEXT_CHARS = 255  # longer than any address or remark on the form; the old county systems' field size
SHOWN_CHARS = 40


@dataclass(frozen=True)
class TextProblem:
    code: str  # control-characters | text-too-long
    row: int  # 0-based absolute
    col: int
    value: str  # what the finding shows
    expected: str = ""


def clean_sheet(sheet: RawSheet, limit: int = MAX_TEXT_CHARS) -> list[TextProblem]:
    """Replace control characters in every text cell (in place); list what was changed or is too long."""
    texts = [v for line in sheet.grid for v in line if isinstance(v, str)]
    if not may_need_cleaning("".join(texts)) and max(map(len, texts), default=0) <= limit:
        return []  # the usual case, told by one pass at C speed
    problems = []
    for r, line in enumerate(sheet.grid):
        for c, value in enumerate(line):
            if not isinstance(value, str):
                continue
            row, col = sheet.top + r, sheet.left + c
            if has_invisible_characters(value):
                value = line[c] = strip_invisible_characters(value)
            if has_control_characters(value):
                value = line[c] = strip_control_characters(value)
                problems.append(TextProblem("control-characters", row, col, shown(value)))
            if len(value) > limit:
                problems.append(TextProblem("text-too-long", row, col, str(len(value)), str(limit)))
    return problems


def shown(text: str) -> str:
    """A short view of a text for a finding (the cell itself keeps all of it)."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"

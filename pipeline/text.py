"""Text normalisation shared by every reader: full-width forms, spaces, labels."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalise_text(value: str) -> str:
    """NFKC (full-width digits and letters to ASCII), trimmed, inner runs of spaces kept single."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", value)).strip()


def normalise_label(value: object) -> str:
    """A header or label reduced for matching: NFKC, no spaces, no trailing colon or asterisk."""
    if value is None:
        return ""
    text = str(value)
    if not unicodedata.is_normalized("NFKC", text):  # most cell texts are: the check is much cheaper
        text = unicodedata.normalize("NFKC", text)
    text = "".join(text.split())
    return text.strip(":*").replace("(", "(").replace(")", ")")


_UNIT = re.compile(r"\([^()]{1,8}\)$")


def without_unit(label: str) -> str:
    """期初人口(人), 结婚日期(年月日) → 期初人口, 结婚日期: a header label (normalised) without the unit of
    measure statistical forms write after it. Asked only when the label itself is not known."""
    return _UNIT.sub("", label) if label.endswith(")") else label


_GROUP_WORDS = re.compile(r"^第?(.+?)(?:村民小组|居民小组|小组|组|社|队)?$")
_NUMERALS = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "两": 2}


def group_key(value: object) -> str:
    """A group's name reduced to what tells it apart: 一组, 1组, 第一组, 第1村民小组 and 1 are all "1"."""
    label = normalise_label(value)
    m = _GROUP_WORDS.match(label)
    core = m.group(1) if m else label
    number = chinese_number(core)
    return str(number) if number is not None else core


def chinese_number(text: str) -> int | None:
    """一 … 九十九 (and plain digits) as a number; None for anything else."""
    if text.isdigit():
        return int(text)
    if not text or any(c not in _NUMERALS and c != "十" for c in text):
        return None
    if "十" not in text:
        return _NUMERALS[text] if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    if len(tens) > 1 or len(ones) > 1 or "十" in ones:
        return None
    return (_NUMERALS[tens] if tens else 1) * 10 + (_NUMERALS[ones] if ones else 0)

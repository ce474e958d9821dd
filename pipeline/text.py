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

"""Text files: the encoding detected (never assumed), and CSV sheets read into a grid.

WPS and Excel on Chinese Windows save CSV in GBK (code page 936) with no mark; newer
ones save UTF-8 with or without a BOM, some "Unicode text" as UTF-16 with tabs. A text
that is valid UTF-8 is UTF-8 (GBK Chinese text almost never is); otherwise GB18030, the
superset of GB2312 and GBK, decodes it exactly or it is refused.
"""

from __future__ import annotations

import codecs
import csv
import io
import re

from pipeline.intake.read import RawSheet, RawWorkbook, UnreadableFile

DELIMITERS = (",", "\t", ";", "|")
SNIFF_LINES = 30
MAX_CSV_CELLS = 2_000_000
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)"""
                           rb"""|^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_\-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CHINESE_LEGACY = {"gb2312", "gbk", "cp936", "ms936", "gb18030", "x-gbk", "euc-cn"}


def decode_text(data: bytes) -> str:
    """The text of a file: BOM, then a declared HTML charset that fits, then UTF-8, then GB18030."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _strict(data, codec) or _refuse()
    if b"\x00" in data[:4096]:  # zero bytes: UTF-16 without a BOM, or not text at all
        return next((t for c in ("utf-16-le", "utf-16-be") if (t := _strict(data, c)) and _readable(t)), None) \
            or _refuse()
    for codec in (_declared_charset(data), "utf-8", "gb18030"):
        if codec and (text := _strict(data, codec)) is not None:
            return text
    return _refuse()


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _refuse() -> str:
    raise UnreadableFile("不是可识别的表格文件(文字编码无法识别,可能是其他程序的文件或已损坏)")


def _readable(text: str) -> bool:
    """Mostly printable characters: a text, not binary bytes that happened to decode."""
    sample = text[:2000]
    return bool(sample) and sum(ch.isprintable() or ch in "\t\r\n" for ch in sample) >= 0.97 * len(sample)


def _declared_charset(data: bytes) -> str | None:
    """The charset an HTML page (or an XML document) declares; GB2312 and GBK widened to GB18030 (they lie narrow)."""
    m = _META_CHARSET.search(data[:4096])
    if not m:
        return None
    name = (m.group(1) or m.group(2)).decode("ascii", "replace").lower()
    return "gb18030" if name in _CHINESE_LEGACY else name


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines most evenly (comma if none does)."""
    lines = [line for line in text.splitlines()[:SNIFF_LINES] if line.strip()]
    best, best_score = ",", 0
    for d in DELIMITERS:
        counts = [line.count(d) for line in lines]
        used = [c for c in counts if c]
        score = len(used) * (min(used) if used else 0)
        if score > best_score:
            best, best_score = d, score
    return best


def read_csv(text: str, name: str) -> RawWorkbook:
    """One CSV file as one sheet named after the file (its stem), all values as text."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=sniff_delimiter(text))
    grid: list[list[str | None]] = []
    cells = 0
    try:
        for row in reader:
            cells += len(row)
            if cells > MAX_CSV_CELLS:
                raise UnreadableFile("CSV 文件内容过多,不像是一份月报")
            grid.append([v if v.strip() else None for v in row])
    except csv.Error as exc:
        raise UnreadableFile(f"CSV 文件格式有误({exc})") from exc
    return RawWorkbook("csv", [RawSheet(stem(name), grid)])


def stem(name: str) -> str:
    """'月报.csv' → '月报'; a name without a suffix stays as it is."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base.strip(".") else base

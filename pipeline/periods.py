"""Report periods (YYYY-MM): parsing what clerks write, month ends, statistical years."""

from __future__ import annotations

import calendar
import datetime as dt
import re

from pipeline.text import chinese_number, normalise_text

EXCEL_EPOCH = dt.date(1899, 12, 30)
_PERIOD_PATTERNS = (
    re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?(?:份)?$"),
    re.compile(r"^(\d{4})(\d{2})$"),
    re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*\d{1,2}\s*日?$"),
)
# A month in Chinese numerals after a year ("2026年十月"): read as its digits.
_CHINESE_MONTH = re.compile(r"(\d{4}\s*年\s*)([〇零一二三四五六七八九十]{1,3})(\s*月)")
PERIOD_FORMS = "2026-11、2026年11月 或 202611"


def parse_period(value: object) -> str | None:
    """'2026-11', '2026年11月', '202611', an Excel date or serial → '2026-11'; None if not a month."""
    if isinstance(value, (dt.date, dt.datetime)):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 20000 < value < 80000:  # an Excel date serial
            day = EXCEL_EPOCH + dt.timedelta(days=int(value))
            return f"{day.year:04d}-{day.month:02d}"
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        return None
    text = _digit_months(normalise_text(value).replace(" ", ""))
    for pattern in _PERIOD_PATTERNS:
        m = pattern.match(text)
        if m and 1 <= int(m.group(2)) <= 12 and 1900 < int(m.group(1)) < 2200:
            return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}"
    return None


def find_period_in(text: str) -> str | None:
    """A period named somewhere inside a longer text, such as a file name."""
    text = _digit_months(normalise_text(text))
    for pattern in (r"(\d{4})\s*年\s*(\d{1,2})\s*月", r"(\d{4})[-_.](\d{1,2})(?!\d)", r"(?<!\d)(\d{4})(\d{2})(?!\d)"):
        for m in re.finditer(pattern, text):
            if 1 <= int(m.group(2)) <= 12 and 1990 < int(m.group(1)) < 2200:
                return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}"
    return None


def _digit_months(text: str) -> str:
    """2026年十月 → 2026年10月 (a numeral that is no month is left as it is)."""
    def digits(m: re.Match) -> str:
        number = chinese_number(m.group(2))
        return f"{m.group(1)}{number}{m.group(3)}" if number and 1 <= number <= 12 else m.group(0)
    return _CHINESE_MONTH.sub(digits, text) if "月" in text else text


def month_end(period: str) -> dt.date:
    year, month = int(period[:4]), int(period[5:7])
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def month_start(period: str) -> dt.date:
    return dt.date(int(period[:4]), int(period[5:7]), 1)


def shift(period: str, months: int) -> str:
    """The period `months` later (negative: earlier)."""
    index = int(period[:4]) * 12 + int(period[5:7]) - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def deadline(period: str, day: int) -> dt.date:
    """The due date: `day` of the following month (clamped to that month's length)."""
    nxt = shift(period, 1)
    return month_start(nxt).replace(day=min(day, month_end(nxt).day))


def arrival_window(period: str) -> tuple[dt.datetime, dt.datetime]:
    """When a month's returns arrive: from its first day to the end of the month after (the deadline, and
    the corrections after it). A file quarantined then, whose month could not be told, may be one of them."""
    return (dt.datetime.combine(month_start(period), dt.time()),
            dt.datetime.combine(month_start(shift(period, 2)), dt.time()))


def stat_year_months(period: str, start_month: int = 1) -> list[str]:
    """The periods of the statistical year up to and including `period`."""
    year, month = int(period[:4]), int(period[5:7])
    first_year = year if month >= start_month else year - 1
    first = f"{first_year:04d}-{start_month:02d}"
    months, p = [], first
    while p <= period:
        months.append(p)
        p = shift(p, 1)
    return months


def label_zh(period: str) -> str:
    return f"{int(period[:4])}年{int(period[5:7])}月"

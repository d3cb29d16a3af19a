"""Values as history files write them: money, quantities, currencies, times, names.

Each parser raises :class:`RowError` naming the column, so a rejected row
says which of its values was wrong.
"""

from __future__ import annotations

import decimal
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal

UTC = timezone.utc
ZERO = Decimal("0")


class RowError(ValueError):
    """One value of one input row is unusable; ``str()`` names the column."""

    def __init__(self, column: str, message: str):
        self.column = column
        self.message = message
        super().__init__(f"{column}: {message}")


def text_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_money(value: str, column: str, *, required: bool = True) -> Decimal:
    """A non-negative finite amount such as ``53.91``; empty is 0 unless required."""
    s = value.strip()
    if not s:
        if required:
            raise RowError(column, "missing")
        return ZERO
    try:
        amount = Decimal(s)
    except decimal.InvalidOperation:
        raise RowError(column, f"{value!r} is not an amount") from None
    if not amount.is_finite():
        raise RowError(column, f"{value!r} is not an amount")
    if amount < 0:
        raise RowError(column, f"{value!r} is negative")
    return amount


def parse_quantity(value: str, column: str) -> int:
    s = value.strip()
    if not s.isdigit():
        if not s:
            raise RowError(column, "missing")
        raise RowError(column, f"{value!r} is not a whole number")
    return int(s)


def parse_currency(value: str, column: str) -> str:
    s = value.strip().upper()
    if len(s) != 3 or not s.isalpha() or not s.isascii():
        if not s:
            raise RowError(column, "missing")
        raise RowError(column, f"{value!r} is not an ISO 4217 currency code")
    return s


_OFFSETS: dict[str, tzinfo] = {}


def _offset(text: str, column: str, original: str) -> tzinfo:
    tz = _OFFSETS.get(text)
    if tz is None:
        sign = text[0]
        digits = text[1:].replace(":", "")
        if sign not in "+-" or len(digits) != 4 or not digits.isdigit():
            raise RowError(column, f"{original!r} is not a date and time")
        minutes = int(digits[:2]) * 60 + int(digits[2:])
        if minutes >= 24 * 60:
            raise RowError(column, f"{original!r} has an impossible UTC offset")
        tz = timezone(timedelta(minutes=-minutes if sign == "-" else minutes))
        _OFFSETS[text] = tz
    return tz


_last_time: list = [None, None]  # the last Shopify-format text parsed and its result


def parse_time(value: str, column: str, *, default_tz: tzinfo | None = None) -> datetime:
    """An aware UTC datetime from Shopify's ``2024-01-15 10:23:45 -0500`` or ISO 8601.

    A time without an offset is refused unless ``default_tz`` says which zone
    it is in: guessing would shift it silently.
    """
    if value == _last_time[0]:  # "Paid at" is often "Created at" again
        return _last_time[1]
    s = value.strip()
    if not s:
        raise RowError(column, "missing")
    # Shopify's export format, fast: 'YYYY-MM-DD HH:MM:SS +HHMM'
    if len(s) == 25 and s[10] == " " and s[19] == " " and s[4] == "-" and s[7] == "-":
        tz = _offset(s[20:], column, value)
        try:
            dt = datetime.fromisoformat(s[:19]).replace(tzinfo=tz).astimezone(UTC)
        except ValueError:
            raise RowError(column, f"{value!r} is not a date and time") from None
        _last_time[0], _last_time[1] = value, dt
        return dt
    text = s
    if len(s) > 6 and s[-6] == " " and s[-5] in "+-":  # '2024-01-15T10:23:45 +0500'
        text = s[:-6] + s[-5:]
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(column, f"{value!r} is not a date and time (expected e.g. 2024-01-15 10:23:45 -0500)") from None
    if dt.tzinfo is None:
        if default_tz is None:
            raise RowError(column, f"{value!r} has no UTC offset")
        dt = dt.replace(tzinfo=default_tz)
    return dt.astimezone(UTC)


def parse_date_or_time(value: str, column: str, *, tz: tzinfo, fmt: str | None = None) -> datetime:
    """A purchase date: ``fmt`` (strptime) if given, else ISO date, ``YYYYMMDD`` or a date and time.

    Dates and naive times are in ``tz``; a date means its midnight there.
    """
    s = value.strip()
    if not s:
        raise RowError(column, "missing")
    if fmt:
        try:
            dt = datetime.strptime(s, fmt)
        except ValueError:
            raise RowError(column, f"{value!r} does not match the date format {fmt!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=tz)
        return dt.astimezone(UTC)
    try:
        if len(s) == 10 and s[4] == "-" and s[7] == "-":
            d = date.fromisoformat(s)
            return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)
        if len(s) == 8 and s.isdigit():
            d = date(int(s[:4]), int(s[4:6]), int(s[6:]))
            return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)
    except ValueError:
        raise RowError(column, f"{value!r} is not a date") from None
    return parse_time(s, column, default_tz=tz)


def check_length(value: str | None, column: str, limit: int) -> str | None:
    if value is not None and len(value) > limit:
        raise RowError(column, f"longer than {limit} characters")
    return value


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """``"Ona Petraitė"`` -> (``Ona``, ``Petraitė``); one word is a first name."""
    if not name:
        return None, None
    parts = name.strip().split(None, 1)
    if not parts:
        return None, None
    return parts[0], (parts[1] if len(parts) > 1 else None)

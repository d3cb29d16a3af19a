"""Dates as whole days, vectorised.

The models work on purchase *days* (two orders on one day are one purchase),
so every input date is reduced to an integer day number since 1970-01-01.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np

__all__ = ["DateError", "parse_day", "to_days", "day_to_iso", "compact_days"]

TIME_UNITS = {"days": 1.0, "weeks": 7.0}


class DateError(ValueError):
    """A date that could not be read; ``index`` is the position of the first bad value."""

    def __init__(self, message: str, index: int | None = None, value: str | None = None):
        super().__init__(message)
        self.index = index
        self.value = value


def parse_day(text: str) -> int:
    """One date (``YYYY-MM-DD``, ``YYYYMMDD`` or an ISO datetime) as a day number."""
    return int(_parse_strings(np.array([text.strip()]))[0])


def day_to_iso(day: int | np.integer) -> str:
    return str(np.datetime64(int(day), "D"))


def to_days(values) -> np.ndarray:
    """Day numbers (int64) from datetime64 values, date/datetime objects or strings.

    Aware datetimes are taken in UTC; strings are read as written (the date part
    of an ISO datetime is the date in the writer's own offset).
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[D]").astype(np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind in "US":
        return _parse_strings(arr.astype(str))
    if arr.dtype.kind == "O":
        if arr.size and all(isinstance(v, str) for v in arr.flat):
            return _parse_strings(arr.astype(str))
        return np.fromiter((_object_day(v, i) for i, v in enumerate(arr.flat)), np.int64, arr.size)
    raise DateError(f"cannot read dates from values of type {arr.dtype}")


_EPOCH = date(1970, 1, 1).toordinal()


def _object_day(value, index: int) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.toordinal() - _EPOCH
    if isinstance(value, date):
        return value.toordinal() - _EPOCH
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[D]").astype(np.int64))
    if isinstance(value, str):
        return int(_parse_strings(np.array([value]))[0])
    raise DateError(f"not a date: {value!r}", index, repr(value))


def _parse_strings(arr: np.ndarray) -> np.ndarray:
    arr = np.char.strip(arr)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    lengths = np.char.str_len(arr)
    compact = lengths == 8
    out = np.empty(arr.shape, np.int64)
    if compact.any():
        out[compact] = _parse_compact(arr[compact], np.flatnonzero(compact))
    iso = ~compact
    if iso.any():
        out[iso] = _parse_iso(arr[iso], np.flatnonzero(iso))
    return out


def _parse_compact(arr: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """YYYYMMDD, as CDNOW and many exports write dates."""
    digits = np.char.isdigit(arr)
    if not digits.all():
        i = int(np.flatnonzero(~digits)[0])
        raise DateError(f"not a date: {str(arr[i])!r}", int(positions[i]), str(arr[i]))
    try:
        return compact_days(arr.astype(np.int64))
    except DateError as exc:
        text = str(arr[exc.index])
        raise DateError(f"not a date: {text!r}", int(positions[exc.index]), text) from None


def compact_days(n: np.ndarray) -> np.ndarray:
    """Day numbers from YYYYMMDD integers; ``DateError.index`` is the first impossible date."""
    n = np.asarray(n, dtype=np.int64)
    y, m, d = n // 10000, (n // 100) % 100, n % 100
    months = ((y - 1970) * 12 + (m - 1)).astype("datetime64[M]")
    days = months.astype("datetime64[D]").astype(np.int64) + (d - 1)
    # A day past the month's end would silently roll over; refuse it instead.
    back = days.astype("datetime64[D]").astype("datetime64[M]")
    bad = (m < 1) | (m > 12) | (d < 1) | (back != months)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DateError(f"not a date: {int(n[i]):08d}", i, f"{int(n[i]):08d}")
    return days


def _parse_iso(arr: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """YYYY-MM-DD, optionally followed by a time (``T`` or space) and an offset."""
    arr = np.ascontiguousarray(arr, dtype=f"U{max(arr.dtype.itemsize // 4, 11)}")
    lengths = np.char.str_len(arr)
    sep = arr.view(np.uint32).reshape(arr.size, -1)[:, 10]
    ok = (lengths == 10) | ((lengths > 10) & np.isin(sep, [ord("T"), ord("t"), ord(" ")]))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DateError(f"not a date: {str(arr[i])!r}", int(positions[i]), str(arr[i]))
    head = arr.astype("U10")
    try:
        return head.astype("datetime64[D]").astype(np.int64)
    except ValueError:
        for i, text in enumerate(head):
            try:
                np.datetime64(text, "D")
            except ValueError:
                raise DateError(f"not a date: {str(arr[i])!r}", int(positions[i]), str(arr[i])) from None
        raise

"""Per-customer purchase summaries (frequency, recency, age, spend), vectorised.

The buy-till-you-die models see each customer as four numbers measured at a
calibration cut-off:

- ``x``: repeat purchases, counted on distinct days (the first purchase is
  the customer's birth, not a repeat; two orders on one day are one purchase);
- ``t_x``: time from the first purchase to the last one;
- ``T``: time from the first purchase to the cut-off;
- ``monetary``: mean spend of the repeat purchases (what Gamma-Gamma models).

Everything is sorting and segment reductions in numpy, so millions of
transactions take a second or two, not minutes of Python loops.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .dates import TIME_UNITS, DateError, day_to_iso, to_days

__all__ = ["Summary", "DataError", "summarize", "read_transactions_csv", "Transactions"]


class DataError(ValueError):
    """Bad input data; ``column`` names the column at fault when there is one."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Transactions:
    customer_ids: np.ndarray
    days: np.ndarray  # int64 day numbers since 1970-01-01
    amounts: np.ndarray  # float64; zeros when the source has no amounts

    def __len__(self) -> int:
        return len(self.days)


@dataclass(frozen=True)
class Summary:
    """One row per customer whose first purchase is on or before the cut-off."""

    customer_ids: np.ndarray
    x: np.ndarray  # repeat purchases (distinct days) in the calibration period
    t_x: np.ndarray  # first to last purchase, in time units
    T: np.ndarray  # first purchase to cut-off, in time units
    monetary: np.ndarray  # mean repeat-purchase spend; 0 where x == 0
    first_day: np.ndarray  # int64 day numbers
    last_day: np.ndarray
    total_spend: np.ndarray  # all calibration purchases, the first one included
    calibration_end: int  # day number, inclusive
    time_unit: str
    holdout_end: int | None = None
    holdout_x: np.ndarray | None = None  # distinct purchase days after the cut-off
    holdout_spend: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def unit_days(self) -> float:
        return TIME_UNITS[self.time_unit]

    @property
    def holdout_length(self) -> float | None:
        """Length of the holdout period in time units."""
        if self.holdout_end is None:
            return None
        return (self.holdout_end - self.calibration_end) / self.unit_days

    @property
    def days_since_last(self) -> np.ndarray:
        return (self.calibration_end - self.last_day).astype(np.float64)

    def select(self, mask: np.ndarray) -> "Summary":
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = v[mask] if isinstance(v, np.ndarray) else v
        return Summary(**values)

    def describe(self) -> dict:
        return {
            "customers": int(len(self)),
            "repeat_buyers": int(np.count_nonzero(self.x > 0)),
            "repeat_purchases": int(self.x.sum()),
            "calibration_end": day_to_iso(self.calibration_end),
            "holdout_end": None if self.holdout_end is None else day_to_iso(self.holdout_end),
            "time_unit": self.time_unit,
        }


def summarize(
    customer_ids,
    dates,
    amounts=None,
    *,
    calibration_end=None,
    holdout_end=None,
    time_unit: str = "weeks",
) -> Summary:
    """Summarise transactions per customer at ``calibration_end`` (inclusive).

    ``dates`` may be datetime64, date/datetime objects, ISO or YYYYMMDD strings,
    or day numbers; ``calibration_end``/``holdout_end`` likewise (one value).
    Transactions after ``holdout_end`` are ignored; with no ``calibration_end``
    the last transaction's day is the cut-off.
    """
    if time_unit not in TIME_UNITS:
        raise DataError(f"time unit must be one of {sorted(TIME_UNITS)}, not {time_unit!r}")
    ids = np.asarray(customer_ids)
    days = to_days(dates)
    amt = np.zeros(len(days)) if amounts is None else np.asarray(amounts, dtype=np.float64)
    if not (len(ids) == len(days) == len(amt)):
        raise DataError("customer ids, dates and amounts differ in length")
    if len(days) == 0:
        raise DataError("no transactions")
    cal_end = int(days.max()) if calibration_end is None else _one_day(calibration_end)
    hold_end = None if holdout_end is None else _one_day(holdout_end)
    if hold_end is not None and hold_end <= cal_end:
        raise DataError("the holdout must end after the calibration period")

    in_cal = days <= cal_end
    if not in_cal.any():
        raise DataError(f"no transaction on or before {day_to_iso(cal_end)}")
    cal = _customer_days(ids[in_cal], days[in_cal], amt[in_cal])
    starts = _run_starts(cal.customer)
    uids = cal.customer[starts]
    unit = TIME_UNITS[time_unit]

    n_days = np.diff(np.append(starts, len(cal.day)))
    last_pos = np.append(starts[1:], len(cal.day)) - 1
    first_day, last_day = cal.day[starts], cal.day[last_pos]
    total = np.add.reduceat(cal.spend, starts)
    x = (n_days - 1).astype(np.float64)
    repeat_spend = total - cal.spend[starts]
    monetary = np.where(x > 0, repeat_spend / np.maximum(x, 1), 0.0)

    holdout_x = holdout_spend = None
    if hold_end is not None:
        in_hold = (days > cal_end) & (days <= hold_end)
        hold = _customer_days(ids[in_hold], days[in_hold], amt[in_hold])
        # Queries arrive sorted, so this binary search walks memory in order.
        pos = np.searchsorted(uids, hold.customer)
        pos[pos == len(uids)] = 0
        known = uids[pos] == hold.customer  # holdout buyers who were customers by the cut-off
        holdout_x = np.bincount(pos[known], minlength=len(uids)).astype(np.float64)
        holdout_spend = np.bincount(pos[known], weights=hold.spend[known], minlength=len(uids))

    return Summary(
        customer_ids=uids,
        x=x,
        t_x=(last_day - first_day) / unit,
        T=(cal_end - first_day) / unit,
        monetary=monetary,
        first_day=first_day,
        last_day=last_day,
        total_spend=total,
        calibration_end=cal_end,
        time_unit=time_unit,
        holdout_end=hold_end,
        holdout_x=holdout_x,
        holdout_spend=holdout_spend,
    )


@dataclass(frozen=True)
class _CustomerDays:
    customer: np.ndarray  # customer id of each purchase day; sorted by customer, then day
    day: np.ndarray
    spend: np.ndarray


def _customer_days(ids: np.ndarray, days: np.ndarray, amounts: np.ndarray) -> _CustomerDays:
    """Collapse transactions into one row per (customer, day), sorted by both."""
    if len(days) == 0:
        return _CustomerDays(ids[:0], np.zeros(0, np.int64), np.zeros(0))
    d0 = int(days.min())
    span = int(days.max()) - d0 + 1
    if ids.dtype.kind in "iu" and _fits((int(ids.max()) - int(ids.min()) + 1) * span, len(ids)):
        lo = int(ids.min())
        key = (ids.astype(np.int64) - lo) * span + (days - d0)
        to_customer = lambda k: k // span + lo  # noqa: E731
    else:
        uids, inv = np.unique(ids, return_inverse=True)
        key = inv.astype(np.int64).ravel() * span + (days - d0)
        to_customer = lambda k: uids[k // span]  # noqa: E731
    key, order = _sort_with_order(key)
    starts = _run_starts(key)
    spend = np.add.reduceat(amounts[order], starts)
    ukey = key[starts]
    return _CustomerDays(to_customer(ukey), ukey % span + d0, spend)


def _fits(key_range: int, n: int) -> bool:
    return key_range < (1 << (62 - max(n, 2).bit_length()))


def _sort_with_order(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys and the permutation, like argsort but several times faster.

    Packing the position into the low bits lets numpy's vectorised sort of
    plain int64 do the work; argsort has no such fast path.
    """
    bits = max(len(key), 2).bit_length()
    if len(key) and int(key.max()) < (1 << (62 - bits)) and int(key.min()) >= 0:
        packed = (key << bits) | np.arange(len(key), dtype=np.int64)
        packed.sort()
        return packed >> bits, packed & ((1 << bits) - 1)
    order = np.argsort(key, kind="stable")
    return key[order], order


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    new = np.empty(len(sorted_values), bool)
    if len(new):
        new[0] = True
        np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    return np.flatnonzero(new)


def _one_day(value) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return int(to_days([value])[0])


# --- CSV ---------------------------------------------------------------------


def read_transactions_csv(
    path,
    *,
    customer_col: str = "customer_id",
    date_col: str = "date",
    amount_col: str | None = "amount",
    delimiter: str = ",",
) -> Transactions:
    """Read a CSV with a header row. Errors name the column and the line.

    ``amount_col`` may be None (or absent from the file when it is the
    default) for count-only models; the amounts are then zeros.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path} is empty: expected a header row") from None
        wanted = {"customer": customer_col, "date": date_col}
        if amount_col is not None:
            wanted["amount"] = amount_col
        index = {}
        for role, name in wanted.items():
            if name in header:
                index[role] = header.index(name)
            elif role == "amount" and amount_col == "amount":
                continue  # the default amount column is optional
            else:
                raise DataError(
                    f"column {name!r} not found in {path.name}; its columns are: {', '.join(header)}", name)
        rows = list(reader)
    rows = [r for r in rows if r]  # csv yields [] for a blank line
    if not rows:
        raise DataError(f"{path.name} has a header but no transactions")
    width = max(index.values()) + 1
    short = [i for i, r in enumerate(rows) if len(r) < width]
    if short:
        raise DataError(f"line {short[0] + 2} of {path.name} has {len(rows[short[0]])} fields, expected {len(header)}")
    cols = list(zip(*rows))
    ids = _ids(np.array(cols[index["customer"]]))
    empty_id = np.char.str_len(np.char.strip(np.array(cols[index["customer"]]))) == 0
    if empty_id.any():
        line = int(np.flatnonzero(empty_id)[0]) + 2
        raise DataError(f"column {customer_col!r} is empty on line {line} of {path.name}", customer_col)
    try:
        days = to_days(np.array(cols[index["date"]]))
    except DateError as exc:
        line = "" if exc.index is None else f" on line {exc.index + 2}"
        raise DataError(f"column {date_col!r}{line} of {path.name}: {exc}", date_col) from None
    if "amount" in index:
        amounts = _floats(np.array(cols[index["amount"]]), amount_col, path.name)
    else:
        amounts = np.zeros(len(days))
    return Transactions(ids, days, amounts)


def _ids(raw: np.ndarray) -> np.ndarray:
    """Canonical integer ids become int64, which sorts far faster than text."""
    raw = np.char.strip(raw)
    if raw.size and np.char.isdigit(raw).all() and np.char.str_len(raw).max() < 19:
        # "007" must stay distinct from "7": only ids without a leading zero are canonical.
        first = np.ascontiguousarray(raw).view(np.uint32).reshape(raw.size, -1)[:, 0]
        if not ((first == ord("0")) & (np.char.str_len(raw) > 1)).any():
            return raw.astype(np.int64)
    return raw


def _floats(raw: np.ndarray, column: str, filename: str) -> np.ndarray:
    try:
        values = raw.astype(np.float64)
    except ValueError:
        for i, v in enumerate(raw):
            try:
                float(v)
            except ValueError:
                raise DataError(
                    f"column {column!r} on line {i + 2} of {filename}: not a number: {str(v)!r}", column) from None
        raise
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"column {column!r} on line {i + 2} of {filename}: not a finite number: {raw[i]!r}", column)
    return values

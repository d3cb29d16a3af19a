"""Per-customer purchase summaries (frequency, recency, age, spend), vectorised.

The buy-till-you-die models see each customer as four numbers measured at a
calibration cut-off:

- ``x``: repeat purchases, counted on distinct days (the first purchase is
  the customer's birth, not a repeat; two orders on one day are one purchase);
- ``t_x``: time from the first purchase to the last one;
- ``T``: time from the first purchase to the cut-off;
- ``monetary``: mean spend of the repeat purchases (what Gamma-Gamma models).

Customers become dense integer codes (0..n-1, in the order of their ids), so
the distinct purchase days are one sort of a (customer, day) key that fits in
32 bits for most shops, and every per-customer sum is a ``bincount``: two
million orders take about a tenth of a second. The count models' summary of
integer ids without a holdout needs no codes: the ids and days sort in one
64-bit key. The same numbers computed by the database, for orders already
stored, are in :mod:`.store_summary`.
"""

from __future__ import annotations

import os

from dataclasses import dataclass, fields

import numpy as np

from .codes import dense_codes
from .codes import run_starts as _run_starts
from .twothreads import run_both
from .dates import TIME_UNITS, day_to_iso, to_days
from .transactions import DataError, Transactions, read_transactions_csv

__all__ = ["Summary", "DataError", "summarize", "summarize_transactions", "read_transactions_csv", "Transactions",
           "dense_codes"]


@dataclass(frozen=True)
class Summary:
    """One row per customer whose first purchase is on or before the cut-off."""

    customer_ids: np.ndarray
    x: np.ndarray  # repeat purchases (distinct days) in the calibration period
    t_x: np.ndarray  # first to last purchase, in time units
    T: np.ndarray  # first purchase to cut-off, in time units
    monetary: np.ndarray | None  # mean repeat-purchase spend; 0 where x == 0 (None: summarised without spend)
    first_day: np.ndarray  # int64 day numbers
    last_day: np.ndarray
    total_spend: np.ndarray | None  # all calibration purchases, the first one included (None: as monetary)
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

    def distinct_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x, t_x, T, weights)``: each distinct (x, t_x, T) once, with the number of customers who have it.

        What the count models fit (:func:`.models._fit.aggregate` gives the same rows in the
        same order), made here from whole days: one sort of an integer key per customer
        instead of a sort of three float columns, a few hundredths of a second less at
        200,000 customers (docs/performance.md).
        """
        t_days = self.last_day - self.first_day
        T_days = self.calibration_end - self.first_day
        span = int(T_days.max()) + 1 if len(self) else 1
        top = int(self.x.max()) + 1 if len(self) else 1
        if top * span * span >= 1 << 62 or not np.array_equal(self.x, np.floor(self.x)):
            from .models._fit import aggregate

            (x, t_x, T), w = aggregate([self.x, self.t_x, self.T])
            return x, t_x, T, w
        key = (self.x.astype(np.int64) * span + t_days) * span + T_days
        key.sort()
        starts = _run_starts(key)
        weights = np.diff(np.append(starts, len(key))).astype(np.float64)
        key = key[starts]
        unit = self.unit_days
        return ((key // (span * span)).astype(np.float64), (key // span % span) / unit, (key % span) / unit,
                weights)

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
    ids = np.asarray(customer_ids)
    days = to_days(dates)
    amt = np.zeros(len(days)) if amounts is None else np.asarray(amounts, dtype=np.float64)
    if not (len(ids) == len(days) == len(amt)):
        raise DataError("customer ids, dates and amounts differ in length")
    codes, labels = dense_codes(ids)
    return _summarize_codes(codes, labels, days, amt, calibration_end, holdout_end, time_unit)


def summarize_transactions(tx: Transactions, *, calibration_end=None, holdout_end=None,
                           time_unit: str = "weeks", spend: bool = True) -> Summary:
    """:func:`summarize` for what :func:`read_transactions_csv` returns, using the codes it made.

    ``spend=False`` leaves ``monetary`` and ``total_spend`` out (None): the count
    models do not use them, and fitting one from a CSV skips their cost.
    """
    if tx.codes is None and not spend and holdout_end is None:
        ids = tx.customer_ids
        if ids.dtype.kind == "i" and len(ids):
            lo, hi = tx.id_bounds()
            first, last = tx.day_bounds()
            if (hi - lo + 1) << (last - first + 1).bit_length() < 1 << 62:
                return _summarize_codes(ids, None, tx.days, tx.amounts, calibration_end, None, time_unit, False,
                                        id_offset=lo, bounds=(first, last, hi))
    if tx.codes is None:
        if not (len(tx.customer_ids) == len(tx.days) == len(tx.amounts)):
            raise DataError("customer ids, dates and amounts differ in length")
        # Made once and kept: `evaluate` summarises the same transactions at several cut-offs.
        tx.codes, tx.labels = dense_codes(tx.customer_ids)
    return _summarize_codes(tx.codes, tx.labels, tx.days, tx.amounts, calibration_end, holdout_end, time_unit,
                            spend, bounds=(*tx.day_bounds(), len(tx.labels) - 1) if len(tx) else None)


def _summarize_codes(codes, labels, days, amt, calibration_end, holdout_end, time_unit, spend=True, *,
                     id_offset: int = 0, bounds: tuple[int, int, int] | None = None) -> Summary:
    """The summary from dense codes into ``labels``; or, with ``labels`` None, from integer ids
    ``codes`` of which ``id_offset`` is the smallest (count models without a holdout only: the
    sums below need dense codes).

    The second form is the count models' fast path for a CSV of integer ids: the ids and days
    go into one int64 key, so the one sort of :func:`_distinct_days` both groups the customers
    and finds their distinct days, with no hashing of the ids into codes first.

    ``bounds``, when the caller knows them, is (first day, last day, largest code): passes over
    every row saved.
    """
    if labels is None and (spend or holdout_end is not None):
        raise ValueError("the spend and holdout sums need dense codes")
    if time_unit not in TIME_UNITS:
        raise DataError(f"time unit must be one of {sorted(TIME_UNITS)}, not {time_unit!r}")
    if len(days) == 0:
        raise DataError("no transactions")
    if bounds is None:
        bounds = (int(days.min()), int(days.max()), int(codes.max()))
    cal_end = bounds[1] if calibration_end is None else _one_day(calibration_end)
    hold_end = None if holdout_end is None else _one_day(holdout_end)
    if hold_end is not None and hold_end <= cal_end:
        raise DataError("the holdout must end after the calibration period")

    if cal_end < bounds[0]:
        raise DataError(f"no transaction on or before {day_to_iso(cal_end)}")
    n = 0 if labels is None else len(labels)
    if cal_end >= bounds[1]:
        c, d, a = codes, days, amt
        known: tuple[int, int, int] | None = bounds
    else:
        in_cal = days <= cal_end
        c, d, a = codes[in_cal], days[in_cal], amt[in_cal]
        known = None
        del in_cal
    # uc: codes of the calibration customers, ascending, so their ids are too
    uc, first_day, last_day, n_days = _customer_days(c, d, id_offset, known)
    x = (n_days - 1).astype(np.float64)
    total = monetary = None
    if spend:
        total = np.bincount(c, weights=a, minlength=n)[uc]
        first_of = np.zeros(n, np.int64)
        first_of[uc] = first_day
        on_first = d == first_of[c]
        first_spend = np.bincount(c[on_first], weights=a[on_first], minlength=n)[uc]
        del on_first
        monetary = np.where(x > 0, (total - first_spend) / np.maximum(x, 1), 0.0)
    del c, d, a

    holdout_x = holdout_spend = None
    if hold_end is not None:
        # Holdout purchases of customers born after the cut-off fall outside uc and are dropped.
        in_hold = (days > cal_end) & (days <= hold_end)
        hc, hd = codes[in_hold], days[in_hold]
        hcust, _ = _distinct_days(hc, hd)
        holdout_x = np.bincount(hcust, minlength=n)[uc].astype(np.float64)
        holdout_spend = np.bincount(hc, weights=amt[in_hold], minlength=n)[uc] if spend else None

    unit = TIME_UNITS[time_unit]
    return Summary(
        customer_ids=(uc + id_offset).astype(codes.dtype) if labels is None else labels[uc],
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


def _customer_days(codes: np.ndarray, days: np.ndarray, offset: int = 0,
                   bounds: tuple[int, int, int] | None = None):
    """``(customers, first_day, last_day, distinct_days)``: each customer (code less ``offset``,
    ascending) once, with its first and last purchase day and its number of purchase days.

    One sort of a (customer, day) key (:func:`_sort`), then one pass over it (:func:`_reduce`).
    ``bounds`` is (first day, last day, largest code) if the caller knows them.
    """
    if len(days) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    return _reduce(*_sorted_key(codes, days, offset, bounds))


def _sorted_key(codes: np.ndarray, days: np.ndarray, offset: int, bounds: tuple[int, int, int] | None = None):
    """``(key, bits, d0)``: the sorted (customer code less ``offset``, day) keys of non-empty
    columns, and what takes them apart (``key >> bits`` the customer, ``d0`` + the low bits the day).
    ``bounds`` is (first day, last day, largest code) if the caller knows them."""
    d0, d1, top = bounds or (int(days.min()), int(days.max()), int(codes.max()))
    bits = (d1 - d0).bit_length()
    # A 32-bit key sorts about twice as fast as a 64-bit one.
    small = (top - offset + 1) << bits <= 1 << 32
    key = np.empty(len(days), np.uint32 if small else np.int64)
    _fill_key(key, codes, days, offset, bits, d0)
    _sort(key)
    return key, bits, d0


def _fill_key(key: np.ndarray, codes: np.ndarray, days: np.ndarray, offset: int, bits: int, d0: int) -> None:
    """``key`` = (code - offset) << bits | (day - d0).

    Built a slice at a time, so no 64-bit temporary of every row is ever held. Shifts, not a
    product: taking the key apart by // and % cost as much as the sort.
    """
    step = 1 << 18
    for i in range(0, len(key), step):
        part = np.subtract(codes[i:i + step], offset, dtype=np.int64)
        part <<= bits
        part += days[i:i + step]
        part -= d0
        key[i:i + step] = part


def _reduce(key: np.ndarray, bits: int, d0: int):
    """Per customer of the sorted ``key``: (customer, first day, last day, distinct days).

    Two flags per key, found a slice at a time from each key and the one before it: a new key
    (a new purchase day) and a new customer (the bits above the day differ). The customers'
    runs start at the second flags and their distinct days are sums of the first; nothing of the
    keys' size is made but the two flag arrays, an eighth of the keys each. For 2.1 million keys:
    17 ms of CPU and no new pages, where taking the distinct keys, then the days and customers out
    of them, as arrays took 34 ms and 1,300 page faults (docs/performance.md).
    """
    n = len(key)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    new_day = np.empty(n, bool)
    new_customer = np.empty(n, bool)
    new_day[0] = new_customer[0] = True
    step = 1 << 18
    for i in range(1, n, step):
        j = min(n, i + step)
        diff = np.bitwise_xor(key[i:j], key[i - 1:j - 1])
        np.not_equal(diff, 0, out=new_day[i:j])
        diff >>= bits
        np.not_equal(diff, 0, out=new_customer[i:j])
    starts = np.flatnonzero(new_customer)
    del new_customer
    distinct = np.add.reduceat(new_day, starts, dtype=np.int64)
    first, last = key[starts], key[np.append(starts[1:], n) - 1]
    low = (1 << bits) - 1
    return ((first >> bits).astype(np.int64), (first & low).astype(np.int64) + d0,
            (last & low).astype(np.int64) + d0, distinct)


def _distinct_days(codes: np.ndarray, days: np.ndarray, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (customer code less ``offset``, day) pairs, sorted by code, then day."""
    if len(days) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key, bits, d0 = _sorted_key(codes, days, offset)
    key = key[_run_starts(key)]
    day = (key & ((1 << bits) - 1)).astype(np.int64, copy=False)
    day += d0
    key >>= bits
    return key.astype(np.int64, copy=False), day


#: Rows from which the sort is shared between two threads.
_TWO_THREADS = 1 << 20


def _sort(key: np.ndarray) -> None:
    """Sort ``key`` in place; a large one as two halves on two threads, then merged.

    numpy's sort releases the GIL, so the halves sort on two cores at once; the stable sort
    that follows finds the two sorted runs and merges them in one pass. On processors where
    numpy's vectorised sort is not used (AMD Zen 4 here: about 60 ns a key, not 8) the
    sort was a third of `analyze fit`'s time; halved it is 117 -> 64 ms for 2.1 million keys
    (docs/performance.md).
    """
    if len(key) < _TWO_THREADS or (os.cpu_count() or 1) < 2:
        key.sort()
        return
    half = len(key) // 2
    run_both(key[half:].sort, key[:half].sort, "sort half")
    key.sort(kind="stable")


def _one_day(value) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return int(to_days([value])[0])

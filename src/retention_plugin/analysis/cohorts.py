"""Cohorts by month of first order: how many come back, and how soon."""

from __future__ import annotations

import numpy as np

__all__ = ["cohort_retention", "time_between_orders"]


def _months(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def cohort_retention(customer, day, *, max_months: int = 24) -> dict:
    """Share of each first-order-month cohort buying again in each later month.

    Month 0 is the first order's month (100% by definition). The repeat rate
    is the share with a purchase on at least two distinct days so far; younger
    cohorts have had less time, which the table shows by leaving cells empty.
    """
    customer, day = np.asarray(customer), np.asarray(day, dtype=np.int64)
    if len(day) == 0:
        return {"cohorts": [], "offsets": [], "retention": [], "sizes": [], "repeat_rate": []}
    uids, inv = np.unique(customer, return_inverse=True)
    inv = inv.ravel()
    month = _months(day)
    first_month = np.full(len(uids), np.iinfo(np.int64).max)
    np.minimum.at(first_month, inv, month)
    first_day = np.full(len(uids), np.iinfo(np.int64).max)
    np.minimum.at(first_day, inv, day)
    # Distinct purchase days per customer, for the repeat rate.
    pairs = np.unique(inv.astype(np.int64) * (day.max() - day.min() + 1) + (day - day.min()))
    n_days = np.bincount(pairs // (day.max() - day.min() + 1), minlength=len(uids))

    cohorts = np.arange(first_month.min(), month.max() + 1)
    offsets = np.arange(0, min(max_months, len(cohorts) - 1) + 1)
    offset = month - first_month[inv]
    keep = offset <= offsets[-1]
    cm = (first_month[inv] - cohorts[0])[keep]
    cust_month = np.unique(np.stack([inv[keep], cm, offset[keep]]), axis=1)
    counts = np.zeros((len(cohorts), len(offsets)))
    np.add.at(counts, (cust_month[1], cust_month[2]), 1)
    sizes = np.bincount(first_month - cohorts[0], minlength=len(cohorts)).astype(float)
    last_month = month.max()
    retention = []
    for i, c in enumerate(cohorts):
        row = []
        for j in offsets:
            row.append(None if c + j > last_month or sizes[i] == 0 else float(counts[i, j] / sizes[i]))
        retention.append(row)
    repeat = [float((n_days[first_month == c] >= 2).mean()) if sizes[i] else None for i, c in enumerate(cohorts)]
    labels = [str(np.datetime64(int(c), "M")) for c in cohorts]
    return {"cohorts": labels, "offsets": offsets.tolist(), "retention": retention,
            "sizes": sizes.astype(int).tolist(), "repeat_rate": repeat}


def time_between_orders(customer, day) -> dict:
    """Days between consecutive purchase days of the same customer."""
    customer, day = np.asarray(customer), np.asarray(day, dtype=np.int64)
    order = np.lexsort((day, customer))
    c, d = customer[order], day[order]
    keep = np.ones(len(c), bool)
    keep[1:] = (c[1:] != c[:-1]) | (d[1:] != d[:-1])  # one row per purchase day
    c, d = c[keep], d[keep]
    first = np.ones(len(c), bool)
    first[1:] = c[1:] != c[:-1]
    same = ~first[1:]
    gaps = (d[1:] - d[:-1])[same]
    out = {"gaps": int(len(gaps))}
    if len(gaps):
        q = np.percentile(gaps, [25, 50, 75, 90])
        out.update(p25=float(q[0]), median=float(q[1]), p75=float(q[2]), p90=float(q[3]), mean=float(gaps.mean()))
        first_gap = (d[1:] - d[:-1])[first[:-1] & same]  # from a first purchase day to the next
        out["median_first_to_second"] = float(np.median(first_gap))
        out["histogram"] = _histogram(gaps)
    return out


def _histogram(gaps: np.ndarray) -> dict:
    edges = np.array([0.5, 7.5, 14.5, 30.5, 60.5, 90.5, 180.5, 365.5, np.inf])
    counts, _ = np.histogram(gaps, bins=edges)
    labels = ["1-7", "8-14", "15-30", "31-60", "61-90", "91-180", "181-365", ">365"]
    return {"bins": labels, "counts": counts.astype(int).tolist()}

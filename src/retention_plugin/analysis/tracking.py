"""The aggregate tracking curve (Fader, Hardie & Lee 2005, figure 1 and 2).

The cohort is every customer whose first purchase is on or before the
calibration cut-off. Week by week, the curve adds up their repeat purchases
(distinct purchase days after the first) as they happened, and what a fitted
model expects: each customer contributes ``E[X(t - first)]``, the
unconditional expectation of a customer born on their first-purchase day.
The model sees only the calibration period, so the part of the curve after
the cut-off is a forecast that the actual curve checks.
"""

from __future__ import annotations

import numpy as np

from .dates import TIME_UNITS, day_to_iso

__all__ = ["tracking"]


def _repeat_days(ids: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First-purchase day of each customer, and the (customer index, day) of every repeat purchase day."""
    codes = np.unique(ids, return_inverse=True)[1].ravel().astype(np.int64)
    d0 = int(days.min())
    span = int(days.max()) - d0 + 1
    key = np.unique(codes * span + (days - d0))
    cust, day = key // span, key % span + d0
    first = np.ones(len(key), bool)
    first[1:] = cust[1:] != cust[:-1]
    return day[first], cust[~first], day[~first]


def tracking(customer_ids, days, models: dict, *, calibration_end: int, end: int, time_unit: str = "weeks",
             step_days: int = 7) -> dict | None:
    """Cumulative repeat purchases of the calibration cohort, actual and expected per model.

    ``models`` maps a name to a fitted count model (in ``time_unit``). Returns
    None when there is nothing to plot (no cohort, or no time after the first purchase).
    """
    ids, d = np.asarray(customer_ids), np.asarray(days, dtype=np.int64)
    keep = d <= end
    ids, d = ids[keep], d[keep]
    if len(d) == 0:
        return None
    first, rep_cust, rep_day = _repeat_days(ids, d)
    cohort = first <= calibration_end
    if not cohort.any():
        return None
    rep_day = rep_day[cohort[rep_cust]]
    start = int(first[cohort].min())
    grid = np.arange(start + step_days, end + 1, step_days, dtype=np.int64)
    if grid.size == 0 or grid[-1] != end:
        grid = np.append(grid, end)
    actual = np.searchsorted(np.sort(rep_day), grid, side="right")
    f_days, f_counts = np.unique(first[cohort], return_counts=True)
    unit = TIME_UNITS[time_unit]
    age = np.clip((grid[:, None] - f_days[None, :]) / unit, 0.0, None)
    expected = {}
    for name, model in models.items():
        with np.errstate(all="ignore"):
            e = np.where(age > 0, model.expected_purchases_new(age), 0.0)
        expected[name] = (e @ f_counts).tolist()
    return {
        "calibration_end": day_to_iso(calibration_end),
        "end": day_to_iso(end),
        "time_unit": time_unit,
        "cohort_customers": int(cohort.sum()),
        "days": [day_to_iso(g) for g in grid],
        "t": ((grid - start) / unit).tolist(),
        "calibration_t": (calibration_end - start) / unit,
        "actual": actual.astype(int).tolist(),
        "expected": expected,
    }

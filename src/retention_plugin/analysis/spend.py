"""What the spend model sees: purchases of positive value only.

Gamma-Gamma takes each purchase's value as a draw from a Gamma
distribution, which has no zero or negative values. A free order (a 100%
discount, a replacement) or a negative row (a return written as a
transaction) would drag a customer's mean spend toward zero, or below it,
and bend the fit. So the spend model is fitted on the purchases of positive
value alone: a customer's spend frequency is the number of *positive* purchase
days after their first positive one, and their mean is over those days.
How many transactions were left out is reported, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .summary import summarize

__all__ = ["SpendInputs", "spend_inputs"]


@dataclass(frozen=True)
class SpendInputs:
    x: np.ndarray  # repeat purchase days of positive value, aligned with the customer ids asked for
    monetary: np.ndarray  # their mean value; 0 where x == 0
    excluded_transactions: int  # calibration-period transactions of zero or negative value
    customers_without_positive: int  # customers none of whose purchases had a positive value

    def describe(self) -> dict:
        return {"excluded_non_positive_transactions": self.excluded_transactions,
                "customers_without_positive_purchase": self.customers_without_positive}


def spend_inputs(customer_ids, ids, days, amounts, calibration_end: int) -> SpendInputs:
    """Gamma-Gamma's (x, monetary) for ``customer_ids`` (sorted, as a Summary holds them)."""
    customer_ids = np.asarray(customer_ids)
    ids, days, amounts = np.asarray(ids), np.asarray(days, dtype=np.int64), np.asarray(amounts, dtype=np.float64)
    in_cal = days <= calibration_end
    positive = in_cal & (amounts > 0)
    excluded = int((in_cal & ~(amounts > 0)).sum())
    x = np.zeros(len(customer_ids))
    m = np.zeros(len(customer_ids))
    found = np.zeros(len(customer_ids), bool)
    if positive.any():
        s = summarize(ids[positive], days[positive], amounts[positive], calibration_end=calibration_end)
        pos = np.searchsorted(customer_ids, s.customer_ids)
        pos[pos == len(customer_ids)] = 0
        ok = customer_ids[pos] == s.customer_ids
        x[pos[ok]], m[pos[ok]], found[pos[ok]] = s.x[ok], s.monetary[ok], True
    return SpendInputs(x, m, excluded, int((~found).sum()))

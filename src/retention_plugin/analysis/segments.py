"""Segments: where a customer is in their life with the store, and whether they are still with it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SegmentSettings", "lifecycle", "state", "segment_table"]


@dataclass(frozen=True)
class SegmentSettings:
    repeat_min_purchases: int = 2  # purchase days
    loyal_min_purchases: int = 4
    at_risk_from: float = 0.5  # lost score (P(no purchase in the horizon)) at or above which a customer is at risk
    lost_from: float = 0.8  # ... and lost

    def describe(self) -> dict:
        return {
            "new": f"1 purchase day (fewer than {self.repeat_min_purchases})",
            "repeat": f"{self.repeat_min_purchases} to {self.loyal_min_purchases - 1} purchase days",
            "loyal": f"{self.loyal_min_purchases} or more purchase days",
            "active": f"lost score below {self.at_risk_from:g}",
            "at_risk": f"lost score from {self.at_risk_from:g} to below {self.lost_from:g}",
            "lost": f"lost score {self.lost_from:g} or more",
        }


LIFECYCLE = ("new", "repeat", "loyal")
STATES = ("active", "at_risk", "lost")


def lifecycle(purchase_days, st: SegmentSettings = SegmentSettings()) -> np.ndarray:
    n = np.asarray(purchase_days)
    return np.where(n >= st.loyal_min_purchases, "loyal", np.where(n >= st.repeat_min_purchases, "repeat", "new"))


def state(lost_score, st: SegmentSettings = SegmentSettings()) -> np.ndarray:
    p = np.asarray(lost_score, dtype=np.float64)
    return np.where(p >= st.lost_from, "lost", np.where(p >= st.at_risk_from, "at_risk", "active"))


def segment_table(life: np.ndarray, st_: np.ndarray, historic: np.ndarray, predicted: np.ndarray,
                  at_risk_revenue: np.ndarray) -> list[dict]:
    """Customers, historic and predicted value, and yearly revenue at stake per segment pair."""
    rows = []
    for lc in LIFECYCLE:
        for s in STATES:
            m = (life == lc) & (st_ == s)
            rows.append({"lifecycle": lc, "state": s, "customers": int(m.sum()),
                         "historic_value": round(float(historic[m].sum()), 2),
                         "predicted_value": round(float(predicted[m].sum()), 2),
                         "yearly_revenue_at_stake": round(float(at_risk_revenue[m].sum()), 2)})
    return rows

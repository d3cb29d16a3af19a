"""Small, dependable statistics: proportions and relative risks."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["wilson", "newcombe_difference", "relative_risk", "Z95"]

Z95 = float(ndtri(0.975))


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n; sound even at 0 or n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> dict:
    """p1 - p2 with Newcombe's hybrid score interval (method 10, 1998).

    Built from the two Wilson intervals, it keeps its coverage with small
    groups and rates near 0 or 1, where the Wald interval fails, which is
    exactly the situation of a 10% holdout.
    """
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return {"difference": float(d), "ci_low": float(lo), "ci_high": float(hi)}


def relative_risk(a: int, n1: int, c: int, n0: int, z: float = Z95) -> dict:
    """Risk ratio (a/n1)/(c/n0) with the log-method 95% interval and the two-sided p-value of RR = 1.

    A zero cell gets Haldane's correction (0.5 added to each of the four
    cells) so the ratio and its interval stay finite; ``corrected`` says so.
    """
    if n1 == 0 or n0 == 0:
        return {"rr": None, "ci_low": None, "ci_high": None, "p_value": None, "corrected": False}
    b, d = n1 - a, n0 - c
    corrected = min(a, b, c, d) == 0
    if corrected:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    m1, m0 = a + b, c + d
    rr = (a / m1) / (c / m0)
    se = np.sqrt(1 / a - 1 / m1 + 1 / c - 1 / m0)
    return {"rr": float(rr), "ci_low": float(rr * np.exp(-z * se)), "ci_high": float(rr * np.exp(z * se)),
            "p_value": float(2 * ndtr(-abs(np.log(rr)) / se)), "corrected": bool(corrected)}

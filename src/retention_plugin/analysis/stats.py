"""Small, dependable statistics: proportions, relative risks, logistic regression."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr, ndtri

__all__ = ["wilson", "newcombe_difference", "relative_risk", "logistic_regression"]

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
    """Risk ratio (a/n1)/(c/n0) with the log-method 95% interval.

    A zero cell gets Haldane's correction (0.5 added to each of the four
    cells) so the ratio and its interval stay finite; ``corrected`` says so.
    """
    if n1 == 0 or n0 == 0:
        return {"rr": None, "ci_low": None, "ci_high": None, "corrected": False}
    b, d = n1 - a, n0 - c
    corrected = min(a, b, c, d) == 0
    if corrected:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    m1, m0 = a + b, c + d
    rr = (a / m1) / (c / m0)
    se = np.sqrt(1 / a - 1 / m1 + 1 / c - 1 / m0)
    return {"rr": float(rr), "ci_low": float(rr * np.exp(-z * se)), "ci_high": float(rr * np.exp(z * se)),
            "corrected": bool(corrected)}


def logistic_regression(X: np.ndarray, y: np.ndarray, names: list[str], *, max_iter: int = 50) -> dict:
    """Maximum-likelihood logistic regression by IRLS (Newton's method).

    ``X`` holds the covariates without an intercept (one is added). Returns
    odds ratios with Wald 95% intervals, or ``{"error": ...}`` when the data
    cannot support the model (perfect separation, collinearity).
    """
    X = np.column_stack([np.ones(len(y)), np.asarray(X, dtype=np.float64)])
    y = np.asarray(y, dtype=np.float64)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        return {"error": "signals are collinear (some always occur together or never vary)"}
    beta = np.zeros(X.shape[1])
    beta[0] = np.log((y.mean() + 1e-9) / (1 - y.mean() + 1e-9))
    prev = -np.inf
    for it in range(max_iter):
        p = expit(X @ beta)
        W = np.clip(p * (1 - p), 1e-12, None)
        grad = X.T @ (y - p)
        H = (X * W[:, None]).T @ X
        step = np.linalg.solve(H, grad)
        beta = beta + step
        ll = float(np.sum(y * np.log(np.clip(expit(X @ beta), 1e-300, 1)) +
                          (1 - y) * np.log(np.clip(1 - expit(X @ beta), 1e-300, 1))))
        if abs(ll - prev) < 1e-10 * (1 + abs(ll)):
            break
        prev = ll
    if np.any(np.abs(beta) > 15):
        return {"error": "some signal predicts the outcome perfectly (separation): odds ratios are unbounded"}
    p = expit(X @ beta)
    H = (X * (p * (1 - p))[:, None]).T @ X
    se = np.sqrt(np.diag(np.linalg.inv(H)))
    rows = []
    for j, name in enumerate(names, start=1):
        zval = beta[j] / se[j]
        rows.append({"signal": name, "odds_ratio": float(np.exp(beta[j])),
                     "ci_low": float(np.exp(beta[j] - Z95 * se[j])), "ci_high": float(np.exp(beta[j] + Z95 * se[j])),
                     "p_value": float(2 * ndtr(-abs(zval)))})
    return {"n": int(len(y)), "events": int(y.sum()), "iterations": it + 1, "loglik": ll, "coefficients": rows}

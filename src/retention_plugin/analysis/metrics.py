"""Scoring metrics: rank AUC with DeLong's variance, calibration by decile,
and a monotone (isotonic) calibration for scores that are not probabilities."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["auc", "delong", "compare_auc", "decile_table", "isotonic_fit", "brier", "reliability", "correlation",
           "MIN_EACH_OUTCOME", "outcome_shortfall"]

#: Fewer customers than this on either side of the outcome (bought / did not): AUCs, their
#: intervals and calibration are "not enough data", never a number computed from a handful.
MIN_EACH_OUTCOME = 10


def outcome_shortfall(y, minimum: int = MIN_EACH_OUTCOME) -> str | None:
    """Why ``y`` is too thin to judge a score on, or None when it is not."""
    y = np.asarray(y, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if min(n1, n0) >= minimum:
        return None
    return (f"not enough data: {n1:,} customers made no purchase in the holdout and {n0:,} did; "
            f"judging a score needs at least {minimum} of each")

Z95 = float(ndtri(0.975))


def rankdata(a) -> np.ndarray:
    """Ranks from 1, ties given the mean of their ranks; all NaN if any value is NaN.

    What ``scipy.stats.rankdata(a)`` returns for a 1-d array (its "average" method and
    "propagate" policy), value for value: the ranks are whole or half numbers, exact in
    floating point. Kept here because importing ``scipy.stats`` costs the daily
    early-warning task about 23 MB of its memory for this one function.
    """
    x = np.asarray(a).ravel()
    n = len(x)
    if n == 0:
        return np.empty(0, np.float64)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    first = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(first, append=n)
    ranks = np.empty(n, np.float64)
    ranks[order] = np.repeat((first + 1) + (counts - 1) / 2, counts)
    if x.dtype.kind in "fc" and np.isnan(x).any():
        ranks[:] = np.nan
    return ranks


def auc(score, y) -> float:
    """P(score of a random positive > score of a random negative), ties count half.

    This is the Mann-Whitney U statistic divided by n1 * n0.
    """
    score, y = np.asarray(score, dtype=np.float64), np.asarray(y, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def delong(scores: list, y) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of several scores on the same cases and their covariance (DeLong 1988).

    Uses the midrank formulation of Sun & Xu (2014), O(n log n) per score.
    """
    y = np.asarray(y, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 < 2 or n0 < 2:
        k = len(scores)
        return np.full(k, np.nan), np.full((k, k), np.nan)
    v10, v01, aucs = [], [], []
    for s in scores:
        s = np.asarray(s, dtype=np.float64)
        pos, neg = s[y], s[~y]
        tz = rankdata(s)
        tx, ty = rankdata(pos), rankdata(neg)
        a = (tz[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
        aucs.append(a)
        v10.append((tz[y] - tx) / n0)
        v01.append(1.0 - (tz[~y] - ty) / n1)
    s10 = np.atleast_2d(np.cov(np.array(v10)))
    s01 = np.atleast_2d(np.cov(np.array(v01)))
    return np.array(aucs), s10 / n1 + s01 / n0


def compare_auc(score_a, score_b, y) -> dict:
    """AUC(a) - AUC(b) with a 95% interval and two-sided p-value (paired DeLong test).

    With fewer than :data:`MIN_EACH_OUTCOME` cases of either outcome every figure is None and
    ``reason`` says so: DeLong's variance is meaningless there. The interval is clipped to
    [-1, 1], the range a difference of two AUCs can take.
    """
    short = outcome_shortfall(y)
    if short:
        return {"auc_a": None, "auc_b": None, "difference": None, "se_a": None, "se_b": None,
                "ci_low": None, "ci_high": None, "p_value": None, "reason": short}
    aucs, cov = delong([score_a, score_b], y)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = np.sqrt(max(var, 0.0))
    out = {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff,
           "se_a": float(np.sqrt(cov[0, 0])), "se_b": float(np.sqrt(cov[1, 1]))}
    if se > 0:
        out.update(ci_low=max(-1.0, diff - Z95 * se), ci_high=min(1.0, diff + Z95 * se),
                   p_value=float(2 * ndtr(-abs(diff) / se)))
    else:
        out.update(ci_low=diff, ci_high=diff, p_value=1.0 if diff == 0 else 0.0)
    return out


def brier(p, y) -> dict:
    """Brier score of probabilities ``p`` for the event ``y``, and its skill against the base rate.

    ``skill`` = 1 - Brier / Brier(always predicting the observed rate): above 0
    the probabilities carry information beyond the average, 1 is perfect.
    """
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return {"brier": None, "reference": None, "skill": None}
    b = float(np.mean((p - y) ** 2))
    rate = float(y.mean())
    ref = rate * (1 - rate)
    return {"brier": b, "reference": ref, "skill": (1 - b / ref) if ref > 0 else None}


def reliability(p, y, bins: int = 10) -> list[dict]:
    """Reliability curve: cases binned by predicted probability (equal-width bins on [0, 1]).

    Each non-empty bin has its count, mean predicted probability and observed
    rate with a Wilson 95% interval; a calibrated score has the observed rate
    close to the prediction in every bin.
    """
    from .stats import wilson

    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        n = int(m.sum())
        if n == 0:
            continue
        k = int(y[m].sum())
        lo, hi = wilson(k, n)
        rows.append({"bin_low": float(edges[b]), "bin_high": float(edges[b + 1]), "n": n,
                     "predicted": float(p[m].mean()), "observed": k / n, "observed_low": lo, "observed_high": hi})
    return rows


def correlation(a, b) -> float | None:
    """Pearson correlation, or None when either side does not vary (rather than NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def decile_table(score, y, *, predicted=None, predicted_count=None, actual_count=None, bins: int = 10) -> list[dict]:
    """Cases split into ``bins`` groups of (nearly) equal size by ascending score.

    Each row has the score range, the observed share of positives and, when
    given, the mean predicted probability and predicted vs actual counts: a
    calibrated model has ``predicted`` close to ``observed`` in every row.
    """
    score, y = np.asarray(score, dtype=np.float64), np.asarray(y, dtype=bool)
    order = np.argsort(score, kind="stable")
    rows = []
    for i, idx in enumerate(np.array_split(order, min(bins, len(order)))):
        if len(idx) == 0:
            continue
        row = {"decile": i + 1, "n": int(len(idx)), "score_min": float(score[idx].min()),
               "score_max": float(score[idx].max()), "observed": float(y[idx].mean())}
        if predicted is not None:
            row["predicted"] = float(np.mean(np.asarray(predicted)[idx]))
        if predicted_count is not None:
            row["predicted_count"] = float(np.mean(np.asarray(predicted_count)[idx]))
        if actual_count is not None:
            row["actual_count"] = float(np.mean(np.asarray(actual_count)[idx]))
        rows.append(row)
    return rows


def isotonic_fit(score, y) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing step function from score to P(y) (pool adjacent violators).

    Returns knots (distinct scores) and fitted probabilities for ``np.interp``.
    Used to turn "days since last purchase" into a probability when that
    baseline is the better lost score.
    """
    score, y = np.asarray(score, dtype=np.float64), np.asarray(y, dtype=np.float64)
    knots, inv = np.unique(score, return_inverse=True)
    sums = np.bincount(inv, weights=y)
    counts = np.bincount(inv).astype(np.float64)
    # Blocks as parallel lists: value sum, weight, first knot index.
    vs, ws, starts = [], [], []
    for i in range(len(knots)):
        vs.append(sums[i]); ws.append(counts[i]); starts.append(i)  # noqa: E702
        while len(vs) > 1 and vs[-2] / ws[-2] > vs[-1] / ws[-1]:
            v, w = vs.pop(), ws.pop()
            starts.pop()
            vs[-1] += v
            ws[-1] += w
    fitted = np.empty(len(knots))
    bounds = starts + [len(knots)]
    for j in range(len(vs)):
        fitted[bounds[j]:bounds[j + 1]] = vs[j] / ws[j]
    return knots, fitted

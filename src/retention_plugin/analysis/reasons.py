"""Why customers left: how much more often customers with a signal were lost.

Every figure is an association in the store's own history, measured with the
signal observed *before* the outcome window; none of it is a cause. Each row
says how many customers stand behind it.
"""

from __future__ import annotations

import numpy as np

from .dates import day_to_iso
from .history import History
from .signals import SignalSettings, compute_signals, label
from .stats import logistic_regression, relative_risk
from .summary import summarize

__all__ = ["why_they_left", "reasons_table", "multivariate", "MIN_WITH_SIGNAL"]

#: Fewer customers than this with (or without) a signal: the row is shown but not ranked.
MIN_WITH_SIGNAL = 10
#: Events per variable a logistic regression needs to be worth showing (Peduzzi et al. 1996).
EVENTS_PER_VARIABLE = 10


def reasons_table(lost, signals: dict[str, np.ndarray], *, min_count: int = MIN_WITH_SIGNAL) -> list[dict]:
    """One row per signal: loss rate with and without it, relative risk, counts.

    Rows are ranked by the lower end of the relative risk's 95% interval, so a
    signal comes first only when the data say it is both strong and sure;
    rows with too few customers, or that every customer shares, come last.
    """
    lost = np.asarray(lost, dtype=bool)
    rows = []
    for name, has in signals.items():
        has = np.asarray(has, dtype=bool)
        n1, n0 = int(has.sum()), int((~has).sum())
        a, c = int((lost & has).sum()), int((lost & ~has).sum())
        rr = relative_risk(a, n1, c, n0)
        rows.append({
            "signal": name,
            "customers_with": n1, "lost_with": a, "rate_with": a / n1 if n1 else None,
            "customers_without": n0, "lost_without": c, "rate_without": c / n0 if n0 else None,
            **rr,
            "ranked": n1 >= min_count and n0 >= min_count and rr["rr"] is not None,
        })
    rows.sort(key=lambda r: (not r["ranked"], -(r["ci_low"] if r["ci_low"] is not None else -1), r["signal"]))
    for i, r in enumerate(rows, start=1):
        r["rank"] = i if r["ranked"] else None
    return rows


def multivariate(lost, signals: dict[str, np.ndarray], *, min_count: int = MIN_WITH_SIGNAL) -> dict:
    """Logistic regression of lost on all usable signals at once, when the data suffice.

    Adjusted odds ratios separate signals that travel together (a complaint
    and a slow reply, say). It is fitted only with at least ten of the rarer
    outcome per signal; otherwise the reason is returned instead.
    """
    lost = np.asarray(lost, dtype=bool)
    usable = {k: np.asarray(v, bool) for k, v in signals.items()
              if min_count <= int(np.sum(v)) <= len(lost) - min_count}
    if not usable:
        return {"fitted": False, "reason": "no signal has enough customers with and without it"}
    rarer = int(min(lost.sum(), (~lost).sum()))
    needed = EVENTS_PER_VARIABLE * len(usable)
    if rarer < needed:
        return {"fitted": False, "reason": f"{rarer} customers in the rarer outcome; {len(usable)} signals need "
                                            f"at least {needed} ({EVENTS_PER_VARIABLE} per signal)"}
    # Category dummies always sum to one with the intercept: the most common is the reference.
    cats = sorted((k for k in usable if k.startswith("last_category:")), key=lambda k: -usable[k].sum())
    if cats and sum(usable[k].sum() for k in cats) == len(lost):
        del usable[cats[0]]
    names = list(usable)
    res = logistic_regression(np.column_stack([usable[k] for k in names]).astype(float), lost, names)
    if "error" in res:
        return {"fitted": False, "reason": res["error"]}
    return {"fitted": True, "model": "logistic regression", **res}


def why_they_left(history: History, *, window_days: int = 90, extra_signals: dict | None = None,
                  settings: SignalSettings = SignalSettings()) -> dict:
    """Who stopped buying in the last ``window_days``, and what they had in common.

    The customers studied are those who bought in the ``window_days`` before
    the cut-off (``as_of - window_days``), so each was demonstrably active; a
    customer is *lost* when they then made no purchase up to ``as_of``.
    Customers who had already gone quiet earlier are left out: signals seen
    after someone left (a single purchase, say) would otherwise pose as causes.
    Signals are measured up to the cut-off, before the outcome.

    ``extra_signals`` maps a name to a set of customer ids (the ``customer_signals`` hook).
    """
    cut = history.as_of - window_days
    o = history.orders
    base = {"cut_off": day_to_iso(cut), "as_of": day_to_iso(history.as_of), "window_days": window_days}
    if not (o.day <= cut).any() or not (o.day > cut).any():
        return {**base, "customers": 0, "lost": 0, "rows": [], "multivariate": {"fitted": False,
                "reason": "no orders on one side of the cut-off"}}
    s = summarize(o.customer, o.day, o.amount, calibration_end=cut, holdout_end=history.as_of, time_unit="days")
    s = s.select(s.last_day > cut - window_days)
    lost = s.holdout_x == 0
    signals = compute_signals(history, s.customer_ids, cut, settings)
    for name, ids in (extra_signals or {}).items():
        signals[f"hook:{name}"] = np.isin(s.customer_ids, np.fromiter(ids, dtype=np.int64, count=len(ids)))
    rows = reasons_table(lost, signals)
    for r in rows:
        r["label"] = label(r["signal"], settings)
    return {**base, "customers": int(len(s)), "lost": int(lost.sum()), "rows": rows,
            "multivariate": multivariate(lost, signals)}

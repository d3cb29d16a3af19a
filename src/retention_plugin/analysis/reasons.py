"""Why customers left: what the lost customers had in common, raw and adjusted.

Every figure is an association in the store's own history, measured with
signals known *before* the outcome window (:mod:`.signals`); none of it is a
cause. Two views:

- the table: for each signal, how much more often customers with it were
  lost in the last window than customers without it (relative risk, counts,
  Benjamini-Hochberg q-values across the signals);
- the adjusted model (:mod:`.hazard`): lapse-rate ratios of all signals
  together, controlling for recency, frequency, tenure, spend and period,
  also with Benjamini-Hochberg control. Where the two disagree (refunds and
  late deliveries happen more to frequent buyers, who are rarely lost, so
  they look protective in the table), the adjusted model is the one to read.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import false_discovery_control

from .dates import day_to_iso
from .hazard import HazardSettings, adjusted_model
from .history import History
from .signals import SignalSettings, compute_signals, label
from .stats import relative_risk
from .summary import summarize

__all__ = ["why_they_left", "reasons_table", "MIN_WITH_SIGNAL", "FDR"]

#: Fewer customers than this with (or without) a signal: the row is shown but not ranked.
MIN_WITH_SIGNAL = 10
#: False discovery rate held across the signals (Benjamini-Hochberg).
FDR = 0.05


def reasons_table(lost, signals: dict[str, np.ndarray], *, min_count: int = MIN_WITH_SIGNAL) -> list[dict]:
    """One row per signal: loss rate with and without it, relative risk, counts, q-value.

    A signal's value may be NaN for customers where the data cannot tell
    (no fulfilment data, say): they count in neither group, and
    ``customers_unknown`` says how many. Rows are ranked by the lower end of
    the relative risk's 95% interval, so a signal comes first only when the
    data say it is both strong and sure; rows with too few customers, or that
    every customer shares, come last. ``q_value`` is the Benjamini-Hochberg
    adjusted p-value across the ranked rows; ``significant`` means q < 5%.
    """
    lost = np.asarray(lost, dtype=bool)
    rows = []
    for name, values in signals.items():
        v = np.asarray(values, dtype=np.float64)
        unknown = np.isnan(v)
        has = ~unknown & (v > 0)
        hasnt = ~unknown & ~has
        n1, n0 = int(has.sum()), int(hasnt.sum())
        a, c = int((lost & has).sum()), int((lost & hasnt).sum())
        rr = relative_risk(a, n1, c, n0)
        rows.append({
            "signal": name,
            "customers_with": n1, "lost_with": a, "rate_with": a / n1 if n1 else None,
            "customers_without": n0, "lost_without": c, "rate_without": c / n0 if n0 else None,
            "customers_unknown": int(unknown.sum()),
            **rr,
            "ranked": n1 >= min_count and n0 >= min_count and rr["rr"] is not None,
        })
    ranked = [r for r in rows if r["ranked"]]
    if ranked:
        q = np.atleast_1d(false_discovery_control([r["p_value"] for r in ranked], method="bh"))
        for r, qv in zip(ranked, q):
            r["q_value"] = float(qv)
            r["significant"] = bool(qv < FDR)
    for r in rows:
        r.setdefault("q_value", None)
        r.setdefault("significant", False)
    rows.sort(key=lambda r: (not r["ranked"], -(r["ci_low"] if r["ci_low"] is not None else -1), r["signal"]))
    for i, r in enumerate(rows, start=1):
        r["rank"] = i if r["ranked"] else None
    return rows


def why_they_left(history: History, *, window_days: int = 90, extra_signals: dict | None = None,
                  settings: SignalSettings = SignalSettings(), hazard: HazardSettings | None = None) -> dict:
    """Who stopped buying in the last ``window_days``, and what they had in common.

    The customers studied are those who bought in the ``window_days`` before
    the cut-off (``as_of - window_days``), so each was demonstrably active; a
    customer is *lost* when they then made no purchase up to ``as_of``.
    Customers who had already gone quiet earlier are left out: signals seen
    after someone left (a single purchase, say) would otherwise pose as causes.
    Signals are measured up to the cut-off, before the outcome.

    ``extra_signals`` maps a name to a set of customer ids (the ``customer_signals``
    hook); plugins say nothing about when a signal arose, so those rows say so.
    ``result["adjusted"]`` is the hazard model (:func:`.hazard.adjusted_model`)
    with the same lapse window.
    """
    cut = history.as_of - window_days
    o = history.orders
    hz = hazard or HazardSettings(lapse_days=window_days)
    base = {"cut_off": day_to_iso(cut), "as_of": day_to_iso(history.as_of), "window_days": window_days,
            "wording": "associations in this store's history, measured before the outcome; not causes"}
    adjusted = adjusted_model(history, settings=hz, signal_settings=settings, extra_signals=extra_signals)
    if not (o.day <= cut).any() or not (o.day > cut).any():
        return {**base, "customers": 0, "lost": 0, "rows": [], "adjusted": adjusted}
    s = summarize(o.customer, o.day, o.amount, calibration_end=cut, holdout_end=history.as_of, time_unit="days")
    s = s.select(s.last_day > cut - window_days)
    lost = s.holdout_x == 0
    signals = compute_signals(history, s.customer_ids, cut, settings)
    for name, ids in (extra_signals or {}).items():
        signals[f"hook:{name}"] = np.isin(s.customer_ids, np.fromiter(ids, dtype=np.int64, count=len(ids)))
    rows = reasons_table(lost, signals)
    for r in rows:
        r["label"] = label(r["signal"], settings)
        if r["signal"].startswith("hook:"):
            r["timing"] = "as reported by the plugin now; not checked against the cut-off"
    return {**base, "customers": int(len(s)), "lost": int(lost.sum()), "rows": rows, "adjusted": adjusted}

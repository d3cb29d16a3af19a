"""The warning signs, measured per customer up to a cut-off.

Each signal is a yes/no per customer, using only what was known by the end
of the cut-off day, so it precedes the outcome it is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .history import History

__all__ = ["SignalSettings", "compute_signals", "SIGNAL_LABELS"]

DAY = 86400.0


@dataclass(frozen=True)
class SignalSettings:
    slow_reply_hours: float = 48.0  # first public reply slower than this
    bad_rating_below: float = 0.5  # ratings run 0 (worst) .. 1 (best)
    late_fulfilment_days: float = 5.0
    min_category_customers: int = 10  # smaller categories are not tested on their own


def signal_labels(st: SignalSettings) -> dict[str, str]:
    return {
        "complaint": "made a complaint",
        "bad_rating": f"gave a rating below {st.bad_rating_below:g} (0 = worst, 1 = best)",
        "slow_first_reply": f"waited more than {st.slow_reply_hours:g} hours for a first reply",
        "unresolved_ticket": "had a ticket still unresolved",
        "refund": "received a refund",
        "late_fulfilment": f"had an order fulfilled more than {st.late_fulfilment_days:g} days after it was placed",
        "discount_only": "bought only with discounts",
        "single_purchase": "bought only once",
    }


SIGNAL_LABELS = signal_labels(SignalSettings())


def _any_per_customer(ids: np.ndarray, customer: np.ndarray, mask: np.ndarray) -> np.ndarray:
    hit = np.unique(customer[mask])
    return np.isin(ids, hit)


def compute_signals(history: History, ids: np.ndarray, cut_day: int,
                    settings: SignalSettings = SignalSettings()) -> dict[str, np.ndarray]:
    """``{signal: bool array aligned with ids}``, known by the end of ``cut_day``."""
    cut_end = (cut_day + 1) * DAY  # epoch seconds at the end of the cut-off day
    o, t, r, f = history.orders, history.tickets, history.ratings, history.refunds
    out: dict[str, np.ndarray] = {}

    opened = t.created < cut_end
    out["complaint"] = _any_per_customer(ids, t.customer, opened & t.complaint)
    out["bad_rating"] = _any_per_customer(ids, r.customer, (r.time < cut_end) & (r.value < settings.bad_rating_below))
    limit = settings.slow_reply_hours * 3600
    with np.errstate(invalid="ignore"):
        replied_late = t.first_reply - t.created > limit
        # Still waiting at the cut-off and already past the limit counts as slow too.
        unanswered = (np.isnan(t.first_reply) | (t.first_reply >= cut_end)) & (cut_end - t.created > limit)
        unresolved = np.isnan(t.solved) | (t.solved >= cut_end)
    out["slow_first_reply"] = _any_per_customer(ids, t.customer, opened & ((replied_late & (t.first_reply < cut_end)) | unanswered))
    out["unresolved_ticket"] = _any_per_customer(ids, t.customer, opened & unresolved)
    out["refund"] = _any_per_customer(ids, f.customer, f.time < cut_end)

    bought = o.day <= cut_day
    with np.errstate(invalid="ignore"):
        late_done = o.fulfil_days > settings.late_fulfilment_days
    waiting = np.isnan(o.fulfil_days) & (cut_day - o.day > settings.late_fulfilment_days)
    out["late_fulfilment"] = _any_per_customer(ids, o.customer, bought & (late_done | waiting))

    # Per-customer order facts: sort orders by (customer, day) once.
    oc, od = o.customer[bought], o.day[bought]
    order = np.lexsort((od, oc))
    oc, od = oc[order], od[order]
    disc, cat = o.discounted[bought][order], o.category[bought][order]
    pos = np.searchsorted(ids, oc)
    pos[pos == len(ids)] = 0
    known = ids[pos] == oc
    n_orders = np.bincount(pos[known], minlength=len(ids))
    n_disc = np.bincount(pos[known], weights=disc[known].astype(float), minlength=len(ids))
    out["discount_only"] = (n_orders > 0) & (n_disc == n_orders)
    days_per = _distinct_days(pos[known], od[known], len(ids))
    out["single_purchase"] = days_per == 1

    # The category of each customer's last order, one signal per common category.
    last = np.full(len(ids), "", dtype=object)
    if known.any():
        kp, kc = pos[known], cat[known]
        is_last = np.append(kp[1:] != kp[:-1], True)
        last[kp[is_last]] = kc[is_last]
    names, counts = np.unique(last[last != ""].astype(str), return_counts=True) if (last != "").any() else ([], [])
    if len(names) > 1:  # one category for everybody compares with nothing
        for name, count in zip(names, counts):
            if count >= settings.min_category_customers:
                out[f"last_category:{name}"] = last == name
    return out


def _distinct_days(pos: np.ndarray, day: np.ndarray, n: int) -> np.ndarray:
    if len(pos) == 0:
        return np.zeros(n, np.int64)
    new = np.ones(len(pos), bool)
    new[1:] = (pos[1:] != pos[:-1]) | (day[1:] != day[:-1])
    return np.bincount(pos[new], minlength=n)


def label(name: str, settings: SignalSettings = SignalSettings()) -> str:
    labels = signal_labels(settings)
    if name in labels:
        return labels[name]
    if name.startswith("last_category:"):
        return f"last order was in category {name.split(':', 1)[1]!r}"
    if name.startswith("hook:"):
        return f"{name.split(':', 1)[1]} (from a plugin)"
    return name

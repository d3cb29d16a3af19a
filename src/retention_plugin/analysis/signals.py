"""The warning signs, measured per customer up to a cut-off.

Each signal is a yes/no per customer, using only what was known by the end
of the cut-off day, so it precedes the outcome it is compared with: a
ticket counts from when it was opened, a rating from when it was given, a
refund from when it was made, and a fulfilment from when it happened (an
order fulfilled after the cut-off was, at the cut-off, still waiting). Where
the data cannot say (orders without fulfilment data, typically imports), the
signal is unknown (NaN), not "no" and never "yes".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .history import History

__all__ = ["SignalSettings", "compute_signals", "SIGNAL_LABELS", "amounts_known_at"]

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
        "late_fulfilment": f"had an order fulfilled more than {st.late_fulfilment_days:g} days after it was placed "
                           f"(or still waiting that long)",
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
    late = (replied_late & (t.first_reply < cut_end)) | unanswered
    out["slow_first_reply"] = _any_per_customer(ids, t.customer, opened & late)
    out["unresolved_ticket"] = _any_per_customer(ids, t.customer, opened & unresolved)
    out["refund"] = _any_per_customer(ids, f.customer, f.time < cut_end)

    bought = o.day <= cut_day
    out["late_fulfilment"] = _late_fulfilment(o, ids, cut_day, bought, settings.late_fulfilment_days)

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


def _late_fulfilment(o, ids: np.ndarray, cut_day: int, bought: np.ndarray, limit: float) -> np.ndarray:
    """1 (late), 0 (every known order on time so far) or NaN (no order with known fulfilment data).

    The fulfilment time is counted as known at the cut-off only when it fell on
    or before the cut-off day (orders carry a day, so a fulfilment within that
    day counts the next day: never early). An order not fulfilled by then was
    waiting, and is late once it has waited longer than ``limit`` days.
    """
    known = o.fulfil_known if o.fulfil_known is not None else np.isfinite(o.fulfil_days)
    fd = o.fulfil_days
    with np.errstate(invalid="ignore"):
        done_by_cut = known & np.isfinite(fd) & (o.day + fd <= cut_day)
        late_done = done_by_cut & (fd > limit)
    waiting = known & ~done_by_cut & (cut_day - o.day > limit)
    late = _any_per_customer(ids, o.customer, bought & (late_done | waiting))
    informed = _any_per_customer(ids, o.customer, bought & known)
    return np.where(late, 1.0, np.where(informed, 0.0, np.nan))


def amounts_known_at(history: History, cut_day: int) -> np.ndarray:
    """Each order's value as it stood at the end of ``cut_day``: refunds made later are added back.

    Order values arrive net of every refund recorded so far; a refund made
    after the cut-off was not known then, so a figure "as of the cut-off" must
    not subtract it. Refunds whose order day is unknown cannot be placed and
    are left as they are.
    """
    o, f = history.orders, history.refunds
    amount = o.amount.copy()
    if f.order_day is None or len(f.time) == 0:
        return amount
    later = (f.time >= (cut_day + 1) * DAY) & (f.order_day >= 0) & (f.order_day <= cut_day)
    if not later.any():
        return amount
    sel = np.flatnonzero(o.day <= cut_day)
    # Match each refund to the first order of its customer on its order day, by one sorted key.
    codes = np.unique(np.concatenate([o.customer[sel], f.customer[later]]), return_inverse=True)[1].ravel()
    d0 = int(min(o.day[sel].min(initial=cut_day), f.order_day[later].min()))
    span = cut_day - d0 + 1
    ko = codes[:len(sel)] * span + (o.day[sel] - d0)
    kf = codes[len(sel):] * span + (f.order_day[later] - d0)
    order = np.argsort(ko, kind="stable")
    sk = ko[order]
    pos = np.minimum(np.searchsorted(sk, kf), max(len(sk) - 1, 0))
    ok = (len(sk) > 0) & (sk[pos] == kf) if len(sk) else np.zeros(len(kf), bool)
    np.add.at(amount, sel[order[pos[ok]]], f.amount[later][ok])
    return amount


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

"""Win-back experiment: who gets the offer, who is held out, and the real lift.

Sending an offer to everyone at risk shows how many came back, not how many
came back *because of the offer*. A random 10% receive nothing; the
difference between the two groups' reorder rates is the lift.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select

from ..shop_scope import only
from ..storage import tables as t
from ..storage.db import read_only
from .store import as_of_day
from .stats import newcombe_difference, wilson

__all__ = ["assign_group", "lift", "winback_results", "HOLDOUT_SHARE"]

HOLDOUT_SHARE = 0.10


def assign_group(customer_id, *, seed: str = "winback", holdout_share: float = HOLDOUT_SHARE) -> str:
    """``"offer"`` or ``"holdout"``, the same every time for the same customer and seed.

    A hash rather than a random draw: a worker that crashes and re-runs puts
    the customer in the same group, and no state needs storing to know it.
    """
    digest = hashlib.sha256(f"{seed}:{customer_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "holdout" if u < holdout_share else "offer"


def lift(offer_reordered: int, offer_n: int, holdout_reordered: int, holdout_n: int) -> dict:
    """Reorder rates of both groups with Wilson intervals, and their difference with Newcombe's."""
    out = {"offer": _group(offer_reordered, offer_n), "holdout": _group(holdout_reordered, holdout_n)}
    if offer_n and holdout_n:
        out["lift"] = newcombe_difference(offer_reordered, offer_n, holdout_reordered, holdout_n)
        lo, hi = out["lift"]["ci_low"], out["lift"]["ci_high"]
        if lo > 0:
            out["verdict"] = "The offer raised the reorder rate: the interval of the lift is above zero."
        elif hi < 0:
            out["verdict"] = "Customers who got the offer reordered LESS often than the holdout."
        else:
            out["verdict"] = "No lift can be claimed: the interval of the difference includes zero."
    else:
        out["lift"] = None
        out["verdict"] = "No lift can be measured: one of the groups is empty."
    return out


def _group(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"customers": n, "reordered": k, "rate": (k / n) if n else None, "ci_low": lo, "ci_high": hi}


def winback_results(engine, as_of=None, *, window_days: int = 60) -> dict:
    """Lift of the win-back offers assigned at least ``window_days`` before ``as_of``.

    A customer reordered when they placed a (non-test, non-cancelled) order
    within ``window_days`` after their assignment. Younger assignments are
    counted as pending, since they have not had the full window yet. In a shop's scope, that shop's
    assignments only.
    """
    day = as_of_day(as_of)
    end = datetime.combine(date(1970, 1, 1) + timedelta(days=day + 1), time(0), tzinfo=timezone.utc)
    w, o = t.winback, t.orders
    with read_only(engine) as conn:  # the console's analysis page: no wait for a worker's group
        assigned = conn.execute(select(w.c.customer_id, w.c.group, w.c.segment, w.c.created_at)
                                .where(w.c.created_at < end, only(w))).all()
        ids = sorted({r.customer_id for r in assigned})
        orders: dict[int, list[datetime]] = {}
        for chunk in range(0, len(ids), 500):
            for cid, created in conn.execute(select(o.c.customer_id, o.c.created_at).where(
                    o.c.customer_id.in_(ids[chunk:chunk + 500]), o.c.created_at < end,
                    o.c.test.is_(False), o.c.cancelled_at.is_(None))):
                orders.setdefault(cid, []).append(created)
    first_after = {}
    for row in assigned:
        due = row.created_at + timedelta(days=window_days)
        if due <= end:
            first_after[(row.customer_id, row.created_at)] = any(
                row.created_at < c <= due for c in orders.get(row.customer_id, ()))
    counts = {g: [0, 0] for g in ("offer", "holdout")}
    by_segment: dict = {}
    pending = 0
    for row in assigned:
        key = (row.customer_id, row.created_at)
        if key not in first_after:
            pending += 1
            continue
        if row.group not in counts:
            continue
        counts[row.group][0] += first_after[key]
        counts[row.group][1] += 1
        seg = by_segment.setdefault(row.segment, {g: [0, 0] for g in ("offer", "holdout")})
        seg[row.group][0] += first_after[key]
        seg[row.group][1] += 1
    result = lift(counts["offer"][0], counts["offer"][1], counts["holdout"][0], counts["holdout"][1])
    result.update(as_of=str(date(1970, 1, 1) + timedelta(days=day)), window_days=window_days, pending=pending,
                  segments={s: lift(c["offer"][0], c["offer"][1], c["holdout"][0], c["holdout"][1])
                            for s, c in sorted(by_segment.items())})
    return result

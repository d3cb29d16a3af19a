"""``retention loyalty liability``: the points customers hold, and what they would cost the shop.

Outstanding points are every customer's ``available + pending`` (a customer
below zero, after an adjustment with ``--allow-negative``, owes points and
counts as 0). Their money value is points x the value of one point:
``[loyalty] point_value`` when set, else the best rate of the configured
fixed-amount rewards (the most a point can buy), else unknown.

Ageing is first in, first out, as expiry and spending see it: what was spent,
expired or taken back consumes the oldest credits first, and what is left of
each credit is as old as the credit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from ...discounts import money_text, shop_currency
from ...storage import tables as t

L = t.ledger
#: Upper bounds (days, inclusive) of the age buckets; the last one is open.
AGE_BUCKETS = ((30, "0-30 days"), (90, "31-90 days"), (180, "91-180 days"), (365, "181-365 days"),
               (None, "over 365 days"))
NO_TIER = "-"


def point_value(s: dict) -> tuple[Decimal | None, str]:
    """The money one point is worth, and where that figure comes from."""
    if s["point_value"] is not None:
        return Decimal(s["point_value"]), "[loyalty] point_value"
    rates = [Decimal(r["amount"]) / r["points"] for r in s["rewards"] if r["amount"] is not None]
    if rates:
        return max(rates), "best fixed-amount reward"
    return None, "unknown: set [loyalty] point_value"


def _bucket(age_days: int) -> str:
    for limit, name in AGE_BUCKETS:
        if limit is None or age_days <= limit:
            return name
    raise AssertionError("unreachable")


def outstanding_credits(entries, now: datetime):
    """What is left of each credit after the debits, oldest consumed first: ``[(entry, points left)]``."""
    credits = [[e, e["points"]] for e in entries if e["points"] > 0]
    debt = -sum(e["points"] for e in entries if e["points"] < 0)
    for c in credits:
        if debt <= 0:
            break
        used = min(debt, c[1])
        c[1] -= used
        debt -= used
    return [(e, left) for e, left in credits if left > 0]


def report(conn, s: dict, now: datetime) -> dict:
    value, value_source = point_value(s)
    currency = shop_currency(conn, s)
    tiers = dict(conn.execute(select(t.customer_tiers.c.customer_id, t.customer_tiers.c.tier)).all())
    by_tier: dict[str, dict] = defaultdict(lambda: {"customers": 0, "available": 0, "pending": 0})
    by_age: dict[str, int] = {name: 0 for _, name in AGE_BUCKETS}
    rows = conn.execute(select(L.c.customer_id, L.c.points, L.c.created_at, L.c.available_at)
                        .order_by(L.c.customer_id, L.c.created_at, L.c.id)).mappings()
    current: list = []
    cid = None

    def close(customer_id, entries):
        left = outstanding_credits(entries, now)
        if not left:
            return
        row = by_tier[tiers.get(customer_id) or NO_TIER]
        row["customers"] += 1
        for e, pts in left:
            row["pending" if e["available_at"] > now else "available"] += pts
            by_age[_bucket((now - e["created_at"]).days)] += pts

    for r in rows:
        if r["customer_id"] != cid:
            if cid is not None:
                close(cid, current)
            cid, current = r["customer_id"], []
        current.append(r)
    if cid is not None:
        close(cid, current)

    def money(points: int) -> str | None:
        return money_text(value * points) if value is not None else None

    order = [x["name"] for x in s["tiers"]]
    tier_rows = []
    for name in sorted(by_tier, key=lambda n: (order.index(n) if n in order else len(order), n)):
        row = by_tier[name]
        points = row["available"] + row["pending"]
        tier_rows.append({"tier": name, "customers": row["customers"], "available": row["available"],
                          "pending": row["pending"], "points": points, "value": money(points)})
    age_rows = [{"age": name, "points": by_age[name], "value": money(by_age[name])} for _, name in AGE_BUCKETS]
    total = sum(r["points"] for r in tier_rows)
    return {"as_of": now.isoformat(), "currency": currency,
            "point_value": str(value) if value is not None else None, "point_value_source": value_source,
            "points": total, "value": money(total), "by_tier": tier_rows, "by_age": age_rows}

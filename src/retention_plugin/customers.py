"""One customer's whole picture, for `retention customers show` and agent notes."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from .context import HookContext
from .storage import tables as t


def _iso(v):
    return v.isoformat() if hasattr(v, "isoformat") else v


def _plain(row: dict) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else _iso(v)) for k, v in row.items()}


def lifetime_spend(conn, customer_id: int) -> dict[str, Decimal]:
    """Net spend per currency: paid, not cancelled, minus refunds."""
    o = t.orders
    totals: dict[str, Decimal] = {}
    for row in conn.execute(select(o.c.subtotal, o.c.refunded, o.c.currency).where(
            o.c.customer_id == customer_id, o.c.cancelled_at.is_(None), o.c.test.is_(False))):
        totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.subtotal - row.refunded
    return totals


def customer_profile(app, customer_id: int) -> dict:
    with app.engine.begin() as conn:
        c = conn.execute(select(t.customers).where(t.customers.c.id == customer_id)).mappings().first()
        orders = [dict(r) for r in conn.execute(select(t.orders).where(t.orders.c.customer_id == customer_id)
                                                .order_by(t.orders.c.created_at.desc())).mappings()]
        tickets = [dict(r) for r in conn.execute(select(t.tickets).where(t.tickets.c.customer_id == customer_id)
                                                 .order_by(t.tickets.c.created_at.desc())).mappings()]
        ratings = [dict(r) for r in conn.execute(select(t.ratings).where(t.ratings.c.customer_id == customer_id)
                                                 .order_by(t.ratings.c.created_at.desc())).mappings()]
        spend = lifetime_spend(conn, customer_id)
        ctx = HookContext(app, conn, now=app.now(), source="cli")
        features = {}
        for result in app.pm.hook.customer_facts(customer_id=customer_id, ctx=ctx):
            if result:
                features.update(result)
    return {
        "customer": _plain(dict(c)),
        "orders": [_plain(o) for o in orders],
        "tickets": [_plain(x) for x in tickets],
        "ratings": [_plain(x) for x in ratings],
        "lifetime_spend": {cur: str(v) for cur, v in spend.items()},
        "order_count": sum(1 for o in orders if o["cancelled_at"] is None),
        "features": features,
    }

"""One customer's whole picture, for `retention customers show` and agent notes."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import bindparam, select

from .context import HookContext
from .shop_scope import current
from .storage import tables as t
from .storage.db import for_update, read_only


def _iso(v):
    return v.isoformat() if hasattr(v, "isoformat") else v


def _plain(row: dict) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else _iso(v)) for k, v in row.items()}


_BY_ID = select(t.customers).where(t.customers.c.id == bindparam("id"))


def follow_merges(conn, customer_id, *, lock: bool = False, ctx=None) -> dict | None:
    """The customer row, following ``merged_into`` to the surviving record.

    :param lock: ``SELECT ... FOR UPDATE`` each row read (PostgreSQL), e.g. while
        the contact policy spends a slot of the customer's frequency cap.
    :param ctx: the HookContext of ``conn``: rows are read through its cache (not when locking).
    """
    seen = set()
    cached = ctx is not None and not lock and getattr(ctx, "conn", None) is conn
    while customer_id is not None and customer_id not in seen:
        seen.add(customer_id)
        if cached:
            row = ctx.customer(customer_id)
        else:
            row = conn.execute(for_update(_BY_ID, conn) if lock else _BY_ID, {"id": customer_id}).mappings().first()
        if row is None:
            return None
        if row["merged_into"] is None:
            return dict(row)
        customer_id = row["merged_into"]
    return None


def _first_id(conn, where) -> int | None:
    c = t.customers
    row = conn.execute(select(c.c.id).where(where, c.c.shop == current(conn))
                       .order_by(c.c.merged_into.is_not(None), c.c.id)).first()
    return row[0] if row else None


def customer_for(conn, *, shopify_id: int | None = None, email: str | None = None) -> dict | None:
    """The person a platform names: by Shopify customer id, else by email. Never by internal id,
    so a Shopify id that happens to equal some row's internal id cannot pick the wrong person."""
    c = t.customers
    if shopify_id is not None:
        found = follow_merges(conn, _first_id(conn, c.c.shopify_id == int(shopify_id)))
        if found:
            return found
    if email and email.strip():
        return follow_merges(conn, _first_id(conn, c.c.email == email.strip().lower()))
    return None


def find_customer(conn, ref) -> dict | None:
    """A customer as an admin names one on the command line.

    ``id:N``, ``shopify:N``, ``zendesk:N`` and ``email:ADDRESS`` say which is
    meant; a Shopify GID or anything with ``@`` needs no prefix. A bare number
    is tried as the internal id, then as a Shopify id, then as a Zendesk user id.
    """
    c = t.customers
    ref = str(ref if ref is not None else "").strip()
    if not ref:
        return None
    kind, _, value = ref.partition(":")
    if ref.startswith("gid://shopify/Customer/"):
        kind, value = "shopify", ref.rsplit("/", 1)[-1]
    elif kind not in ("id", "shopify", "zendesk", "email"):
        kind, value = ("email" if "@" in ref else "number"), ref
    value = value.strip()
    if kind == "email":
        return customer_for(conn, email=value)
    if not value.isdigit():
        return None
    n = int(value)
    if kind in ("id", "number"):
        found = follow_merges(conn, n)
        if found or kind == "id":
            return found
    if kind in ("shopify", "number"):
        found = customer_for(conn, shopify_id=n)
        if found or kind == "shopify":
            return found
    return follow_merges(conn, _first_id(conn, c.c.zendesk_user_id == n))


def lifetime_spend(conn, customer_id: int) -> dict[str, Decimal]:
    """Net spend per currency: paid, not cancelled, minus refunds."""
    o = t.orders
    totals: dict[str, Decimal] = {}
    for row in conn.execute(select(o.c.subtotal, o.c.refunded, o.c.currency).where(
            o.c.customer_id == customer_id, o.c.cancelled_at.is_(None), o.c.test.is_(False))):
        totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.subtotal - row.refunded
    return totals


def customer_profile(app, customer_id: int) -> dict:
    # Reads only (``customer_facts`` is given a transaction to read in): the console's customer page
    # answers without waiting for a worker's group (storage.db.read_only).
    with read_only(app.engine) as conn:
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

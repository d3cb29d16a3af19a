"""Customers: one row per person, found by whatever a platform names them by.

A Shopify customer id, a Zendesk user id, an external id or an email address
each lead to the same row; when a delivery links two rows (a ticket's requester
carries the email of a Shopify customer), they are merged (:mod:`.merging`).
For mutable fields the newest platform ``updated_at`` wins; an erased
customer's name and email never come back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from .. import events as ev
from ..shop_scope import current
from ..storage import tables as t
from .merging import merge_customers

_CUSTOMER_FIELDS = ("first_name", "last_name", "phone", "locale", "country", "province", "marketing_consent")


def normalise_email(email: str | None) -> str | None:
    if not email:
        return None
    email = email.strip().lower()
    return email or None


def customer_redacted(conn, customer_id) -> bool:
    """Whether the customer's personal data was erased (a late delivery must not bring it back)."""
    if customer_id is None:
        return False
    return conn.execute(select(t.customers.c.redacted_at).where(t.customers.c.id == customer_id)).scalar() is not None


_CANDIDATES: dict[tuple[str, ...], Any] = {}


def _candidates(columns: tuple[str, ...]):
    """The rows any of these identifiers names (built once per combination of identifiers given)."""
    stmt = _CANDIDATES.get(columns)
    if stmt is None:
        c = t.customers
        stmt = _CANDIDATES[columns] = (
            select(c).where(or_(*[c.c[name] == bindparam(name) for name in columns]),
                            c.c.shop == bindparam("_shop"), c.c.merged_into.is_(None)).order_by(c.c.id))
    return stmt


def resolve_customer(conn, info: ev.CustomerInfo | None, now: datetime, *, email: str | None = None,
                     ctx=None) -> int | None:
    """Find or create the one customer row behind these identifiers, merging rows a new link joins.

    :param ctx: the HookContext of ``conn``'s transaction; a merge calls ``customers_merged`` through it,
        and raises :class:`~.merging.MergeWithoutPlugins` when there is none.
    """
    if info is None and not email:
        return None
    info = info or ev.CustomerInfo()
    mail = normalise_email(info.email) or normalise_email(email)
    given = {"shopify_id": info.shopify_id, "zendesk_user_id": info.zendesk_user_id,
             "external_id": info.external_id or None, "email": mail}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return None
    rows = conn.execute(_candidates(tuple(given)), {**given, "_shop": current(conn)}).mappings().all()
    # A row already linked to a *different* Shopify id is another person sharing an email: don't merge.
    rows = [r for r in rows if info.shopify_id is None or r["shopify_id"] in (None, info.shopify_id)]
    if not rows:
        values = {"shopify_id": info.shopify_id, "zendesk_user_id": info.zendesk_user_id,
                  "external_id": info.external_id, "email": mail, "tags": list(info.tags or []),
                  "source_updated_at": info.updated_at, "created_at": now, "updated_at": now}
        values.update({f: getattr(info, f) for f in _CUSTOMER_FIELDS})
        row = conn.execute(_INSERT_CUSTOMER, values).mappings().one()
        _keep_customer(conn, ctx, row)
        if ctx is not None and getattr(ctx, "conn", None) is conn:
            ctx._customer_created(row["id"])
        return row["id"]
    keep = rows[0]
    for other in rows[1:]:
        merge_customers(conn, keep, other, now, ctx)
    written = _apply_customer(conn, keep["id"], keep, info, mail, now, merged=len(rows) > 1)
    if written is not None:
        _keep_customer(conn, ctx, written)
    elif len(rows) == 1:  # neither merged nor changed: the row read is the row stored
        _keep_customer(conn, ctx, keep)
    return keep["id"]


# Written rows come back with RETURNING, so the plugins after the record read the customer from the context.
_INSERT_CUSTOMER = t.customers.insert().returning(*t.customers.c)
_UPDATE_CUSTOMER = update(t.customers).where(t.customers.c.id == bindparam("_cid")).returning(*t.customers.c)


def _keep_customer(conn, ctx, row) -> None:
    if ctx is not None and getattr(ctx, "conn", None) is conn:
        ctx._keep(("customers", row["id"]), ("customers",), row)


def _apply_customer(conn, cid, row, info: ev.CustomerInfo, mail, now, *, merged: bool = False):
    """Bring the row up to date with ``info``; returns the row as written, or None when nothing changed.

    :param merged: rows were merged into ``row`` since it was read, so it may no longer be what is stored.
    """
    values = {}
    for col in ("shopify_id", "zendesk_user_id", "external_id"):
        v = getattr(info, col)
        if v is not None and row[col] is None:
            values[col] = v
    newer = info.updated_at is not None and (row["source_updated_at"] is None
                                             or info.updated_at >= row["source_updated_at"])
    if newer:
        values["source_updated_at"] = info.updated_at
        if mail and row["redacted_at"] is None:
            values["email"] = mail
        for f in _CUSTOMER_FIELDS:
            v = getattr(info, f)
            if v is not None:
                values[f] = v
        if info.tags:
            values["tags"] = list(info.tags)
    else:
        # An older or undated payload may still fill what we do not know yet.
        if mail and row["email"] is None and row["redacted_at"] is None:
            values["email"] = mail
        for f in _CUSTOMER_FIELDS:
            v = getattr(info, f)
            if v is not None and row[f] is None:
                values[f] = v
    if row["redacted_at"] is not None:
        for f in ("first_name", "last_name", "phone"):
            values.pop(f, None)
    # A repeated payload (an order's create, paid and update deliveries each carry the customer) says
    # what is stored already: no UPDATE. After a merge the row read is stale, so it is written as before.
    if not values or (not merged and all(row[k] == v for k, v in values.items())):
        return None
    values["updated_at"] = now
    return conn.execute(_UPDATE_CUSTOMER, {**values, "_cid": cid}).mappings().one()

"""Customers: one row per person, found by whatever a platform names them by.

A Shopify customer id, a Zendesk user id, an external id or an email address
each lead to the same row; when a delivery links two rows (a ticket's requester
carries the email of a Shopify customer), they are merged (:mod:`.merging`).
For mutable fields the newest platform ``updated_at`` wins; an erased
customer's name and email never come back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update

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
    c = t.customers
    conds = []
    if info.shopify_id is not None:
        conds.append(c.c.shopify_id == info.shopify_id)
    if info.zendesk_user_id is not None:
        conds.append(c.c.zendesk_user_id == info.zendesk_user_id)
    if info.external_id:
        conds.append(c.c.external_id == info.external_id)
    if mail:
        conds.append(c.c.email == mail)
    if not conds:
        return None
    rows = conn.execute(select(c).where(or_(*conds), c.c.shop == current(conn), c.c.merged_into.is_(None))
                        .order_by(c.c.id)).mappings().all()
    # A row already linked to a *different* Shopify id is another person sharing an email: don't merge.
    rows = [r for r in rows if info.shopify_id is None or r["shopify_id"] in (None, info.shopify_id)]
    if not rows:
        values = {"shopify_id": info.shopify_id, "zendesk_user_id": info.zendesk_user_id,
                  "external_id": info.external_id, "email": mail, "tags": list(info.tags or []),
                  "source_updated_at": info.updated_at, "created_at": now, "updated_at": now}
        values.update({f: getattr(info, f) for f in _CUSTOMER_FIELDS})
        return conn.execute(c.insert().values(**values)).inserted_primary_key[0]
    keep = rows[0]
    for other in rows[1:]:
        merge_customers(conn, keep, other, now, ctx)
    _apply_customer(conn, keep["id"], keep, info, mail, now)
    return keep["id"]


def _apply_customer(conn, cid, row, info: ev.CustomerInfo, mail, now):
    c = t.customers
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
    if values:
        values["updated_at"] = now
        conn.execute(update(c).where(c.c.id == cid).values(**values))

"""The core records: customers, orders, refunds, fulfilments, tickets and ratings.

Every event passes through :func:`record` before any plugin sees it, so a
hook can rely on the order and the customer being stored. Deliveries arrive
out of order: for mutable records the newest platform ``updated_at`` wins,
and facts that only ever become true (paid, cancelled, fulfilled) are kept
whichever delivery brings them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, or_, select, update

from . import events as ev
from .storage import tables as t
from .storage.db import insert_ignore

log = logging.getLogger("retention_plugin.records")


class NotYet(Exception):
    """A record this event depends on has not arrived yet; retrying later will help."""

    transient = True


def normalise_email(email: str | None) -> str | None:
    if not email:
        return None
    email = email.strip().lower()
    return email or None


# --- customers -------------------------------------------------------------------

_CUSTOMER_FIELDS = ("first_name", "last_name", "phone", "locale", "country", "province", "marketing_consent")

#: Tables whose customer_id must follow a merge.
_CUSTOMER_REFS = ("orders", "tickets", "ratings", "ledger", "punches", "rewards", "messages", "reminders",
                  "recall_cases", "recoveries", "winback")


def resolve_customer(conn, info: ev.CustomerInfo | None, now: datetime, *, email: str | None = None) -> int | None:
    """Find or create the one customer row behind these identifiers, merging rows a new link joins."""
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
    rows = conn.execute(select(c).where(or_(*conds), c.c.merged_into.is_(None)).order_by(c.c.id)).mappings().all()
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
        _merge(conn, keep, other, now)
    _apply_customer(conn, keep["id"], keep, info, mail, now)
    return keep["id"]


def _merge(conn, keep, other, now):
    c = t.customers
    links = {}
    for col in ("shopify_id", "zendesk_user_id", "external_id", "email"):
        if keep[col] is None and other[col] is not None:
            links[col] = other[col]
    # Unique columns move: clear them on the merged row first.
    conn.execute(update(c).where(c.c.id == other["id"]).values(
        merged_into=keep["id"], shopify_id=None, zendesk_user_id=None, updated_at=now))
    if links:
        conn.execute(update(c).where(c.c.id == keep["id"]).values(**links))
    # recall_cases is unique per (recall, customer): when both rows have a case in the same
    # recall, the kept customer's case stays and the merged one's goes.
    rc = t.recall_cases
    conn.execute(delete(rc).where(rc.c.customer_id == other["id"], rc.c.recall_id.in_(
        select(rc.c.recall_id).where(rc.c.customer_id == keep["id"]))))
    for name in _CUSTOMER_REFS:
        table = t.metadata.tables[name]
        conn.execute(update(table).where(table.c.customer_id == other["id"]).values(customer_id=keep["id"]))
    tiers = t.customer_tiers
    if conn.execute(select(tiers.c.customer_id).where(tiers.c.customer_id == keep["id"])).first():
        conn.execute(delete(tiers).where(tiers.c.customer_id == other["id"]))
    else:
        conn.execute(update(tiers).where(tiers.c.customer_id == other["id"]).values(customer_id=keep["id"]))


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


# --- orders ------------------------------------------------------------------------


def order_name(row) -> str:
    """An order as people name it: ``#1001``, or its Shopify id when it has no name."""
    return row.get("name") or f"#{row['shopify_id']}"


def order_row(conn, shopify_id: int):
    return conn.execute(select(t.orders).where(t.orders.c.shopify_id == shopify_id)).mappings().first()


def record_order(conn, order: ev.Order, now: datetime, *, paid: bool = False, import_key: str | None = None) -> int:
    """Insert or update an order and its lines; returns the internal order id."""
    o = t.orders
    customer_id = resolve_customer(conn, order.customer, now, email=order.email)
    existing = order_row(conn, order.shopify_id) if order.shopify_id is not None else None
    if existing is None and import_key:
        existing = conn.execute(select(o).where(o.c.import_key == import_key)).mappings().first()
    paid_at = (order.processed_at or order.created_at) if (paid or order.financial_status in (
        "paid", "partially_refunded", "refunded", "partially_paid")) else None
    values = {
        "shopify_id": order.shopify_id, "name": order.name, "customer_id": customer_id,
        "email": normalise_email(order.email), "currency": order.currency,
        "presentment_currency": order.presentment_currency, "subtotal": order.subtotal.amount,
        "total": order.total.amount, "total_discounts": order.total_discounts.amount,
        "total_tax": order.total_tax.amount, "shipping": order.shipping.amount,
        "presentment_subtotal": order.presentment_subtotal.amount if order.presentment_subtotal else None,
        "financial_status": order.financial_status, "fulfillment_status": order.fulfillment_status,
        "created_at": order.created_at, "processed_at": order.processed_at,
        "source_updated_at": order.updated_at, "locale": order.locale, "tags": list(order.tags),
        "discount_codes": list(order.discount_codes), "test": order.test, "source": order.source,
    }
    sticky = {"paid_at": paid_at, "cancelled_at": order.cancelled_at, "fulfilled_at": order.fulfilled_at}
    if existing is None:
        values.update(sticky)
        values["import_key"] = import_key
        oid = conn.execute(o.insert().values(**values)).inserted_primary_key[0]
        _replace_lines(conn, oid, order.lines)
        return oid
    oid = existing["id"]
    stale = (order.updated_at is not None and existing["source_updated_at"] is not None
             and order.updated_at < existing["source_updated_at"])
    changes = {} if stale else dict(values)
    if stale and existing["customer_id"] is None and customer_id is not None:
        changes["customer_id"] = customer_id
    for k, v in sticky.items():
        if v is not None and existing[k] is None:
            changes[k] = v
    if changes:
        if "email" in changes and _customer_redacted(conn, existing["customer_id"]):
            changes.pop("email")  # a late update must not bring an erased address back
        conn.execute(update(o).where(o.c.id == oid).values(**changes))
    if not stale and order.lines:
        _replace_lines(conn, oid, order.lines)
    return oid


def _customer_redacted(conn, customer_id) -> bool:
    if customer_id is None:
        return False
    return conn.execute(select(t.customers.c.redacted_at).where(t.customers.c.id == customer_id)).scalar() is not None


def _replace_lines(conn, order_id: int, lines: list[ev.OrderLine]) -> None:
    ol = t.order_lines
    existing = {r["line_key"]: r for r in conn.execute(select(ol).where(ol.c.order_id == order_id)).mappings()}
    for pos, line in enumerate(lines):
        key = str(line.line_id) if line.line_id is not None else f"pos:{pos}"
        values = {"sku": line.sku, "product_id": line.product_id, "variant_id": line.variant_id,
                  "title": line.title, "product_type": line.product_type, "vendor": line.vendor,
                  "tags": list(line.tags), "quantity": line.quantity, "price": line.price.amount,
                  "total_discount": line.total_discount.amount}
        if key in existing:
            conn.execute(update(ol).where(ol.c.id == existing[key]["id"]).values(**values))
        else:
            conn.execute(ol.insert().values(order_id=order_id, line_key=key, **values))
    # Lines a file import stored by position give way to the platform's own line ids.
    if any(line.line_id is not None for line in lines):
        stale = [r["id"] for k, r in existing.items() if k.startswith("pos:")]
        if stale:
            conn.execute(delete(ol).where(ol.c.id.in_(stale)))


def record_refund(conn, refund: ev.Refund, now: datetime) -> int | None:
    """Store a refund once; returns its id, or None when it was already stored."""
    order = order_row(conn, refund.order_id)
    if order is None:
        raise NotYet(f"refund {refund.shopify_id} is for order {refund.order_id}, which is not stored yet")
    rid = insert_ignore(conn, t.refunds, {
        "shopify_id": refund.shopify_id, "order_id": order["id"], "merchandise": refund.merchandise.amount,
        "currency": refund.merchandise.currency, "lines": [_jsonable(x) for x in refund.lines],
        # A refund arriving after its customer was erased must not bring their words back.
        "note": None if _customer_redacted(conn, order["customer_id"]) else refund.note,
        "created_at": refund.created_at}, ["shopify_id"])
    if rid is None:
        return None
    conn.execute(update(t.orders).where(t.orders.c.id == order["id"]).values(
        refunded=t.orders.c.refunded + refund.merchandise.amount))
    ol = t.order_lines
    for line in refund.lines:
        if line.get("line_id") is not None and line.get("quantity"):
            conn.execute(update(ol).where(ol.c.order_id == order["id"], ol.c.line_key == str(line["line_id"]))
                         .values(refunded_quantity=ol.c.refunded_quantity + int(line["quantity"])))
    return rid


def _jsonable(d: dict) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in d.items()}


def record_fulfillment(conn, fulfillment: ev.Fulfillment, now: datetime) -> None:
    order = order_row(conn, fulfillment.order_id)
    if order is None:
        raise NotYet(f"fulfillment {fulfillment.shopify_id} is for order {fulfillment.order_id}, not stored yet")
    f = t.fulfillments
    row = conn.execute(select(f).where(f.c.shopify_id == fulfillment.shopify_id)).mappings().first()
    if row is None:
        conn.execute(f.insert().values(shopify_id=fulfillment.shopify_id, order_id=order["id"],
                                       status=fulfillment.status, created_at=fulfillment.created_at,
                                       source_updated_at=fulfillment.updated_at))
    elif fulfillment.updated_at and (row["source_updated_at"] is None or fulfillment.updated_at >= row["source_updated_at"]):
        conn.execute(update(f).where(f.c.id == row["id"]).values(status=fulfillment.status,
                                                                  source_updated_at=fulfillment.updated_at))
    if order["fulfilled_at"] is None and fulfillment.status not in ("cancelled", "failure", "error"):
        conn.execute(update(t.orders).where(t.orders.c.id == order["id"]).values(fulfilled_at=fulfillment.created_at))


# --- tickets and ratings -------------------------------------------------------------


def ticket_row(conn, zendesk_id: int):
    return conn.execute(select(t.tickets).where(t.tickets.c.zendesk_id == zendesk_id)).mappings().first()


def record_ticket(conn, ticket: ev.Ticket, now: datetime) -> int:
    tk = t.tickets
    customer_id = resolve_customer(conn, ticket.requester, now)
    existing = ticket_row(conn, ticket.zendesk_id)
    values = {"customer_id": customer_id,
              "requester_email": normalise_email(ticket.requester.email) if ticket.requester else None,
              "subject": ticket.subject, "description": ticket.description, "status": ticket.status,
              "priority": ticket.priority, "tags": list(ticket.tags or []), "group_id": ticket.group_id,
              "form_id": ticket.form_id, "custom_fields": {str(k): v for k, v in (ticket.custom_fields or {}).items()},
              "via": ticket.via, "source_updated_at": ticket.updated_at}
    solved = ticket.updated_at or now if ticket.status in ("solved", "closed") else None
    if existing is None:
        values.update(zendesk_id=ticket.zendesk_id, created_at=ticket.created_at or now, solved_at=solved)
        return conn.execute(tk.insert().values(**values)).inserted_primary_key[0]
    stale = (ticket.updated_at is not None and existing["source_updated_at"] is not None
             and ticket.updated_at < existing["source_updated_at"])
    changes = {} if stale else {k: v for k, v in values.items() if v is not None or k in ("priority",)}
    if existing["customer_id"] is None and customer_id is not None:
        changes["customer_id"] = customer_id
    if solved and existing["solved_at"] is None:
        changes["solved_at"] = solved
    if existing["created_at"] is None and ticket.created_at:
        changes["created_at"] = ticket.created_at
    if _customer_redacted(conn, existing["customer_id"]):
        for k in ("requester_email", "subject", "description"):
            changes.pop(k, None)
    if changes:
        conn.execute(update(tk).where(tk.c.id == existing["id"]).values(**changes))
    return existing["id"]


def record_comment(conn, event: ev.CommentAdded, now: datetime) -> None:
    tid = record_ticket(conn, event.ticket, now)
    row = conn.execute(select(t.tickets).where(t.tickets.c.id == tid)).mappings().first()
    c = event.comment
    requester_zid = event.ticket.requester.zendesk_user_id if event.ticket.requester else None
    by_agent = c.by_agent if c.by_agent is not None else (c.author_id is not None and c.author_id != requester_zid)
    if c.public and by_agent and (row["first_public_reply_at"] is None or c.created_at < row["first_public_reply_at"]):
        conn.execute(update(t.tickets).where(t.tickets.c.id == tid).values(first_public_reply_at=c.created_at))


def record_rating(conn, rating: ev.Rating, now: datetime, ticket: ev.Ticket | None = None) -> int | None:
    ticket_id = None
    customer_id = None
    zid = rating.ticket_id or (ticket.zendesk_id if ticket else None)
    if ticket is not None:
        ticket_id = record_ticket(conn, ticket, now)
    elif zid is not None:
        row = ticket_row(conn, zid)
        ticket_id = row["id"] if row else None
    if rating.customer is not None:
        customer_id = resolve_customer(conn, rating.customer, now)
    if customer_id is None and ticket_id is not None:
        customer_id = conn.execute(select(t.tickets.c.customer_id).where(t.tickets.c.id == ticket_id)).scalar()
    order_id = None
    if rating.order_id is not None:
        o = order_row(conn, rating.order_id)
        order_id = o["id"] if o else None
    return insert_ignore(conn, t.ratings, {
        "source": rating.source, "source_id": rating.source_id, "customer_id": customer_id,
        "ticket_id": ticket_id, "order_id": order_id, "score": rating.score,
        "value": Decimal(str(rating.value)) if rating.value is not None else None,
        "comment": None if _customer_redacted(conn, customer_id) else rating.comment,
        "created_at": rating.created_at}, ["source", "source_id"])


# --- the dispatcher ------------------------------------------------------------------


def fill_requester(ctx, requester: ev.CustomerInfo | None) -> None:
    """Ask Zendesk who a requester is when the webhook named them only by id.

    Event-subscribed webhooks carry ``requester_id`` and nothing else about
    the person, so the ticket could not meet the Shopify customer with the same
    email. When nobody with a known email is stored under that Zendesk id,
    one ``GET /api/v2/users/{id}`` fills in email and external id. It is a
    read, but still a call out: never in dry-run, never without API
    credentials; and it is best effort — on any failure the ticket is linked by
    Zendesk id alone and a later delivery (a shipped trigger body carries the
    email) merges the two.
    """
    if requester is None or requester.zendesk_user_id is None or requester.email:
        return
    settings = ctx.settings
    zd = settings.section("zendesk")
    if not zd or not zd.get("api_token") or not zd.get("email") or settings.section("actions").get("dry_run", True):
        return
    c = t.customers
    known = ctx.conn.execute(select(c.c.id).where(c.c.zendesk_user_id == requester.zendesk_user_id,
                                                  c.c.email.is_not(None))).first()
    if known:
        return
    import requests

    from .platforms.errors import PlatformError

    try:
        # Short: this runs inside the delivery's transaction.
        client = ctx.app.zendesk_client(timeout=5, max_attempts=2, max_retry_after=5, backoff_base=0.5)
        user = client.request("GET", f"users/{requester.zendesk_user_id}.json").get("user") or {}
    except (PlatformError, requests.RequestException, ValueError) as e:
        log.warning("could not look up Zendesk user %s: %s", requester.zendesk_user_id, type(e).__name__)
        return
    if user.get("email"):
        requester.email = user["email"]
    if user.get("external_id") and not requester.external_id:
        requester.external_id = str(user["external_id"])
    if user.get("name") and not (requester.first_name or requester.last_name):
        first, _, last = str(user["name"]).partition(" ")
        requester.first_name, requester.last_name = first or None, last or None


def record(event: ev.Event, ctx) -> None:
    """Bring the core tables up to date with one event (called before the event's hook)."""
    conn, now = ctx.conn, ctx.now
    if isinstance(event, (ev.OrderCreated, ev.OrderUpdated, ev.OrderPaid, ev.OrderCancelled)):
        record_order(conn, event.order, now, paid=isinstance(event, ev.OrderPaid))
    elif isinstance(event, ev.OrderFulfilled):
        if event.order is not None:
            record_order(conn, event.order, now)
        if event.fulfillment is not None:
            record_fulfillment(conn, event.fulfillment, now)
    elif isinstance(event, ev.RefundCreated):
        record_refund(conn, event.refund, now)
    elif isinstance(event, (ev.CustomerUpdated, ev.CustomerDeleted)):
        resolve_customer(conn, event.customer, now)
    elif isinstance(event, (ev.TicketCreated, ev.TicketUpdated, ev.TicketSolved)):
        fill_requester(ctx, event.ticket.requester)
        record_ticket(conn, event.ticket, now)
    elif isinstance(event, ev.CommentAdded):
        fill_requester(ctx, event.ticket.requester)
        record_comment(conn, event, now)
    elif isinstance(event, ev.SatisfactionRated):
        record_rating(conn, event.rating, now, event.ticket)
    elif isinstance(event, ev.CustomerDataRequest):
        from .privacy import export_for_request

        export_for_request(ctx, event)
    elif isinstance(event, ev.CustomerRedact):
        from .privacy import redact_for_request

        redact_for_request(ctx, event)
    elif isinstance(event, ev.ShopRedact):
        from .shop_erasure import shop_redact_for_request

        shop_redact_for_request(ctx, event)
    elif isinstance(event, ev.AppUninstalled):
        from .shop_erasure import record_uninstall

        record_uninstall(ctx, event)

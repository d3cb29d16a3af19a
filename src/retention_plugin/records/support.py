"""Support records: Zendesk tickets, their comments (the first public reply), satisfaction ratings.

A ticket's requester is resolved to a customer like any buyer; when Zendesk
names the requester by id only, :func:`fill_requester` asks Zendesk who they
are. An erased customer's ticket text and rating comments never come back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update

from .. import events as ev
from ..storage import tables as t
from ..storage.db import insert_ignore
from .customers import customer_redacted, normalise_email, resolve_customer
from .orders import order_row

log = logging.getLogger("retention_plugin.records")


def ticket_row(conn, zendesk_id: int):
    return conn.execute(select(t.tickets).where(t.tickets.c.zendesk_id == zendesk_id)).mappings().first()


def record_ticket(conn, ticket: ev.Ticket, now: datetime, *, ctx=None) -> int:
    tk = t.tickets
    customer_id = resolve_customer(conn, ticket.requester, now, ctx=ctx)
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
    if customer_redacted(conn, existing["customer_id"]):
        for k in ("requester_email", "subject", "description"):
            changes.pop(k, None)
    if changes:
        conn.execute(update(tk).where(tk.c.id == existing["id"]).values(**changes))
    return existing["id"]


def record_comment(conn, event: ev.CommentAdded, now: datetime, *, ctx=None) -> None:
    tid = record_ticket(conn, event.ticket, now, ctx=ctx)
    row = conn.execute(select(t.tickets).where(t.tickets.c.id == tid)).mappings().first()
    c = event.comment
    requester_zid = event.ticket.requester.zendesk_user_id if event.ticket.requester else None
    by_agent = c.by_agent if c.by_agent is not None else (c.author_id is not None and c.author_id != requester_zid)
    if c.public and by_agent and (row["first_public_reply_at"] is None or c.created_at < row["first_public_reply_at"]):
        conn.execute(update(t.tickets).where(t.tickets.c.id == tid).values(first_public_reply_at=c.created_at))


def record_rating(conn, rating: ev.Rating, now: datetime, ticket: ev.Ticket | None = None, *,
                  ctx=None) -> int | None:
    ticket_id = None
    customer_id = None
    zid = rating.ticket_id or (ticket.zendesk_id if ticket else None)
    if ticket is not None:
        ticket_id = record_ticket(conn, ticket, now, ctx=ctx)
    elif zid is not None:
        row = ticket_row(conn, zid)
        ticket_id = row["id"] if row else None
    if rating.customer is not None:
        customer_id = resolve_customer(conn, rating.customer, now, ctx=ctx)
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
        "comment": None if customer_redacted(conn, customer_id) else rating.comment,
        "created_at": rating.created_at}, ["source", "source_id"])


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
    has_credentials = zd and (zd.get("oauth_token") or (zd.get("api_token") and zd.get("email")))
    if not has_credentials or settings.section("actions").get("dry_run", True):
        return
    c = t.customers
    known = ctx.conn.execute(select(c.c.id).where(c.c.zendesk_user_id == requester.zendesk_user_id,
                                                  c.c.email.is_not(None))).first()
    if known:
        return
    import requests

    from ..platforms.errors import PlatformError

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

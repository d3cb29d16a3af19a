"""Service recovery with Zendesk: know who is writing, route them, apologise, make it right.

The built-in plugin ``recovery`` (configured under ``[recovery]``, documented
in docs/recovery.md):

1. **context**: on ``ticket_created``, one internal note with what the store
   knows about the requester, and priority/group/tags by tier and value
   (``context_note.py``); once per ticket, by action keys
   ``recovery:note:<id>`` and ``recovery:route:<id>``;
2. **complaints**: the ``classify_ticket`` decision (built-in: tags, form
   fields, keywords read in context in five languages; ``classify.py``,
   ``lexicon.py``, measured on ``data/labelled_tickets.jsonl``), stored on
   the ticket with its evidence; never on text the product wrote itself;
3. **response watch**: a periodic task escalating waiting tickets of valued
   customers from their current priority and calling ``ticket_escalated``
   (``watch.py``);
4. **offers**: a solved complaint or a bad rating opens one recovery case,
   decided by the policy and the ``recovery_offer`` hook, within caps and the
   monthly budget, one offer per incident; weak evidence, large amounts and
   customers without a Shopify id wait for ``retention recovery approve``
   (``policy.py``, ``offers.py``);
5. **outcome**: whether the customer ordered again, recorded by a task and
   reported by ``retention recovery report`` (``report.py``).

Its cases follow customer merges and erasure through ``data.py``.
"""

from __future__ import annotations

from decimal import Decimal

from retention_plugin import hookimpl

from ...platforms.zendesk.requests import ticket_comment, ticket_update
from . import classify as cls
from .context_note import note_text, route, snapshot
from .data import TEXT_COLUMNS, customers_merged, shop_redact  # noqa: F401 (hook implementations)
from .offers import KIND, decide, rating_case_key, ticket_case_key
from .settings import schema, settings_of
from .watch import OUTCOMES_EVERY, WATCH_EVERY, record_outcomes, response_watch

#: Ticket fields whose change can make a ticket a complaint.
CLASSIFY_ON = {"tags", "custom_fields", "form_id", "subject", "description"}


# --- registries ------------------------------------------------------------------------------


@hookimpl
def register_config_sections(register):
    register("recovery", schema())


@hookimpl
def register_message_kinds(register):
    # An apology about the customer's own complaint, carrying goodwill: transactional, like delay_apology.
    register(KIND, "transactional")


@hookimpl
def register_tasks(register):
    register("recovery.response_watch", response_watch, WATCH_EVERY)
    register("recovery.outcomes", record_outcomes, OUTCOMES_EVERY)


@hookimpl
def register_commands(cli):
    from .commands import recovery

    cli.add_command(recovery)


# --- reactions --------------------------------------------------------------------------------


@hookimpl
def ticket_created(event, ctx):
    settings = settings_of(ctx)
    ticket = event.ticket
    row = cls.ticket_row(ctx.conn, ticket.zendesk_id)
    if row is None:
        return
    classification = cls.classify_and_store(ctx, ticket, row)
    if row["customer_id"] is None:
        return  # no requester we could identify: nothing to say about them
    snap = snapshot(ctx, row["customer_id"], settings, exclude_ticket_id=row["id"])
    routing = route(settings, snap, ticket.priority)
    zid = ticket.zendesk_id
    if settings["context_note"]:
        body = note_text(snap, classification=classification, routing=routing)
        ctx.enqueue_action("zendesk", "ticket_comment", f"recovery:note:{zid}", ticket_comment(zid, body, False))
    if routing:
        ctx.enqueue_action("zendesk", "ticket_update", f"recovery:route:{zid}", ticket_update(
            zid, priority=routing["priority"], group_id=routing["group_id"], add_tags=routing["tags"] or None))


@hookimpl
def ticket_updated(event, ctx):
    if not CLASSIFY_ON & set(event.changed or []):
        return
    row = cls.ticket_row(ctx.conn, event.ticket.zendesk_id)
    if row is not None:
        cls.classify_and_store(ctx, event.ticket, row)


@hookimpl
def ticket_solved(event, ctx):
    settings = settings_of(ctx)
    row = cls.ticket_row(ctx.conn, event.ticket.zendesk_id)
    if row is None:
        return
    stored = cls.classify_and_store(ctx, event.ticket, row)
    if not stored["complaint"] or not settings["offer_on_complaint_solved"]:
        return
    row = cls.ticket_row(ctx.conn, event.ticket.zendesk_id)
    decide(ctx, settings, key=ticket_case_key(row["zendesk_id"]), trigger="complaint_solved",
           severity=stored["severity"], customer_id=row["customer_id"], ticket=row, zendesk_id=row["zendesk_id"],
           source_ref=f"ticket {row['zendesk_id']}", evidence=cls.evidence_of(row))


def is_bad(rating, settings) -> bool:
    if (rating.score or "").lower() == "bad":
        return True
    return rating.value is not None and Decimal(str(rating.value)) < settings["bad_rating_below"]


@hookimpl
def satisfaction_rated(event, ctx):
    settings = settings_of(ctx)
    rating = event.rating
    if not is_bad(rating, settings):
        return
    zid = rating.ticket_id or (event.ticket.zendesk_id if event.ticket else None)
    row = cls.ticket_row(ctx.conn, zid) if zid is not None else None
    if row is not None:
        # A bad rating makes the ticket a complaint (a higher stored severity stays).
        stored = cls.mark_complaint(ctx.conn, row, settings["complaints"]["bad_rating_severity"],
                                    f"bad satisfaction rating ({rating.score})")
        if not settings["offer_on_bad_rating"]:
            return
        row = cls.ticket_row(ctx.conn, zid)
        decide(ctx, settings, key=ticket_case_key(zid), trigger="bad_rating", severity=stored["severity"],
               customer_id=row["customer_id"] or _rating_customer(ctx, rating), ticket=row, zendesk_id=zid,
               source_ref=f"ticket {zid}", evidence=cls.evidence_of(row), order_id=_rating_order(ctx, rating))
        return
    if not settings["offer_on_bad_rating"]:
        return
    # A rating that names no stored ticket (a follow-up link, or an unknown ticket).
    key = ticket_case_key(zid) if zid is not None else rating_case_key(rating.source, rating.source_id)
    decide(ctx, settings, key=key, trigger="bad_rating", severity=None, customer_id=_rating_customer(ctx, rating),
           ticket=None, zendesk_id=zid, source_ref=f"rating {rating.source}:{rating.source_id}",
           evidence=["rating"], order_id=_rating_order(ctx, rating))


def _rating_customer(ctx, rating) -> int | None:
    from sqlalchemy import select

    from ...storage import tables as t

    r = t.ratings
    return ctx.conn.execute(select(r.c.customer_id).where(r.c.source == rating.source,
                                                          r.c.source_id == rating.source_id)).scalar()


def _rating_order(ctx, rating) -> int | None:
    """The ``orders.id`` a rating is about (a follow-up rating names its order)."""
    if rating.order_id is None:
        return None
    from ...records.orders import order_row

    row = order_row(ctx.conn, rating.order_id)
    return row["id"] if row else None


# --- decisions ----------------------------------------------------------------------------------


@hookimpl(trylast=True)
def classify_ticket(ticket, ctx):
    # `retention recovery classify --lang xx` narrows the built-in to one language's keywords.
    return cls.builtin_classify(ticket, settings_of(ctx), getattr(ctx, "classify_languages", None))


@hookimpl(trylast=True)
def recovery_offer(ticket, customer, proposal, ctx):
    return proposal if proposal is not None else False


# --- facts --------------------------------------------------------------------------------------


@hookimpl
def customer_facts(customer_id, ctx):
    if ctx is None or getattr(ctx, "conn", None) is None:
        return None  # asked outside a transaction: nothing to look up
    from datetime import timedelta

    from sqlalchemy import func, select

    from ...storage import tables as t

    tk, r = t.tickets, t.recoveries
    complaints, open_complaints = ctx.conn.execute(select(
        func.count(), func.count().filter(tk.c.status.is_(None) | tk.c.status.notin_(("solved", "closed"))))
        .where(tk.c.customer_id == customer_id, tk.c.complaint.is_(True))).one()
    year_ago = ctx.now - timedelta(days=365)
    offers = ctx.conn.execute(select(r.c.amount, r.c.currency).where(
        r.c.customer_id == customer_id, r.c.decision == "offered", r.c.created_at >= year_ago)).all()
    total: dict[str, Decimal] = {}
    for amount, currency in offers:
        total[currency] = total.get(currency, Decimal(0)) + amount
    return {"recovery": {"complaints": complaints, "open_complaints": open_complaints,
                         "offers_last_365_days": len(offers),
                         "offered_last_365_days": {k: f"{v:.2f}" for k, v in total.items()}}}


@hookimpl
def customer_data_request(event, ctx):
    """The customer's recovery cases, for the data export (tickets and rewards are exported by the core)."""
    from sqlalchemy import select

    from ...customers import customer_for
    from ...storage import tables as t

    info = event.customer
    c = customer_for(ctx.conn, shopify_id=info.shopify_id, email=info.email)
    if c is None:
        return None
    r = t.recoveries
    cases = ctx.conn.execute(select(r.c.key, r.c.trigger, r.c.severity, r.c.decision, r.c.reason, r.c.amount,
                                    r.c.currency, r.c.outcome, r.c.created_at)
                             .where(r.c.customer_id == c["id"]).order_by(r.c.id)).mappings().all()
    out = []
    for x in cases:
        amount = f"{x['amount']:.2f}" if x["amount"] is not None else None
        out.append({**dict(x), "amount": amount, "created_at": x["created_at"].isoformat()})
    return {"recovery": {"cases": out}}


@hookimpl
def register_admin_operations(register):
    from .admin import register as offer

    offer(register)

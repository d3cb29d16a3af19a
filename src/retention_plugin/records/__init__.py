"""The core records: customers, orders, refunds, fulfilments, tickets and ratings.

Every event passes through :func:`record` before any plugin sees it, so a
hook can rely on the order and the customer being stored. The records are
kept by concern: :mod:`.customers` (who is who), :mod:`.merging` (two rows
found to be one person), :mod:`.orders` (orders, refunds, fulfilments) and
:mod:`.support` (tickets, comments, ratings). The names below are the ones
plugins and importers use.
"""

from __future__ import annotations

from .. import events as ev
from ..privacy import export_for_request, redact_for_request
from ..shop_erasure import record_uninstall, shop_redact_for_request
from .customers import normalise_email, resolve_customer
from .merging import MergeWithoutPlugins, merge_customers
from .orders import NotYet, order_name, order_row, record_fulfillment, record_order, record_refund
from .support import fill_requester, record_comment, record_rating, record_ticket, ticket_row

__all__ = [
    "MergeWithoutPlugins", "NotYet", "fill_requester", "merge_customers", "normalise_email", "order_name",
    "order_row", "record", "record_comment", "record_fulfillment", "record_order", "record_rating",
    "record_refund", "record_ticket", "resolve_customer", "ticket_row",
]


def record(event: ev.Event, ctx) -> None:
    """Bring the core tables up to date with one event (called before the event's hook)."""
    conn, now = ctx.conn, ctx.now
    if isinstance(event, (ev.OrderCreated, ev.OrderUpdated, ev.OrderPaid, ev.OrderCancelled)):
        record_order(conn, event.order, now, paid=isinstance(event, ev.OrderPaid), ctx=ctx)
    elif isinstance(event, ev.OrderFulfilled):
        if event.order is not None:
            record_order(conn, event.order, now, ctx=ctx)
        if event.fulfillment is not None:
            record_fulfillment(conn, event.fulfillment, now)
    elif isinstance(event, ev.RefundCreated):
        record_refund(conn, event.refund, now, ctx=ctx)
    elif isinstance(event, (ev.CustomerUpdated, ev.CustomerDeleted)):
        resolve_customer(conn, event.customer, now, ctx=ctx)
    elif isinstance(event, (ev.TicketCreated, ev.TicketUpdated, ev.TicketSolved)):
        fill_requester(ctx, event.ticket.requester)
        record_ticket(conn, event.ticket, now, ctx=ctx)
    elif isinstance(event, ev.CommentAdded):
        fill_requester(ctx, event.ticket.requester)
        record_comment(conn, event, now, ctx=ctx)
    elif isinstance(event, ev.SatisfactionRated):
        record_rating(conn, event.rating, now, event.ticket, ctx=ctx)
    elif isinstance(event, ev.CustomerDataRequest):
        export_for_request(ctx, event)
    elif isinstance(event, ev.CustomerRedact):
        redact_for_request(ctx, event)
    elif isinstance(event, ev.ShopRedact):
        shop_redact_for_request(ctx, event)
    elif isinstance(event, ev.AppUninstalled):
        record_uninstall(ctx, event)

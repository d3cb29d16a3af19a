"""Product recalls: reach every buyer, quickly, and track each case to the end.

``retention recall create --sku S ...`` finds every customer who ordered the
item in the date window, from stored webhook orders and imported history
alike, and opens one *case* per customer (``recall_cases``). Each case gets a
transactional notice (kind ``recall`` for safety recalls, ``recall_quality``
for quality recalls), optionally a Zendesk ticket to track the return or
repair, and moves through exactly one state at a time:

``affected``      the customer bought it; the notice is not sent (yet)
``notified``      the notice was sent
``acknowledged``  the customer clicked the signed link in the notice
``resolved``      the Zendesk ticket was solved, or ``retention recall resolve``

so the four counts of ``retention recall status`` always add up to the number
of cases. Orders in the window that arrive later (webhooks, imports) join the
open recall. Keys make everything idempotent: the recall's key comes from
(sku, product id, window), a case is unique per (recall, customer), the notice
is message ``recall:<recall id>:<customer id>`` and the ticket action
``recalls:ticket:<recall id>:<customer id>``, so running create again notifies
nobody twice. See docs/reminders-and-recalls.md.

The plugin (this module) holds the hook implementations; the rest is in
:mod:`.engine` (cases, notices, tickets), :mod:`.settings`, :mod:`.ack` and
:mod:`.ack_page` (the signed acknowledgment link and its page), :mod:`.texts`
(the notice's text per language), :mod:`.commands` (``retention recall``) and
:mod:`.data` (its rows in merges and erasure).
"""

from __future__ import annotations

from sqlalchemy import select

from retention_plugin import hookimpl
from retention_plugin.storage import tables as t

from .ack import ACK_PATH
from .data import TEXT_COLUMNS, customers_merged, shop_redact  # noqa: F401 (hook implementations)
from .engine import join_order, link_ticket, resolve_case, stored_order_id, sync_all
from .settings import PLUGIN, QUALITY_KIND, RecallsSchema

rc = t.recall_cases


@hookimpl
def register_config_sections(register):
    register(PLUGIN, RecallsSchema())


@hookimpl
def register_message_kinds(register):
    # ``recall`` is built in (and listed in [contact_policy].safety_kinds); a quality recall is
    # transactional too but keeps quiet hours, so it needs a kind of its own.
    register(QUALITY_KIND, "transactional")


@hookimpl
def register_routes(retention):
    from retention_plugin.routes import Route

    from .ack_page import AckPage

    return [Route(ACK_PATH, AckPage(retention))]


@hookimpl
def register_tasks(register):
    register("recalls.sync", sync_all, 60)


@hookimpl
def register_commands(cli):
    from .commands import recall_group

    cli.add_command(recall_group)


@hookimpl
def order_paid(event, ctx):
    oid = stored_order_id(ctx, event.order.shopify_id)
    if oid is not None:
        join_order(ctx, oid)


@hookimpl
def order_fulfilled(event, ctx):
    oid = stored_order_id(ctx, event.order_id)
    if oid is not None:
        join_order(ctx, oid)


@hookimpl
def ticket_created(event, ctx):
    link_ticket(ctx, event.ticket)


@hookimpl
def ticket_updated(event, ctx):
    link_ticket(ctx, event.ticket)


@hookimpl
def ticket_solved(event, ctx):
    case = link_ticket(ctx, event.ticket)
    if case is not None:
        resolve_case(ctx.conn, case, ctx.now, f"Zendesk ticket {event.ticket.zendesk_id} solved")


@hookimpl
def customer_facts(customer_id, ctx):
    rows = ctx.conn.execute(select(rc.c.recall_id, rc.c.status, rc.c.zendesk_ticket_id)
                            .where(rc.c.customer_id == customer_id).order_by(rc.c.recall_id)).mappings().all()
    if not rows:
        return None
    return {PLUGIN: [{"recall_id": r["recall_id"], "status": r["status"], "zendesk_ticket_id": r["zendesk_ticket_id"]}
                     for r in rows]}


@hookimpl
def register_admin_operations(register):
    from .admin import register as offer

    offer(register)

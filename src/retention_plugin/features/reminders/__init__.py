"""Replenishment and service reminders, and the auto-replenishment offer.

A rule in ``[[reminders.rules]]`` matches order lines by SKU, product id,
product type or tag and says when the customer will need the product again:
a fixed ``interval_days``, or ``learn = true`` for the median interval between
repeat purchases of that SKU across all customers (with ``fallback_days``
until there is enough history). When an order is paid, every matching line
schedules one reminder message at

    order time + interval x quantity factor

(the factor is the quantity bought, unless the rule says otherwise). A newer
order of the same SKU by the same customer cancels the pending reminder and
schedules one from the new order; an older order arriving late changes
nothing. Reminders are ``reminder`` messages (marketing) with a one-click
reorder link; rules with ``service = true`` send ``service_reminder``
(transactional).

A customer who has bought the same SKU at least three times at regular
intervals is a subscription prospect: the ``replenishment_candidate`` hook is
called once per customer and SKU, and unless an implementation returns
``False`` a single ``replenishment_offer`` message (marketing) is scheduled.

Everything is keyed (``reminder:<rule>:<customer>:<sku>:<order>``,
``replenishment_offer:<customer>:<sku>``), so a replayed delivery changes
nothing. See docs/reminders-and-recalls.md.

The plugin (this module) holds the hook implementations; the rest is in
:mod:`.engine`, :mod:`.settings`, :mod:`.commands` (``retention reminders``)
and :mod:`.data` (its rows in merges and erasure).
"""

from __future__ import annotations

from sqlalchemy import select

from retention_plugin import hookimpl
from retention_plugin.storage import tables as t

from .data import TEXT_COLUMNS, customers_merged, shop_redact  # noqa: F401 (hook implementations)
from .engine import cancel_for_order, check_candidates, schedule_for_order, stored_order_id, sync_statuses
from .settings import OFFER_KIND, PLUGIN, RemindersSchema


@hookimpl
def register_config_sections(register):
    register(PLUGIN, RemindersSchema())


@hookimpl
def register_message_kinds(register):
    register(OFFER_KIND, "marketing")


@hookimpl
def register_tasks(register):
    register("reminders.sync", sync_statuses, 300)


@hookimpl
def register_commands(cli):
    from .commands import reminders_group

    cli.add_command(reminders_group)


@hookimpl
def order_paid(event, ctx):
    oid = stored_order_id(ctx, event.order)
    if oid is None:
        return
    schedule_for_order(ctx, oid)
    check_candidates(ctx, oid)


@hookimpl
def order_cancelled(event, ctx):
    oid = stored_order_id(ctx, event.order)
    if oid is not None:
        cancel_for_order(ctx, oid, "order cancelled")


@hookimpl
def customer_facts(customer_id, ctx):
    r = t.reminders
    rows = ctx.conn.execute(select(r.c.rule, r.c.sku, r.c.due_at, r.c.status).where(
        r.c.customer_id == customer_id).order_by(r.c.due_at.desc()).limit(20)).mappings().all()
    if not rows:
        return None
    return {PLUGIN: [{"rule": x["rule"], "sku": x["sku"], "due_at": x["due_at"].isoformat(),
                      "status": x["status"]} for x in rows]}

"""What the delays plugin does: find late orders and stuck parcels, apologise once per problem, and
withdraw an apology the order overtook."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import String, cast, exists, literal, not_, or_, select, update

from retention_plugin.customers import follow_merges as load_customer
from retention_plugin.discounts import HELD, customer_gid, issue_discount, offer_data
from retention_plugin.messaging.schedule import cancel_message
from retention_plugin.records.orders import NotYet, order_name, order_row
from retention_plugin.shop_scope import only
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import insert_ignore

from .settings import (
    BATCH,
    CARRIER_PROBLEMS,
    DELIVERED,
    MOVING,
    NO_CREDIT,
    PLUGIN,
    STALLED,
    UNSHIPPED,
    settings_of,
)

log = logging.getLogger("retention_plugin.features.delays")


def message_key(order_id: int, problem: str = UNSHIPPED) -> str:
    """``delay:<order id>`` for an order never shipped; ``delay:<order id>:<problem>`` for the others."""
    return f"delay:{order_id}" if problem == UNSHIPPED else f"delay:{order_id}:{problem}"


def late_orders(conn, now, s, limit: int = BATCH) -> list[dict]:
    """Paid, kept, unshipped orders in the lateness window that have no apology yet."""
    o, m = t.orders, t.messages
    has_apology = exists(select(m.c.id).where(m.c.key == literal("delay:") + cast(o.c.shopify_id, String)))
    q = (select(o).where(
        o.c.shopify_id.is_not(None), o.c.customer_id.is_not(None), o.c.paid_at.is_not(None),
        o.c.cancelled_at.is_(None), o.c.fulfilled_at.is_(None), o.c.test.is_(False),
        or_(o.c.fulfillment_status.is_(None), not_(o.c.fulfillment_status.in_(("fulfilled", "partial", "restocked")))),
        or_(o.c.financial_status.is_(None), not_(o.c.financial_status.in_(("refunded", "voided")))),
        o.c.paid_at <= now - timedelta(days=s["after_days"]),
        o.c.paid_at >= now - timedelta(days=s["max_age_days"]),
        not_(has_apology), only(o),
    ).order_by(o.c.paid_at, o.c.id).limit(limit))
    return [dict(r) for r in conn.execute(q).mappings() if not _skipped(r, s)]


def _skipped(order, s) -> bool:
    skip = {x.lower() for x in s["skip_tags"]}
    return bool(skip.intersection(str(tag).lower() for tag in (order["tags"] or [])))


def stalled_orders(conn, now, s, limit: int = BATCH) -> list[tuple[dict, dict]]:
    """``(order, shipment)`` for shipments on their way with no tracking event for ``stalled_after_days``."""
    if not s["stalled_after_days"]:
        return []
    o, sh, m = t.orders, t.shipments, t.messages
    has_apology = exists(select(m.c.id).where(
        m.c.key == literal("delay:") + cast(o.c.shopify_id, String) + literal(f":{STALLED}")))
    q = (select(o, sh.c.fulfillment_id, sh.c.status.label("shipment_status"), sh.c.status_at,
                sh.c.estimated_delivery_at)
         .select_from(sh.join(o, sh.c.order_id == o.c.id))
         .where(sh.c.delivered_at.is_(None), sh.c.status.in_(MOVING),
                sh.c.status_at <= now - timedelta(days=s["stalled_after_days"]),
                sh.c.status_at >= now - timedelta(days=s["max_age_days"]),
                o.c.customer_id.is_not(None), o.c.cancelled_at.is_(None), o.c.test.is_(False),
                not_(has_apology), only(o))
         .order_by(sh.c.status_at, sh.c.id).limit(limit))
    out, seen = [], set()
    for r in conn.execute(q).mappings():
        if r["id"] in seen or _skipped(r, s):
            continue
        seen.add(r["id"])
        out.append((dict(r), {"fulfillment_id": r["fulfillment_id"], "status": r["shipment_status"],
                              "status_at": r["status_at"], "estimated_delivery_at": r["estimated_delivery_at"]}))
    return out


def apologise_for_late_orders(ctx) -> int:
    """The hourly task: orders never shipped, and shipments that stopped moving; returns apologies scheduled."""
    s = settings_of(ctx.settings)
    n = 0
    for order in late_orders(ctx.conn, ctx.now, s):
        if apologise(ctx, order, s) is not None:
            n += 1
    for order, shipment in stalled_orders(ctx.conn, ctx.now, s):
        if apologise(ctx, order, s, problem=STALLED, new_estimate=shipment["estimated_delivery_at"]) is not None:
            n += 1
    if n:
        log.info("scheduled %s late-delivery apolog%s", n, "y" if n == 1 else "ies")
    return n


def apologise(ctx, order: dict, s: dict, problem: str = UNSHIPPED, new_estimate=None) -> int | None:
    """One apology for ``order`` (an ``orders`` row) and ``problem``; once, whatever is called again.

    The order's first apology (not for ``attempted_delivery``) carries the credit, when configured.
    """
    customer = load_customer(ctx.conn, order["customer_id"])
    if customer is None:
        return None
    oid = order["shopify_id"]
    key = message_key(oid, problem)
    existing = ctx.conn.execute(select(t.messages.c.id).where(t.messages.c.key == key)).scalar()
    if existing is not None:
        return existing
    data = {"order_name": order_name(order), "reason": problem,
            "new_estimate": new_estimate.date().isoformat() if new_estimate is not None else None,
            "code": None, "discount_percent": None, "discount_amount": None, "currency": None, "expires_at": None}
    credit_key = f"delay:credit:{oid}"
    first_credit = ctx.conn.execute(select(t.rewards.c.id).where(t.rewards.c.key == credit_key)).scalar() is None
    if (s["credit_percent"] is not None or s["credit_amount"] is not None) and problem not in NO_CREDIT \
            and first_credit and customer.get("redacted_at") is None:
        # Without a Shopify customer the credit is held for approval; the apology goes now without it,
        # and an approved credit follows in a second apology that carries the code.
        reward = issue_discount(
            ctx, key=credit_key, action_key=f"delay:discount:{oid}", feature=PLUGIN, customer=customer,
            percent=s["credit_percent"], amount=s["credit_amount"],
            currency=order["currency"] if s["credit_amount"] is not None else None,
            ends_at=ctx.now + timedelta(days=s["credit_valid_days"]),
            title=f"Sorry for the delay {order_name(order)}", prefix=s["code_prefix"], source_ref=f"order:{oid}",
            message=None if customer_gid(customer) else {
                "key": f"{key}:credit", "kind": "delay_apology", "locale": order["locale"], "data": dict(data)})
        if reward["status"] != HELD:
            data.update(offer_data(reward))
    return ctx.schedule_message(key=key, customer_id=customer["id"], kind="delay_apology",
                                due_at=ctx.now, locale=order["locale"], data=data)


# --- carrier tracking ------------------------------------------------------------------------------


def record_shipment(conn, order: dict, event, now) -> dict:
    """Keep the latest status of the event's fulfillment (by when it happened); returns the row."""
    sh = t.shipments
    delivered = event.happened_at if event.status in DELIVERED else None
    insert_ignore(conn, sh, {"fulfillment_id": event.fulfillment_id, "order_id": order["id"], "status": event.status,
                             "status_at": event.happened_at, "estimated_delivery_at": event.estimated_delivery_at,
                             "delivered_at": delivered, "created_at": now, "updated_at": now}, ["fulfillment_id"])
    row = dict(conn.execute(select(sh).where(sh.c.fulfillment_id == event.fulfillment_id)).mappings().one())
    values = {}
    if event.happened_at > row["status_at"]:  # events arrive out of order: the latest one says where it is
        values.update(status=event.status, status_at=event.happened_at)
        if event.estimated_delivery_at is not None:
            values["estimated_delivery_at"] = event.estimated_delivery_at
    if delivered is not None and (row["delivered_at"] is None or delivered < row["delivered_at"]):
        values["delivered_at"] = delivered
    if values:
        conn.execute(update(sh).where(sh.c.id == row["id"]).values(updated_at=now, **values))
        row.update(values)
    return row


def _withdraw_when_delivered(ctx, order: dict) -> None:
    sh = t.shipments
    waiting = ctx.conn.execute(select(sh.c.id).where(sh.c.order_id == order["id"], sh.c.delivered_at.is_(None))).first()
    if waiting is None:
        for problem in (*CARRIER_PROBLEMS, STALLED):
            _withdraw(ctx, order["shopify_id"], "the order was delivered before the apology went out", problem)


def _withdraw(ctx, order_id: int, why: str, problem: str = UNSHIPPED) -> None:
    cancel_message(ctx.conn, message_key(order_id, problem), why)


def on_shipment(ctx, ship) -> None:
    """A carrier's tracking event: keep it, withdraw apologies once delivered, apologise for a problem."""
    s = settings_of(ctx.settings)
    order = order_row(ctx.conn, ship.order_id)
    if order is None:  # orders/* has not arrived yet: the worker retries this delivery later
        raise NotYet(f"tracking event {ship.shopify_id} is for order {ship.order_id}, not stored yet")
    order = dict(order)
    row = record_shipment(ctx.conn, order, ship, ctx.now)
    if ship.status in DELIVERED:
        _withdraw_when_delivered(ctx, order)
        return
    if ship.status not in s["carrier_statuses"]:
        return
    if row["delivered_at"] is not None and row["delivered_at"] >= ship.happened_at:
        return  # an old event arriving after the parcel was delivered: nothing to apologise for now
    if ship.happened_at < ctx.now - timedelta(days=s["max_age_days"]):
        return  # a replay of something long past
    if order["customer_id"] is None or order["cancelled_at"] is not None or order["test"] or _skipped(order, s):
        return
    apologise(ctx, order, s, problem=ship.status, new_estimate=ship.estimated_delivery_at)


def withdraw_when_shipped(ctx, order_id: int) -> None:
    _withdraw(ctx, order_id, "the order shipped before the apology went out")


def withdraw_when_cancelled(ctx, order_id: int) -> None:
    for problem in (UNSHIPPED, *CARRIER_PROBLEMS, STALLED):
        _withdraw(ctx, order_id, "the order was cancelled", problem)

"""Late-delivery apologies: an order paid but not shipped after N days gets one apology.

The built-in plugin ``delays`` (``[plugins] disabled = ["delays"]``),
configured under ``[delays]`` (docs/offers-and-followups.md).

An hourly task finds orders that are paid, not cancelled, not refunded or
voided, not fulfilled (not even partly), not test orders, not tagged with one
of ``skip_tags`` (pre-orders are late on purpose), paid between
``max_age_days`` and ``after_days`` ago, and schedules one ``delay_apology``
message (transactional) per order, key ``delay:<order id>``. With
``credit_percent`` or ``credit_amount`` the message carries a single-use
discount code for that customer (``rewards`` feature ``delays``, action key
``delay:discount:<order id>``), created once per order.

``max_age_days`` keeps a first run (or an import of old orders) from
apologising for orders nobody is waiting for any more. When the order ships
or is cancelled before the apology goes out (it may wait for quiet hours),
the apology is withdrawn.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import String, cast, exists, literal, not_, or_, select

from retention_plugin import hookimpl
from retention_plugin.storage import tables as t

from ..discounts import customer_gid
from .offers import issue_discount, load_customer, offer_data, order_name

PLUGIN = "delays"
TASK = "delays.apologise"
EVERY_SECONDS = 3600
#: Orders handled per run at most (the next run continues).
BATCH = 500
log = logging.getLogger("retention_plugin.features.delays")


class DelaysSchema(Schema):
    class Meta:
        unknown = RAISE

    #: An order paid this many days ago and not shipped is late.
    after_days = fields.Float(load_default=5.0, validate=validate.Range(min=0, min_inclusive=False))
    #: Orders paid longer ago than this get no apology (first run, imports, long-forgotten orders).
    max_age_days = fields.Float(load_default=30.0, validate=validate.Range(min=0, min_inclusive=False))
    #: Orders with any of these tags are never "late" (case-insensitive).
    skip_tags = fields.List(fields.String(validate=validate.Length(min=1)),
                            load_default=lambda: ["preorder", "pre-order"])
    #: An optional small credit with the apology: a single-use code for that customer.
    credit_percent = fields.Decimal(load_default=None, validate=validate.Range(min=0, max=100, min_inclusive=False))
    credit_amount = fields.Decimal(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    credit_valid_days = fields.Integer(load_default=60, strict=True, validate=validate.Range(min=1, max=3650))
    code_prefix = fields.String(load_default="SORRY", validate=validate.Regexp(
        r"^[A-Z0-9]{1,20}$", error="expected 1-20 capital letters or digits"))

    @validates_schema
    def _check(self, data, **_):
        if data.get("credit_percent") is not None and data.get("credit_amount") is not None:
            raise ValidationError("give at most one of credit_percent or credit_amount", "credit_percent")
        if data["max_age_days"] <= data["after_days"]:
            raise ValidationError("must be greater than after_days", "max_age_days")


@hookimpl
def register_config_sections(register):
    register(PLUGIN, DelaysSchema())


@hookimpl
def register_tasks(register):
    register(TASK, apologise_for_late_orders, EVERY_SECONDS)


def settings_of(settings) -> dict:
    s = settings.section(PLUGIN)
    return s if s else DelaysSchema().load({})


def message_key(order_id: int) -> str:
    return f"delay:{order_id}"


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
        not_(has_apology),
    ).order_by(o.c.paid_at, o.c.id).limit(limit))
    skip = {x.lower() for x in s["skip_tags"]}
    return [dict(r) for r in conn.execute(q).mappings()
            if not skip.intersection(str(tag).lower() for tag in (r["tags"] or []))]


def apologise_for_late_orders(ctx) -> int:
    """The hourly task; returns how many apologies it scheduled."""
    s = settings_of(ctx.settings)
    n = 0
    for order in late_orders(ctx.conn, ctx.now, s):
        if apologise(ctx, order, s) is not None:
            n += 1
    if n:
        log.info("scheduled %s late-delivery apolog%s", n, "y" if n == 1 else "ies")
    return n


def apologise(ctx, order: dict, s: dict) -> int | None:
    """One apology (and credit) for ``order`` (an ``orders`` row); once per order whatever is called again."""
    customer = load_customer(ctx.conn, order["customer_id"])
    if customer is None:
        return None
    oid = order["shopify_id"]
    data = {"order_name": order_name(order), "new_estimate": None, "code": None, "discount_percent": None,
            "discount_amount": None, "currency": None, "expires_at": None}
    if (s["credit_percent"] is not None or s["credit_amount"] is not None) and customer_gid(customer) \
            and customer.get("redacted_at") is None:
        reward = issue_discount(
            ctx, key=f"delay:credit:{oid}", action_key=f"delay:discount:{oid}", feature=PLUGIN, customer=customer,
            percent=s["credit_percent"], amount=s["credit_amount"],
            currency=order["currency"] if s["credit_amount"] is not None else None,
            ends_at=ctx.now + timedelta(days=s["credit_valid_days"]),
            title=f"Sorry for the delay {order_name(order)}", prefix=s["code_prefix"], source_ref=f"order:{oid}")
        data.update(offer_data(reward))
    return ctx.schedule_message(key=message_key(oid), customer_id=customer["id"], kind="delay_apology",
                                due_at=ctx.now, locale=order["locale"], data=data)


def _withdraw(ctx, order_id: int, why: str) -> None:
    from retention_plugin.messaging.outbox import cancel_message

    cancel_message(ctx.conn, message_key(order_id), why)


@hookimpl
def order_fulfilled(event, ctx):
    order_id = event.order.shopify_id if event.order is not None else (
        event.fulfillment.order_id if event.fulfillment is not None else None)
    if order_id is not None:
        _withdraw(ctx, order_id, "the order shipped before the apology went out")


@hookimpl
def order_cancelled(event, ctx):
    _withdraw(ctx, event.order.shopify_id, "the order was cancelled")

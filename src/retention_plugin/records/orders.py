"""Orders, their lines, refunds and fulfilments, as the platform reports them.

Deliveries arrive out of order: the newest platform ``updated_at`` wins for
what changes, and facts that only ever become true (paid, cancelled,
fulfilled) are kept whichever delivery brings them. A refund or fulfilment of
an order not stored yet raises :class:`NotYet`, so the delivery is retried.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, delete, select, update

from .. import events as ev
from ..shop_scope import current
from ..storage import tables as t
from ..storage.db import insert_ignore
from .customers import customer_redacted, normalise_email, resolve_customer


class NotYet(Exception):
    """A record this event depends on has not arrived yet; retrying later will help."""

    transient = True


def order_name(row) -> str:
    """An order as people name it: ``#1001``, or its Shopify id when it has no name."""
    return row.get("name") or f"#{row['shopify_id']}"


_ORDER = select(t.orders).where(t.orders.c.shop == bindparam("shop"), t.orders.c.shopify_id == bindparam("sid"))
# Written rows come back with RETURNING, so the plugins after the record read the order from the context.
_INSERT_ORDER = t.orders.insert().returning(*t.orders.c)
_UPDATE_ORDER = update(t.orders).where(t.orders.c.id == bindparam("_oid")).returning(*t.orders.c)


def order_row(conn, shopify_id: int):
    return conn.execute(_ORDER, {"shop": current(conn), "sid": shopify_id}).mappings().first()


def _ctx_of(conn, ctx):
    """``ctx`` when it is ``conn``'s (its read cache then holds what this transaction sees), else None."""
    return ctx if ctx is not None and getattr(ctx, "conn", None) is conn else None


def _keep_order(ctx, row) -> None:
    if ctx is not None and row is not None:
        ctx._keep(("orders", row["id"]), ("orders",), row)
        if row["shopify_id"] is not None:
            ctx._keep(("orders.shopify_id", row["shop"], row["shopify_id"]), ("orders",), row)


def record_order(conn, order: ev.Order, now: datetime, *, paid: bool = False, import_key: str | None = None,
                 ctx=None) -> int:
    """Insert or update an order and its lines; returns the internal order id."""
    o = t.orders
    customer_id = resolve_customer(conn, order.customer, now, email=order.email, ctx=ctx)
    cache = _ctx_of(conn, ctx)
    if order.shopify_id is None:
        existing = None
    else:
        existing = cache.order_row(order.shopify_id) if cache is not None else order_row(conn, order.shopify_id)
    if existing is None and import_key:
        existing = conn.execute(select(o).where(o.c.shop == current(conn),
                                                o.c.import_key == import_key)).mappings().first()
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
        # A customer this record just created has no order but this one: the plugins need not look for others.
        first = cache is not None and customer_id is not None and cache.customer_is_new(customer_id, "orders")
        row = conn.execute(_INSERT_ORDER, values).mappings().one()
        _keep_order(cache, row)
        oid = row["id"]
        _insert_lines(conn, oid, order.lines, cache)
        if first:
            cache._orders_known(customer_id, (oid,))
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
    if changes and all(existing[k] == v for k, v in changes.items()):
        changes = {}  # the row says it all already (the order's next delivery repeats it): no UPDATE
    if changes:
        if "email" in changes and customer_redacted(conn, existing["customer_id"]):
            changes.pop("email")  # a late update must not bring an erased address back
        if changes:
            _keep_order(cache, conn.execute(_UPDATE_ORDER, {**changes, "_oid": oid}).mappings().one())
    if not stale and order.lines:
        _replace_lines(conn, oid, order.lines, cache)
    return oid


_LINES = select(t.order_lines).where(t.order_lines.c.order_id == bindparam("oid"))
_INSERT_LINE = t.order_lines.insert()
_INSERT_LINE_RETURNING = t.order_lines.insert().returning(*t.order_lines.c)
# Several lines go in one statement (VALUES (...), (...)), their ids given in the lines' order as one by one.
# SQLite inserts VALUES rows in order (asked to sort, SQLAlchemy would send one statement per line); elsewhere
# SQLAlchemy is told to keep the order (PostgreSQL does not promise nextval's order over VALUES rows).
_INSERT_LINES_RETURNING = t.order_lines.insert().returning(*t.order_lines.c, sort_by_parameter_order=True)
_INSERT_LINES_RETURNING_SQLITE = t.order_lines.insert().returning(*t.order_lines.c)
_UPDATE_LINE = update(t.order_lines).where(t.order_lines.c.id == bindparam("_lid"))


def _line_values(pos: int, line: ev.OrderLine) -> tuple[str, dict]:
    """The line's key within its order (the platform's line id, else its position) and its columns."""
    key = str(line.line_id) if line.line_id is not None else f"pos:{pos}"
    return key, {"sku": line.sku, "product_id": line.product_id, "variant_id": line.variant_id,
                 "title": line.title, "product_type": line.product_type, "vendor": line.vendor,
                 "tags": list(line.tags), "quantity": line.quantity, "price": line.price.amount,
                 "total_discount": line.total_discount.amount}


def _insert_lines(conn, order_id: int, lines: list[ev.OrderLine], cache) -> None:
    """A new order's lines, in one statement; with a context, they are its cached lines (read back with RETURNING)."""
    params = []
    for pos, line in enumerate(lines):
        key, values = _line_values(pos, line)
        values["order_id"], values["line_key"] = order_id, key
        params.append(values)
    sqlite = conn.dialect.name == "sqlite"
    if not params:
        rows = []
    elif cache is None and (sqlite or len(params) == 1):
        conn.execute(_INSERT_LINE, params)  # SQLite's executemany inserts in the lines' order
        return
    elif len(params) == 1:
        rows = [conn.execute(_INSERT_LINE_RETURNING, params[0]).mappings().one()]
    else:
        rows = conn.execute(_INSERT_LINES_RETURNING_SQLITE if sqlite else _INSERT_LINES_RETURNING,
                            params).mappings().all()
    if cache is not None:
        cache._keep(("order_lines", order_id), ("order_lines",), tuple(sorted(rows, key=lambda r: r["id"])))


def _replace_lines(conn, order_id: int, lines: list[ev.OrderLine], cache=None) -> None:
    """A stored order's lines as the platform now reports them; with a context, lines it did not have to
    change are its cached lines (as read here)."""
    ol = t.order_lines
    read = conn.execute(_LINES, {"oid": order_id}).mappings().all()
    existing = {r["line_key"]: r for r in read}
    wrote = False
    for pos, line in enumerate(lines):
        key, values = _line_values(pos, line)
        row = existing.get(key)
        if row is not None:
            if any(row[k] != v for k, v in values.items()):  # an unchanged line is left alone
                conn.execute(_UPDATE_LINE, {**values, "_lid": row["id"]})
                wrote = True
        else:
            conn.execute(_INSERT_LINE, {**values, "order_id": order_id, "line_key": key})
            wrote = True
    # Lines a file import stored by position give way to the platform's own line ids.
    if any(line.line_id is not None for line in lines):
        stale = [r["id"] for k, r in existing.items() if k.startswith("pos:")]
        if stale:
            conn.execute(delete(ol).where(ol.c.id.in_(stale)))
            wrote = True
    if cache is not None and not wrote:  # the rows read are the rows stored: the plugins need not read them
        cache._keep(("order_lines", order_id), ("order_lines",), tuple(sorted(read, key=lambda r: r["id"])))


def record_refund(conn, refund: ev.Refund, now: datetime, *, ctx=None) -> int | None:
    """Store a refund once; returns its id, or None when it was already stored."""
    cache = _ctx_of(conn, ctx)
    order = cache.order_row(refund.order_id) if cache is not None else order_row(conn, refund.order_id)
    if order is None:
        raise NotYet(f"refund {refund.shopify_id} is for order {refund.order_id}, which is not stored yet")
    rid = insert_ignore(conn, t.refunds, {
        "shopify_id": refund.shopify_id, "order_id": order["id"], "merchandise": refund.merchandise.amount,
        "currency": refund.merchandise.currency, "lines": [_jsonable(x) for x in refund.lines],
        # A refund arriving after its customer was erased must not bring their words back.
        "note": None if customer_redacted(conn, order["customer_id"]) else refund.note,
        "created_at": refund.created_at}, ["shopify_id"])
    if rid is None:
        return None
    _keep_order(cache, conn.execute(update(t.orders).where(t.orders.c.id == order["id"]).values(
        refunded=t.orders.c.refunded + refund.merchandise.amount).returning(*t.orders.c)).mappings().one())
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
    elif fulfillment.updated_at and (row["source_updated_at"] is None
                                     or fulfillment.updated_at >= row["source_updated_at"]):
        conn.execute(update(f).where(f.c.id == row["id"]).values(status=fulfillment.status,
                                                                  source_updated_at=fulfillment.updated_at))
    if order["fulfilled_at"] is None and fulfillment.status not in ("cancelled", "failure", "error"):
        conn.execute(update(t.orders).where(t.orders.c.id == order["id"]).values(fulfilled_at=fulfillment.created_at))

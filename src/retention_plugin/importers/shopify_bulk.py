"""``retention import shopify --since DATE``: order history through a GraphQL bulk operation.

1. ``bulkOperationRunQuery`` starts a query of every order created since the
   date (``orders(query: "created_at:>='...'")``), with its customer and its
   line items (a nested connection);
2. ``bulkOperation(id:)`` is polled until the operation is ``COMPLETED``
   (the wait between polls is injectable, so tests do not sleep);
3. the JSONL result is downloaded from its ``url``: one JSON object per
   line, an order's line items as separate lines that name the order in
   ``__parentId`` (not necessarily right after it);
4. every order goes through :func:`records.record_order` with
   ``source = "import"`` and ``import_key = "shopify:<shop>:<order id>"``.
   An order already stored whose Shopify ``updatedAt`` is not older than the
   stored one is skipped; a stale one is brought up to date (its ``source``
   stays what it was).

Shopify returns orders older than 60 days only to apps with the
``read_all_orders`` scope.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy import update

from .. import events as ev
from ..platforms.errors import PayloadError
from ..platforms.schema_fields import parse_iso_datetime, split_tags
from ..platforms.shopify import mutations
from ..records.customers import normalise_email
from ..records.orders import order_row, record_order
from ..shop_scope import scope
from ..storage import tables as t
from .report import ImportReport
from .writer import import_context

RUNNING = ("CREATED", "RUNNING", "CANCELING")
_GID = re.compile(r"^gid://shopify/([A-Za-z]+)/(\d+)(?:\?.*)?$")


class BulkOperationError(Exception):
    """The bulk operation could not be started, failed, or did not finish in time."""


# --- running the operation ------------------------------------------------------------------------


def run_bulk_query(client, query: str, *, sleep: Callable[[float], None] | None = None, poll_seconds: float = 5.0,
                   timeout_seconds: float = 6 * 3600,
                   on_status: Callable[[Mapping[str, Any]], None] | None = None) -> dict[str, Any]:
    """Start a bulk query and wait until it is done; returns the finished operation.

    :raises BulkOperationError: it could not start (another one runs), failed,
        was cancelled, or is still running after ``timeout_seconds``.
    """
    from ..platforms.errors import UserErrors

    sleep = sleep or time.sleep
    try:
        started = client.perform(mutations.bulk_operation_run_query(query))
    except UserErrors as e:
        raise BulkOperationError(f"Shopify did not start the bulk operation: {e}") from None
    op = started.get("bulkOperation")
    if not isinstance(op, Mapping) or not op.get("id"):
        raise BulkOperationError("Shopify answered bulkOperationRunQuery without a bulk operation")
    gid = op["id"]
    waited = 0.0
    while True:  # the start answer has no url yet: poll at least once
        if waited >= timeout_seconds:
            raise BulkOperationError(
                f"bulk operation {gid} is still {op.get('status')} after {waited:.0f} s; it keeps running at "
                "Shopify: run the import again later, or cancel it with bulkOperationCancel")
        sleep(poll_seconds)
        waited += poll_seconds
        data = client.perform(mutations.bulk_operation(gid))
        op = data.get("bulkOperation")
        if not isinstance(op, Mapping):
            raise BulkOperationError(f"bulk operation {gid} is unknown to Shopify")
        if on_status is not None:
            on_status(op)
        if op.get("status") not in RUNNING:
            break
    if op.get("status") != "COMPLETED":
        partial = f"; partial results: {op['partialDataUrl']}" if op.get("partialDataUrl") else ""
        raise BulkOperationError(
            f"bulk operation {gid} ended {op.get('status')} ({op.get('errorCode') or 'no error code'}){partial}")
    return dict(op)


def download_lines(session, url: str, *, timeout: float = 60,
                   on_bytes: Callable[[int], None] | None = None) -> Iterable[tuple[int, dict]]:
    """``(line number, object)`` for each line of the JSONL result (streamed)."""
    import requests

    try:
        response = session.get(url, stream=True, timeout=timeout)
    except requests.RequestException as e:
        raise BulkOperationError(f"downloading the bulk result failed: {type(e).__name__}") from None
    with response:
        if response.status_code != 200:
            raise BulkOperationError(f"downloading the bulk result failed: HTTP {response.status_code}")
        for number, raw in enumerate(response.iter_lines(), start=1):
            if on_bytes is not None:
                on_bytes(len(raw) + 1)
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                yield number, {"__invalid__": raw[:80].decode("utf-8", "replace")}
                continue
            yield number, obj if isinstance(obj, dict) else {"__invalid__": str(obj)[:80]}


# --- GraphQL shapes -> domain objects -----------------------------------------------------------


def gid_number(value: Any, field: str, kind: str | None = None) -> int:
    m = _GID.match(value) if isinstance(value, str) else None
    if not m or (kind and m.group(1) != kind):
        raise PayloadError(field, f"not a Shopify {kind or ''} id: {value!r}".replace("  ", " "))
    return int(m.group(2))


def _time(data: Mapping, field: str, *, required: bool = False) -> datetime | None:
    value = data.get(field)
    if value is None:
        if required:
            raise PayloadError(field, "missing")
        return None
    parsed = parse_iso_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise PayloadError(field, f"not a timestamp with offset: {value!r}")
    return parsed.astimezone(timezone.utc)


def _money(data: Mapping, field: str, currency: str, *, required: bool = False,
           which: str = "shopMoney") -> ev.Money | None:
    money_set = data.get(field)
    money = money_set.get(which) if isinstance(money_set, Mapping) else None
    if not isinstance(money, Mapping):
        if required:
            raise PayloadError(f"{field}.{which}", "missing")
        return None
    try:
        amount = Decimal(str(money.get("amount")))
    except InvalidOperation:
        raise PayloadError(f"{field}.{which}.amount", f"not an amount: {money.get('amount')!r}") from None
    if not amount.is_finite():
        raise PayloadError(f"{field}.{which}.amount", f"not an amount: {money.get('amount')!r}")
    code = money.get("currencyCode") or currency
    if not isinstance(code, str) or len(code) != 3:
        raise PayloadError(f"{field}.{which}.currencyCode", f"not a currency code: {code!r}")
    return ev.Money(amount, code.upper())


def _lower(value) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _customer(node: Mapping, order_email: str | None) -> ev.CustomerInfo | None:
    data = node.get("customer")
    if not isinstance(data, Mapping):
        return None
    email_info = data.get("defaultEmailAddress") or {}
    address = data.get("defaultAddress") or node.get("billingAddress") or {}
    return ev.CustomerInfo(
        shopify_id=gid_number(data.get("id"), "customer.id", "Customer"),
        email=normalise_email(email_info.get("emailAddress")) or order_email,
        first_name=data.get("firstName") or None,
        last_name=data.get("lastName") or None,
        phone=data.get("phone") or None,
        locale=data.get("locale") or node.get("customerLocale") or None,
        country=(address.get("countryCodeV2") or None),
        province=(address.get("provinceCode") or None),
        marketing_consent=_lower(email_info.get("marketingState")),
        tags=split_tags(data.get("tags")),
        updated_at=_time(data, "updatedAt"),
    )


def _line(data: Mapping, currency: str, index: int) -> ev.OrderLine:
    where = f"lineItems.{index}"
    try:
        price = _money(data, "originalUnitPriceSet", currency, required=True)
        discount = _money(data, "totalDiscountSet", currency) or ev.Money(Decimal(0), price.currency)
        quantity = data.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise PayloadError("quantity", f"not a whole number: {quantity!r}")
        product = data.get("product") if isinstance(data.get("product"), Mapping) else {}
        variant = data.get("variant") if isinstance(data.get("variant"), Mapping) else {}
        return ev.OrderLine(
            line_id=gid_number(data.get("id"), "id", "LineItem"),
            sku=data.get("sku") or None,
            product_id=gid_number(product["id"], "product.id", "Product") if product.get("id") else None,
            variant_id=(gid_number(variant["id"], "variant.id", "ProductVariant") if variant.get("id")
                        else None),
            title=data.get("title") or data.get("name"),
            quantity=quantity,
            price=price,
            total_discount=discount,
            product_type=product.get("productType") or None,
            vendor=data.get("vendor") or None,
        )
    except PayloadError as e:
        raise PayloadError(f"{where}.{e.field}", e.message) from None


def order_from_bulk(node: Mapping, lines: list[Mapping]) -> tuple[ev.Order, Decimal]:
    """An :class:`~retention_plugin.events.Order` (and its refunded amount) from a bulk order object."""
    currency = node.get("currencyCode")
    if not isinstance(currency, str) or len(currency) != 3:
        raise PayloadError("currencyCode", f"not a currency code: {currency!r}")
    currency = currency.upper()
    email = normalise_email(node.get("email"))
    status = _lower(node.get("displayFulfillmentStatus"))
    fulfilled_at = None
    if status == "fulfilled":
        done = [_time(f, "createdAt") for f in node.get("fulfillments") or []
                if isinstance(f, Mapping) and (f.get("status") or "").upper() == "SUCCESS"]
        done = [d for d in done if d is not None]
        fulfilled_at = max(done) if done else None
    presentment = node.get("presentmentCurrencyCode")
    zero = ev.Money(Decimal(0), currency)
    order = ev.Order(
        shopify_id=gid_number(node.get("id"), "id", "Order"),
        name=node.get("name"),
        customer=_customer(node, email),
        email=email,
        currency=currency,
        presentment_currency=presentment.upper() if isinstance(presentment, str) and len(presentment) == 3 else None,
        subtotal=_money(node, "subtotalPriceSet", currency, required=True),
        total=_money(node, "totalPriceSet", currency, required=True),
        total_discounts=_money(node, "totalDiscountsSet", currency) or zero,
        total_tax=_money(node, "totalTaxSet", currency) or zero,
        shipping=_money(node, "totalShippingPriceSet", currency) or zero,
        presentment_subtotal=_money(node, "subtotalPriceSet", currency, which="presentmentMoney"),
        financial_status=_lower(node.get("displayFinancialStatus")),
        fulfillment_status=status,
        created_at=_time(node, "createdAt", required=True),
        updated_at=_time(node, "updatedAt"),
        processed_at=_time(node, "processedAt"),
        cancelled_at=_time(node, "cancelledAt"),
        closed_at=_time(node, "closedAt"),
        fulfilled_at=fulfilled_at,
        locale=node.get("customerLocale") or None,
        tags=split_tags(node.get("tags")),
        discount_codes=[c for c in node.get("discountCodes") or [] if isinstance(c, str) and c],
        lines=[_line(li, currency, i) for i, li in enumerate(lines)],
        test=bool(node.get("test")),
        source="import",
    )
    refunded = _money(node, "totalRefundedSet", currency)
    return order, (refunded.amount if refunded else Decimal(0))


# --- the import ------------------------------------------------------------------------------------------


@dataclass
class _Parent:
    line: int
    node: dict
    children: list


def import_bulk_lines(engine, lines: Iterable[tuple[int, dict]], *, shop: str, now: datetime,
                      report: ImportReport | None = None, chunk_size: int = 200, app=None) -> ImportReport:
    """Record the orders of a bulk JSONL result (``(line number, object)`` pairs), as ``shop``'s.

    :param app: the app, whose plugins move their rows when the import merges two customers.
    """
    with scope(shop):
        return _import_bulk_lines(engine, lines, shop=shop, now=now, report=report, chunk_size=chunk_size, app=app)


def _import_bulk_lines(engine, lines, *, shop, now, report, chunk_size, app) -> ImportReport:
    report = report or ImportReport()
    parents: dict[str, _Parent] = {}
    orphans: dict[str, list] = {}
    for number, obj in lines:
        if "__invalid__" in obj:
            report.reject(number, f"not a JSON object: {obj['__invalid__']!r}")
            continue
        parent = obj.get("__parentId")
        gid = obj.get("id")
        if parent is None:
            if not isinstance(gid, str) or not gid.startswith("gid://shopify/Order/"):
                report.reject(number, f"not an order: id {gid!r}")
                continue
            parents[gid] = _Parent(number, obj, orphans.pop(gid, []))
        elif parent in parents:
            parents[parent].children.append((number, obj))
        else:  # a child before its parent: keep it until the parent arrives
            orphans.setdefault(parent, []).append((number, obj))
    for parent, children in orphans.items():
        report.reject(children[0][0], f"line item of {parent}, which is not in the result", rows=len(children))
    items = list(parents.values())
    for i in range(0, len(items), chunk_size):
        with engine.begin() as conn:
            for p in items[i:i + chunk_size]:
                _record(conn, p, shop, now, report, import_context(app, conn, now))
    return report


def _record(conn, p: _Parent, shop: str, now: datetime, report: ImportReport, ctx) -> None:
    children = [obj for _, obj in sorted(p.children, key=lambda c: c[0])]
    try:
        order, refunded = order_from_bulk(p.node, children)
    except PayloadError as e:
        report.reject(p.line, f"order {p.node.get('name') or p.node.get('id')}: {e}", rows=1 + len(children))
        return
    existing = order_row(conn, order.shopify_id)
    if existing is not None:
        if (existing["source_updated_at"] is not None and order.updated_at is not None
                and order.updated_at <= existing["source_updated_at"]):
            report.skipped += 1
            return
        order.source = existing["source"]
    oid = record_order(conn, order, now, import_key=f"shopify:{shop}:{order.shopify_id}", ctx=ctx)
    if existing is None:
        report.imported += 1
        report.lines += len(order.lines)
    else:
        report.updated += 1
    if refunded > 0 and (existing is None or existing["source"] == "import"):
        # orders.refunded is merchandise; Shopify's total may include shipping and tax.
        amount = min(refunded, order.subtotal.amount)
        o = t.orders
        conn.execute(update(o).where(o.c.id == oid, o.c.refunded < amount).values(refunded=amount))


def import_shopify_bulk(engine, client, *, shop: str, since: datetime, until: datetime | None = None,
                        now: datetime, sleep: Callable[[float], None] | None = None, poll_seconds: float = 5.0,
                        timeout_seconds: float = 6 * 3600,
                        on_status: Callable[[Mapping[str, Any]], None] | None = None,
                        on_download: Callable[[int | None], Callable[[int], None] | None] | None = None,
                        app=None) -> ImportReport:
    """Run the bulk query, download its result and record the orders.

    :param on_download: called with the result's size in bytes (or None) when the
        download starts; may return a callback that receives byte counts.
    """
    op = run_bulk_query(client, mutations.orders_bulk_query(since, until), sleep=sleep, poll_seconds=poll_seconds,
                        timeout_seconds=timeout_seconds, on_status=on_status)
    report = ImportReport()
    report.extra["bulk_operation"] = {k: op.get(k) for k in ("id", "status", "objectCount", "fileSize")}
    url = op.get("url")
    if not url:  # Shopify gives no file when nothing matched
        return report
    size = op.get("fileSize")
    try:
        size = int(size) if size is not None else None
    except (TypeError, ValueError):
        size = None
    on_bytes = on_download(size) if on_download is not None else None
    lines = download_lines(client.session, url, on_bytes=on_bytes)
    return import_bulk_lines(engine, lines, shop=shop, now=now, report=report, app=app)

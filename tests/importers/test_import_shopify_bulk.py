"""`retention import shopify --since`: a GraphQL bulk operation and its JSONL result, with `responses`.

Shapes follow Shopify's bulk operations guide: ``bulkOperationRunQuery``
answers ``{bulkOperation {id status}, userErrors}``; ``bulkOperation(id:)``
reports ``status`` and, when ``COMPLETED``, the ``url`` of a JSONL file in
which each nested connection node is its own line naming its parent in
``__parentId`` (children are not necessarily right after their parent).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import responses

from conftest import SHOP
from payloads import order as order_payload
from retention_plugin.importers import shopify_bulk
from retention_plugin.importers.commands import import_group
from retention_plugin.importers.shopify_bulk import BulkOperationError, import_shopify_bulk
from retention_plugin.platforms.shopify.client import ShopifyClient
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

from .conftest import dump, invoke, rows_of

UTC = timezone.utc
GRAPHQL = f"https://{SHOP}/admin/api/2026-07/graphql.json"
RESULT_URL = "https://storage.googleapis.com/shopify-tiers-assets-prod-us-east1/bulk-operation-outputs/1.jsonl"
SINCE = datetime(2024, 1, 1, tzinfo=UTC)


def money(amount, currency="EUR"):
    return {"shopMoney": {"amount": amount, "currencyCode": currency}}


def bulk_order(number, *, subtotal="53.91", refunded="0.0", status="PAID", updated="2024-01-20T10:00:00Z",
               email="ona@example.com", customer=77, currency="EUR"):
    return {
        "id": f"gid://shopify/Order/{number}", "name": f"#{number}", "email": email,
        "createdAt": "2024-01-15T15:23:45Z", "updatedAt": updated, "processedAt": "2024-01-15T15:23:46Z",
        "cancelledAt": None, "closedAt": None, "test": False, "tags": ["vip"], "discountCodes": ["WELCOME10"],
        "currencyCode": currency, "presentmentCurrencyCode": currency, "customerLocale": "lt",
        "displayFinancialStatus": status, "displayFulfillmentStatus": "FULFILLED",
        "subtotalPriceSet": {**money(subtotal, currency), "presentmentMoney": {"amount": subtotal,
                                                                              "currencyCode": currency}},
        "totalPriceSet": money("58.81", currency), "totalDiscountsSet": money("5.99", currency),
        "totalTaxSet": money("9.36", currency), "totalShippingPriceSet": money("4.9", currency),
        "totalRefundedSet": money(refunded, currency),
        "fulfillments": [{"createdAt": "2024-01-16T14:00:00Z", "status": "SUCCESS"}],
        "billingAddress": {"countryCodeV2": "LT", "provinceCode": None},
        "customer": None if customer is None else {
            "id": f"gid://shopify/Customer/{customer}", "firstName": "Ona", "lastName": "Petraitė", "phone": None,
            "locale": "lt", "tags": [], "updatedAt": "2024-01-10T00:00:00Z",
            "defaultEmailAddress": {"emailAddress": email.upper(), "marketingState": "SUBSCRIBED"},
            "defaultAddress": {"countryCodeV2": "LT", "provinceCode": None}},
    }


def bulk_line(number, parent, *, sku="SKU-1", price="34.9", quantity=1):
    return {"id": f"gid://shopify/LineItem/{number}", "sku": sku, "title": f"Item {sku}", "name": f"Item {sku}",
            "quantity": quantity, "vendor": "Kavos Namai", "originalUnitPriceSet": money(price),
            "totalDiscountSet": money("0.0"), "product": {"id": "gid://shopify/Product/7001", "productType": "Coffee"},
            "variant": {"id": "gid://shopify/ProductVariant/8001"}, "__parentId": f"gid://shopify/Order/{parent}"}


def jsonl(*objects) -> str:
    return "\n".join(json.dumps(o) for o in objects) + "\n"


RESULT = jsonl(
    bulk_order(1001),
    bulk_line(71, 1001),
    bulk_order(1002, subtotal="15.00", refunded="20.00", status="REFUNDED", email="jonas@example.com", customer=78),
    bulk_line(72, 1001, sku="SKU-2", price="12.5", quantity=2),  # not next to its order
    bulk_line(73, 1002, sku="SKU-3", price="15.0"),
    bulk_order(1003, currency=None),
)


class FakeShopify:
    """The GraphQL endpoint: starts a bulk operation, reports RUNNING once, then COMPLETED (or ``final``)."""

    def __init__(self, *, final="COMPLETED", user_errors=(), url=RESULT_URL):
        self.final, self.user_errors, self.url = final, list(user_errors), url
        self.queries: list[str] = []
        self.polls = 0

    def __call__(self, request):
        body = json.loads(request.body)
        query = body["query"]
        if query.lstrip().startswith("mutation bulkOperationRunQuery"):
            self.queries.append(body["variables"]["query"])
            op = None if self.user_errors else {"id": "gid://shopify/BulkOperation/1", "status": "CREATED"}
            data = {"bulkOperationRunQuery": {"bulkOperation": op, "userErrors": self.user_errors}}
        else:
            assert body["variables"] == {"id": "gid://shopify/BulkOperation/1"}
            self.polls += 1
            status = "RUNNING" if self.polls == 1 else self.final
            done = status == "COMPLETED"
            data = {"bulkOperation": {
                "id": "gid://shopify/BulkOperation/1", "status": status,
                "errorCode": "ACCESS_DENIED" if status == "FAILED" else None, "createdAt": "2024-06-01T00:00:00Z",
                "completedAt": "2024-06-01T00:01:00Z" if done else None, "objectCount": "6",
                "fileSize": str(len(RESULT)) if done else None, "url": self.url if done else None,
                "partialDataUrl": None}}
        return 200, {"Content-Type": "application/json"}, json.dumps({"data": data})


@pytest.fixture
def shopify():
    with responses.RequestsMock() as rsps:
        fake = FakeShopify()
        rsps.add_callback(responses.POST, GRAPHQL, callback=fake)
        rsps.add(responses.GET, RESULT_URL, body=RESULT)
        yield fake, rsps


def client(sleeps):
    return ShopifyClient(SHOP, "shpat_test", "2026-07", sleep=sleeps.append)


def test_bulk_import_records_orders_with_their_lines_once(shopify, engine):
    fake, _ = shopify
    sleeps = []
    report = import_shopify_bulk(engine, client(sleeps), shop=SHOP, since=SINCE, now=datetime(2026, 3, 2, tzinfo=UTC),
                                 sleep=sleeps.append, poll_seconds=5)
    assert sleeps == [5, 5]  # waited (without sleeping) before each poll
    assert "orders(query: \"created_at:>='2024-01-01T00:00:00Z'\"" in fake.queries[0]
    assert "lineItems" in fake.queries[0] and "__parentId" not in fake.queries[0]
    assert report.summary() == "imported 2 orders (3 lines), skipped 0 already imported, rejected 1 rows"
    assert report.reject_messages() == ["line 6: order #1003: currencyCode: not a currency code: None"]

    o1, o2 = rows_of(engine, t.orders)
    assert (o1["shopify_id"], o1["name"], o1["source"], o1["import_key"]) == (
        1001, "#1001", "import", f"shopify:{SHOP}:1001")
    assert (o1["subtotal"], o1["total"], o1["shipping"], o1["currency"]) == (
        Decimal("53.91"), Decimal("58.81"), Decimal("4.9"), "EUR")
    assert o1["paid_at"] == datetime(2024, 1, 15, 15, 23, 46, tzinfo=UTC)
    assert o1["fulfilled_at"] == datetime(2024, 1, 16, 14, 0, tzinfo=UTC)
    assert o1["source_updated_at"] == datetime(2024, 1, 20, 10, 0, tzinfo=UTC)
    assert o2["financial_status"] == "refunded" and o2["refunded"] == Decimal("15.00")
    lines = rows_of(engine, t.order_lines, t.order_lines.c.order_id == o1["id"], order_by=t.order_lines.c.line_key)
    assert [(ln["line_key"], ln["sku"], ln["quantity"], ln["price"], ln["product_id"], ln["variant_id"],
             ln["product_type"]) for ln in lines] == [
        ("71", "SKU-1", 1, Decimal("34.9"), 7001, 8001, "Coffee"),
        ("72", "SKU-2", 2, Decimal("12.5"), 7001, 8001, "Coffee")]
    (ona,) = rows_of(engine, t.customers, t.customers.c.shopify_id == 77)
    assert (ona["email"], ona["marketing_consent"], ona["country"]) == ("ona@example.com", "subscribed", "LT")
    assert o1["customer_id"] == ona["id"]

    before = dump(engine)
    fake.polls = 0
    report = import_shopify_bulk(engine, client(sleeps), shop=SHOP, since=SINCE, now=datetime(2026, 3, 3, tzinfo=UTC),
                                 sleep=sleeps.append)
    assert report.summary() == "imported 0 orders (0 lines), skipped 2 already imported, rejected 1 rows"
    assert dump(engine) == before


def test_stored_orders_are_skipped_when_current_and_updated_when_stale(shopify, app, engine):
    # 1001 arrived by webhook after the bulk snapshot; 1002 by an older webhook
    deliver_shopify(app, "orders/paid", order_payload(1001, customer_id=77, email="ona@example.com", currency="EUR",
                                                      subtotal="50.00",
                                                      updated=datetime(2024, 2, 1, tzinfo=UTC)))
    deliver_shopify(app, "orders/paid", order_payload(1002, customer_id=78, email="jonas@example.com",
                                                      currency="EUR", subtotal="15.00",
                                                      updated=datetime(2024, 1, 16, tzinfo=UTC)))
    run_worker(app)
    sleeps = []
    report = import_shopify_bulk(engine, client(sleeps), shop=SHOP, since=SINCE, now=datetime(2026, 3, 2, tzinfo=UTC),
                                 sleep=sleeps.append)
    assert (report.imported, report.updated, report.skipped) == (0, 1, 1)
    o1, o2 = rows_of(engine, t.orders, order_by=t.orders.c.shopify_id)
    assert o1["subtotal"] == Decimal("50.00") and o1["source"] == "webhook"  # newer: untouched
    assert o2["financial_status"] == "refunded" and o2["source"] == "webhook"  # stale: brought up to date
    assert o2["source_updated_at"] == datetime(2024, 1, 20, 10, 0, tzinfo=UTC)
    assert o2["refunded"] == Decimal("0")  # a webhook order's refunds come from refunds/create


def test_a_failed_or_refused_operation_is_a_clear_error(engine):
    for fake, message in ((FakeShopify(final="FAILED"), r"ended FAILED \(ACCESS_DENIED\)"),
                          (FakeShopify(user_errors=[{"field": None, "message": "A bulk query operation for this "
                                                     "app and shop is already in progress"}]),
                           "already in progress")):
        with responses.RequestsMock() as rsps:
            rsps.add_callback(responses.POST, GRAPHQL, callback=fake)
            with pytest.raises(BulkOperationError, match=message):
                import_shopify_bulk(engine, client([]), shop=SHOP, since=SINCE, now=datetime(2026, 3, 2, tzinfo=UTC),
                                    sleep=lambda s: None)
    assert rows_of(engine, t.orders) == []


def test_the_wait_gives_up_after_the_timeout(engine):
    fake = FakeShopify(final="RUNNING")
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GRAPHQL, callback=fake)
        with pytest.raises(BulkOperationError, match="still RUNNING after 30 s"):
            import_shopify_bulk(engine, client([]), shop=SHOP, since=SINCE, now=datetime(2026, 3, 2, tzinfo=UTC),
                                sleep=lambda s: None, poll_seconds=10, timeout_seconds=30)
    assert fake.polls == 3


def test_the_command(shopify, config, engine, monkeypatch):
    waits = []
    monkeypatch.setattr(shopify_bulk.time, "sleep", waits.append)
    r = invoke(import_group, config, "shopify", "--since", "2024-01-01", "--until", "2025-01-01T00:00:00+02:00",
               "--poll-seconds", "2", "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "imported 2 orders (3 lines), skipped 0 already imported, rejected 1 rows",
        "  line 6: order #1003: currencyCode: not a currency code: None"]
    assert waits == [2.0, 2.0]
    fake, _ = shopify
    assert "created_at:>='2024-01-01T00:00:00Z' AND created_at:<'2024-12-31T22:00:00Z'" in fake.queries[0]
    r = invoke(import_group, config, "shopify", "--since", "last week", "--no-progress")
    assert r.exit_code == 2 and "--since" in r.output

"""Shopify webhook payloads -> domain events: shared fixtures and hand-written documented shapes."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from retention_plugin.events import (
    AppUninstalled,
    CustomerDataRequest,
    CustomerDeleted,
    CustomerRedact,
    CustomerUpdated,
    Money,
    OrderCancelled,
    OrderCreated,
    OrderFulfilled,
    OrderPaid,
    OrderUpdated,
    RefundCreated,
    ShopRedact,
)
from retention_plugin.platforms.errors import PayloadError, UnsupportedTopic
from retention_plugin.platforms.shopify import SUPPORTED_TOPICS, parse_shopify

from .helpers import fixture_payload, shared_file

SHOP = "retention-test.myshopify.com"
UTC = timezone.utc


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def one(topic, payload, shop=SHOP, **kw):
    events = parse_shopify(topic, payload, shop=shop, **kw)
    assert len(events) == 1
    event = events[0]
    assert event.platform == "shopify"
    assert event.shop == shop
    return event


# --- shared fixtures (Shopify's 2026-07 sample payloads) ------------------------------------


def test_every_shared_fixture_has_a_test():
    folder = shared_file("fixtures", "shopify")
    names = {p.stem for p in folder.glob("*.json")}
    covered = {"orders_create", "orders_paid", "refunds_create", "customers_create",
               "customers_update", "customers_redact", "app_uninstalled"}
    assert names <= covered, f"untested fixtures: {sorted(names - covered)}"


def test_orders_create_fixture():
    event = one("orders/create", fixture_payload("fixtures", "shopify", "orders_create.json"))
    assert isinstance(event, OrderCreated)
    order = event.order
    assert order.shopify_id == 820982911946154508  # > 2**53, exact
    assert order.gid == "gid://shopify/Order/820982911946154508"
    assert order.name == "#9999"
    assert order.currency == "USD"
    assert order.presentment_currency == "USD"
    # subtotal_price (after discounts, before shipping and tax), from subtotal_price_set.shop_money
    assert order.subtotal == usd("404.95")
    assert order.subtotal.amount == Decimal("404.95") and isinstance(order.subtotal.amount, Decimal)
    assert order.total == usd("404.95")
    assert order.total_discounts == usd("20.00")
    assert order.total_tax == usd("0.00")
    assert order.shipping == usd("10.00")
    assert order.presentment_subtotal == usd("404.95")
    assert order.financial_status == "voided"
    assert order.fulfillment_status is None
    assert order.test is True
    assert order.created_at == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)
    assert order.cancelled_at == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)
    assert order.created_at.tzinfo is UTC
    assert event.occurred_at == order.created_at
    assert order.tags == ["tag1", "tag2"]
    assert order.email == "jon@example.com"
    assert order.locale == "en"
    assert order.discount_codes == []

    customer = order.customer
    assert customer.shopify_id == 115310627314723954
    assert customer.email == "john@example.com"
    assert (customer.first_name, customer.last_name) == ("John", "Smith")
    assert (customer.country, customer.province) == ("CA", "ON")
    assert customer.locale == "en"  # from the order's customer_locale

    assert len(order.lines) == 5
    first, lens = order.lines[0], order.lines[1]
    assert first.line_id == 487817672276298554
    assert first.product_id == 788032119674292922
    assert first.variant_id is None
    assert first.sku == "SKU2006-001"
    assert first.price == usd("89.99")
    assert first.quantity == 1
    assert lens.product_id is None and lens.variant_id is None
    assert sum((line.price.amount for line in order.lines), Decimal(0)) == Decimal("414.95")


def test_orders_paid_fixture():
    payload = fixture_payload("fixtures", "shopify", "orders_paid.json")
    # Shopify's sample (what "Send test notification" delivers) is a voided test order: it pays nothing.
    with pytest.raises(PayloadError) as err:
        one("orders/paid", payload)
    assert err.value.field == "financial_status"
    payload["financial_status"] = "paid"
    event = one("orders/paid", payload)
    assert isinstance(event, OrderPaid)
    assert event.order.shopify_id == 820982911946154508
    assert event.order.subtotal == usd("404.95")
    assert event.occurred_at == datetime(2022, 1, 1, tzinfo=UTC)


def test_refunds_create_fixture_number_subtotals_become_exact_decimals():
    payload = fixture_payload("fixtures", "shopify", "refunds_create.json")
    # The sample's refund_line_items[].subtotal are JSON numbers (floats once decoded).
    assert isinstance(payload["refund_line_items"][0]["subtotal"], float)
    event = one("refunds/create", payload)
    assert isinstance(event, RefundCreated)
    refund = event.refund
    assert refund.shopify_id == 890088186047892319
    assert refund.order_id == 820982911946154508
    assert refund.merchandise == usd("414.95")  # not 414.95000000000005
    assert refund.note == "Things were damaged"
    assert refund.created_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert [line["line_id"] for line in refund.lines] == [
        487817672276298554, 789012345678901234, 890123456789012345,
        976318377106520349, 315789986012684393,
    ]
    assert refund.lines[0] == {"line_id": 487817672276298554, "quantity": 1, "subtotal": Decimal("89.99")}


def test_refund_without_sets_uses_plain_subtotal_and_shop_currency():
    payload = copy.deepcopy(fixture_payload("fixtures", "shopify", "refunds_create.json"))
    for rli in payload["refund_line_items"]:
        del rli["subtotal_set"]
    refund = one("refunds/create", payload, shop_currency="USD").refund
    assert refund.merchandise == usd("414.95")
    with pytest.raises(PayloadError) as err:
        parse_shopify("refunds/create", payload, shop=SHOP)
    assert err.value.field == "refund_line_items.0.subtotal_set"


def test_customers_create_fixture():
    event = one("customers/create", fixture_payload("fixtures", "shopify", "customers_create.json"))
    assert isinstance(event, CustomerUpdated) and event.created is True
    c = event.customer
    assert c.shopify_id == 706405506930370084
    assert c.email == "bob@biller.com"
    assert (c.country, c.province) == ("CA", "ON")
    assert c.updated_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert event.occurred_at == c.updated_at


def test_customers_update_fixture():
    event = one("customers/update", fixture_payload("fixtures", "shopify", "customers_update.json"))
    assert isinstance(event, CustomerUpdated) and event.created is False
    assert event.customer.shopify_id == 706405506930370084


def test_customers_redact_fixture():
    payload = fixture_payload("fixtures", "shopify", "customers_redact.json")
    event = one("customers/redact", payload, shop="{shop}.myshopify.com")  # the sample's own domain
    assert isinstance(event, CustomerRedact)
    assert event.customer.shopify_id == 191167
    assert event.customer.email == "john@example.com"
    assert event.orders_to_redact == [299938, 280263, 220458]


def test_redact_for_another_shop_is_refused():
    # X-Shopify-Shop-Domain is not covered by the HMAC; the body is.
    payload = fixture_payload("fixtures", "shopify", "customers_redact.json")
    with pytest.raises(PayloadError) as err:
        parse_shopify("customers/redact", payload, shop=SHOP)
    assert err.value.field == "shop_domain"


def test_app_uninstalled_fixture():
    event = one("app/uninstalled", fixture_payload("fixtures", "shopify", "app_uninstalled.json"))
    assert isinstance(event, AppUninstalled)


# --- hand-written documented shapes --------------------------------------------------------


def money_set(shop_amount, shop_currency, presentment_amount=None, presentment_currency=None):
    return {
        "shop_money": {"amount": shop_amount, "currency_code": shop_currency},
        "presentment_money": {
            "amount": presentment_amount if presentment_amount is not None else shop_amount,
            "currency_code": presentment_currency or shop_currency,
        },
    }


def eur_order() -> dict:
    """A live (non-test) order paid in EUR in a USD shop, as orders/* webhooks carry it."""
    return {
        "id": 5550000000000000001,
        "admin_graphql_api_id": "gid://shopify/Order/5550000000000000001",
        "name": "#1042",
        "email": "  Ann.Example@Example.COM ",
        "currency": "USD",
        "presentment_currency": "EUR",
        "created_at": "2026-03-01T10:00:00+01:00",
        "updated_at": "2026-03-01T10:05:00+01:00",
        "processed_at": "2026-03-01T10:00:00+01:00",
        "cancelled_at": None,
        "closed_at": None,
        "financial_status": "paid",
        "fulfillment_status": None,
        "customer_locale": "de-DE",
        "test": False,
        "tags": "",
        "discount_codes": [{"code": "WELCOME10", "amount": "10.00", "type": "percentage"}],
        "subtotal_price": "97.20",
        "subtotal_price_set": money_set("97.20", "USD", "90.00", "EUR"),
        "current_subtotal_price": "97.20",
        "total_price": "122.32",
        "total_price_set": money_set("122.32", "USD", "113.26", "EUR"),
        "total_discounts": "10.80",
        "total_discounts_set": money_set("10.80", "USD", "10.00", "EUR"),
        "total_tax": "18.47",
        "total_tax_set": money_set("18.47", "USD", "17.10", "EUR"),
        "total_shipping_price_set": money_set("6.65", "USD", "6.16", "EUR"),
        "line_items": [
            {
                "id": 7770000000000000001,
                "product_id": 8880000000000000001,
                "variant_id": 9100000000000000001,
                "sku": "INK-BLK",
                "title": "Ink cartridge",
                "vendor": "Acme",
                "quantity": 2,
                "price": "54.00",
                "price_set": money_set("54.00", "USD", "50.00", "EUR"),
                "total_discount": "0.00",
                "discount_allocations": [
                    {"amount": "10.80", "amount_set": money_set("10.80", "USD", "10.00", "EUR"),
                     "discount_application_index": 0}
                ],
            }
        ],
        "customer": {
            "id": 4440000000000000001,
            "email": "Ann.Example@Example.com",
            "first_name": "Ann",
            "last_name": "Example",
            "tags": "vip, newsletter",
            "email_marketing_consent": {"state": "SUBSCRIBED", "opt_in_level": "single_opt_in"},
            "default_address": {"country_code": "de", "province_code": None},
            "updated_at": "2026-03-01T09:00:00Z",
        },
        "fulfillments": [],
        "shipping_lines": [{"price": "6.65"}],
    }


def test_eur_presentment_order_in_usd_shop():
    event = one("orders/paid", eur_order())
    assert isinstance(event, OrderPaid)
    order = event.order
    assert order.test is False
    assert order.currency == "USD" and order.presentment_currency == "EUR"
    assert order.subtotal == usd("97.20")  # shop money for accounting
    assert order.presentment_subtotal == Money(Decimal("90.00"), "EUR")
    assert order.total == usd("122.32")
    assert order.total_tax == usd("18.47")
    assert order.shipping == usd("6.65")
    assert order.total_discounts == usd("10.80")
    assert order.email == "ann.example@example.com"
    assert order.created_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert event.occurred_at == datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
    assert order.discount_codes == ["WELCOME10"]
    assert order.tags == []
    assert order.locale == "de-DE"
    line = order.lines[0]
    assert line.price == usd("54.00")
    assert line.total_discount == usd("10.80")  # from discount_allocations, shop money
    assert (line.product_id, line.variant_id, line.vendor) == (8880000000000000001, 9100000000000000001, "Acme")
    c = order.customer
    assert c.email == "ann.example@example.com"
    assert c.marketing_consent == "subscribed"
    assert c.country == "DE" and c.province is None
    assert c.tags == ["vip", "newsletter"]
    assert c.locale == "de-DE"


def test_plain_string_money_used_when_sets_are_absent():
    payload = eur_order()
    for key in [k for k in payload if k.endswith("_set")]:
        del payload[key]
    for line in payload["line_items"]:
        del line["price_set"]
        line["discount_allocations"] = []
        line["total_discount"] = "5.00"
    order = one("orders/create", payload).order
    assert order.subtotal == usd("97.20")
    assert order.presentment_subtotal is None
    assert order.shipping == usd("6.65")  # from shipping_lines
    assert order.lines[0].total_discount == usd("5.00")


def test_orders_updated():
    payload = eur_order()
    payload["updated_at"] = "2026-03-04T08:00:00Z"
    payload["tags"] = "gift, repeat "
    event = one("orders/updated", payload)
    assert isinstance(event, OrderUpdated)
    assert event.occurred_at == datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
    assert event.order.tags == ["gift", "repeat"]


def test_orders_cancelled():
    payload = eur_order()
    payload.update(cancelled_at="2026-03-02T12:00:00Z", financial_status="refunded")
    event = one("orders/cancelled", payload)
    assert isinstance(event, OrderCancelled)
    assert event.order.cancelled_at == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert event.occurred_at == event.order.cancelled_at


def test_orders_fulfilled_carries_the_latest_successful_fulfillment():
    payload = eur_order()
    payload["fulfillment_status"] = "fulfilled"
    payload["fulfillments"] = [
        {"id": 1, "order_id": payload["id"], "status": "cancelled", "created_at": "2026-03-02T09:00:00Z",
         "line_items": [{"id": 7770000000000000001}]},
        {"id": 2, "order_id": payload["id"], "status": "success", "created_at": "2026-03-02T10:00:00Z",
         "updated_at": "2026-03-02T10:01:00Z", "line_items": [{"id": 7770000000000000001}]},
    ]
    event = one("orders/fulfilled", payload)
    assert isinstance(event, OrderFulfilled)
    assert event.fulfillment.shopify_id == 2
    assert event.fulfillment.status == "success"
    assert event.fulfillment.line_ids == [7770000000000000001]
    assert event.order.fulfilled_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert event.occurred_at == event.order.fulfilled_at


def fulfillment(status="success") -> dict:
    """fulfillments/create and fulfillments/update carry a Fulfillment, not the order."""
    return {
        "id": 255858046,
        "order_id": 450789469,
        "status": status,
        "created_at": "2026-03-02T10:00:00-05:00",
        "updated_at": "2026-03-02T10:00:30-05:00",
        "service": "manual",
        "tracking_company": "UPS",
        "shipment_status": None,
        "tracking_number": "1Z2345",
        "line_items": [{"id": 466157049, "quantity": 1, "sku": "IPOD2008GREEN"}],
        "admin_graphql_api_id": "gid://shopify/Fulfillment/255858046",
    }


@pytest.mark.parametrize("topic", ["fulfillments/create", "fulfillments/update"])
def test_fulfillment_topics(topic):
    event = one(topic, fulfillment())
    assert isinstance(event, OrderFulfilled)
    assert event.order is None  # the payload has no order; handlers look it up by order_id
    f = event.fulfillment
    assert (f.shopify_id, f.order_id, f.status) == (255858046, 450789469, "success")
    assert f.line_ids == [466157049]
    assert f.created_at == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert event.occurred_at == datetime(2026, 3, 2, 15, 0, 30, tzinfo=UTC)


def test_unsuccessful_fulfillment_makes_no_event():
    assert parse_shopify("fulfillments/update", fulfillment("cancelled"), shop=SHOP) == []


def test_customers_delete():
    event = one("customers/delete", {"id": 706405506930370084, "phone": None, "addresses": []})
    assert isinstance(event, CustomerDeleted)
    assert event.customer.shopify_id == 706405506930370084


def test_customers_data_request():
    payload = {
        "shop_id": 954889,
        "shop_domain": SHOP,
        "orders_requested": [299938, 280263],
        "customer": {"id": 191167, "email": " John@Example.com", "phone": "555-625-1199"},
        "data_request": {"id": 9999},
    }
    event = one("customers/data_request", payload)
    assert isinstance(event, CustomerDataRequest)
    assert event.customer.shopify_id == 191167
    assert event.customer.email == "john@example.com"
    assert event.orders_requested == [299938, 280263]
    assert event.request_id == 9999


def test_shop_redact():
    event = one("shop/redact", {"shop_id": 954889, "shop_domain": SHOP})
    assert isinstance(event, ShopRedact)
    with pytest.raises(PayloadError):
        parse_shopify("shop/redact", {"shop_id": 1, "shop_domain": "other.myshopify.com"}, shop=SHOP)


def test_supported_topics_and_unknown_topic():
    assert "orders/paid" in SUPPORTED_TOPICS and "app/uninstalled" in SUPPORTED_TOPICS
    assert isinstance(one(" ORDERS/PAID ", eur_order()), OrderPaid)  # header spelling is forgiving
    with pytest.raises(UnsupportedTopic) as err:
        parse_shopify("products/update", {"id": 1}, shop=SHOP)
    assert err.value.topic == "products/update"


# --- ids and money never through float ----------------------------------------------------


def test_ids_beyond_2_53_parse_exactly_from_raw_json():
    raw = json.dumps(eur_order()).replace("5550000000000000001", "9007199254740993")
    order = one("orders/create", json.loads(raw)).order
    assert order.shopify_id == 9007199254740993  # 2**53 + 1, which a float cannot hold


def test_id_that_became_a_float_is_refused():
    payload = eur_order()
    payload["id"] = float(payload["id"])
    with pytest.raises(PayloadError) as err:
        parse_shopify("orders/create", payload, shop=SHOP)
    assert err.value.field == "id"


def test_decimal_payloads_are_accepted():
    # A receiver may decode with parse_float=Decimal.
    raw = json.dumps(eur_order())
    order = one("orders/create", json.loads(raw, parse_float=Decimal)).order
    assert order.subtotal == usd("97.20")


# --- invalid payloads name the field ------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("id"), "id"),
        (lambda p: p.update(id="abc"), "id"),
        (lambda p: p.pop("currency"), "currency"),
        (lambda p: p.update(currency="DOLLARS"), "currency"),
        (lambda p: p.pop("created_at"), "created_at"),
        (lambda p: p.update(created_at="2026-03-01T10:00:00"), "created_at"),  # no offset
        (lambda p: p.update(created_at="last tuesday"), "created_at"),
        (lambda p: p["line_items"][0].update(price="abc", price_set=None), "line_items.0.price"),
        (lambda p: p["line_items"][0].pop("quantity"), "line_items.0.quantity"),
        (lambda p: p["line_items"][0].update(quantity=1.5), "line_items.0.quantity"),
        (lambda p: p["customer"].update(id=None), "customer.id"),
        (lambda p: [p.pop(k) for k in ("subtotal_price", "subtotal_price_set")], "subtotal_price"),
        (lambda p: p["subtotal_price_set"]["shop_money"].update(currency_code="??"),
         "subtotal_price_set.shop_money"),
    ],
)
def test_invalid_order_payloads_name_the_field(mutate, field):
    payload = eur_order()
    mutate(payload)
    with pytest.raises(PayloadError) as err:
        parse_shopify("orders/paid", payload, shop=SHOP)
    assert err.value.field == field
    assert field in str(err.value)


def test_non_object_payload():
    with pytest.raises(PayloadError) as err:
        parse_shopify("orders/paid", ["not", "an", "object"], shop=SHOP)
    assert err.value.field == "<payload>"


def test_invalid_refund_names_the_field():
    payload = copy.deepcopy(fixture_payload("fixtures", "shopify", "refunds_create.json"))
    payload["refund_line_items"][2]["subtotal_set"] = None
    payload["refund_line_items"][2]["subtotal"] = "n/a"
    with pytest.raises(PayloadError) as err:
        parse_shopify("refunds/create", payload, shop=SHOP)
    assert err.value.field == "refund_line_items.2.subtotal"


def test_refund_without_lines_has_zero_merchandise():
    payload = {"id": 1, "order_id": 2, "created_at": "2026-03-01T00:00:00Z", "refund_line_items": []}
    refund = one("refunds/create", payload).refund
    assert refund.merchandise.amount == 0
    assert refund.merchandise.currency == "XXX"  # ISO 4217 "no currency"
    assert one("refunds/create", payload, shop_currency="EUR").refund.merchandise == Money(Decimal(0), "EUR")

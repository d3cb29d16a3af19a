"""Parsing a delivery reuses the payload schemas instead of building them again each time."""

import marshmallow

from payloads import order, refund
from retention_plugin.platforms.shopify.payloads import parse_shopify

SHOP = "retention-test.myshopify.com"


def test_parsing_orders_builds_no_schema_after_the_first(monkeypatch):
    parse_shopify("orders/paid", order(1), shop=SHOP)
    parse_shopify("refunds/create", refund(1, 1, 11, 1, "10.00"), shop=SHOP)
    built = []
    original = marshmallow.Schema.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(marshmallow.Schema, "__init__", counting)
    for k in range(2, 12):
        events = parse_shopify("orders/paid", order(k, customer_id=1000 + k, subtotal=f"{k}.50"), shop=SHOP)
        assert events and events[0].order.shopify_id == k
    parse_shopify("refunds/create", refund(2, 2, 21, 1, "2.50"), shop=SHOP)
    # Before the schemas were kept, every order built 26 of them (the nested ones included).
    assert built == []

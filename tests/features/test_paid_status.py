"""orders/paid pays out only for an order whose body says it is paid (issue 13, money).

Points, the thank-you voucher and punch-card punches all hang off ``orders/paid``.
Shopify's ``financial_status`` (pending, authorized, partially_paid, paid,
partially_refunded, refunded, voided, expired) is in the signed body: a body
that says nobody paid, or everything was voided or refunded, is a dead letter
naming the field, whatever its topic header says, and nothing is earned.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from conftest import SHOP
from payloads import order
from retention_plugin.platforms.errors import PayloadError
from retention_plugin.platforms.shopify.payloads import parse_shopify
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

MESSAGES = {"default_channel": "test", "shop_name": "Test Shop", "shop_url": "https://shop.example"}
LINKS = {"secret": "test-link-secret-0123456789", "base_url": "https://retention.example.com"}
CARD = {"name": "ink", "title": "ink cartridge", "size": 1, "match": {"skus": ["INK-1"]}}
NOT_PAID = ("pending", "authorized", "expired", "voided", "refunded", None)
PAID_LIKE = ("paid", "partially_paid", "partially_refunded")


def _rows(app, table):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


@pytest.fixture
def shop(make_app, channel):
    return make_app(extra_plugins=[channel], messages=MESSAGES, links=LINKS,
                    offers={"occasions": [{"occasion": "first_order", "percent": 10, "valid_days": 30}]},
                    loyalty={"punch_cards": [CARD]})


def _deliver(app, clock, oid, status):
    lines = [{"id": oid * 10 + 1, "sku": "INK-1", "product_id": 7001, "variant_id": 8001, "quantity": 2,
              "price": "40.00"}]
    body = order(oid, subtotal="80.00", lines=lines, created=clock.now - timedelta(hours=1),
                 financial_status=status)
    if status is None:
        del body["financial_status"]
    deliver_shopify(app, "orders/paid", body)
    return run_worker(app)


@pytest.mark.parametrize("status", NOT_PAID)
def test_a_signed_orders_paid_body_for_an_unpaid_voided_or_refunded_order_pays_nothing(shop, clock, status):
    counts = _deliver(shop, clock, 7101, status)
    assert counts.dead == 1
    [row] = [r for r in _rows(shop, t.inbox) if r["topic"] == "orders/paid"]
    assert row["status"] == "dead" and "financial_status" in row["last_error"]
    assert _rows(shop, t.ledger) == []
    assert _rows(shop, t.rewards) == []
    assert _rows(shop, t.punches) == []
    assert [m for m in _rows(shop, t.messages) if m["kind"] in ("voucher", "thank_you")] == []


@pytest.mark.parametrize("status", PAID_LIKE)
def test_a_paid_like_status_earns_points_the_voucher_and_the_punch(shop, clock, status):
    counts = _deliver(shop, clock, 7102, status)
    assert counts.dead == 0
    assert sum(e["points"] for e in _rows(shop, t.ledger)) > 0
    assert {r["feature"] for r in _rows(shop, t.rewards)} == {"offers", "punch"}


@pytest.mark.parametrize("status", NOT_PAID)
def test_parsing_names_the_field(status):
    body = order(1, financial_status=status)
    if status is None:
        del body["financial_status"]
    with pytest.raises(PayloadError) as err:
        parse_shopify("orders/paid", body, shop=SHOP)
    assert err.value.field == "financial_status"

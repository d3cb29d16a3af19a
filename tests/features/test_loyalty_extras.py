"""Loyalty: the example configuration, punch cards by collection, and what the daily task does."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import responses
from sqlalchemy import select

from test_loyalty_support import actions, bal, cli, customer_id, ledger, rows
from payloads import order
from retention_plugin.features.loyalty.settings import LoyaltySchema
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

ROOT = Path(__file__).resolve().parents[2]
GRAPHQL = "https://retention-test.myshopify.com/admin/api/2026-07/graphql.json"


def test_the_example_configuration_is_valid_and_documents_every_key():
    text = (ROOT / "config" / "retention.example.toml").read_text()
    raw = tomllib.loads(text)["loyalty"]
    loaded = LoyaltySchema().load(raw)
    assert [x["name"] for x in loaded["tiers"]] == ["silver", "gold"]
    assert loaded["punch_cards"][0]["size"] == 10
    top = set(LoyaltySchema().fields)
    for key in top:
        assert f"{key} =" in text or f"[[loyalty.{key}]]" in text or f"[loyalty.{key}]" in text, \
            f"{key} is not in the example"
    for key in ("min_spend", "window_days", "discount_percent", "points_multiplier", "perks", "segment_id",
                "automatic", "valid_days", "free_item", "match", *LoyaltySchema().fields["earn"].schema.fields):
        assert f"{key} =" in text, f"{key} is not in the example"


def test_punch_cards_by_collection_use_products_read_from_shopify(make_app):
    app = make_app(loyalty={"punch_cards": [{"name": "beans", "size": 3,
                                             "match": {"collections": ["42"], "tags": ["coffee"]}}]})

    def graphql(request):
        body = json.loads(request.body)
        if "collection(" in body["query"]:
            if body["variables"]["after"] is None:
                page = {"nodes": [{"id": "gid://shopify/Product/7001"}],
                        "pageInfo": {"hasNextPage": True, "endCursor": "c1"}}
            else:
                page = {"nodes": [{"id": "gid://shopify/Product/7002"}],
                        "pageInfo": {"hasNextPage": False, "endCursor": None}}
            data = {"collection": {"products": page}}
        else:
            assert body["variables"]["query"] == "tag:'coffee'"
            data = {"products": {"nodes": [{"id": "gid://shopify/Product/7003"}],
                                 "pageInfo": {"hasNextPage": False, "endCursor": None}}}
        return 200, {}, json.dumps({"data": data})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GRAPHQL, callback=graphql, content_type="application/json")
        r = cli(app, "sync-products")
    assert r.exit_code == 0, r.output
    assert "beans: 3 product(s)" in r.output

    def buy(oid, product_id, qty=1):
        lines = [{"id": oid * 10 + 1, "sku": None, "product_id": product_id, "variant_id": None,
                  "quantity": qty, "price": "9.00"}]
        deliver_shopify(app, "orders/paid", order(oid, subtotal=str(9 * qty), lines=lines))
        run_worker(app)

    buy(3001, 7002)
    buy(3002, 9999)  # not in the collection
    buy(3003, 7003)
    assert rows(app, t.rewards) == []
    buy(3004, 7001)
    [reward] = rows(app, t.rewards)
    assert reward["feature"] == "punch" and reward["amount"] is None and reward["percent"] == Decimal("100")
    [create] = actions(app, "discount_code_bxgy_create")
    gets = create["request"]["variables"]["bxgyCodeDiscount"]["customerGets"]
    assert gets["items"]["products"] == {"productsToAdd": [f"gid://shopify/Product/{p}" for p in (7001, 7002, 7003)]}
    assert gets["value"]["discountOnQuantity"]["quantity"] == "1"


def test_automatic_rewards_wait_for_pending_points_and_come_with_the_daily_task(make_app, clock):
    app = make_app(loyalty={"pending_days": 7, "rewards": [{"points": 100, "percent": 10}]})
    deliver_shopify(app, "orders/paid", order(3101, subtotal="150.00", created=clock.now))
    run_worker(app)
    assert rows(app, t.rewards) == []
    clock.advance(days=7, minutes=1)
    run_worker(app)
    [reward] = rows(app, t.rewards)
    assert reward["percent"] == Decimal("10") and reward["points"] == 100
    assert bal(app).available == 50
    [create] = actions(app, "discount_code_basic_create")
    assert create["request"]["variables"]["basicCodeDiscount"]["customerGets"]["value"] == {"percentage": 0.1}


def test_a_merged_customer_keeps_one_account(app):
    # The same person orders as a guest (email only), then with a Shopify account.
    guest = order(3201, subtotal="40.00", customer_id=None, email="zoe@example.com")
    deliver_shopify(app, "orders/paid", guest)
    deliver_shopify(app, "orders/paid", order(3202, subtotal="60.00", customer_id=5555, email="zoe@example.com"))
    run_worker(app)
    cid = customer_id(app, 5555)
    with app.engine.connect() as conn:
        owners = {r[0] for r in conn.execute(select(t.ledger.c.customer_id))}
    assert owners == {cid}
    assert bal(app, 5555).available == 100


def test_erasing_a_customer_keeps_the_sums(app):
    deliver_shopify(app, "orders/paid", order(3301, subtotal="75.00"))
    run_worker(app)
    r = cli(app, "adjust", "1001", "--points", "5", "--reason", "Ann Example asked nicely")
    assert r.exit_code == 0, r.output
    from retention_plugin.context import HookContext
    from retention_plugin.privacy import erase_customer

    with app.engine.begin() as conn:
        c = conn.execute(select(t.customers).where(t.customers.c.shopify_id == 1001)).mappings().one()
        erase_customer(HookContext(app, conn, now=app.now(), source="cli"), dict(c))
    assert bal(app).available == 80
    assert "Ann" not in (ledger(app, kind="adjust")[0]["reason"] or "")


def test_tier_changes_of_a_customer_without_shopify_id_send_nothing(make_app, clock):
    app = make_app(loyalty={"tiers": [{"name": "vip", "min_spend": "10.00"}]})
    deliver_shopify(app, "orders/paid", order(3401, subtotal="40.00", customer_id=None, email="g@example.com"))
    run_worker(app)
    r = cli(app, "show", "g@example.com", "--json")
    assert json.loads(r.output)["tier"] == "vip"
    assert actions(app, "tags_add") == [] and actions(app, "metafields_set") == []
    clock.advance(days=400)
    run_worker(app)
    assert json.loads(cli(app, "show", "g@example.com", "--json").output)["tier"] is None


def test_metafields_only_on_tier_changes_when_configured(make_app, clock):
    app = make_app(loyalty={"metafields": "tier_change", "tiers": [{"name": "vip", "min_spend": "15.00"}]})
    deliver_shopify(app, "orders/paid", order(3501, subtotal="12.00"))
    run_worker(app)
    assert actions(app, "metafields_set") == []  # points changed, the tier did not
    clock.advance(minutes=11)
    deliver_shopify(app, "orders/paid", order(3502, subtotal="8.00"))
    run_worker(app)
    values = [{m["key"]: m["value"] for m in a["request"]["variables"]["metafields"]}
              for a in actions(app, "metafields_set")]
    assert values == [{"points": "20", "tier": "vip"}]


def test_expiry_of_a_customer_with_points_but_no_orders_counts_from_the_credit(make_app, clock):
    app = make_app(loyalty={"expire_after_days": 10, "expiry_warning_days": 0})
    deliver_shopify(app, "orders/paid", order(3601, subtotal="0.00"))  # a free order: a customer, no points
    run_worker(app)
    with app.engine.begin() as conn:  # its order is cancelled: no order counts any more
        conn.execute(t.orders.update().values(cancelled_at=clock.now))
    r = cli(app, "adjust", "1001", "--points", "30", "--reason", "welcome bonus")
    assert r.exit_code == 0
    clock.advance(days=9)
    run_worker(app)
    assert bal(app).available == 30
    clock.advance(days=1, seconds=1)
    run_worker(app)
    assert bal(app).available == 0
    assert [m for m in rows(app, t.messages) if m["kind"] == "points_expiry"] == []
    assert timedelta(days=0) <= clock.now - ledger(app, kind="expire")[0]["created_at"] < timedelta(days=1)

"""Loyalty: the ledger through real Shopify-shaped deliveries and the real worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from conftest import shared_path
from test_loyalty_support import actions, bal, cli, customer_id, expected_points, ledger, rows
from payloads import order, refund
from retention_plugin import hookimpl
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


def paid(app, order_id, **kw):
    deliver_shopify(app, "orders/paid", order(order_id, **kw))


def cancelled(app, order_id, **kw):
    deliver_shopify(app, "orders/cancelled", order(order_id, cancelled=kw.pop("when", T0 + timedelta(hours=5)),
                                                   financial_status="voided", **kw))


# --- acceptance ------------------------------------------------------------------------------


def test_the_same_orders_paid_under_three_webhook_ids_earns_once(app):
    body = order(501, subtotal="100.00")
    for webhook in ("wh-a", "wh-b", "wh-c"):
        deliver_shopify(app, "orders/paid", body, webhook_id=webhook)
    counts = run_worker(app)
    assert counts.processed == 3
    earned = ledger(app, kind="earn")
    assert [(e["key"], e["points"]) for e in earned] == [("loyalty:earn:order:501", 100)]
    assert bal(app).available == 100


def test_refund_and_cancellation_reverse_at_the_rate_of_earning(make_app, clock):
    app = make_app(loyalty={"points_per_currency_unit": 1})
    paid(app, 601, subtotal="100.00")
    run_worker(app)
    assert bal(app).available == expected_points(1, "100.00") == 100

    # The rule changes between earning and the refund: the reversal still uses 1 point per unit.
    app2 = make_app(loyalty={"points_per_currency_unit": 2})
    clock.advance(days=1)
    deliver_shopify(app2, "refunds/create", refund(9601, 601, 6011, 1, "40.00"))
    run_worker(app2)
    assert bal(app2).available == expected_points(1, "100.00", refunded="40.00") == 60
    rev = ledger(app2, key="loyalty:refund:9601")[0]
    assert rev["points"] == -40 and rev["rate"] == Decimal("1") and rev["kind"] == "reverse"

    cancelled(app2, 601, subtotal="100.00")
    run_worker(app2)
    assert bal(app2).available == 0
    assert ledger(app2, key="loyalty:cancel:order:601")[0]["points"] == -60

    # Replays change nothing.
    cancelled(app2, 601, subtotal="100.00")
    deliver_shopify(app2, "refunds/create", refund(9601, 601, 6011, 1, "40.00"))
    run_worker(app2)
    assert bal(app2).available == 0 and len(ledger(app2)) == 3


def test_an_order_in_another_presentment_currency_earns_on_shop_money(make_app):
    app = make_app(loyalty={"points_per_currency_unit": "1.5"})
    # Shop money 100.00 USD; the customer paid 92.00 EUR.
    paid(app, 701, subtotal="100.00", currency="USD", presentment_currency="EUR", presentment_factor=Decimal("0.92"))
    run_worker(app)
    e = ledger(app, kind="earn")[0]
    assert e["points"] == expected_points("1.5", "100.00") == 150
    assert e["currency"] == "USD" and e["basis"] == Decimal("100.00")


def test_a_punch_card_fills_on_exactly_the_tenth_unit_across_orders(make_app):
    app = make_app(loyalty={"punch_cards": [{"name": "ink", "title": "ink cartridge", "size": 10,
                                             "match": {"skus": ["INK-1"]}}]})

    def buy(oid, qty, sku="INK-1", price="10.00"):
        lines = [{"id": oid * 10 + 1, "sku": sku, "product_id": 7001, "variant_id": 8001, "quantity": qty,
                  "price": price}]
        paid(app, oid, subtotal=str(Decimal(price) * qty), lines=lines)
        run_worker(app)

    buy(801, 3)
    buy(802, 5, sku="PAPER")  # does not match
    buy(803, 4)
    buy(804, 2)
    assert _card(app)["punches"] == 9 and _codes(app, "punch") == []
    buy(805, 1)  # the 10th
    card = _card(app)
    assert card["punches"] == 0 and card["filled"] == 1
    [reward] = _codes(app, "punch")
    # The 11th unit free, not its price in money: 100 % off one unit of what the card counts.
    assert reward["kind"] == "free_item" and reward["amount"] is None and reward["percent"] == Decimal("100")
    assert actions(app, "discount_code_basic_create") == []
    [create] = actions(app, "discount_code_bxgy_create")  # valid for Shopify: test_offers checks the schema
    d = create["request"]["variables"]["bxgyCodeDiscount"]
    assert d["code"] == reward["code"] and d["usageLimit"] == 1 and d["usesPerOrderLimit"] == 1
    assert d["context"] == {"customers": {"add": ["gid://shopify/Customer/1001"]}}
    # Counted by SKU, so the free unit is that variant (a SKU names one variant), never the dearest item.
    items = {"products": {"productVariantsToAdd": ["gid://shopify/ProductVariant/8001"]}}
    assert d["customerGets"] == {"items": items, "value": {"discountOnQuantity": {
        "quantity": "1", "effect": {"percentage": 1.0}}}}
    assert d["combinesWith"] == {"orderDiscounts": True, "productDiscounts": False, "shippingDiscounts": True}
    [notice] = [m for m in rows(app, t.messages) if m["kind"] == "reward"]
    assert notice["data"]["code"] == reward["code"] and notice["data"]["discount_amount"] is None

    # A refund of counted units takes their punches back; a replay takes nothing more.
    deliver_shopify(app, "refunds/create", refund(9803, 803, 8031, 2, "20.00"))
    deliver_shopify(app, "refunds/create", refund(9803, 803, 8031, 2, "20.00"))
    run_worker(app)
    assert _card(app)["punches"] == -2
    buy(806, 11)  # owes the 2 taken back first: 9, not yet full
    assert (_card(app)["punches"], _card(app)["filled"]) == (9, 1)
    buy(807, 1)
    assert (_card(app)["punches"], _card(app)["filled"]) == (0, 2)
    assert len(_codes(app, "punch")) == 2


def _card(app, name="ink"):
    r = cli(app, "show", "1001", "--json")
    assert r.exit_code == 0, r.output
    return next(c for c in json.loads(r.output)["punch_cards"] if c["name"] == name)


def _codes(app, feature):
    return [r for r in rows(app, t.rewards) if r["feature"] == feature]


# --- ledger semantics ---------------------------------------------------------------------------


def test_a_refund_delivered_before_orders_paid_is_reversed_when_points_are_earned(app):
    deliver_shopify(app, "orders/create", order(901, subtotal="80.00", financial_status="pending"))
    deliver_shopify(app, "refunds/create", refund(9901, 901, 9011, 1, "20.00"))
    run_worker(app)
    assert ledger(app) == []
    paid(app, 901, subtotal="80.00")
    run_worker(app)
    assert bal(app).available == expected_points(1, "80.00", refunded="20.00") == 60


def test_an_order_cancelled_before_its_orders_paid_earns_nothing(app):
    deliver_shopify(app, "orders/cancelled", order(902, subtotal="50.00", cancelled=T0 + timedelta(hours=1),
                                                   financial_status="voided"))
    paid(app, 902, subtotal="50.00")
    run_worker(app)
    assert ledger(app) == [] and bal(app).available == 0


def test_partial_refunds_never_take_back_more_than_was_earned(make_app):
    app = make_app(loyalty={"points_per_currency_unit": "0.7"})
    paid(app, 903, subtotal="33.33")  # earns floor(23.331) = 23
    run_worker(app)
    for i, amount in enumerate(["11.11", "11.11", "11.11"]):
        deliver_shopify(app, "refunds/create", refund(9930 + i, 903, 9031, 1, amount))
        run_worker(app)
    entries = ledger(app)
    assert entries[0]["points"] == 23
    assert sum(e["points"] for e in entries) == expected_points("0.7", "33.33", refunded="33.33") == 0
    assert all(e["points"] <= 0 for e in entries[1:])


def test_test_orders_earn_nothing_unless_configured(make_app):
    body = order(904)
    body["test"] = True
    app = make_app()
    deliver_shopify(app, "orders/paid", body)
    run_worker(app)
    assert ledger(app) == []
    app2 = make_app(loyalty={"include_test_orders": True})
    body["id"] = 905
    deliver_shopify(app2, "orders/paid", body)
    run_worker(app2)
    assert [e["points"] for e in ledger(app2)] == [100]


def test_shopifys_own_sample_payloads_earn_and_reverse(app):
    paid_body = json.loads(shared_path("fixtures", "shopify", "orders_paid.json").read_text())
    refund_body = json.loads(shared_path("fixtures", "shopify", "refunds_create.json").read_text())
    # The sample is a cancelled test order; make it an ordinary paid one.
    paid_body.update(test=False, cancelled_at=None, financial_status="paid", cancel_reason=None)
    deliver_shopify(app, "orders/paid", paid_body)
    run_worker(app)
    subtotal = Decimal(paid_body["subtotal_price_set"]["shop_money"]["amount"])
    earned = expected_points(1, subtotal)
    assert bal(app, paid_body["customer"]["id"]).available == earned
    deliver_shopify(app, "refunds/create", refund_body)
    run_worker(app)
    refunded = sum(Decimal(x["subtotal_set"]["shop_money"]["amount"]) for x in refund_body["refund_line_items"])
    assert bal(app, paid_body["customer"]["id"]).available == expected_points(1, subtotal, refunded=refunded)


def test_pending_points_become_available_after_the_return_window(make_app, clock):
    app = make_app(loyalty={"pending_days": 14, "point_value": "0.01"})
    paid(app, 1001, subtotal="100.00", created=clock.now - timedelta(hours=1))
    run_worker(app)
    b = bal(app)
    assert (b.available, b.pending, b.lifetime) == (0, 100, 100)
    # A refund inside the window reduces what is pending, not what is available.
    deliver_shopify(app, "refunds/create", refund(91001, 1001, 10011, 1, "30.00"))
    run_worker(app)
    b = bal(app)
    assert (b.available, b.pending) == (0, 70)
    r = cli(app, "redeem", "1001", "--points", "50")
    assert r.exit_code == 1 and "0 points available" in r.output
    clock.advance(days=14)
    b = bal(app)
    assert (b.available, b.pending) == (70, 0)
    r = cli(app, "redeem", "1001", "--points", "50", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["amount"] == "0.50" and json.loads(r.output)["currency"] == "USD"
    assert bal(app).available == 20


def test_spending_below_zero_is_refused_and_a_later_reversal_can_go_negative(make_app, clock):
    app = make_app(loyalty={"rewards": [{"points": 100, "amount": "10.00", "automatic": False}]})
    paid(app, 1101, subtotal="100.00")
    run_worker(app)
    r = cli(app, "redeem", "1001", "--points", "150")
    assert r.exit_code == 1 and "no reward costs 150" in r.output
    r = cli(app, "redeem", "1001", "--points", "100", "--key", "k1", "--json")
    assert r.exit_code == 0, r.output
    code = json.loads(r.output)["code"]
    again = cli(app, "redeem", "1001", "--points", "100", "--key", "k1", "--json")
    assert again.exit_code == 0 and json.loads(again.output)["code"] == code  # same key, same code
    assert bal(app).available == 0
    r = cli(app, "redeem", "1001", "--points", "100")
    assert r.exit_code == 1 and "0 points available" in r.output

    deliver_shopify(app, "refunds/create", refund(91101, 1101, 11011, 1, "100.00"))
    run_worker(app)
    assert bal(app).available == -100  # the refund came after the points were spent
    paid(app, 1102, subtotal="130.00")
    run_worker(app)
    assert bal(app).available == 30  # later earnings repay it
    assert len(actions(app, "discount_code_basic_create")) == 1


def test_expiry_after_days_without_an_order_with_a_warning_first(make_app, clock):
    app = make_app(loyalty={"expire_after_days": 30, "expiry_warning_days": 7})
    paid(app, 1201, subtotal="100.00", created=clock.now)
    run_worker(app)
    clock.advance(days=24)
    run_worker(app)
    assert ledger(app, kind="expire") == []
    [warning] = [m for m in rows(app, t.messages) if m["kind"] == "points_expiry"]
    assert warning["data"]["points"] == 100 and warning["data"]["expires_at"] == (
        (clock.now - timedelta(days=24) + timedelta(days=30)).date().isoformat())
    clock.advance(days=7)
    run_worker(app)
    [exp] = ledger(app, kind="expire")
    assert exp["points"] == -100 and bal(app).available == 0
    clock.advance(days=1)
    run_worker(app)
    assert len(ledger(app, kind="expire")) == 1
    # A new order starts a new clock.
    paid(app, 1202, subtotal="10.00", created=clock.now)
    run_worker(app)
    assert bal(app).available == 10


def test_adjust_is_audited_and_idempotent_with_a_key(app):
    paid(app, 1301, subtotal="20.00")
    run_worker(app)
    r = cli(app, "adjust", "ann@example.com", "--points", "15", "--reason", "goodwill: late parcel",
            "--actor", "agent:eve", "--key", "ticket-77")
    assert r.exit_code == 0, r.output
    r = cli(app, "adjust", "ann@example.com", "--points", "15", "--reason", "goodwill: late parcel",
            "--actor", "agent:eve", "--key", "ticket-77")
    assert "already applied" in r.output
    [adj] = ledger(app, kind="adjust")
    assert (adj["points"], adj["reason"], adj["actor"], adj["key"]) == (
        15, "goodwill: late parcel", "agent:eve", "loyalty:adjust:ticket-77")
    r = cli(app, "adjust", "1001", "--points", "-100", "--reason", "oops")
    assert r.exit_code == 1 and "--allow-negative" in r.output
    r = cli(app, "adjust", "1001", "--points", "5", "--reason", "  ")
    assert r.exit_code == 1 and "reason is required" in r.output
    r = cli(app, "adjust", "nobody@example.com", "--points", "5", "--reason", "x")
    assert r.exit_code == 2 and "no customer" in r.output


def test_show_json_has_the_documented_fields(make_app):
    app = make_app(loyalty={"pending_days": 30, "tiers": [{"name": "silver", "min_points": 1}]})
    paid(app, 1401, subtotal="42.50")
    run_worker(app)
    r = cli(app, "show", "1001", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    for name in ("available", "pending", "lifetime"):
        assert type(data[name]) is int
    assert (data["available"], data["pending"], data["lifetime"]) == (0, 42, 42)
    assert data["tier"] == "silver" and isinstance(data["punch_cards"], list)
    assert data["history"][0]["key"] == "loyalty:earn:order:1401"
    text = cli(app, "show", "1001")
    assert text.exit_code == 0 and "42 pending" in text.output and "tier: silver" in text.output


# --- tiers ------------------------------------------------------------------------------------------

TIERS = [
    {"name": "silver", "min_spend": "100.00", "points_multiplier": "1.5", "perks": {"support_priority": "normal"}},
    {"name": "gold", "min_spend": "300.00", "window_days": 365, "points_multiplier": 2, "discount_percent": 5,
     "perks": {"support_priority": "high", "early_access": True}},
]


def test_tiers_promote_on_orders_and_demote_on_refunds_and_with_time(make_app, clock):
    app = make_app(loyalty={"tiers": TIERS})
    paid(app, 1501, subtotal="120.00", created=clock.now)
    run_worker(app)
    cid = customer_id(app, 1001)
    assert _tier(app, cid) == "silver"
    add = actions(app, "tags_add")
    assert [a["request"]["variables"] for a in add] == [{"id": "gid://shopify/Customer/1001",
                                                         "tags": ["retention-tier-silver"]}]
    [mf] = actions(app, "metafields_set")
    fields = {m["key"]: m for m in mf["request"]["variables"]["metafields"]}
    assert fields["points"]["value"] == "120" and fields["points"]["type"] == "number_integer"
    assert fields["tier"]["value"] == "silver" and fields["tier"]["type"] == "single_line_text_field"
    assert fields["tier"]["namespace"] == "retention"

    # Silver earns x1.5 (the tier held when the order was paid).
    paid(app, 1502, subtotal="200.00", created=clock.now)
    run_worker(app)
    assert ledger(app, key="loyalty:earn:order:1502")[0]["points"] == 300
    assert _tier(app, cid) == "gold"
    assert [a["request"]["variables"]["tags"] for a in actions(app, "tags_remove")] == [["retention-tier-silver"]]

    # A refund can demote.
    deliver_shopify(app, "refunds/create", refund(91502, 1502, 15021, 1, "150.00"))
    run_worker(app)
    assert _tier(app, cid) == "silver"

    # So can time: once the orders leave the window, the daily task demotes.
    clock.advance(days=366)
    run_worker(app)
    assert _tier(app, cid) is None
    removed = [a["request"]["variables"]["tags"] for a in actions(app, "tags_remove")]
    assert removed[-1] == ["retention-tier-silver"]
    last_mf = actions(app, "metafields_set")[-1]["request"]["variables"]["metafields"]
    assert {m["key"]: m["value"] for m in last_mf}["tier"] == "none"


def test_tiers_by_points_in_a_rolling_window(make_app, clock):
    app = make_app(loyalty={"tiers": [{"name": "club", "min_points": 150, "window_days": 30}]})
    paid(app, 1601, subtotal="100.00", created=clock.now)
    run_worker(app)
    cid = customer_id(app, 1001)
    assert _tier(app, cid) is None
    clock.advance(days=10)
    paid(app, 1602, subtotal="60.00", created=clock.now)
    run_worker(app)
    assert _tier(app, cid) == "club"
    clock.advance(days=25)  # the first order's points left the window
    run_worker(app)
    assert _tier(app, cid) is None


def _tier(app, cid):
    with app.engine.connect() as conn:
        return conn.execute(select(t.customer_tiers.c.tier).where(t.customer_tiers.c.customer_id == cid)).scalar()


def test_tier_discounts_are_shopify_automatic_discounts_for_a_tag_segment(make_app, clock):
    app = make_app(loyalty={"tiers": TIERS})
    run_worker(app)
    [seg] = actions(app, "segment_create")
    assert seg["key"] == "loyalty:tier-segment:gold"
    assert seg["request"]["variables"]["query"] == "customer_tags CONTAINS 'retention-tier-gold'"
    assert actions(app, "discount_automatic_basic_create") == []  # dry run: no segment id yet
    with app.engine.begin() as conn:  # as if the action had run against Shopify
        conn.execute(update(t.actions).where(t.actions.c.id == seg["id"]).values(
            status="done", result={"segment": {"id": "gid://shopify/Segment/42"}, "userErrors": []}))
    clock.advance(minutes=11)
    run_worker(app)
    [disc] = actions(app, "discount_automatic_basic_create")
    d = disc["request"]["variables"]["automaticBasicDiscount"]
    assert d["context"] == {"customerSegments": {"add": ["gid://shopify/Segment/42"]}}
    assert d["customerGets"] == {"value": {"percentage": 0.05}, "items": {"all": True}}
    with app.engine.begin() as conn:
        conn.execute(update(t.actions).where(t.actions.c.id == disc["id"]).values(
            status="done", result={"automaticDiscountNode": {"id": "gid://shopify/DiscountAutomaticNode/9"}}))

    # The percentage changes: a new discount, and the old one is switched off.
    tiers = [dict(TIERS[0]), dict(TIERS[1], discount_percent=7)]
    app2 = make_app(loyalty={"tiers": tiers})
    clock.advance(minutes=11)
    run_worker(app2)
    created = actions(app2, "discount_automatic_basic_create")
    assert len(created) == 2
    assert created[1]["request"]["variables"]["automaticBasicDiscount"]["customerGets"]["value"] == {
        "percentage": 0.07}
    [off] = actions(app2, "discount_automatic_deactivate")
    assert off["request"]["variables"] == {"id": "gid://shopify/DiscountAutomaticNode/9"}
    clock.advance(minutes=11)
    run_worker(app2)
    assert len(actions(app2, "discount_automatic_deactivate")) == 1


# --- rewards ----------------------------------------------------------------------------------------


def test_a_threshold_turns_points_into_a_code_automatically(make_app, clock):
    app = make_app(loyalty={"rewards": [{"points": 500, "amount": "5.00"}], "reward_valid_days": 60})
    body = order(1701, subtotal="520.00")
    deliver_shopify(app, "orders/paid", body, webhook_id="x1")
    deliver_shopify(app, "orders/paid", body, webhook_id="x2")
    run_worker(app)
    assert bal(app).available == 20
    [reward] = rows(app, t.rewards)
    assert (reward["points"], reward["amount"], reward["currency"], reward["status"]) == (
        500, Decimal("5.00"), "USD", "issued")
    [create] = actions(app, "discount_code_basic_create")
    d = create["request"]["variables"]["basicCodeDiscount"]
    assert d["code"] == reward["code"] and d["usageLimit"] == 1 and d["appliesOncePerCustomer"] is True
    assert d["context"] == {"customers": {"add": ["gid://shopify/Customer/1001"]}}
    assert d["customerGets"]["value"] == {"discountAmount": {"amount": "5.00", "appliesOnEachItem": False}}
    assert d["endsAt"] == (clock.now + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The code is derived from the reward's key: the action runner retrying sends the same code.
    from retention_plugin.discounts import code_secret, derive_code

    with app.engine.connect() as conn:
        assert reward["code"] == derive_code(code_secret(conn), "LOYAL", reward["key"])
    [notice] = [m for m in rows(app, t.messages) if m["kind"] == "reward"]
    assert notice["data"]["code"] == reward["code"] and notice["data"]["points_balance"] == 20
    [spend] = ledger(app, kind="spend")
    assert spend["points"] == -500


# --- hooks -------------------------------------------------------------------------------------------


def test_hook_points_for_order(make_app):
    class DoubleOnBigOrders:
        @hookimpl
        def points_for_order(self, order, customer, rule, ctx):
            if order.subtotal.amount >= 200:
                return 7
            return None  # defer to the built-in rule

    app = make_app(extra_plugins=[DoubleOnBigOrders()], loyalty={"points_per_currency_unit": 2})
    paid(app, 1801, subtotal="250.00")
    paid(app, 1802, subtotal="30.00")
    run_worker(app)
    points = {e["key"]: e["points"] for e in ledger(app, kind="earn")}
    assert points == {"loyalty:earn:order:1801": 7, "loyalty:earn:order:1802": 60}
    # Refunds reverse what was actually earned, whatever rule decided it.
    deliver_shopify(app, "refunds/create", refund(91801, 1801, 18011, 1, "125.00"))
    run_worker(app)
    assert ledger(app, key="loyalty:refund:91801")[0]["points"] == -3


def test_hook_points_for_order_must_return_an_int(make_app):
    class Broken:
        @hookimpl
        def points_for_order(self, order, customer, rule, ctx):
            return 1.5

    app = make_app(extra_plugins=[Broken()])
    paid(app, 1803)
    run_worker(app)
    assert ledger(app) == []
    [row] = rows(app, t.inbox)
    assert row["status"] == "pending" and "int is required" in row["last_error"]


def test_hook_loyalty_changed(make_app):
    seen = []

    class Listener:
        @hookimpl
        def loyalty_changed(self, customer_id, change, ctx):
            seen.append((customer_id, dict(change)))

    app = make_app(extra_plugins=[Listener()], loyalty={"tiers": [{"name": "gold", "min_points": 100}]})
    paid(app, 1901, subtotal="150.00")
    run_worker(app)
    cid = customer_id(app, 1001)
    assert [(c, ch["reason"], ch["points"], ch["balance"], ch["tier"], ch["previous_tier"]) for c, ch in seen] == [
        (cid, "earn", 150, 150, None, None), (cid, "tier", 0, 150, "gold", None)]
    seen.clear()
    paid(app, 1901, subtotal="150.00")  # a replay: no change, no call
    run_worker(app)
    assert seen == []
    cancelled(app, 1901, subtotal="150.00")
    run_worker(app)
    assert [(ch["reason"], ch["points"], ch["balance"]) for _, ch in seen] == [("cancel", -150, 0), ("tier", 0, 0)]
    assert seen[1][1]["previous_tier"] == "gold" and seen[1][1]["tier"] is None


def test_hook_customer_facts(make_app):
    from retention_plugin.customers import customer_profile

    app = make_app(loyalty={"tiers": TIERS})
    paid(app, 2001, subtotal="400.00")
    run_worker(app)
    facts = customer_profile(app, customer_id(app, 1001))["features"]["loyalty"]
    assert facts["tier"] == "gold" and facts["points"] == 400
    assert facts["perks"] == {"support_priority": "high", "early_access": True}
    assert facts["support_priority"] == "high"


def test_config_errors_name_the_key(make_app):
    from retention_plugin.config import ConfigError

    with pytest.raises(ConfigError, match=r"\[loyalty\]\.tiers\.0\.min_spend: give exactly one"):
        make_app(loyalty={"tiers": [{"name": "gold"}]})
    with pytest.raises(ConfigError, match=r"\[loyalty\]\.point_per_currency_unit: unknown key"):
        make_app(loyalty={"point_per_currency_unit": 2})

"""Never a code bound to nobody: without a Shopify customer id it is held for approval (issue 13, item 3).

Every kind of discount code goes through ``discounts.make_code``. For a customer
Shopify has not linked (known from Zendesk or a guest checkout), a code would be
limited to nobody and usable by anyone who learns it, so the reward is recorded
``held`` with what to create, nothing goes to Shopify and nothing is sent; an
admin lists them (``retention discounts held``) and approves (the code is created
exactly once, with the message that carries it) or declines.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from payloads import order
from retention_plugin.cli import LazyApp, discounts_group
from retention_plugin.context import HookContext
from retention_plugin.discounts import HELD, UnboundCode, approve_held, make_code
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

MESSAGES = {"default_channel": "test", "shop_name": "Test Shop", "shop_url": "https://shop.example"}
LINKS = {"secret": "test-link-secret-0123456789", "base_url": "https://retention.example.com"}
FIRST = {"occasion": "first_order", "percent": 10, "valid_days": 30}


def _rows(app, table, *where):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(*where).order_by(table.c.id)).mappings()]


def _discount_actions(app):
    return [a for a in _rows(app, t.actions) if a["kind"].startswith("discount_code")]


def run(app, *args):
    lazy = LazyApp(None)
    lazy._app = app
    assert args[0] == "discounts"
    return CliRunner().invoke(discounts_group, list(args[1:]), obj=lazy)


def _unlinked_customer(app, clock, email="ann@example.com") -> int:
    with app.engine.begin() as conn:  # known by email only (e.g. from Zendesk), consenting
        return conn.execute(t.customers.insert().values(
            email=email, marketing_consent="subscribed", tags=[], created_at=clock.now,
            updated_at=clock.now)).inserted_primary_key[0]


def _link(app, customer_id, shopify_id=1001):
    with app.engine.begin() as conn:  # what an order or customers/update from Shopify does
        conn.execute(update(t.customers).where(t.customers.c.id == customer_id).values(shopify_id=shopify_id))


@pytest.fixture
def shop(make_app, channel):
    return make_app(extra_plugins=[channel], messages=MESSAGES, links=LINKS, offers={"occasions": [FIRST]})


def test_a_voucher_for_a_customer_without_a_shopify_id_is_held_then_approved_once(shop, clock):
    cid = _unlinked_customer(shop, clock)
    deliver_shopify(shop, "orders/paid", order(6601, customer_id=None, created=clock.now - timedelta(hours=1)))
    counts = run_worker(shop)
    assert counts.dead == 0 and counts.retried == 0
    [reward] = _rows(shop, t.rewards)
    assert reward["status"] == HELD and reward["code"] is None and reward["customer_id"] == cid
    assert "customers.shopify_id" in reward["hold"]["reason"]
    assert _discount_actions(shop) == []
    assert _rows(shop, t.messages, t.messages.c.kind == "voucher") == []

    r = run(shop, "discounts", "held", "--json")
    assert r.exit_code == 0, r.output
    [held] = json.loads(r.output)
    assert held["id"] == reward["id"] and held["feature"] == "offers" and held["percent"] == "10"

    r = run(shop, "discounts", "approve", str(reward["id"]))
    assert r.exit_code == 1 and "customers.shopify_id" in r.output and "bound to nobody" in r.output
    assert _discount_actions(shop) == []

    _link(shop, cid)
    clock.advance(hours=2)
    r = run(shop, "discounts", "approve", str(reward["id"]), "--by", "ops", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["created_now"] is True and out["status"] == "issued" and out["decided_by"] == "ops"
    [reward] = _rows(shop, t.rewards)
    assert reward["code"].startswith("THANKS-") and reward["expires_at"] == clock.now + timedelta(days=30)
    [action] = _discount_actions(shop)
    discount = action["request"]["variables"]["basicCodeDiscount"]
    assert discount["code"] == reward["code"]
    assert discount["context"] == {"customers": {"add": ["gid://shopify/Customer/1001"]}}
    [vmsg] = _rows(shop, t.messages, t.messages.c.kind == "voucher")
    assert vmsg["data"]["code"] == reward["code"] and vmsg["data"]["order_name"] == "#6601"

    r = run(shop, "discounts", "approve", str(reward["id"]))
    assert r.exit_code == 0 and "nothing created again" in r.output
    assert len(_discount_actions(shop)) == 1
    assert len(_rows(shop, t.messages, t.messages.c.kind == "voucher")) == 1
    assert json.loads(run(shop, "discounts", "held", "--json").output) == []


def test_a_declined_hold_is_recorded_and_can_no_longer_be_approved(shop, clock):
    cid = _unlinked_customer(shop, clock)
    deliver_shopify(shop, "orders/paid", order(6602, customer_id=None, created=clock.now - timedelta(hours=1)))
    run_worker(shop)
    [reward] = _rows(shop, t.rewards)
    r = run(shop, "discounts", "decline", str(reward["id"]), "--reason", "  ")
    assert r.exit_code == 2 and "--reason" in r.output
    r = run(shop, "discounts", "decline", str(reward["id"]), "--reason", "guest checkout, no account", "--by", "ops")
    assert r.exit_code == 0, r.output
    [reward] = _rows(shop, t.rewards)
    assert reward["status"] == "declined" and reward["hold"]["decided_by"] == "ops"
    assert reward["hold"]["note"] == "guest checkout, no account"
    _link(shop, cid)
    r = run(shop, "discounts", "approve", str(reward["id"]))
    assert r.exit_code == 1 and "declined, not held" in r.output
    assert _discount_actions(shop) == []


def test_approving_an_unknown_id_names_it(shop):
    r = run(shop, "discounts", "approve", "999")
    assert r.exit_code == 1 and "ID: no reward 999" in r.output
    r = run(shop, "discounts", "approve", "0")
    assert r.exit_code == 2 and "ID" in r.output


@pytest.mark.parametrize("kind, extra", [
    ("voucher", {"percent": Decimal("10")}),
    ("delay_apology", {"amount": Decimal("5.00"), "currency": "EUR"}),
    ("win_back", {"percent": Decimal("15")}),
    ("recovery", {"amount": Decimal("10.00"), "currency": "EUR"}),
    ("loyalty_reward", {"amount": Decimal("5.00"), "currency": "EUR", "points": 500}),
    ("punch_card", {"percent": Decimal("100"), "free_units": 1, "product_gids": ["gid://shopify/Product/7"],
                    "row_kind": "free_item"}),
])
def test_every_kind_of_code_is_held_without_a_shopify_id_and_made_once_on_approval(make_app, clock, kind, extra):
    app = make_app()
    cid = _unlinked_customer(app, clock)
    message = {"key": f"msg:{kind}", "kind": "voucher", "data": {"order_name": "#1"}}
    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=clock.now, source="cli")
        customer = ctx.customer(cid)
        with pytest.raises(UnboundCode, match="bound to nobody"):
            make_code(ctx, key=f"refused:{kind}", action_key=f"refused:{kind}:a", feature="x", discount_kind=kind,
                      customer=customer, title="t", prefix="P", ends_at=clock.now + timedelta(days=7),
                      unbound="refuse", **extra)
        held = make_code(ctx, key=f"k:{kind}", action_key=f"k:{kind}:a", feature="x", discount_kind=kind,
                         customer=customer, title="t", prefix="P", ends_at=clock.now + timedelta(days=7),
                         message=message, **extra)
        again = make_code(ctx, key=f"k:{kind}", action_key=f"k:{kind}:a", feature="x", discount_kind=kind,
                          customer=customer, title="t", prefix="P", ends_at=clock.now + timedelta(days=7),
                          message=message, **extra)
    assert held["status"] == again["status"] == HELD and again["id"] == held["id"]
    assert _rows(app, t.actions) == [] and _rows(app, t.messages) == []
    assert [r["key"] for r in _rows(app, t.rewards)] == [f"k:{kind}"]
    _link(app, cid)
    for _ in range(2):
        with app.engine.begin() as conn:
            approve_held(HookContext(app, conn, now=clock.now, source="cli"), held["id"], by="ops")
    [action] = _rows(app, t.actions)
    assert action["kind"] == ("discount_code_bxgy_create" if kind == "punch_card" else "discount_code_basic_create")
    variables = action["request"]["variables"]
    body = variables.get("basicCodeDiscount") or variables.get("bxgyCodeDiscount")
    assert body["context"] == {"customers": {"add": ["gid://shopify/Customer/1001"]}}
    [reward] = _rows(app, t.rewards)
    assert body["code"] == reward["code"] and reward["status"] == "issued"
    from platforms.helpers import shopify_request_errors

    assert shopify_request_errors(action["request"]) == []  # valid for the pinned Admin API
    [msg] = _rows(app, t.messages)
    assert msg["data"]["code"] == reward["code"]


def test_a_late_order_of_an_unlinked_customer_gets_its_apology_now_and_the_credit_once_approved(make_app, channel,
                                                                                               clock):
    app = make_app(extra_plugins=[channel], messages=MESSAGES, offers={"thank_you": False},
                   delays={"after_days": 2, "credit_amount": "5.00", "credit_valid_days": 30})
    cid = _unlinked_customer(app, clock)
    paid_at = clock.now - timedelta(days=3)
    deliver_shopify(app, "orders/paid", order(9201, customer_id=None, created=paid_at))
    counts = run_worker(app)
    assert counts.dead == 0 and counts.retried == 0
    [apology] = _rows(app, t.messages, t.messages.c.kind == "delay_apology")
    assert apology["key"] == "delay:9201" and apology["data"]["code"] is None  # sorry, now, without a code
    [reward] = _rows(app, t.rewards)
    assert reward["status"] == HELD and reward["feature"] == "delays" and _discount_actions(app) == []

    _link(app, cid)
    r = run(app, "discounts", "approve", str(reward["id"]))
    assert r.exit_code == 0, r.output
    [reward] = _rows(app, t.rewards)
    assert reward["code"].startswith("SORRY-") and reward["amount"] == Decimal("5.00")
    [action] = _discount_actions(app)
    assert action["key"] == "delay:discount:9201"
    first, credit = _rows(app, t.messages, t.messages.c.kind == "delay_apology")
    assert credit["key"] == "delay:9201:credit" and credit["data"]["code"] == reward["code"]
    assert credit["data"]["discount_amount"] == "5.00" and credit["data"]["order_name"] == "#9201"


def test_a_codes_text_carries_at_least_64_bits_of_the_hmac():
    from retention_plugin.discounts import derive_code

    codes = {derive_code(bytes([i]) * 32, "THANKS", "offers:voucher:order:1") for i in range(64)}
    for code in codes:
        prefix, _, text = code.partition("-")
        assert prefix == "THANKS" and set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        assert len(text) * 5 >= 64, code  # base32: 5 bits a character
    assert len(codes) == 64


def test_a_win_back_offer_to_an_unlinked_customer_waits_with_its_message(make_app, clock):
    from retention_plugin.features.winback.engine import win_back

    app = make_app(winback={"holdout_percent": 0, "segments": ["lost"]})
    cid = _unlinked_customer(app, clock)
    with app.engine.begin() as conn:
        assert win_back(HookContext(app, conn, now=clock.now, source="task"), cid, "lost") == "offer"
    [reward] = _rows(app, t.rewards)
    assert reward["status"] == HELD and reward["feature"] == "winback"
    assert _rows(app, t.messages) == [] and _discount_actions(app) == []  # the offer is the message: both wait
    _link(app, cid)
    r = run(app, "discounts", "approve", str(reward["id"]))
    assert r.exit_code == 0, r.output
    [reward] = _rows(app, t.rewards)
    [msg] = _rows(app, t.messages)
    assert msg["kind"] == "win_back" and msg["data"]["code"] == reward["code"].strip()
    assert reward["code"].startswith("MISSYOU-") and len(_discount_actions(app)) == 1

"""Thank-you messages and vouchers after a paid order.

Orders arrive as Shopify-shaped ``orders/paid`` webhooks through the inbox
and the worker; messages go out through a recording channel so the real
templates render the data the feature stored. Time moves with ``clock``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import select

from payloads import order
from retention_plugin import events as ev
from retention_plugin import hookimpl
from retention_plugin.config import ConfigError
from retention_plugin.context import HookContext
from retention_plugin.features import offers
from retention_plugin.messaging.templates import Renderer
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

LINKS = {"secret": "test-link-secret-0123456789", "base_url": "https://retention.example.com"}
MESSAGES = {"default_channel": "test", "shop_name": "Test Shop", "shop_url": "https://shop.example"}
FIRST = {"occasion": "first_order", "percent": 10, "valid_days": 30}
LOCALES = ("en", "ka", "lt", "ru", "sl")


@pytest.fixture
def make(make_app, channel):
    def build(extra=(), **offer_settings):
        return make_app(extra_plugins=[channel, *extra], offers=offer_settings, messages=MESSAGES, links=LINKS)

    return build


def _rows(app, table, *where):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(*where).order_by(table.c.id)).mappings()]


def _messages(app, kind=None):
    return _rows(app, t.messages, *([t.messages.c.kind == kind] if kind else []))


def _vouchers(app):
    return _rows(app, t.rewards, t.rewards.c.feature == "offers")


def _discount_actions(app):
    return _rows(app, t.actions, t.actions.c.key.like("offers:%"))


def _paid(app, order_id, created=None, *, webhook_id=None, **kw):
    deliver_shopify(app, "orders/paid", order(order_id, created=created, **kw), webhook_id=webhook_id)
    counts = run_worker(app)
    assert counts.dead == 0 and counts.retried == 0, counts
    return counts


# --- the acceptance criteria ----------------------------------------------------------------------


def test_three_deliveries_of_one_order_make_one_voucher_and_one_thank_you(make, clock, channel):
    app = make(occasions=[FIRST])
    payload = order(5001, created=clock.now - timedelta(hours=1))
    for webhook_id in ("w-1", "w-2", "w-3", "w-3"):  # a new webhook id each time, and one true duplicate
        deliver_shopify(app, "orders/paid", payload, webhook_id=webhook_id)
        counts = run_worker(app)
        assert counts.dead == 0 and counts.retried == 0

    [voucher] = _vouchers(app)
    assert voucher["key"] == "offers:voucher:order:5001"
    from retention_plugin.discounts import code_secret, derive_code

    with app.engine.connect() as conn:
        assert voucher["code"] == derive_code(code_secret(conn), "THANKS", "offers:voucher:order:5001")
    assert voucher["code"].startswith("THANKS-") and len(voucher["code"]) == len("THANKS-") + 13
    assert voucher["kind"] == "percent" and voucher["percent"] == Decimal("10")
    assert voucher["expires_at"] == clock.now + timedelta(days=30) and voucher["source_ref"] == "order:5001"

    [action] = _discount_actions(app)
    discount = action["request"]["variables"]["basicCodeDiscount"]
    assert action["kind"] == "discount_code_basic_create" and action["key"] == "offers:discount:order:5001"
    assert discount["code"] == voucher["code"]
    assert discount["context"] == {"customers": {"add": ["gid://shopify/Customer/1001"]}}
    assert discount["usageLimit"] == 1 and discount["appliesOncePerCustomer"] is True
    assert discount["customerGets"]["value"] == {"percentage": 0.1}

    assert len(_messages(app, "thank_you")) == 1
    [vmsg] = _messages(app, "voucher")
    assert vmsg["message_class"] == "marketing" and vmsg["status"] == "scheduled"
    assert vmsg["due_at"] == clock.now + timedelta(minutes=60)
    assert vmsg["data"]["code"] == voucher["code"] and vmsg["data"]["discount_percent"] == "10"
    assert vmsg["data"]["discount_amount"] is None and vmsg["data"]["order_name"] == "#5001"

    # The thank-you went at once; the voucher after its delay, with the same code, rendered by the real template.
    assert channel.kinds() == ["thank_you"]
    clock.advance(minutes=61)
    run_worker(app)
    assert channel.kinds() == ["thank_you", "voucher"]
    rendered = channel.sent[1].rendered
    assert voucher["code"] in rendered.text and "10" in rendered.subject


def test_a_customer_without_marketing_consent_gets_no_offer_and_the_reason_is_recorded(make, channel):
    app = make(occasions=[FIRST])
    _paid(app, 5002, consent="unsubscribed")

    assert _vouchers(app) == [] and _discount_actions(app) == []
    [vmsg] = _messages(app, "voucher")
    assert vmsg["status"] == "suppressed"
    assert vmsg["reason"] == "no offer made: no marketing consent (unsubscribed)"
    assert "code" not in vmsg["data"]
    with app.engine.connect() as conn:
        state = conn.execute(select(t.plugin_state.c.value).where(
            t.plugin_state.c.plugin == "offers", t.plugin_state.c.key == "order:5002")).scalar()
    assert state["decision"] == "declined" and state["occasion"] == "first_order"
    assert state["reason"] == "no marketing consent (unsubscribed)"
    # The thank-you needs no consent, but it is a courtesy this customer explicitly declined.
    assert channel.kinds() == []
    thanks = next(m for m in _messages(app) if m["kind"] == "thank_you")
    assert thanks["status"] == "suppressed" and "unsubscribed" in thanks["reason"]

    # A replay changes nothing, even once consent is given: the decision stands.
    _paid(app, 5002, consent="subscribed", webhook_id="again")
    assert _vouchers(app) == [] and len(_messages(app, "voucher")) == 1


def test_no_consent_recorded_is_no_consent(make):
    app = make(occasions=[FIRST])
    _paid(app, 5003, consent=None)
    [vmsg] = _messages(app, "voucher")
    assert vmsg["status"] == "suppressed" and vmsg["reason"].endswith("no marketing consent (none recorded)")


# --- occasions --------------------------------------------------------------------------------------


def test_every_second_order_earns_a_voucher(make, clock):
    app = make(occasions=[{"occasion": "nth_order", "n": 2, "every": True, "percent": "12.5", "valid_days": 14}])
    for i in range(4):
        _paid(app, 6001 + i, clock.now - timedelta(hours=10 - i))
    vouchers = _vouchers(app)
    assert [v["source_ref"] for v in vouchers] == ["order:6002", "order:6004"]
    assert all(v["percent"] == Decimal("12.5") for v in vouchers)
    assert [m["data"]["discount_percent"] for m in _messages(app, "voucher")] == ["12.5", "12.5"]


def test_only_the_nth_order_without_every(make, clock):
    app = make(occasions=[{"occasion": "nth_order", "n": 3, "percent": 5}])
    for i in range(5):
        _paid(app, 6101 + i, clock.now - timedelta(hours=10 - i))
    assert [v["source_ref"] for v in _vouchers(app)] == ["order:6103"]


def test_order_above_a_value_gets_an_amount_voucher(make):
    app = make(occasions=[{"occasion": "order_above", "min_subtotal": "150.00", "amount": "15", "valid_days": 20}])
    _paid(app, 6201, subtotal="149.99")
    _paid(app, 6202, subtotal="150.00")
    [v] = _vouchers(app)
    assert v["source_ref"] == "order:6202" and v["kind"] == "amount"
    assert v["amount"] == Decimal("15") and v["currency"] == "USD" and v["percent"] is None
    [a] = _discount_actions(app)
    assert a["request"]["variables"]["basicCodeDiscount"]["customerGets"]["value"] == {
        "discountAmount": {"amount": "15.00", "appliesOnEachItem": False}}
    [m] = _messages(app, "voucher")
    assert m["data"]["discount_amount"] == "15.00" and m["data"]["currency"] == "USD"


def test_order_above_in_another_currency_does_not_match(make):
    app = make(occasions=[{"occasion": "order_above", "min_subtotal": 100, "currency": "EUR", "percent": 10}])
    _paid(app, 6301, subtotal="500.00", currency="USD")
    assert _vouchers(app) == [] and _messages(app, "voucher") == []


def test_first_matching_occasion_wins_and_first_order_is_only_the_very_first(make, clock):
    app = make(occasions=[FIRST, {"occasion": "order_above", "min_subtotal": 50, "percent": 20}])
    _paid(app, 6401, clock.now - timedelta(days=3), subtotal="100.00")
    # An older order of the same customer arriving late is not a "first order" as well.
    _paid(app, 6400, clock.now - timedelta(days=4), subtotal="10.00")
    [v] = _vouchers(app)
    assert v["source_ref"] == "order:6401" and v["percent"] == Decimal("10")  # first_order, listed first


def test_test_orders_cancelled_orders_and_guests_get_nothing(make, clock):
    app = make(occasions=[FIRST])
    payload = order(6501)
    payload["test"] = True
    deliver_shopify(app, "orders/paid", payload)
    deliver_shopify(app, "orders/paid", order(6502, cancelled=clock.now - timedelta(minutes=5)))
    run_worker(app)
    assert _messages(app) == [] and _vouchers(app) == []


def test_a_customer_without_a_shopify_id_gets_no_code_but_a_held_voucher(make, clock):
    app = make(occasions=[FIRST])
    with app.engine.begin() as conn:  # known by email only (e.g. from Zendesk), consenting
        conn.execute(t.customers.insert().values(email="ann@example.com", marketing_consent="subscribed", tags=[],
                                                 created_at=clock.now, updated_at=clock.now))
    _paid(app, 6601, customer_id=None)  # a guest checkout
    [voucher] = _vouchers(app)  # held for `retention discounts approve` (tests/features/test_held_codes.py)
    assert voucher["status"] == "held" and voucher["code"] is None
    assert _discount_actions(app) == [] and _messages(app, "voucher") == []
    assert len(_messages(app, "thank_you")) == 1


def test_old_and_imported_orders_get_nothing(make, clock):
    app = make(occasions=[FIRST], max_order_age_days=2)
    _paid(app, 6650, clock.now - timedelta(days=3))  # e.g. a dead letter replayed days later
    assert _messages(app) == [] and _vouchers(app) == []
    _paid(app, 6651, clock.now - timedelta(days=3), updated=clock.now - timedelta(hours=1),  # paid today
          customer_id=2651, email="new@example.com")
    assert [m["kind"] for m in _messages(app)] == ["thank_you", "voucher"]

    from retention_plugin.context import HookContext
    from retention_plugin.records import record_order
    from retention_plugin.platforms.shopify.payloads import build_order

    imported = build_order(order(6652, customer_id=2652, email="imp@example.com"), source="import")
    with app.engine.begin() as conn:
        record_order(conn, imported, clock.now, paid=True)
        offers.on_order_paid(HookContext(app, conn, now=clock.now, source="import"), imported)
    assert len(_messages(app)) == 2


def test_no_occasions_configured_means_thank_you_only(make):
    app = make()
    _paid(app, 6701)
    assert [m["kind"] for m in _messages(app)] == ["thank_you"] and _vouchers(app) == []


def test_thank_you_can_be_switched_off_and_carries_the_order(make, channel):
    app = make(thank_you=False, occasions=[FIRST])
    _paid(app, 6801)
    assert [m["kind"] for m in _messages(app)] == ["voucher"]

    app2 = make(order_url="https://shop.example/orders/{order_number}")
    _paid(app2, 6802, subtotal="42.50")  # the same customer's second order: no first-order voucher
    [m] = _messages(app2, "thank_you")
    assert m["data"] == {"order_name": "#6802", "order_total": "42.50", "currency": "USD",
                         "order_url": "https://shop.example/orders/6802"}
    assert m["message_class"] == "transactional" and m["locale"] == "en"
    assert "42.50" in channel.sent[-1].rendered.text
    assert "https://shop.example/orders/6802" in channel.sent[-1].rendered.text


# --- validity ------------------------------------------------------------------------------------------


def _customer_with_score(app, now, next_purchase_at):
    with app.engine.begin() as conn:
        cid = conn.execute(t.customers.insert().values(
            shopify_id=1001, email="ann@example.com", marketing_consent="subscribed", tags=[], created_at=now,
            updated_at=now)).inserted_primary_key[0]
        conn.execute(t.customer_scores.insert().values(customer_id=cid, segment="active",
                                                       next_purchase_at=next_purchase_at, scored_at=now))
    return cid


@pytest.mark.parametrize("days_until, expected_days", [(20, 27), (200, 90), (-30, 7)])
def test_voucher_expires_shortly_after_the_expected_next_purchase(make, clock, days_until, expected_days):
    app = make(occasions=[FIRST], expire_after_expected_days=7, min_valid_days=7, max_valid_days=90)
    _customer_with_score(app, clock.now, clock.now + timedelta(days=days_until))
    _paid(app, 6901)
    [v] = _vouchers(app)
    assert v["expires_at"] == clock.now + timedelta(days=expected_days)
    [a] = _discount_actions(app)
    assert a["request"]["variables"]["basicCodeDiscount"]["endsAt"] == (
        clock.now + timedelta(days=expected_days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seed_history(app, n=300, seed=11):
    """Customers buying at their own pace over two years, some stopping: enough for the models to fit."""
    rng = np.random.default_rng(seed)
    start = app.now() - timedelta(days=730)
    customers, orders = [], []
    for i in range(n):
        cid = 1000 + i
        customers.append({"id": cid, "shopify_id": 700000 + cid, "email": f"c{cid}@example.com", "tags": [],
                          "marketing_consent": "subscribed", "country": "LT", "locale": "en",
                          "created_at": start, "updated_at": start})
        day, rate = float(rng.integers(0, 300)), rng.gamma(2.0, 1 / 60)
        stop = day + rng.exponential(500)
        while day < min(stop, 725):
            orders.append({"customer_id": cid, "currency": "USD", "subtotal": Decimal("40.00"),
                           "total": Decimal("40.00"), "created_at": start + timedelta(days=day),
                           "paid_at": start + timedelta(days=day), "shopify_id": 50_000_000 + len(orders),
                           "source": "import", "tags": [], "discount_codes": [], "test": False,
                           "total_discounts": 0, "total_tax": 0, "shipping": 0, "refunded": 0})
            day += rng.exponential(1 / rate)
    with app.engine.begin() as conn:
        conn.execute(t.customers.insert(), customers)
        conn.execute(t.orders.insert(), orders)


def test_the_daily_scoring_predicts_each_next_purchase_and_the_voucher_ends_after_it(make, clock):
    from retention_plugin.analysis.scoring import ScoreSettings, score_customers
    from retention_plugin.analysis.store import load_store_history
    from retention_plugin.analysis.summary import summarize
    from retention_plugin.features.winback import early_warning_task

    app = make(occasions=[{"occasion": "order_above", "min_subtotal": 0, "percent": 10, "valid_days": 30}],
               expire_after_expected_days=7, min_valid_days=1, max_valid_days=365,
               next_purchase_min_days=2, next_purchase_max_days=300)
    _seed_history(app)
    scored_at = clock.now
    with app.engine.connect() as conn:  # the daily task, as the worker runs it
        early_warning_task(HookContext(app, conn, now=scored_at, source="task"))
        conn.commit()
    with app.engine.connect() as conn:
        scores = {r["customer_id"]: dict(r) for r in conn.execute(select(t.customer_scores)).mappings()}
    assert len(scores) == 300 and all(r["next_purchase_at"] is not None for r in scores.values())

    # The prediction is the fitted model's expected wait, 1 / E[purchase rate | active], within the bounds.
    history = load_store_history(app.engine, scored_at)
    fitted = score_customers(history, ScoreSettings())
    model = fitted.choice["value_model"]
    params = fitted.models[model]["params"]
    o = history.orders
    summary = summarize(o.customer, o.day, o.amount, calibration_end=history.as_of, time_unit="weeks")
    waits = {}
    for cid, x, big_t in zip(summary.customer_ids.tolist(), summary.x.tolist(), summary.T.tolist()):
        days = (params["alpha"] + big_t) / (params["r"] + x) * summary.unit_days
        waits[int(cid)] = min(max(days, 2.0), 300.0)
    for cid, row in scores.items():
        assert abs((row["next_purchase_at"] - row["scored_at"]).total_seconds() / 86400 - waits[cid]) < 1e-3
    assert len({round(w, 3) for w in waits.values()}) > 50  # a prediction per customer, not one default
    assert any(w == 300.0 for w in waits.values()) and any(w < 100 for w in waits.values())

    # A day later one of them orders: the voucher ends 7 days after the predicted next purchase,
    # the predicted wait counted from this order.
    cid = next(c for c, w in sorted(waits.items()) if 20 < w < 200)
    clock.advance(days=1)
    _paid(app, 6950, customer_id=700000 + cid, email=f"c{cid}@example.com")
    [v] = [v for v in _vouchers(app) if v["source_ref"] == "order:6950"]
    wait = scores[cid]["next_purchase_at"] - scores[cid]["scored_at"]
    assert v["expires_at"] == clock.now + wait + timedelta(days=7)
    assert v["expires_at"] != clock.now + timedelta(days=30)


def test_codes_combine_as_configured_so_rewards_stack_on_the_tier_discount(make_app, channel, clock):
    from platforms.helpers import shopify_request_errors

    app = make_app(
        extra_plugins=[channel], messages=MESSAGES, links=LINKS,
        offers={"occasions": [FIRST], "combines_with": {"voucher": ["shipping"]}},
        loyalty={"rewards": [{"points": 50, "amount": "5.00"}],
                 "punch_cards": [{"name": "ink", "size": 1, "match": {"product_ids": [7001]}}],
                 "tiers": [{"name": "gold", "min_spend": "10.00", "discount_percent": 5,
                            "segment_id": "gid://shopify/Segment/42"}]})
    _paid(app, 6960, subtotal="60.00")
    made = {a["kind"]: a["request"] for a in _rows(app, t.actions) if a["kind"].startswith("discount_")}
    assert set(made) == {"discount_code_basic_create", "discount_code_bxgy_create",
                         "discount_automatic_basic_create"}
    voucher, reward = [a["request"]["variables"]["basicCodeDiscount"] for a in _rows(app, t.actions)
                       if a["kind"] == "discount_code_basic_create"]
    punch = made["discount_code_bxgy_create"]["variables"]["bxgyCodeDiscount"]
    tier = made["discount_automatic_basic_create"]["variables"]["automaticBasicDiscount"]
    assert voucher["code"].startswith("THANKS-") and reward["code"].startswith("LOYAL-")
    # Configured: the voucher combines with free shipping only.
    assert voucher["combinesWith"] == {"orderDiscounts": False, "productDiscounts": False, "shippingDiscounts": True}
    # Defaults: a points reward (an order discount) and the tier discount (all items: an order discount)
    # each allow the other, so the reward applies on top of the tier price; the free unit (a product
    # discount) is allowed by the tier discount too.
    assert reward["combinesWith"] == {"orderDiscounts": True, "productDiscounts": False, "shippingDiscounts": True}
    assert punch["combinesWith"] == {"orderDiscounts": True, "productDiscounts": False, "shippingDiscounts": True}
    assert tier["combinesWith"] == {"orderDiscounts": True, "productDiscounts": True, "shippingDiscounts": True}
    for request in made.values():  # last: it skips where ../shared (the Admin schema) is absent
        assert shopify_request_errors(request) == []


def test_combines_with_names_known_kinds_and_classes(make):
    with pytest.raises(ConfigError, match=r"\[offers\]\.combines_with"):
        make(combines_with={"vouchers": ["order"]})
    with pytest.raises(ConfigError, match=r"\[offers\]\.combines_with"):
        make(combines_with={"voucher": ["orders"]})
    with pytest.raises(ConfigError, match=r"next_purchase_min_days"):
        make(next_purchase_min_days=30, next_purchase_max_days=10)


def test_without_a_score_the_voucher_keeps_its_valid_days(make, clock):
    app = make(occasions=[FIRST], expire_after_expected_days=7)
    _paid(app, 6902)
    assert _vouchers(app)[0]["expires_at"] == clock.now + timedelta(days=30)


# --- the choose_offer hook ----------------------------------------------------------------------------


class Chooser:
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    @hookimpl
    def choose_offer(self, order, customer, occasion, ctx):
        self.calls.append((order.shopify_id, customer["email"], occasion))
        return self.answer(occasion) if callable(self.answer) else self.answer


def test_hook_choose_offer(make):
    # A plugin offers on every order (occasion "order" when nothing configured matches)...
    generous = Chooser(lambda occ: {"percent": Decimal("25"), "valid_days": 10} if occ == "order" else None)
    app = make(extra=[generous])
    _paid(app, 7001)
    assert generous.calls == [(7001, "ann@example.com", "order")]
    [v] = _vouchers(app)
    assert v["percent"] == Decimal("25")

    # ...vetoes a configured occasion with False (the decision is recorded)...
    veto = Chooser(False)
    app2 = make(extra=[veto], occasions=[FIRST])
    _paid(app2, 7002, customer_id=2002, email="bob@example.com")  # same database: another customer
    assert veto.calls == [(7002, "bob@example.com", "first_order")]
    assert [v for v in _vouchers(app2) if v["source_ref"] == "order:7002"] == []
    assert [m for m in _messages(app2, "voucher") if m["key"].endswith(":7002")] == []
    with app2.engine.connect() as conn:
        state = conn.execute(select(t.plugin_state.c.value).where(t.plugin_state.c.key == "order:7002")).scalar()
    assert state["decision"] == "declined" and state["reason"] == "choose_offer returned no offer"

    # ...or replaces the built-in's offer with a fixed amount; None defers to the built-in.
    amount = Chooser(lambda occ: {"amount": ev.Money(Decimal("7.50"), "USD"), "valid_days": 5})
    app3 = make(extra=[amount], occasions=[FIRST])
    _paid(app3, 7003, customer_id=2003, email="cy@example.com")
    [v3] = [v for v in _vouchers(app3) if v["source_ref"] == "order:7003"]
    assert v3["amount"] == Decimal("7.50") and v3["kind"] == "amount"


def test_an_invalid_offer_from_a_plugin_is_declined_not_a_dead_delivery(make):
    bad = Chooser({"percent": 0.1, "valid_days": 10})  # a float: refused
    app = make(extra=[bad], occasions=[FIRST])
    _paid(app, 7101)
    assert _vouchers(app) == []
    with app.engine.connect() as conn:
        state = conn.execute(select(t.plugin_state.c.value).where(t.plugin_state.c.key == "order:7101")).scalar()
    assert state["reason"].startswith("invalid offer from choose_offer: percent must be a Decimal")
    wrong_currency = Chooser({"amount": ev.Money(Decimal("5"), "EUR"), "valid_days": 10})
    app2 = make(extra=[wrong_currency], occasions=[FIRST])
    _paid(app2, 7102, customer_id=2102, email="bob@example.com")
    assert _vouchers(app2) == []
    with app2.engine.connect() as conn:
        state = conn.execute(select(t.plugin_state.c.value).where(t.plugin_state.c.key == "order:7102")).scalar()
    assert state["reason"] == ("invalid offer from choose_offer: amount is in EUR, "
                               "but codes apply in the shop currency USD")


def test_the_builtin_declines_unknown_occasions(make):
    app = make(occasions=[FIRST])
    with app.engine.connect() as conn:
        ctx = type("Ctx", (), {"conn": conn, "section": lambda self, n: app.settings.section(n)})()
        assert offers.choose_offer(order=None, customer={}, occasion="order", ctx=ctx) is False
        assert offers.choose_offer(order=None, customer={}, occasion="birthday", ctx=ctx) is False


# --- cancellation, facts, templates, configuration -----------------------------------------------------


def test_a_cancelled_order_withdraws_the_voucher_not_yet_sent(make, clock, channel):
    app = make(occasions=[FIRST])
    _paid(app, 7201)
    deliver_shopify(app, "orders/cancelled", order(7201, cancelled=clock.now, updated=clock.now))
    run_worker(app)
    [vmsg] = _messages(app, "voucher")
    assert vmsg["status"] == "cancelled" and "cancelled" in vmsg["reason"]
    assert _vouchers(app)[0]["status"] == "cancelled"
    clock.advance(hours=2)
    run_worker(app)
    assert channel.kinds() == ["thank_you"]


def test_customer_facts_lists_vouchers(make):
    from retention_plugin.customers import customer_profile

    app = make(occasions=[FIRST])
    _paid(app, 7301)
    [v] = _vouchers(app)
    facts = customer_profile(app, v["customer_id"])["features"]["offers"]
    assert facts["vouchers"][0]["code"] == v["code"] and facts["vouchers"][0]["discount"] == "10%"


@pytest.mark.parametrize("locale", LOCALES)
def test_the_stored_data_renders_with_every_locales_template(make, locale):
    app = make(occasions=[FIRST])
    _paid(app, 7401)
    renderer = Renderer(strict=True, shop_name="Test Shop", shop_url="https://shop.example")
    customer = {"first_name": "Ann", "last_name": "Example"}
    for m in _messages(app):
        rendered = renderer.render(m["kind"], locale, m["data"], customer=customer)
        assert rendered.locale == locale
        if m["kind"] == "voucher":
            assert m["data"]["code"] in rendered.text
        else:
            assert "#7401" in rendered.subject + rendered.text


@pytest.mark.parametrize("occasion, message", [
    ({"occasion": "nth_order", "percent": 10}, "n"),
    ({"occasion": "first_order", "percent": 10, "amount": 5}, "percent"),
    ({"occasion": "order_above", "percent": 10}, "min_subtotal"),
    ({"occasion": "first_order", "percent": 10, "n": 3}, "n"),
    ({"occasion": "birthday", "percent": 10}, "occasion"),
    ({"occasion": "first_order", "percent": 150}, "percent"),
])
def test_bad_occasions_are_configuration_errors_naming_the_key(make, occasion, message):
    with pytest.raises(ConfigError) as e:
        make(occasions=[occasion])
    assert f"[offers].occasions.0.{message}" in str(e.value)


def test_unknown_offers_key_is_an_error(make):
    with pytest.raises(ConfigError, match=r"\[offers\]\.percent: unknown key"):
        make(percent=10)

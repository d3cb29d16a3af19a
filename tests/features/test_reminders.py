"""Replenishment and service reminders, learned intervals, and the auto-replenishment offer.

Orders arrive as Shopify-shaped webhooks through the inbox and the worker;
history is stored with ``records.record_order`` (imports). Time moves with the
``clock`` fixture; nothing sleeps.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from payloads import order
from retention_plugin import events as ev
from retention_plugin import hookimpl
from retention_plugin.config import ConfigError
from retention_plugin.features import reminders
from retention_plugin.features.reminders import engine as reminder_engine
from retention_plugin.records import record_order
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

SHOP_URL = "https://retention-test.myshopify.com"
INK = {"name": "ink", "skus": ["SKU-1"], "interval_days": 60}
LOG = {"default_channel": "log"}


def _reminders(app):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.reminders).order_by(t.reminders.c.id)).mappings()]


def _messages(app, kind=None):
    """This feature's messages (other built-ins may schedule their own for the same orders)."""
    kinds = [kind] if kind else ["reminder", "service_reminder"]
    q = select(t.messages).where(t.messages.c.kind.in_(kinds)).order_by(t.messages.c.id)
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _history(app, shopify_id, customer_id, email, when, sku="BEANS", quantity=1, variant_id=9001):
    """An imported order (source='import'), stored the way an importer stores it."""
    money = ev.Money(Decimal("10.00"), "USD")
    o = ev.Order(shopify_id=shopify_id, name=f"#H{shopify_id}", email=email,
                 customer=ev.CustomerInfo(shopify_id=customer_id, email=email, marketing_consent="subscribed"),
                 currency="USD", presentment_currency="USD", subtotal=money, total=money,
                 total_discounts=ev.Money(0, "USD"), total_tax=ev.Money(0, "USD"), shipping=ev.Money(0, "USD"),
                 presentment_subtotal=None, financial_status="paid", fulfillment_status=None, created_at=when,
                 updated_at=when, processed_at=when, source="import",
                 lines=[ev.OrderLine(line_id=shopify_id * 10, sku=sku, product_id=7100, variant_id=variant_id,
                                     title="Espresso beans 1 kg", quantity=quantity, price=money,
                                     total_discount=ev.Money(0, "USD"))])
    with app.engine.begin() as conn:
        return record_order(conn, o, when, import_key=f"test:{shopify_id}")


def _paid(app, order_id, created, **kw):
    deliver_shopify(app, "orders/paid", order(order_id, created=created, **kw))
    counts = run_worker(app)
    assert counts.dead == 0 and counts.retried == 0, counts


# --- the acceptance scenario ------------------------------------------------------------------


def test_sixty_day_rule_reorder_on_day_40_moves_the_reminder_to_day_100(make_app, clock):
    app = make_app(reminders={"rules": [INK]}, messages=LOG)
    day0 = clock.now
    _paid(app, 5001, day0)

    [first] = _reminders(app)
    assert first["due_at"] == day0 + timedelta(days=60)
    assert first["status"] == "scheduled" and first["rule"] == "ink" and first["sku"] == "SKU-1"
    [msg] = _messages(app)
    assert msg["key"] == first["key"] and msg["id"] == first["message_id"]
    assert first["key"].startswith("reminder:ink:") and first["key"].endswith(f":SKU-1:{first['order_id']}")
    assert (msg["kind"], msg["message_class"], msg["status"]) == ("reminder", "marketing", "scheduled")
    assert msg["data"]["reorder_url"] == f"{SHOP_URL}/cart/8001:1"
    assert msg["data"]["product_title"] == "Ink cartridge"

    clock.advance(days=40)
    _paid(app, 5002, clock.now)
    first, second = _reminders(app)
    assert first["status"] == "cancelled"
    assert second["status"] == "scheduled" and second["due_at"] == day0 + timedelta(days=100)
    m1, m2 = _messages(app)
    assert m1["status"] == "cancelled" and "reordered" in m1["reason"]
    assert m2["status"] == "scheduled" and m2["due_at"] == day0 + timedelta(days=100)

    # The first order delivered again (Shopify resends under a new webhook id): nothing changes.
    _paid(app, 5001, day0)
    assert [r["status"] for r in _reminders(app)] == ["cancelled", "scheduled"]
    assert len(_messages(app)) == 2

    # Day 60 passes quietly; on day 100 the reminder goes out.
    clock.advance(days=21)
    run_worker(app)
    assert _messages(app)[1]["status"] == "scheduled"
    clock.now = day0 + timedelta(days=100)
    run_worker(app)
    assert [m["status"] for m in _messages(app)] == ["cancelled", "sent"]
    with app.engine.begin() as conn:
        from retention_plugin.context import HookContext

        reminder_engine.sync_statuses(HookContext(app, conn, now=clock.now))
    assert [r["status"] for r in _reminders(app)] == ["cancelled", "sent"]


def test_an_older_order_arriving_late_does_not_replace_a_newer_reminder(make_app, clock):
    app = make_app(reminders={"rules": [INK]}, messages=LOG)
    day0 = clock.now
    _paid(app, 5102, day0)  # the newer order is processed first
    _paid(app, 5101, day0 - timedelta(days=10))
    [r] = _reminders(app)
    assert r["due_at"] == day0 + timedelta(days=60)
    assert len(_messages(app)) == 1


def test_quantity_scales_the_interval_and_the_cart_link(make_app, clock):
    app = make_app(reminders={"rules": [INK]}, messages=LOG)
    lines = [{"id": 1, "sku": "SKU-1", "product_id": 7001, "variant_id": 8001, "title": "Ink", "quantity": 2,
              "price": "20.00"},
             {"id": 2, "sku": "PAPER", "product_id": 7002, "variant_id": 8002, "title": "Paper", "quantity": 1,
              "price": "5.00"}]
    _paid(app, 5201, clock.now, lines=lines)
    [r] = _reminders(app)  # the paper matches no rule
    assert r["due_at"] == clock.now + timedelta(days=120)
    assert _messages(app)[0]["data"]["reorder_url"] == f"{SHOP_URL}/cart/8001:2"


def test_variant_unknown_falls_back_to_the_product_page(make_app, clock):
    rule = dict(INK, product_url="https://shop.example/products/ink-cartridge")
    app = make_app(reminders={"rules": [rule]}, messages=LOG)
    lines = [{"id": 1, "sku": "SKU-1", "product_id": 7001, "variant_id": None, "title": "Ink", "quantity": 1,
              "price": "20.00"}]
    _paid(app, 5301, clock.now, lines=lines)
    assert _messages(app)[0]["data"]["reorder_url"] == "https://shop.example/products/ink-cartridge"
    assert reminder_engine.reorder_url("https://s.example", variant_id=None, quantity=1, sku="A B") == \
        "https://s.example/search?q=A%20B"


def test_service_rule_is_transactional_with_its_own_kind(make_app, clock):
    rule = {"name": "annual-check", "product_types": ["Boiler"], "interval_days": 365, "service": True,
            "service_name": "annual inspection", "booking_url": "https://shop.example/service"}
    app = make_app(reminders={"rules": [INK, rule]}, messages=LOG)
    lines = [{"id": 1, "sku": "BOILER-9", "product_id": 7009, "variant_id": 8009, "title": "Boiler B9",
              "quantity": 2, "price": "900.00", "product_type": "boiler"}]
    _paid(app, 5401, clock.now, lines=lines, consent="unsubscribed")
    [r] = _reminders(app)
    assert r["rule"] == "annual-check"
    assert r["due_at"] == clock.now + timedelta(days=365)  # a service interval does not scale with quantity
    [msg] = _messages(app)
    assert (msg["kind"], msg["message_class"]) == ("service_reminder", "transactional")
    assert msg["data"]["service_name"] == "annual inspection"
    assert msg["data"]["due_date"] == (clock.now + timedelta(days=365)).date().isoformat()
    clock.now = r["due_at"]
    run_worker(app)
    assert _messages(app)[0]["status"] == "sent"  # transactional: no marketing consent needed


def test_cancelled_order_withdraws_its_reminder(make_app, clock):
    app = make_app(reminders={"rules": [INK]}, messages=LOG)
    _paid(app, 5501, clock.now)
    deliver_shopify(app, "orders/cancelled", order(5501, created=clock.now, updated=clock.now + timedelta(hours=1),
                                                   cancelled=clock.now + timedelta(hours=1)))
    run_worker(app)
    assert [r["status"] for r in _reminders(app)] == ["cancelled"]
    assert _messages(app)[0]["status"] == "cancelled"


# --- learned intervals -------------------------------------------------------------------------


def test_learned_rule_uses_the_median_repeat_interval_from_history(make_app, clock):
    now = clock.now
    learn = {"name": "beans", "skus": ["BEANS"], "learn": True, "fallback_days": 45, "min_pairs": 3}
    app = make_app(reminders={"rules": [learn]}, messages=LOG)
    # Three customers' repeat purchases: gaps 30, 30 | 28 | 32  ->  median 30 from 4 pairs.
    n = 900
    for cust, days_ago in ((1, (120, 90, 60)), (2, (100, 72)), (3, (80, 48))):
        for d in days_ago:
            n += 1
            _history(app, n, 7700 + cust, f"c{cust}@example.com", now - timedelta(days=d))
    lines = [{"id": 1, "sku": "BEANS", "product_id": 7100, "variant_id": 9001, "title": "Espresso beans 1 kg",
              "quantity": 1, "price": "10.00"}]
    _paid(app, 5601, now, lines=lines, customer_id=7799, email="new@example.com")
    [r] = _reminders(app)
    assert r["due_at"] == now + timedelta(days=30)
    msg = _messages(app)[0]
    assert msg["data"]["interval_source"] == "learned"

    with app.engine.connect() as conn:
        assert reminder_engine.learn_interval(conn, "BEANS", per_unit=False, max_gap_days=400) == (30.0, 4)


def test_learned_rule_falls_back_without_enough_repeat_pairs(make_app, clock):
    now = clock.now
    learn = {"name": "beans", "skus": ["BEANS"], "learn": True, "fallback_days": 45, "min_pairs": 5}
    app = make_app(reminders={"rules": [learn]}, messages=LOG)
    _history(app, 801, 7801, "a@example.com", now - timedelta(days=50))
    _history(app, 802, 7801, "a@example.com", now - timedelta(days=20))
    lines = [{"id": 1, "sku": "BEANS", "product_id": 7100, "variant_id": 9001, "title": "Beans", "quantity": 1,
              "price": "10.00"}]
    _paid(app, 5701, now, lines=lines, customer_id=7802, email="b@example.com")
    [r] = _reminders(app)
    assert r["due_at"] == now + timedelta(days=45)
    assert _messages(app)[0]["data"]["interval_source"] == "fallback"


def test_gaps_per_unit_and_lapses():
    d = date(2026, 1, 1)
    purchases = [(d, 2), (d + timedelta(days=60), 1), (d + timedelta(days=90), 1), (d + timedelta(days=900), 1)]
    assert reminder_engine.gaps(purchases, per_unit=True, max_gap_days=400) == [30.0, 30.0]
    assert reminder_engine.gaps(purchases, per_unit=False, max_gap_days=400) == [60.0, 30.0]


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize("rule, where", [
    ({"name": "x", "interval_days": 30}, "skus"),
    ({"name": "x", "skus": ["A"]}, "interval_days"),
    ({"name": "x", "skus": ["A"], "interval_days": 30, "learn": True}, "interval_days"),
    ({"name": "Bad Name", "skus": ["A"], "interval_days": 30}, "name"),
    ({"name": "x", "skus": ["A"], "interval_days": 30, "colour": "red"}, "colour"),
])
def test_bad_rules_are_config_errors_naming_the_key(make_app, rule, where):
    with pytest.raises(ConfigError) as e:
        make_app(reminders={"rules": [rule]})
    assert "[reminders].rules.0" in str(e.value) and where in str(e.value)


def test_duplicate_rule_names_are_rejected(make_app):
    with pytest.raises(ConfigError, match="used twice"):
        make_app(reminders={"rules": [INK, INK]})


# --- auto-replenishment offer -------------------------------------------------------------------------


class Spy:
    def __init__(self, answer=None):
        self.calls = []
        self.answer = answer

    @hookimpl
    def replenishment_candidate(self, customer_id, sku, interval_days, ctx):
        self.calls.append((customer_id, sku, interval_days))
        return self.answer


OFFER_TEMPLATE = """{% block subject %}Never run out of {{ product_title }}{% endblock %}
{% block text %}
You order {{ product_title }} about every {{ interval_days }} days. Set up automatic delivery:
{{ subscribe_url }}
{% endblock %}
"""


def test_hook_replenishment_candidate(make_app, clock, tmp_path):
    (tmp_path / "tpl" / "en").mkdir(parents=True)
    (tmp_path / "tpl" / "en" / "replenishment_offer.j2").write_text(OFFER_TEMPLATE)
    spy = Spy()
    app = make_app(extra_plugins=[spy], messages=dict(LOG, templates_dir=str(tmp_path / "tpl")),
                   reminders={"offer": {"url": "https://shop.example/subscribe?sku={sku}&every={interval_days}"}})
    now = clock.now
    _paid(app, 6001, now - timedelta(days=60))
    _paid(app, 6002, now - timedelta(days=31))
    assert spy.calls == []
    _paid(app, 6003, now)
    assert len(spy.calls) == 1
    cid, sku, interval = spy.calls[0]
    assert (sku, interval) == ("SKU-1", 30) and isinstance(interval, int)
    [offer] = _messages(app, reminders.OFFER_KIND)
    assert offer["message_class"] == "marketing" and offer["customer_id"] == cid
    assert offer["key"] == f"replenishment_offer:{cid}:SKU-1"
    assert offer["data"]["subscribe_url"] == "https://shop.example/subscribe?sku=SKU-1&every=30"
    assert offer["due_at"] == now + timedelta(days=1)

    clock.advance(days=30)
    _paid(app, 6004, clock.now)  # a fourth regular purchase: no second offer, no second call
    assert len(spy.calls) == 1 and len(_messages(app, reminders.OFFER_KIND)) == 1
    assert _messages(app, reminders.OFFER_KIND)[0]["status"] == "sent"  # rendered with the template above


def test_irregular_buyer_is_no_candidate(make_app, clock):
    spy = Spy()
    app = make_app(extra_plugins=[spy], messages=LOG)
    now = clock.now
    for i, days_ago in enumerate((65, 60, 0)):
        _paid(app, 6101 + i, now - timedelta(days=days_ago))
    assert spy.calls == [] and _messages(app, reminders.OFFER_KIND) == []


def test_a_plugin_returning_false_takes_the_offer_over(make_app, clock):
    spy = Spy(answer=False)
    app = make_app(extra_plugins=[spy], messages=LOG)
    now = clock.now
    for i, days_ago in enumerate((42, 21, 0)):
        _paid(app, 6201 + i, now - timedelta(days=days_ago))
    assert [c[1:] for c in spy.calls] == [("SKU-1", 21)]
    assert _messages(app, reminders.OFFER_KIND) == []


# --- commands ------------------------------------------------------------------------------------------


def _invoke(app, monkeypatch, *args):
    from retention_plugin import cli as cli_mod

    monkeypatch.setattr(cli_mod.LazyApp, "app", property(lambda self: app))
    group = click.Group("retention")
    reminders.register_commands(cli=group)
    return CliRunner().invoke(group, list(args), obj=cli_mod.LazyApp(None))


def test_commands_list_and_interval(make_app, clock, monkeypatch):
    app = make_app(reminders={"rules": [INK]}, messages=LOG)
    _paid(app, 6301, clock.now)
    r = _invoke(app, monkeypatch, "reminders", "list", "--json")
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.output)
    assert row["rule"] == "ink" and row["status"] == "scheduled"
    r = _invoke(app, monkeypatch, "reminders", "list", "--customer", "ann@example.com")
    assert r.exit_code == 0 and "ink" in r.output
    for i, d in enumerate((70, 40, 10)):
        _history(app, 990 + i, 7901, "h@example.com", clock.now - timedelta(days=d), sku="SKU-1")
    r = _invoke(app, monkeypatch, "reminders", "interval", "SKU-1", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["pairs"] == 2 and out["median_days_per_order"] == 30.0
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.reminders)).scalar() == 1


def test_example_config_sections_are_valid(make_app):
    from pathlib import Path

    from retention_plugin.config import read_raw

    path = Path(__file__).resolve().parents[2] / "config" / "retention.example.toml"
    names = ("SHOPIFY_CLIENT_SECRET", "SHOPIFY_ACCESS_TOKEN", "SHOPIFY_WEBHOOK_SECRET", "ZENDESK_API_TOKEN",
             "ZENDESK_WEBHOOK_SECRET",
             "SMTP_PASSWORD", "RETENTION_UNSUBSCRIBE_SECRET", "RETENTION_LINK_SECRET", "RECALL_SIGNING_SECRET",
             "RETENTION_REVIEWS_SECRET")
    raw = read_raw(path, env={n: "x" * 32 for n in names})
    app = make_app(reminders=raw["reminders"], recalls=raw["recalls"])
    s = app.settings.section("reminders")
    assert [r["name"] for r in s["rules"]] == ["ink", "beans", "boiler-check"]
    assert s["offer"]["min_purchases"] == 3 and app.settings.section("recalls")["zendesk_tickets"] is False
    assert app.settings.masked()["recalls"]["signing_secret"] == "********"

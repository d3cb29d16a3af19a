"""Late-delivery apologies: the hourly task, once per order, an optional credit, withdrawal on shipping.

The order is paid 2026-03-01 10:00 UTC (the payload builder's default); the
clock starts 2026-03-02 12:00 and moves by hand; the worker runs the task.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from payloads import order
from retention_plugin.config import ConfigError
from retention_plugin.features import delays
from retention_plugin.features.delays import engine as delay_engine
from retention_plugin.features.delays import settings as delay_settings
from retention_plugin.messaging.templates import Renderer
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

PAID = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
MESSAGES = {"default_channel": "test", "shop_name": "Test Shop"}


@pytest.fixture
def make(make_app, channel):
    def build(**settings):
        return make_app(extra_plugins=[channel], delays=settings, messages=MESSAGES, offers={"thank_you": False})

    return build


def _apologies(app):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.messages).where(t.messages.c.kind == "delay_apology")
                                              .order_by(t.messages.c.id)).mappings()]


def _run(app):
    counts = run_worker(app)
    assert counts.dead == 0 and counts.retried == 0, counts
    return counts


def _paid(app, order_id=9001, **kw):
    deliver_shopify(app, "orders/paid", order(order_id, created=kw.pop("created", PAID), **kw))
    _run(app)


def test_an_unshipped_order_gets_one_apology_after_n_days(make, clock, channel):
    app = make(after_days=5)
    _paid(app)
    clock.now = PAID + timedelta(days=5) - timedelta(minutes=1)  # Friday 2026-03-06, not late yet
    _run(app)
    assert _apologies(app) == []

    clock.advance(hours=1)
    _run(app)
    [msg] = _apologies(app)
    assert msg["key"] == "delay:9001" and msg["message_class"] == "transactional"
    assert msg["data"]["order_name"] == "#9001" and msg["data"]["code"] is None
    assert channel.kinds() == ["delay_apology"] and "#9001" in channel.sent[0].rendered.subject

    for _ in range(3):  # the task runs every hour; the order stays late; one apology
        clock.advance(hours=1, minutes=1)
        _run(app)
    assert len(_apologies(app)) == 1 and channel.kinds() == ["delay_apology"]


def test_the_apology_can_carry_a_credit_made_once(make, clock):
    app = make(after_days=2, credit_amount="5.00", credit_valid_days=30)
    _paid(app)
    clock.now = PAID + timedelta(days=2, hours=1)
    _run(app)
    with app.engine.begin() as conn:  # the task called again directly: still one of everything
        from retention_plugin.context import HookContext

        delays.apologise_for_late_orders(HookContext(app, conn, now=clock.now, source="task"))
        row = conn.execute(select(t.orders).where(t.orders.c.shopify_id == 9001)).mappings().one()
        delay_engine.apologise(HookContext(app, conn, now=clock.now, source="task"), dict(row),
                         delay_settings.settings_of(app.settings))
    [msg] = _apologies(app)
    with app.engine.connect() as conn:
        rewards = conn.execute(select(t.rewards).where(t.rewards.c.feature == "delays")).mappings().all()
        actions = conn.execute(select(t.actions).where(t.actions.c.key.like("delay:%"))).mappings().all()
    [reward] = rewards
    [action] = actions
    assert reward["code"].startswith("SORRY-") and reward["amount"] == Decimal("5.00")
    assert reward["expires_at"] == clock.now + timedelta(days=30)
    assert action["key"] == "delay:discount:9001"
    assert action["request"]["variables"]["basicCodeDiscount"]["code"] == reward["code"]
    assert msg["data"]["code"] == reward["code"] and msg["data"]["discount_amount"] == "5.00"
    assert msg["data"]["currency"] == "USD" and msg["data"]["expires_at"].startswith("2026-04-")
    for locale in ("en", "ka", "lt", "ru", "sl"):
        rendered = Renderer(strict=True).render("delay_apology", locale, msg["data"], customer={})
        assert reward["code"] in rendered.text


def test_shipped_cancelled_refunded_preorder_test_and_ancient_orders_get_none(make, clock):
    app = make(after_days=2, max_age_days=20)
    _paid(app, 9101)
    deliver_shopify(app, "fulfillments/create", {"id": 1, "order_id": 9101, "status": "success",
                                                 "created_at": "2026-03-02T09:00:00+00:00"})
    _paid(app, 9102, cancelled=PAID + timedelta(hours=2))
    _paid(app, 9103)
    refunded = order(9103, created=PAID, updated=PAID + timedelta(hours=3), financial_status="refunded")
    deliver_shopify(app, "orders/updated", refunded)
    _run(app)
    preorder = order(9104, created=PAID)
    preorder["tags"] = "Pre-Order, gift"
    deliver_shopify(app, "orders/paid", preorder)
    test_order = order(9105, created=PAID)
    test_order["test"] = True
    deliver_shopify(app, "orders/paid", test_order)
    _paid(app, 9106, created=PAID - timedelta(days=40))
    partly = order(9107, created=PAID)
    partly["fulfillment_status"] = "partial"
    deliver_shopify(app, "orders/paid", partly)
    _run(app)
    clock.now = PAID + timedelta(days=3)
    _run(app)
    assert _apologies(app) == []


def test_an_apology_waiting_for_quiet_hours_is_withdrawn_when_the_order_ships(make, clock, channel):
    app = make(after_days=5)
    _paid(app)
    clock.now = datetime(2026, 3, 7, 12, 0, tzinfo=timezone.utc)  # a Saturday: a rest day in Lithuania
    _run(app)
    [msg] = _apologies(app)
    assert msg["status"] == "deferred"
    deliver_shopify(app, "fulfillments/create", {"id": 2, "order_id": 9001, "status": "success",
                                                 "created_at": "2026-03-07T12:30:00+00:00"})
    clock.advance(hours=1)
    _run(app)
    [msg] = _apologies(app)
    assert msg["status"] == "cancelled" and "shipped" in msg["reason"]
    clock.now = datetime(2026, 3, 9, 10, 0, tzinfo=timezone.utc)
    _run(app)
    assert channel.kinds() == []


def test_the_task_is_registered_hourly(make):
    app = make()
    [(name, func, every)] = [x for x in app.tasks if x[0] == "delays.apologise"]
    assert func is delays.apologise_for_late_orders and every == 3600


@pytest.mark.parametrize("settings, key", [
    ({"credit_percent": 5, "credit_amount": 3}, "credit_percent"),
    ({"after_days": 10, "max_age_days": 5}, "max_age_days"),
    ({"after_days": 0}, "after_days"),
    ({"code_prefix": "sorry me"}, "code_prefix"),
])
def test_bad_settings_name_the_key(make, settings, key):
    with pytest.raises(ConfigError, match=rf"\[delays\]\.{key}"):
        make(**settings)

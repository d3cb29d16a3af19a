"""Issue 13, item 11: late deliveries found by the carrier's tracking, not only by the clock.

A parcel that shipped and then got stuck never triggered an apology: the hourly scan looks only at
orders never shipped. ``fulfillment_events/create`` (Shopify's FulfillmentEvent: ``status`` is the
lower-case ``FulfillmentEventStatus``) now drives apologies for ``delayed``, ``failure`` and
``attempted_delivery``, and the scan also finds shipments with no tracking event for
``stalled_after_days``. Exactly once per order and problem, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

import test_followups_delays
from retention_plugin import hookimpl
from retention_plugin.platforms.errors import PayloadError
from retention_plugin.platforms.shopify.payloads import parse_shopify
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

from test_followups_delays import PAID, _apologies, _paid, _run

make = test_followups_delays.make  # the fixture, shared with the clock-driven apology tests

SHIPPED = PAID + timedelta(hours=20)  # 2026-03-02 06:00 UTC


def tracking(event_id, status, when, *, order_id=9001, fulfillment_id=501, estimate=None, message=None) -> dict:
    """A fulfillment_events/create body as Shopify sends it (REST FulfillmentEvent resource)."""
    return {"id": event_id, "fulfillment_id": fulfillment_id, "order_id": order_id, "status": status,
            "message": message, "happened_at": when.isoformat(), "city": "Kaunas", "province": None,
            "country": "Lithuania", "zip": "44001", "address1": None, "latitude": 54.9, "longitude": 23.9,
            "shop_id": 690933842, "created_at": when.isoformat(), "updated_at": when.isoformat(),
            "estimated_delivery_at": estimate.isoformat() if estimate else None,
            "admin_graphql_api_id": f"gid://shopify/FulfillmentEvent/{event_id}"}


def _shipped(app, order_id=9001, fulfillment_id=501):
    _paid(app, order_id)
    deliver_shopify(app, "fulfillments/create", {"id": fulfillment_id, "order_id": order_id, "status": "success",
                                                 "created_at": SHIPPED.isoformat()})
    _run(app)


def _keys(app):
    return [m["key"] for m in _apologies(app)]


def test_a_parcel_the_carrier_reports_delayed_gets_one_apology(make, clock, channel):
    app = make(after_days=2)
    _shipped(app)
    clock.now = PAID + timedelta(days=3)  # Wednesday 2026-03-04 10:00 UTC: the clock's scan sees a shipped order
    deliver_shopify(app, "fulfillment_events/create", tracking(1, "in_transit", clock.now - timedelta(hours=30)))
    _run(app)
    assert _apologies(app) == []

    body = tracking(2, "delayed", clock.now - timedelta(hours=1),
                    estimate=datetime(2026, 3, 9, 18, tzinfo=timezone.utc), message="Weather delay")
    for webhook in ("wh-1", "wh-2"):  # the same event twice, under two webhook ids
        deliver_shopify(app, "fulfillment_events/create", body, webhook_id=webhook)
    deliver_shopify(app, "fulfillment_events/create", tracking(3, "delayed", clock.now))  # reported again
    _run(app)
    [msg] = _apologies(app)
    assert msg["key"] == "delay:9001:delayed" and msg["message_class"] == "transactional"
    assert msg["data"]["reason"] == "delayed" and msg["data"]["new_estimate"] == "2026-03-09"
    assert msg["status"] == "sent"
    [(_, _, rendered)] = channel.sent
    assert "carrier reports that your order #9001 is delayed" in rendered.text
    for _ in range(3):
        clock.advance(hours=1, minutes=1)
        _run(app)
    assert _keys(app) == ["delay:9001:delayed"] and len(channel.sent) == 1


def test_each_problem_once_and_the_credit_only_with_the_first(make, clock):
    app = make(credit_amount="5.00")
    _shipped(app)
    clock.now = PAID + timedelta(days=2)
    deliver_shopify(app, "fulfillment_events/create", tracking(1, "attempted_delivery", clock.now - timedelta(hours=2)))
    deliver_shopify(app, "fulfillment_events/create", tracking(2, "delayed", clock.now - timedelta(hours=1)))
    deliver_shopify(app, "fulfillment_events/create", tracking(3, "failure", clock.now))
    deliver_shopify(app, "fulfillment_events/create", tracking(4, "failure", clock.now + timedelta(minutes=5)))
    _run(app)
    by_key = {m["key"]: m for m in _apologies(app)}
    assert set(by_key) == {"delay:9001:attempted_delivery", "delay:9001:delayed", "delay:9001:failure"}
    assert by_key["delay:9001:attempted_delivery"]["data"]["code"] is None  # the carrier came; not our delay
    assert by_key["delay:9001:delayed"]["data"]["code"].startswith("SORRY-")
    assert by_key["delay:9001:failure"]["data"]["code"] is None  # one goodwill code per order
    with app.engine.connect() as conn:
        assert len(conn.execute(select(t.rewards).where(t.rewards.c.feature == "delays")).all()) == 1


def test_a_shipment_that_stops_moving_is_found_by_the_hourly_scan(make, clock):
    app = make(stalled_after_days=4)
    _shipped(app, 9001, 501)
    _shipped(app, 9002, 502)
    _shipped(app, 9003, 503)
    last = datetime(2026, 3, 2, 15, tzinfo=timezone.utc)
    for n in (1, 2):
        deliver_shopify(app, "fulfillment_events/create",
                        tracking(n, "in_transit", last, order_id=9000 + n, fulfillment_id=500 + n))
    deliver_shopify(app, "fulfillment_events/create", tracking(3, "delivered", last, order_id=9003, fulfillment_id=503))
    _run(app)
    clock.now = last + timedelta(days=4) - timedelta(minutes=30)
    _run(app)
    assert _apologies(app) == []
    # 9002 moves again; 9001 says nothing more.
    deliver_shopify(app, "fulfillment_events/create", tracking(4, "out_for_delivery", clock.now, order_id=9002,
                                                               fulfillment_id=502))
    clock.advance(hours=1)
    _run(app)
    assert _keys(app) == ["delay:9001:stalled"]
    assert _apologies(app)[0]["data"]["reason"] == "stalled"
    for _ in range(3):
        clock.advance(hours=2)
        _run(app)
    assert _keys(app) == ["delay:9001:stalled"]


def test_stall_detection_can_be_turned_off(make, clock):
    app = make(stalled_after_days=0)
    _shipped(app)
    deliver_shopify(app, "fulfillment_events/create", tracking(1, "in_transit", SHIPPED))
    _run(app)
    clock.now = SHIPPED + timedelta(days=20)
    _run(app)
    assert _apologies(app) == []


def test_delivered_before_the_apology_went_out_withdraws_it(make, clock, channel):
    app = make()
    _shipped(app)
    clock.now = datetime(2026, 3, 7, 12, 0, tzinfo=timezone.utc)  # Saturday: a rest day in Lithuania
    deliver_shopify(app, "fulfillment_events/create", tracking(1, "delayed", clock.now))
    _run(app)
    [msg] = _apologies(app)
    assert msg["status"] == "deferred"
    deliver_shopify(app, "fulfillment_events/create", tracking(2, "delivered", clock.now + timedelta(hours=3)))
    clock.advance(hours=4)
    _run(app)
    [msg] = _apologies(app)
    assert msg["status"] == "cancelled" and "delivered" in msg["reason"]
    clock.now = datetime(2026, 3, 9, 10, 0, tzinfo=timezone.utc)
    _run(app)
    assert channel.sent == []


def test_events_out_of_order_and_long_past_events_apologise_for_nothing(make, clock):
    app = make(max_age_days=10)
    _shipped(app)
    clock.now = PAID + timedelta(days=3)
    # Delivered reaches us first; the older "delayed" comes after: the parcel is already there.
    deliver_shopify(app, "fulfillment_events/create", tracking(2, "delivered", clock.now - timedelta(hours=1)))
    deliver_shopify(app, "fulfillment_events/create", tracking(1, "delayed", clock.now - timedelta(hours=5)))
    _run(app)
    with app.engine.connect() as conn:
        [ship] = conn.execute(select(t.shipments)).mappings().all()
    assert ship["status"] == "delivered" and ship["delivered_at"] == clock.now - timedelta(hours=1)
    # Another order's tracking replayed weeks after the fact.
    _shipped(app, 9002, 502)
    deliver_shopify(app, "fulfillment_events/create", tracking(3, "failure", clock.now - timedelta(days=11),
                                                               order_id=9002, fulfillment_id=502))
    _run(app)
    assert _apologies(app) == []


def test_tracking_for_an_order_not_stored_yet_waits_for_it(make, clock):
    app = make()
    deliver_shopify(app, "fulfillment_events/create", tracking(1, "failure", clock.now))
    counts = run_worker(app)
    assert counts.retried == 1 and counts.dead == 0 and _apologies(app) == []
    _shipped(app)
    clock.advance(minutes=10)  # past the worker's backoff
    _run(app)
    assert _keys(app) == ["delay:9001:failure"]


def test_the_parser_reads_shopifys_body_and_names_bad_fields():
    from retention_plugin.platforms.shopify.fulfillment_events import build_shipment

    when = datetime(2026, 3, 3, 10, tzinfo=timezone.utc)
    [event] = parse_shopify("fulfillment_events/create", tracking(7, "IN_TRANSIT", when), shop="x.myshopify.com")
    assert event.name == "shipment_updated" and event.occurred_at == when
    s = event.shipment
    assert (s.shopify_id, s.fulfillment_id, s.order_id, s.status) == (7, 501, 9001, "in_transit")
    body = tracking(8, "ready_for_recipient_pickup", when)
    body["happened_at"] = None  # created_at stands in
    assert build_shipment(body).status == "ready_for_recipient_pickup" and build_shipment(body).happened_at == when
    for field, value, says in (("status", None, "status"), ("status", "in transit!", "status"),
                               ("order_id", 1.5, "order_id"), ("fulfillment_id", None, "fulfillment_id"),
                               ("happened_at", "yesterday", "happened_at")):
        bad = tracking(9, "delayed", when)
        bad[field] = value
        with pytest.raises(PayloadError, match=says):
            build_shipment(bad)
    bad = tracking(9, "delayed", when)
    bad["happened_at"] = bad["created_at"] = None
    with pytest.raises(PayloadError, match="happened_at"):
        build_shipment(bad)


def test_a_bad_tracking_body_is_dead_lettered_with_the_field(make):
    app = make()
    deliver_shopify(app, "fulfillment_events/create", {"id": 1, "fulfillment_id": 2, "status": "delayed",
                                                       "happened_at": "2026-03-03T10:00:00Z"})
    counts = run_worker(app)
    assert counts.dead == 1
    with app.engine.connect() as conn:
        assert "order_id" in conn.execute(select(t.inbox.c.last_error)).scalar()


def test_hook_shipment_updated(make, clock):
    """A plugin reacts to a carrier's report like the built-in delays plugin does."""
    seen = []

    class Tracker:
        @hookimpl
        def shipment_updated(self, event, ctx):
            seen.append((event.shipment.status, event.shipment.order_id, event.shipment.message))

    app = make()
    app.pm.register(Tracker(), name="tracker")
    _shipped(app)
    deliver_shopify(app, "fulfillment_events/create", tracking(1, "out_for_delivery", clock.now, message="Today"))
    _run(app)
    assert seen == [("out_for_delivery", 9001, "Today")]

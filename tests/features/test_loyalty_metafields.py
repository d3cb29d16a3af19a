"""The points and tier Shopify shows (customer metafields): current after every kind of change, coalesced.

Deliveries go through the real worker; the metafield writes are the actions it
records (dry run) or, where ordering and failures matter, real HTTP to a
``responses`` Shopify. Time moves with ``clock``.
"""

from __future__ import annotations

import json
import threading

import responses
from sqlalchemy import select

from payloads import order, refund
from test_loyalty_support import actions, bal, cli, customer_id, rows
from retention_plugin.context import HookContext
from retention_plugin.features.loyalty import sync
from retention_plugin.features.loyalty.engine import adjust
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

GRAPHQL = "https://retention-test.myshopify.com/admin/api/2026-07/graphql.json"
INTERVAL = 10  # [loyalty] sync_interval_minutes in these tests


def written(app) -> list[dict]:
    """Every metafields write, as {"points": ..., "tier": ...}, oldest first.

    (The request itself is checked against Shopify's schema in tests/platforms/test_shopify_mutations.py.)
    """
    return [{m["key"]: m["value"] for m in a["request"]["variables"]["metafields"]}
            for a in actions(app, "metafields_set")]


def shown(app) -> dict:
    """What Shopify shows now: the last write."""
    return written(app)[-1]


def settle(app, clock):
    """Let the interval pass and the worker run: whatever is marked goes out."""
    clock.advance(minutes=INTERVAL, seconds=1)
    run_worker(app)


def paid(app, order_id, clock, **kw):
    deliver_shopify(app, "orders/paid", order(order_id, created=clock.now, **kw))
    run_worker(app)


def test_every_kind_of_balance_change_reaches_shopify(make_app, clock):
    app = make_app(loyalty={"pending_days": 14, "expire_after_days": 60, "expiry_warning_days": 0,
                            "point_value": "0.01", "sync_interval_minutes": INTERVAL})
    # Earned: pending, so nothing is available yet; Shopify says 0, truthfully.
    paid(app, 4001, clock, subtotal="322.00")
    assert shown(app) == {"points": "0", "tier": "none"}

    # Maturity: no event at all, only the clock. Shopify must not keep showing 0.
    clock.advance(days=14, minutes=1)
    run_worker(app)
    assert bal(app).available == 322
    assert shown(app) == {"points": "322", "tier": "none"}

    settle(app, clock)
    r = cli(app, "redeem", "1001", "--points", "100", "--key", "r1")  # redemption
    assert r.exit_code == 0, r.output
    settle(app, clock)
    assert shown(app)["points"] == "222"

    r = cli(app, "adjust", "1001", "--points", "-22", "--reason", "correction")  # adjustment
    assert r.exit_code == 0, r.output
    settle(app, clock)
    assert shown(app)["points"] == "200"

    paid(app, 4002, clock, subtotal="50.00")
    clock.advance(days=15)
    run_worker(app)
    assert shown(app)["points"] == "250"
    deliver_shopify(app, "refunds/create", refund(94002, 4002, 40021, 1, "50.00"))  # reversal
    run_worker(app)
    settle(app, clock)
    assert shown(app)["points"] == str(bal(app).available) == "200"

    clock.advance(days=61)  # expiry
    run_worker(app)
    settle(app, clock)
    assert bal(app).available == 0 and shown(app)["points"] == "0"


def test_writes_are_coalesced_and_the_last_value_always_goes_out(make_app, clock):
    app = make_app(loyalty={"sync_interval_minutes": INTERVAL,
                            "tiers": [{"name": "gold", "min_spend": "100.00"}]})
    paid(app, 4101, clock, subtotal="10.00")
    assert written(app) == [{"points": "10", "tier": "none"}]
    for i in range(5):  # five changes within one interval...
        clock.advance(minutes=1)
        paid(app, 4102 + i, clock, subtotal="20.00")
    assert len(written(app)) == 1  # ...no write yet: at most one per customer per interval
    clock.advance(minutes=INTERVAL - 5)
    run_worker(app)
    # One write for all of them, with the values after the last one (gold since the 5th order).
    assert written(app) == [{"points": "10", "tier": "none"}, {"points": "110", "tier": "gold"}]
    settle(app, clock)
    settle(app, clock)
    assert len(written(app)) == 2  # nothing changed since: nothing more is written


def test_a_change_that_lands_while_the_write_is_prepared_is_written_next(make_app, clock, db_url):
    app = make_app(loyalty={"sync_interval_minutes": INTERVAL})
    paid(app, 4201, clock, subtotal="40.00")
    cid = customer_id(app, 1001)
    settle(app, clock)
    assert shown(app)["points"] == "40"
    with app.engine.begin() as conn:  # a change marks the customer
        adjust(HookContext(app, conn, now=clock.now, source="cli"), cid, 5, reason="a", actor="t", key="k1")
    clock.advance(minutes=INTERVAL, seconds=1)

    # Another worker commits a second change after the sync task has read the balance
    # but before it commits (on SQLite it waits for the task's write lock instead).
    def other_worker():
        with app.engine.begin() as conn:
            adjust(HookContext(app, conn, now=clock.now, source="cli"), cid, 7, reason="b", actor="t", key="k2")

    racer = threading.Thread(target=other_worker)

    class RacingContext(HookContext):
        def enqueue_action(self, platform, kind, key, request):
            new = super().enqueue_action(platform, kind, key, request)
            racer.start()
            if not db_url.startswith("sqlite"):
                racer.join()  # PostgreSQL: it commits now, in the middle of the task's transaction
            return new

    with app.engine.connect() as conn:
        sync.run(RacingContext(app, conn, now=clock.now, source="task"))
        conn.commit()
    racer.join()
    run_worker(app)  # performs the write the task made
    assert shown(app)["points"] in ("45", "52") and bal(app).available == 52
    settle(app, clock)
    assert shown(app)["points"] == "52"  # the racing change was not lost
    [state] = rows(app, t.loyalty_sync)
    assert state["dirty"] is False and state["synced_version"] == state["version"]


def test_a_new_write_waits_for_the_previous_one_and_a_failed_one_is_sent_again(make_app, clock):
    app = make_app(loyalty={"sync_interval_minutes": INTERVAL}, actions={"dry_run": False})
    sent = []
    answers = iter([
        (429, {"errors": "Throttled"}),  # transient: the first write stays pending, retried later
        (200, {"data": {"metafieldsSet": {"metafields": [], "userErrors": []}}}),
        (200, {"data": {"metafieldsSet": {"metafields": [], "userErrors": [
            {"field": ["metafields"], "message": "Owner does not exist", "code": "INVALID"}]}}}),  # failed
        (200, {"data": {"metafieldsSet": {"metafields": [], "userErrors": []}}}),
        (200, {"data": {"metafieldsSet": {"metafields": [], "userErrors": []}}}),
    ])

    def shopify(request):
        body = json.loads(request.body)
        sent.append({m["key"]: m["value"] for m in body["variables"]["metafields"]})
        status, answer = next(answers)
        return status, {"Retry-After": "3600"} if status == 429 else {}, json.dumps(answer)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, GRAPHQL, callback=shopify, content_type="application/json")
        paid(app, 4301, clock, subtotal="30.00")
        assert sent == [{"points": "30", "tier": "none"}]
        [first] = actions(app, "metafields_set")
        assert first["status"] == "pending"  # Shopify asked to wait: it will be retried

        # A newer balance must not overtake the pending write (it would be overwritten by the old one).
        paid(app, 4302, clock, subtotal="5.00")
        clock.advance(minutes=INTERVAL, seconds=1)
        with app.engine.begin() as conn:  # hold the retry back, as a long back-off would
            conn.execute(t.actions.update().where(t.actions.c.id == first["id"]).values(
                next_attempt_at=clock.now.replace(year=2030)))
        run_worker(app)
        assert len(actions(app, "metafields_set")) == 1
        with app.engine.begin() as conn:
            conn.execute(t.actions.update().where(t.actions.c.id == first["id"]).values(next_attempt_at=clock.now))
        run_worker(app)  # the old write lands first...
        assert sent[-1] == {"points": "30", "tier": "none"}
        settle(app, clock)  # ...then the newer one, which is refused for good
        assert sent[-1] == {"points": "35", "tier": "none"}
        assert actions(app, "metafields_set")[-1]["status"] == "failed"

        settle(app, clock)  # the refused value is sent again, as it is by then
        assert sent[-1] == {"points": "35", "tier": "none"}
        assert actions(app, "metafields_set")[-1]["status"] == "done"
        settle(app, clock)
        assert len(sent) == 4  # and then nothing more


def test_customers_without_a_shopify_id_and_metafields_off_write_nothing(make_app, clock):
    app = make_app(loyalty={"metafields": "off"})
    paid(app, 4401, clock, subtotal="10.00")
    settle(app, clock)
    assert written(app) == []
    app2 = make_app()
    deliver_shopify(app2, "orders/paid", order(4402, subtotal="10.00", customer_id=None, email="g@example.com"))
    run_worker(app2)
    settle(app2, clock)
    assert written(app2) == []
    with app2.engine.connect() as conn:
        assert conn.execute(select(t.loyalty_sync.c.dirty)).scalars().all() == [False]


def test_sync_metafields_command_marks_everyone(make_app, clock):
    app = make_app(loyalty={"metafields": "off"})
    paid(app, 4501, clock, subtotal="10.00")
    app2 = make_app()
    r = cli(app2, "sync-metafields")
    assert r.exit_code == 0, r.output
    assert "1 customer(s)" in r.output
    settle(app2, clock)
    assert written(app2) == [{"points": "10", "tier": "none"}]

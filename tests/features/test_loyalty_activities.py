"""Earning beyond orders ([loyalty.earn]): new accounts, birthdays, reviews, admin awards; points liability.

Real deliveries through the real worker, the signed reviews endpoint through the real WSGI app
(served by wsgiref on 127.0.0.1), on SQLite and PostgreSQL. The reconciliation test recomputes every
balance from the ledger rows with its own arithmetic, never with the code under test.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import datetime, timezone
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from sqlalchemy import select

from payloads import order, refund
from retention_plugin import hookimpl
from retention_plugin.context import HookContext
from retention_plugin.features.loyalty import activities
from retention_plugin.features.loyalty.reviews import HEADER, sign
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker
from retention_plugin.web import create_app
from test_loyalty_support import bal, cli, customer_id, ledger

REVIEW_SECRET = "review-secret-0123456789abcdef"
EARN = {"account_created": 50, "birthday": 200, "review": 25, "reviews_secret": REVIEW_SECRET}


def customer_body(sid=7001, email="bea@example.com", metafields=None, created="2026-03-01T10:00:00+00:00"):
    body = {"id": sid, "email": email, "first_name": "Bea", "last_name": "Example", "phone": None,
            "locale": "en", "tags": "", "verified_email": True, "tax_exemptions": [], "addresses": [],
            "email_marketing_consent": {"state": "subscribed"}, "default_address": None,
            "created_at": created, "updated_at": created}
    if metafields is not None:
        body["metafields"] = metafields
    return body


def birth_date(value):
    return [{"id": 1, "namespace": "facts", "key": "birth_date", "value": value, "type": "date"}]


def ctx_run(app, fn, *args, **kw):
    with app.engine.begin() as conn:
        return fn(HookContext(app, conn, now=app.now(), source="test"), *args, **kw)


# --- account created ---------------------------------------------------------------------------


def test_a_new_account_earns_once_however_often_shopify_delivers_it(make_app):
    app = make_app(loyalty={"earn": EARN})
    body = customer_body()
    deliver_shopify(app, "customers/create", body, webhook_id="wh-1")
    deliver_shopify(app, "customers/create", body, webhook_id="wh-2")
    deliver_shopify(app, "customers/update", body, webhook_id="wh-3")  # an update is not a sign-up
    run_worker(app)
    rows = ledger(app)
    cid = customer_id(app, 7001)
    assert [(r["key"], r["kind"], r["points"], r["reason"]) for r in rows] == [
        (f"loyalty:activity:account_created:{cid}", "earn", 50, "account_created")]
    assert bal(app, 7001).available == 50


def test_a_rule_worth_nothing_writes_nothing(app):
    deliver_shopify(app, "customers/create", customer_body())
    run_worker(app)
    assert ledger(app) == []


# --- birthdays ---------------------------------------------------------------------------------


def test_birthday_from_the_metafield_is_set_once_and_rewarded_once_a_year(make_app, clock):
    app = make_app(loyalty={"earn": EARN})
    deliver_shopify(app, "customers/create", customer_body(metafields=birth_date("1990-03-04")))
    # A later change of the metafield does not move the birthday: it is set once.
    deliver_shopify(app, "customers/update", customer_body(metafields=birth_date("1990-07-01")))
    run_worker(app)
    cid = customer_id(app, 7001)
    with app.engine.connect() as conn:
        assert activities.birthday_of(conn, cid) == (3, 4)
    clock.now = datetime(2026, 3, 3, 23, 0, tzinfo=timezone.utc)
    assert ctx_run(app, activities.run_birthdays) == 0
    clock.now = datetime(2026, 3, 4, 1, 0, tzinfo=timezone.utc)
    assert ctx_run(app, activities.run_birthdays) == 1
    clock.now = datetime(2026, 3, 4, 20, 0, tzinfo=timezone.utc)
    assert ctx_run(app, activities.run_birthdays) == 0  # the same day again
    clock.now = datetime(2027, 3, 4, 8, 0, tzinfo=timezone.utc)
    assert ctx_run(app, activities.run_birthdays) == 1
    keys = [r["key"] for r in ledger(app) if "birthday" in r["key"]]
    assert keys == [f"loyalty:activity:birthday:{cid}:2026", f"loyalty:activity:birthday:{cid}:2027"]
    assert bal(app, 7001).available == 50 + 200 + 200


def test_set_birthday_once_and_29_february_in_a_common_year(make_app, clock):
    app = make_app(loyalty={"earn": EARN})
    deliver_shopify(app, "customers/update", customer_body())
    run_worker(app)
    cid = customer_id(app, 7001)
    with app.engine.begin() as conn:
        assert activities.set_birthday(conn, cid, "2000-02-29", clock.now) is True
        assert activities.set_birthday(conn, cid, "2000-05-05", clock.now) is False
        with pytest.raises(ValueError, match="birthday must be a date"):
            activities.set_birthday(conn, cid, "29/02", clock.now)
    clock.now = datetime(2027, 2, 28, 9, 0, tzinfo=timezone.utc)
    assert ctx_run(app, activities.run_birthdays) == 1
    clock.now = datetime(2028, 2, 29, 9, 0, tzinfo=timezone.utc)
    assert ctx_run(app, activities.run_birthdays) == 1


def test_a_malformed_birthday_metafield_does_not_dead_letter_the_delivery(make_app):
    app = make_app(loyalty={"earn": EARN})
    deliver_shopify(app, "customers/create", customer_body(metafields=birth_date("soon")))
    counts = run_worker(app)
    assert counts.processed == 1
    with app.engine.connect() as conn:
        assert activities.birthday_of(conn, customer_id(app, 7001)) is None


# --- the points_for_activity hook --------------------------------------------------------------


class DoubleReviews:
    def __init__(self):
        self.calls = []

    @hookimpl
    def points_for_activity(self, activity, customer, details, rule):
        self.calls.append((activity, customer["shopify_id"], dict(details), dict(rule)))
        if activity == "review":
            return 2 * rule["points"] if details.get("rating") == 5 else None
        return None


def test_hook_points_for_activity(make_app):
    plugin = DoubleReviews()
    app = make_app(loyalty={"earn": EARN}, extra_plugins=[plugin])
    deliver_shopify(app, "customers/create", customer_body())
    run_worker(app)
    cid = customer_id(app, 7001)
    five = ctx_run(app, activities.earn, cid, "review", "r-5", details={"rating": 5})
    four = ctx_run(app, activities.earn, cid, "review", "r-4", details={"rating": 4})
    assert (five["points"], four["points"]) == (50, 25)  # the plugin doubled one; the built-in gave the other
    assert plugin.calls[0] == ("account_created", 7001, {"ref": cid}, {"points": 50})
    assert plugin.calls[1] == ("review", 7001, {"ref": "r-5", "rating": 5}, {"points": 25})


# --- the signed reviews endpoint ---------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(make_app):
    app = make_app(loyalty={"earn": EARN})
    server = make_server("127.0.0.1", 0, create_app(app), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def post(base, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[HEADER] = signature
    req = urllib.request.Request(f"{base}/webhooks/reviews", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_reviews_endpoint_earns_exactly_once_per_review_and_refuses_forgeries(served):
    app, base = served
    deliver_shopify(app, "customers/create", customer_body())
    run_worker(app)
    body = json.dumps({"id": "r-1042", "customer": {"shopify_id": 7001}, "product_id": 5, "rating": 5}).encode()
    assert post(base, body, sign(body, REVIEW_SECRET)) == (200, {"ok": True, "points": 25, "created": True})
    assert post(base, body, sign(body, REVIEW_SECRET))[1]["created"] is False  # a retry
    by_email = json.dumps({"id": "r-1043", "customer": {"email": "BEA@example.com"}}).encode()
    assert post(base, by_email, sign(by_email, REVIEW_SECRET))[0] == 200

    forged = post(base, body, sign(body, "not-the-review-secret-at-all"))
    assert forged == (401, {"ok": False, "error": "unauthorized"})
    assert post(base, body, None)[0] == 401
    tampered = body.replace(b"r-1042", b"r-9999")
    assert post(base, tampered, sign(body, REVIEW_SECRET))[0] == 401
    assert REVIEW_SECRET not in json.dumps(forged)

    for payload, field in (({"customer": {"shopify_id": 7001}}, "id"),
                           ({"id": "r-1", "customer": {"shopify_id": "x"}}, "customer.shopify_id"),
                           ({"id": "r-1", "customer": {}}, "customer"),
                           ({"id": "r-1", "customer": {"shopify_id": 7001}, "rating": 9}, "rating")):
        raw = json.dumps(payload).encode()
        status, answer = post(base, raw, sign(raw, REVIEW_SECRET))
        assert status == 422 and answer["detail"].startswith(field + ":"), (payload, answer)
    raw = b"{not json"
    assert post(base, raw, sign(raw, REVIEW_SECRET))[0] == 400
    raw = json.dumps({"id": "r-2", "customer": {"shopify_id": 424242}}).encode()
    assert post(base, raw, sign(raw, REVIEW_SECRET))[0] == 404

    reviews = [r for r in ledger(app) if r["key"].startswith("loyalty:activity:review:")]
    assert sorted(r["key"] for r in reviews) == ["loyalty:activity:review:r-1042", "loyalty:activity:review:r-1043"]
    assert bal(app, 7001).available == 50 + 25 + 25


def test_the_same_review_sent_concurrently_earns_once(make_app):
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer

    class Threading(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    app = make_app(loyalty={"earn": EARN})
    deliver_shopify(app, "customers/create", customer_body())
    run_worker(app)
    server = make_server("127.0.0.1", 0, create_app(app), server_class=Threading, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    body = json.dumps({"id": "r-race", "customer": {"shopify_id": 7001}, "rating": 4}).encode()
    start = threading.Barrier(12)
    answers = []

    def send():
        start.wait()
        answers.append(post(base, body, sign(body, REVIEW_SECRET)))

    threads = [threading.Thread(target=send) for _ in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    server.shutdown()
    server.server_close()
    assert [a[0] for a in answers] == [200] * 12
    assert sum(a[1]["created"] for a in answers) == 1
    assert [r["points"] for r in ledger(app) if r["key"] == "loyalty:activity:review:r-race"] == [25]
    assert bal(app, 7001).available == 50 + 25


def test_reviews_endpoint_without_a_secret_is_not_served(app):
    from falcon import testing

    got = testing.TestClient(create_app(app)).simulate_post("/webhooks/reviews", body=b"{}")
    assert got.status_code == 404


# --- loyalty award (CLI) -----------------------------------------------------------------------


def test_award_command_reviews_once_and_admin_awards_audited(make_app):
    app = make_app(loyalty={"earn": EARN})
    deliver_shopify(app, "customers/update", customer_body())
    run_worker(app)
    r = cli(app, "award", "--customer", "bea@example.com", "--reason", "review", "--ref", "r-77")
    assert r.exit_code == 0, r.output
    assert "25 points (review)" in r.output
    again = cli(app, "award", "--customer", "bea@example.com", "--reason", "review", "--ref", "r-77")
    assert again.exit_code == 0 and "already awarded" in again.output
    r = cli(app, "award", "--customer", "7001", "--reason", "admin", "--points", "300", "--note", "influencer post",
            "--actor", "ops:ana", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["available"] == 325
    [gift] = [e for e in ledger(app) if e["key"].startswith("loyalty:activity:award:")]
    assert (gift["kind"], gift["points"], gift["reason"], gift["actor"]) == ("earn", 300, "award: influencer post",
                                                                            "ops:ana")


@pytest.mark.parametrize("args, field", [
    (["--reason", "admin", "--note", "x"], "--points"),
    (["--reason", "admin", "--points", "5"], "--note"),
    (["--reason", "review"], "--ref"),
    (["--reason", "review", "--ref", "r", "--points", "-3"], "--points"),
    (["--reason", "birthday", "--points", "5"], "--reason"),
])
def test_award_command_errors_name_the_option(make_app, args, field):
    app = make_app(loyalty={"earn": EARN})
    deliver_shopify(app, "customers/update", customer_body())
    run_worker(app)
    r = cli(app, "award", "--customer", "7001", *args)
    assert r.exit_code != 0
    assert field in r.output
    assert ledger(app) == []


# --- liability, and reconciling the ledger independently ---------------------------------------


def test_liability_by_tier_and_age_in_money(make_app, clock):
    app = make_app(loyalty={"earn": EARN, "point_value": "0.01", "currency": "EUR",
                            "tiers": [{"name": "gold", "min_points": 150}]})
    clock.now = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    deliver_shopify(app, "orders/paid", order(801, customer_id=7001, email="bea@example.com", subtotal="200.00",
                                              created=clock.now))
    run_worker(app)
    clock.now = datetime(2026, 5, 1, 10, 0, tzinfo=timezone.utc)
    deliver_shopify(app, "orders/paid", order(802, customer_id=7002, email="cy@example.com", subtotal="40.00",
                                              created=clock.now))
    run_worker(app)
    # Bea spends 120 of her 200: the oldest points go first, so 80 remain from January (120 days old).
    r = cli(app, "adjust", "7001", "--points", "-120", "--reason", "goodwill correction")
    assert r.exit_code == 0, r.output
    r = cli(app, "liability", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert (data["points"], data["value"], data["currency"]) == (120, "1.20", "EUR")
    tiers = {row["tier"]: row for row in data["by_tier"]}
    assert tiers["gold"]["points"] == 80 and tiers["gold"]["value"] == "0.80"
    assert tiers["-"]["points"] == 40 and tiers["-"]["customers"] == 1
    ages = {row["age"]: row["points"] for row in data["by_age"]}
    assert ages["0-30 days"] == 40 and ages["91-180 days"] == 80
    table = cli(app, "liability")
    assert table.exit_code == 0 and "worth 1.20 EUR" in table.output and "gold" in table.output


def test_ledgers_reconcile_with_an_independent_recomputation(make_app, clock):
    app = make_app(loyalty={"earn": EARN, "pending_days": 10})
    clock.now = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    for sid in (7001, 7002, 7003):
        deliver_shopify(app, "customers/create", customer_body(sid=sid, email=f"c{sid}@example.com"))
    run_worker(app)
    for i, sid in enumerate((7001, 7002, 7003, 7001)):
        deliver_shopify(app, "orders/paid", order(900 + i, customer_id=sid, email=f"c{sid}@example.com",
                                                  subtotal=f"{50 + 10 * i}.00", created=clock.now))
    deliver_shopify(app, "refunds/create", refund(9900, 900, 9001, 1, "20.00"))
    run_worker(app)
    assert cli(app, "award", "--customer", "7002", "--reason", "review", "--ref", "r-1").exit_code == 0
    assert cli(app, "award", "--customer", "7003", "--reason", "admin", "--points", "5", "--note", "n").exit_code == 0
    assert cli(app, "adjust", "7001", "--points", "-30", "--reason", "x").exit_code == 0
    clock.advance(days=4)

    with app.engine.connect() as conn:
        entries = [dict(r) for r in conn.execute(select(t.ledger)).mappings()]
        ids = dict(conn.execute(select(t.customers.c.shopify_id, t.customers.c.id)).all())
    now = clock.now
    mine = defaultdict(lambda: [0, 0, 0])
    for e in entries:
        side = 0 if e["available_at"] <= now else 1
        mine[e["customer_id"]][side] += e["points"]
        if e["kind"] in ("earn", "reverse", "adjust"):
            mine[e["customer_id"]][2] += e["points"]
    # And the expected totals from the scenario itself: 50 per account, order points, 25 review, 5 award.
    expected_lifetime = {7001: 50 + (50 - 20) + 80 - 30, 7002: 50 + 60 + 25, 7003: 50 + 70 + 5}
    for sid, cid in ids.items():
        b = bal(app, sid)
        assert (b.available, b.pending, b.lifetime) == tuple(mine[cid]), sid
        assert b.lifetime == expected_lifetime[sid]
    liability = json.loads(cli(app, "liability", "--json").output)
    assert liability["points"] == sum(max(0, m[0] + m[1]) for m in mine.values())
    assert len({e["key"] for e in entries}) == len(entries)
    assert any(m[1] for m in mine.values()), "the scenario should leave some points pending"

"""The worker against real databases: claim, dispatch, commit once, retry, dead-letter, reclaim."""

from datetime import timedelta

from sqlalchemy import select

from payloads import order, refund
from retention_plugin import hookimpl
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker
from retention_plugin.worker import Worker, replay


class Counter:
    """Counts hook effects non-idempotently (value + 1): a double commit would show as 2."""

    name = "counter"

    @hookimpl
    def order_paid(self, event, ctx):
        key = str(event.order.shopify_id)
        current = ctx.state_get("counter", key, 0)
        ctx.state_set("counter", key, current + 1)


class Exploding:
    def __init__(self, failures: int):
        self.failures = failures

    @hookimpl
    def order_paid(self, event, ctx):
        ctx.state_set("exploding", "touched", True)  # must roll back with the failure
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("plugin bug: boom")


def inbox_rows(app):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.inbox).order_by(t.inbox.c.id)).mappings()]


def counter(app, key):
    with app.engine.connect() as conn:
        return conn.execute(select(t.plugin_state.c.value).where(
            t.plugin_state.c.plugin == "counter", t.plugin_state.c.key == key)).scalar()


def test_delivery_is_parsed_recorded_and_dispatched_once(make_app):
    app = make_app(extra_plugins=[Counter()])
    deliver_shopify(app, "orders/paid", order(111))
    counts = run_worker(app)
    assert counts.processed == 1
    [row] = inbox_rows(app)
    assert row["status"] == "done" and row["attempts"] == 1 and row["processed_at"] is not None
    assert counter(app, "111") == 1
    with app.engine.connect() as conn:
        o = conn.execute(select(t.orders).where(t.orders.c.shopify_id == 111)).mappings().one()
    assert str(o["subtotal"]).startswith("100") and o["paid_at"] is not None
    # A second pass finds nothing to do.
    assert run_worker(app).processed == 0


def test_failing_plugin_rolls_back_and_retries_with_backoff(make_app, clock):
    plugin = Exploding(failures=1)
    app = make_app(extra_plugins=[plugin], worker={"backoff_base_seconds": 10})
    deliver_shopify(app, "orders/paid", order(222))
    counts = run_worker(app)
    assert counts.retried == 1
    [row] = inbox_rows(app)
    assert row["status"] == "pending" and "boom" in row["last_error"]
    assert row["next_attempt_at"] >= clock.now + timedelta(seconds=5)  # jitter within [base/2, base]
    with app.engine.connect() as conn:
        assert conn.execute(select(t.plugin_state).where(
            t.plugin_state.c.plugin == "exploding")).first() is None  # the hook's write rolled back
        assert conn.execute(select(t.orders)).first() is None  # and so did the core records
    assert run_worker(app).processed == 0  # not due yet
    clock.advance(seconds=11)
    assert run_worker(app).processed == 1
    assert inbox_rows(app)[0]["status"] == "done"


def test_delivery_becomes_dead_after_max_attempts_with_error_kept(make_app, clock):
    app = make_app(extra_plugins=[Exploding(failures=99)], worker={"max_attempts": 3, "backoff_base_seconds": 1})
    deliver_shopify(app, "orders/paid", order(333))
    for _ in range(3):
        run_worker(app)
        clock.advance(seconds=10)
    [row] = inbox_rows(app)
    assert row["status"] == "dead" and row["attempts"] == 3
    assert "boom" in row["last_error"] and "after 3 attempts" in row["last_error"]


def test_bad_payload_is_dead_lettered_with_reason_and_unknown_topic_ignored(make_app):
    app = make_app()
    deliver_shopify(app, "orders/paid", {"id": "not-a-number"})
    deliver_shopify(app, "products/create", {"id": 1})
    run_worker(app)
    dead, ignored = inbox_rows(app)
    assert dead["status"] == "dead" and "bad payload" in dead["last_error"]
    assert ignored["status"] == "ignored"


def test_a_body_nested_past_pythons_limit_is_dead_lettered_not_a_crash(make_app):
    from retention_plugin.inbox import store_delivery

    app = make_app()
    deep = b'{"a":' * 1010 + b"1" + b"}" * 1010  # the receiver's parser takes it (limit 1,024 levels)
    store_delivery(app.engine, platform="shopify", shop="example.myshopify.com", delivery_id="deep",
                   topic="orders/paid", body=deep, now=app.now())
    deliver_shopify(app, "orders/paid", order(444))
    run_worker(app)
    deep_row, fine = inbox_rows(app)
    assert deep_row["status"] == "dead" and "nests too deeply" in deep_row["last_error"]
    assert fine["status"] == "done"


def test_expired_lease_is_reclaimed_and_effects_happen_once(make_app, clock):
    app = make_app(extra_plugins=[Counter()], worker={"lease_seconds": 60})
    deliver_shopify(app, "orders/paid", order(444))
    crashed = Worker(app, name="crashed")
    assert len(crashed.claim()) == 1  # claimed, then the process "dies" before processing
    assert run_worker(app, name="other").processed == 0  # lease still held
    clock.advance(seconds=61)
    assert run_worker(app, name="other").processed == 1
    assert counter(app, "444") == 1
    # The crashed worker coming back must not process it again.
    row = inbox_rows(app)[0]
    assert crashed.process(row) == "lost"
    assert counter(app, "444") == 1


def test_same_order_paid_under_new_webhook_ids_reaches_hooks_each_time_but_records_once(make_app):
    app = make_app(extra_plugins=[Counter()])
    for _ in range(3):
        deliver_shopify(app, "orders/paid", order(555))
    run_worker(app)
    assert [r["status"] for r in inbox_rows(app)] == ["done"] * 3
    with app.engine.connect() as conn:
        assert len(conn.execute(select(t.orders)).all()) == 1
        assert len(conn.execute(select(t.order_lines)).all()) == 1


def test_replay_requeues_dead_deliveries(make_app, clock):
    app = make_app(extra_plugins=[Exploding(failures=1)], worker={"max_attempts": 1})
    deliver_shopify(app, "orders/paid", order(666))
    run_worker(app)
    assert inbox_rows(app)[0]["status"] == "dead"
    assert replay(app, status="dead") == 1
    assert run_worker(app).processed == 1
    assert inbox_rows(app)[0]["status"] == "done"


def test_out_of_order_update_before_create_ends_in_newest_state(make_app, clock):
    app = make_app()
    t0 = clock.now - timedelta(days=1)
    newer = order(777, subtotal="80.00", created=t0, updated=t0 + timedelta(hours=2), financial_status="paid")
    older = order(777, subtotal="100.00", created=t0, updated=t0, financial_status="pending")
    deliver_shopify(app, "orders/updated", newer)
    deliver_shopify(app, "orders/create", older)
    run_worker(app)
    with app.engine.connect() as conn:
        o = conn.execute(select(t.orders).where(t.orders.c.shopify_id == 777)).mappings().one()
    assert o["financial_status"] == "paid"
    assert float(o["subtotal"]) == 80.0


def test_refund_before_its_order_waits_and_then_applies(make_app, clock):
    app = make_app(worker={"backoff_base_seconds": 1})
    deliver_shopify(app, "refunds/create", refund(91, 888, 8881, 1, "40.00"))
    run_worker(app)
    assert inbox_rows(app)[0]["status"] == "pending"  # order not there yet: retried later, not lost
    deliver_shopify(app, "orders/paid", order(888))
    for _ in range(3):  # the refund's retry comes due after its backoff
        clock.advance(seconds=5)
        run_worker(app)
    assert {r["status"] for r in inbox_rows(app)} == {"done"}
    with app.engine.connect() as conn:
        assert float(conn.execute(select(t.orders.c.refunded)).scalar()) == 40.0


def test_concurrent_claims_do_not_overlap(make_app):
    app = make_app()
    for i in range(10):
        deliver_shopify(app, "orders/paid", order(1000 + i))
    a = Worker(app, name="a").claim(limit=6)
    b = Worker(app, name="b").claim(limit=6)
    assert len(a) == 6 and len(b) == 4
    assert not {r["id"] for r in a} & {r["id"] for r in b}


# --- periodic tasks between batches ---------------------------------------------------------------


class Nightly:
    def __init__(self):
        self.runs: list = []

    @hookimpl
    def register_tasks(self, register):
        register("nightly", lambda ctx: self.runs.append(ctx.now), 86400)


def test_a_round_with_no_task_due_writes_nothing(make_app, clock):
    from sqlalchemy import event

    from retention_plugin import tasks

    nightly = Nightly()
    app = make_app(extra_plugins=[nightly])
    run_worker(app)  # every task's first run
    sent: list[str] = []
    event.listen(app.engine, "before_cursor_execute", lambda conn, cursor, stmt, *rest: sent.append(stmt))
    assert tasks.run_due(app) == 0
    # Whether a task is due is read, not tried with a write per task (a transaction each, formerly).
    assert not [s for s in sent if "task_runs" in s and not s.lstrip().upper().startswith("SELECT")]
    clock.advance(days=1)
    assert tasks.run_due(app) >= 1
    assert len(nightly.runs) == 2


def test_a_task_another_worker_started_since_the_round_read_runs_once(make_app, clock):
    from retention_plugin import tasks

    nightly = Nightly()
    app = make_app(extra_plugins=[nightly])
    runs = tasks._last_runs(app)  # nothing has run yet: every task reads as due
    tasks.run_due(app)  # meanwhile another worker's round runs them
    [shop] = tasks.passes(app)
    # The conditional UPDATE still decides: the stale read does not run anything a second time.
    assert not [name for name, func, every in app.tasks if tasks._run_one(app, shop, name, func, every, runs)]
    assert len(nightly.runs) == 1

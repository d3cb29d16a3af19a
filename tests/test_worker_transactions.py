"""Several deliveries per transaction: one commit for a group, a savepoint per delivery (issue 19).

Every test counts the commits the group costs with an SQLAlchemy ``commit`` listener and checks,
on both databases, that a delivery's failure stays its own: its writes roll back, its outcome
(retry, dead, ignored) commits with the neighbours' effects, and the neighbours are done.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import event, select, text

from payloads import order
from retention_plugin import hookimpl
from retention_plugin import worker as worker_module
from retention_plugin.inbox import store_delivery
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker
from retention_plugin.worker import Worker


#: No time bound on a group (a first delivery importing modules on a loaded machine takes long):
#: what commits together is decided by the count alone, except where a test says otherwise.
UNTIMED = {"commit_interval_ms": 600_000}


class Plugin:
    """Counts each order non-idempotently (value + 1, so a double commit shows as 2); some orders fail."""

    name = "grouped"

    def __init__(self, fail: dict | None = None, swallow: tuple = (), end_transaction: tuple = ()):
        self.fail = dict(fail or {})
        self.swallow = set(swallow)
        self.end_transaction = set(end_transaction)

    @hookimpl
    def order_paid(self, event, ctx):
        oid = event.order.shopify_id
        ctx.state_set("grouped", str(oid), ctx.state_get("grouped", str(oid), 0) + 1)
        if oid in self.swallow:
            try:  # a plugin that catches a failed statement and goes on, as if nothing happened
                ctx.conn.execute(text("SELECT * FROM no_such_table"))
            except Exception:  # noqa: BLE001 - the point of the test
                pass
        if oid in self.end_transaction:
            self.end_transaction.discard(oid)
            # What SQLite does by itself after a full disk or an I/O error: the transaction is gone.
            ctx.conn.exec_driver_sql("ROLLBACK")
            raise RuntimeError("the transaction ended under the delivery")
        if oid in self.fail:
            raise self.fail.pop(oid)


def counted(app, oid) -> int | None:
    with app.engine.connect() as conn:
        return conn.execute(select(t.plugin_state.c.value).where(
            t.plugin_state.c.plugin == "grouped", t.plugin_state.c.key == str(oid))).scalar()


def rows_by_id(app) -> dict[int, dict]:
    with app.engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(t.inbox)).mappings()}


def stored_orders(app) -> set[int]:
    with app.engine.connect() as conn:
        return set(conn.execute(select(t.orders.c.shopify_id)).scalars())


def commits(engine) -> list[int]:
    """A counter of the commits ``engine`` makes from now on."""
    seen = [0]

    def count(conn):
        seen[0] += 1

    event.listen(engine, "commit", count)
    return seen


def claimed(app, name="w") -> tuple[Worker, list[dict]]:
    w = Worker(app, name=name)
    return w, w.claim()


def test_a_failing_delivery_is_retried_alone_and_its_neighbours_commit_with_it_once(make_app, clock):
    app = make_app(extra_plugins=[Plugin(fail={2002: RuntimeError("plugin bug: boom")})], worker=UNTIMED)
    ids = [deliver_shopify(app, "orders/paid", order(oid)) for oid in (2001, 2002, 2003)]
    w, rows = claimed(app)
    seen = commits(app.engine)
    assert w.process_batch(rows) == ["done", "retry", "done"]
    assert seen == [1]  # the whole group, its failure bookkeeping included, is one transaction

    inbox = rows_by_id(app)
    assert [inbox[i]["status"] for i in ids] == ["done", "pending", "done"]
    failed = inbox[ids[1]]
    assert "plugin bug: boom" in failed["last_error"] and failed["lease_until"] is None
    assert failed["next_attempt_at"] > clock.now  # with backoff
    # Its own writes rolled back to its savepoint (the core's order row, the plugin's count); not the others'.
    assert stored_orders(app) == {2001, 2003}
    assert [counted(app, oid) for oid in (2001, 2002, 2003)] == [1, None, 1]

    clock.advance(seconds=3600)  # its retry comes due, and now succeeds
    run_worker(app)
    assert {r["status"] for r in rows_by_id(app).values()} == {"done"}
    assert [counted(app, oid) for oid in (2001, 2002, 2003)] == [1, 1, 1]


def test_poison_in_a_group_is_dead_or_ignored_without_rolling_back_its_neighbours(make_app):
    app = make_app(extra_plugins=[Plugin(fail={3002: ValueError("amount out of range for this plugin")})],
                   worker=UNTIMED)
    ok1 = deliver_shopify(app, "orders/paid", order(3001))
    bad_value = deliver_shopify(app, "orders/paid", order(3002))
    unreadable = store_delivery(app.engine, platform="shopify", shop=app.settings.section("shopify")["shop"],
                                delivery_id="raw-1", topic="orders/paid", body=b"[1, 2, 3]", now=app.now())
    unknown = deliver_shopify(app, "no/such_topic", {"id": 1})
    ok2 = deliver_shopify(app, "orders/paid", order(3003))
    w, rows = claimed(app)
    seen = commits(app.engine)
    assert w.process_batch(rows) == ["done", "dead", "dead", "ignored", "done"]
    assert seen == [1]

    inbox = rows_by_id(app)
    assert inbox[ok1]["status"] == inbox[ok2]["status"] == "done"
    assert inbox[bad_value]["status"] == "dead"
    assert inbox[bad_value]["last_error"].startswith("cannot succeed on retry: ValueError")
    assert inbox[unreadable]["status"] == "dead" and inbox[unreadable]["last_error"].startswith("bad payload: ")
    assert inbox[unknown]["status"] == "ignored"
    assert stored_orders(app) == {3001, 3003}
    assert [counted(app, oid) for oid in (3001, 3002, 3003)] == [1, None, 1]


def test_a_plugin_that_swallows_a_failed_statement_costs_only_its_own_delivery(make_app, db_url):
    app = make_app(extra_plugins=[Plugin(swallow=(4002,))], worker=UNTIMED)
    ids = [deliver_shopify(app, "orders/paid", order(oid)) for oid in (4001, 4002, 4003)]
    w, rows = claimed(app)
    seen = commits(app.engine)
    statuses = w.process_batch(rows)
    assert seen == [1]
    inbox = rows_by_id(app)
    assert inbox[ids[0]]["status"] == inbox[ids[2]]["status"] == "done"
    assert [counted(app, oid) for oid in (4001, 4003)] == [1, 1]
    if db_url.startswith("postgresql"):
        # The failed statement aborted the transaction; the delivery's savepoint ends that, so the
        # neighbours still commit, and the delivery itself is retried.
        assert statuses == ["done", "retry", "done"]
        assert inbox[ids[1]]["status"] == "pending" and counted(app, 4002) is None
        assert "InFailedSqlTransaction" in inbox[ids[1]]["last_error"]
    else:  # SQLite: a failed statement does not abort the transaction
        assert statuses == ["done", "done", "done"]
        assert counted(app, 4002) == 1


def test_a_row_another_worker_took_over_is_skipped_and_the_rest_commit(make_app):
    app = make_app(extra_plugins=[Plugin()], worker=UNTIMED)
    ids = [deliver_shopify(app, "orders/paid", order(oid)) for oid in (5001, 5002, 5003)]
    w, rows = claimed(app)
    with app.engine.begin() as conn:  # its lease ran out and another worker claimed it
        conn.execute(t.inbox.update().where(t.inbox.c.id == ids[1]).values(claimed_by="other"))
    seen = commits(app.engine)
    assert w.process_batch(rows) == ["done", "lost", "done"]
    assert seen == [1]
    inbox = rows_by_id(app)
    assert [inbox[i]["status"] for i in ids] == ["done", "processing", "done"]
    assert inbox[ids[1]]["claimed_by"] == "other" and counted(app, 5002) is None


def test_a_failed_commit_leaves_the_whole_group_undone_and_it_comes_back_once(make_app, clock):
    app = make_app(extra_plugins=[Plugin()], worker={**UNTIMED, "lease_seconds": 60})
    ids = [deliver_shopify(app, "orders/paid", order(oid)) for oid in (6001, 6002, 6003)]
    w, rows = claimed(app)

    def refuse(conn):
        raise RuntimeError("disk I/O error at commit")

    event.listen(app.engine, "commit", refuse)
    try:
        assert w.process_batch(rows) == ["error"] * 3
    finally:
        event.remove(app.engine, "commit", refuse)
    inbox = rows_by_id(app)
    assert [inbox[i]["status"] for i in ids] == ["processing"] * 3  # ours until the lease runs out
    assert stored_orders(app) == set() and counted(app, 6001) is None

    clock.advance(seconds=61)
    run_worker(app, name="next")
    assert [r["status"] for r in rows_by_id(app).values()] == ["done"] * 3
    assert [counted(app, oid) for oid in (6001, 6002, 6003)] == [1, 1, 1]


def test_a_transaction_ended_under_the_group_leaves_none_of_it_counted_done(make_app, clock):
    app = make_app(extra_plugins=[Plugin(end_transaction=(7002,))], worker={**UNTIMED, "lease_seconds": 60})
    ids = [deliver_shopify(app, "orders/paid", order(oid)) for oid in (7001, 7002, 7003)]
    w, rows = claimed(app)
    # The first two shared the transaction that ended; the third is a group of its own.
    assert w.process_batch(rows) == ["error", "error", "done"]
    inbox = rows_by_id(app)
    assert [inbox[i]["status"] for i in ids] == ["processing", "processing", "done"]
    assert counted(app, 7001) is None and stored_orders(app) == {7003}

    clock.advance(seconds=61)
    run_worker(app, name="next")
    assert [r["status"] for r in rows_by_id(app).values()] == ["done"] * 3
    assert [counted(app, oid) for oid in (7001, 7002, 7003)] == [1, 1, 1]


def test_a_group_holds_at_most_deliveries_per_commit(make_app):
    app = make_app(extra_plugins=[Plugin()], worker={**UNTIMED, "deliveries_per_commit": 2})
    for oid in range(8001, 8006):
        deliver_shopify(app, "orders/paid", order(oid))
    w, rows = claimed(app)
    seen = commits(app.engine)
    assert w.process_batch(rows) == ["done"] * 5
    assert seen == [3]


def test_a_group_commits_once_commit_interval_ms_has_passed(make_app, monkeypatch):
    app = make_app(extra_plugins=[Plugin()], worker={"commit_interval_ms": 1500})
    for oid in range(9001, 9006):
        deliver_shopify(app, "orders/paid", order(oid))
    w, rows = claimed(app)
    ticks = iter(range(1000))  # the worker's clock: one second further at each look
    monkeypatch.setattr(worker_module, "time", SimpleNamespace(monotonic=lambda: next(ticks)))
    seen = commits(app.engine)
    # Started at 0: after the 1st delivery 1 s (go on), after the 2nd 2 s (commit); and so on.
    assert w.process_batch(rows) == ["done"] * 5
    assert seen == [3]


@pytest.mark.parametrize("per_commit", [1, 50])
def test_the_old_one_commit_per_delivery_is_deliveries_per_commit_1(make_app, per_commit):
    app = make_app(extra_plugins=[Plugin()], worker={**UNTIMED, "deliveries_per_commit": per_commit})
    for oid in range(9101, 9104):
        deliver_shopify(app, "orders/paid", order(oid))
    w, rows = claimed(app)
    seen = commits(app.engine)
    assert w.process_batch(rows) == ["done"] * 3
    assert seen == [3 if per_commit == 1 else 1]

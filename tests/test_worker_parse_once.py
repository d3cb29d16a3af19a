"""The worker reads each claimed delivery's body once, even when its group closes early (issue 19).

A group reads its rows' bodies before its transaction and may close at ``commit_interval_ms``
having taken only some of them; the rest go to the next group. They used to be read again there:
1.05 to 1.3 parses per delivery in a burst of the worker bench (2.2 under cProfile).
"""

from types import SimpleNamespace

from sqlalchemy import select

from payloads import order, refund
from retention_plugin import worker as worker_module
from retention_plugin.platforms import deliveries
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify
from retention_plugin.worker import Unreadable, Worker


def counting_parses(monkeypatch) -> list:
    seen: list = []

    def parse(row, configured_shop=None):
        seen.append(row["id"])
        return deliveries.parse_delivery(row, configured_shop)

    monkeypatch.setattr(worker_module, "parse_delivery", parse)
    return seen


def every_group_closes_after_one_row(monkeypatch) -> None:
    """A clock that moves a second at each look: every group runs out of time after its first row."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(worker_module, "time", SimpleNamespace(monotonic=lambda: next(ticks),
                                                               sleep=worker_module.time.sleep))


def statuses(app) -> list[str]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(t.inbox.c.status).order_by(t.inbox.c.id)).scalars())


def test_rows_left_by_a_group_that_closed_early_are_not_read_again(make_app, monkeypatch):
    app = make_app(worker={"batch_size": 10, "deliveries_per_commit": 10})
    for k in range(1, 7):
        deliver_shopify(app, "orders/paid", order(700 + k, customer_id=8000 + k))
    deliver_shopify(app, "refunds/create", refund(900, 701, 7011, 1, "10.00"))
    deliver_shopify(app, "orders/paid", {"id": "not an order"})  # unreadable: its outcome is kept too
    parsed = counting_parses(monkeypatch)
    every_group_closes_after_one_row(monkeypatch)
    worker = Worker(app, name="once")
    claimed = worker.claim()
    assert len(claimed) == 8
    assert worker.process_batch(claimed) == ["done"] * 7 + ["dead"]
    # Eight groups of one row each; before, the group of row k read the 8 - k rows after it too (36 reads).
    assert sorted(parsed) == sorted(r["id"] for r in claimed)
    assert statuses(app) == ["done"] * 7 + ["dead"]


def test_a_delivery_claimed_again_is_read_again(make_app, monkeypatch):
    # Nothing read for an earlier claim stands in for a new one: the body is read with each claim.
    app = make_app(worker={"lease_seconds": 60})
    deliver_shopify(app, "orders/paid", order(711, customer_id=8011))
    parsed = counting_parses(monkeypatch)
    worker = Worker(app, name="again")
    first = worker.claim()
    assert not isinstance(worker._parse(first[0]), Unreadable)
    with app.engine.begin() as conn:
        conn.execute(t.inbox.update().values(lease_until=None, status="pending", claimed_by=None))
    second = worker.claim()
    assert second[0]["id"] == first[0]["id"]
    assert worker.process_batch(second) == ["done"]
    assert parsed == [first[0]["id"], first[0]["id"]]


def test_groups_of_a_batch_read_only_their_own_rows_before_their_transaction(make_app, monkeypatch):
    """A group reads its bodies before its transaction opens (SQLite's write lock is free meanwhile),
    and no further than its own rows: a later group's are read when its turn comes."""
    app = make_app(worker={"batch_size": 6, "deliveries_per_commit": 2})
    for k in range(1, 7):
        deliver_shopify(app, "orders/paid", order(730 + k, customer_id=8030 + k))
    parsed = counting_parses(monkeypatch)
    worker = Worker(app, name="groups")
    claimed = worker.claim()
    read_at_group: list[int] = []
    real = worker.process_group

    def group(rows, pre=None):
        read_at_group.append(len(parsed))
        return real(rows, pre)

    monkeypatch.setattr(worker, "process_group", group)
    assert worker.process_batch(claimed) == ["done"] * 6
    assert read_at_group == [2, 4, 6]
    assert sorted(parsed) == sorted(r["id"] for r in claimed)

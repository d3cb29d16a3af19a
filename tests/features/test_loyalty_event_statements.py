"""What loyalty asks the database per order event (issue 19), and that the reads it shares stay right.

An order's earn reads the balance, its key, the stored tier and the customer's spend in each tier
window in one statement; the tier evaluation after the event uses that spend unless ``orders`` was
written since. A refund's event reads the tier with the spend, and the order's earn entry with its
reversals, one statement each. A tier change that comes with points marks the metafields once,
counting both changes.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import event, select, update

from payloads import order, refund
from test_loyalty_support import customer_id
from retention_plugin.context import HookContext
from retention_plugin.features.loyalty import tiers
from retention_plugin.features.loyalty.account import LoyaltyOp
from retention_plugin.features.loyalty.ledger import earn_key
from retention_plugin.features.loyalty.settings import settings_of
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

TIERS = [{"name": "silver", "min_spend": "250.00", "window_days": 365},
         {"name": "gold", "min_spend": "1000.00", "window_days": 365}]
#: The tier spend as a statement of its own (before: one per order event).
SPEND_READ = "SELECT orders.customer_id, sum("
#: The tier row read alone (a refund's event read it, then the spend).
TIER_READ = "SELECT customer_tiers."
#: The reversals of an order read apart from its earn entry.
REVERSALS_READ = "SELECT ledger.key, ledger.points"
MARK = "INSERT INTO loyalty_sync"


def tiers_app(make_app, **loyalty):
    return make_app(loyalty={"points_per_currency_unit": "1", "pending_days": 0, "tiers": TIERS, **loyalty})


class Seen:
    def __init__(self, engine):
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._saw)

    def _saw(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(" ".join(statement.split()).replace('"', ""))

    def starting(self, head: str) -> list[str]:
        return [s for s in self.statements if s.startswith(head)]


def paid(app, shopify_id: int, subtotal: str, created) -> int:
    """A paid order of customer 1001, through the worker; returns the customer's id."""
    deliver_shopify(app, "orders/paid", order(shopify_id, subtotal=subtotal, created=created))
    assert run_worker(app).processed == 1
    return customer_id(app, 1001)


def sync_row(app, cid: int) -> dict:
    with app.engine.connect() as conn:
        return dict(conn.execute(select(t.loyalty_sync).where(t.loyalty_sync.c.customer_id == cid)).mappings().one())


def stored_tier(app, cid: int) -> str | None:
    with app.engine.connect() as conn:
        return conn.execute(select(t.customer_tiers.c.tier).where(t.customer_tiers.c.customer_id == cid)).scalar()


def test_an_order_event_reads_the_tier_spend_with_its_earn(make_app, clock):
    app = tiers_app(make_app)
    created = clock.now - timedelta(minutes=30)
    cid = paid(app, 801, "200.00", created)
    assert stored_tier(app, cid) is None
    deliver_shopify(app, "orders/paid", order(802, subtotal="60.00", created=created))
    seen = Seen(app.engine)
    assert run_worker(app).processed == 1
    assert not seen.starting(SPEND_READ) and not seen.starting(TIER_READ), seen.statements
    assert stored_tier(app, cid) == "silver"  # 260.00 in the window: the spend read with the earn counts both


def test_a_refund_event_reads_the_tier_with_the_spend_and_the_earn_with_its_reversals(make_app, clock):
    app = tiers_app(make_app)
    created = clock.now - timedelta(minutes=30)
    cid = paid(app, 811, "300.00", created)
    assert stored_tier(app, cid) == "silver"
    deliver_shopify(app, "refunds/create", refund(8111, 811, 8111, 1, "100.00", created=created))
    seen = Seen(app.engine)
    assert run_worker(app).processed == 1
    assert not seen.starting(SPEND_READ) and not seen.starting(TIER_READ), seen.statements
    assert not seen.starting(REVERSALS_READ), seen.statements
    assert len(seen.starting("SELECT ledger.")) == 1, seen.statements
    assert stored_tier(app, cid) is None  # 200.00 left: below silver
    with app.engine.connect() as conn:
        points = dict(conn.execute(select(t.ledger.c.key, t.ledger.c.points)).all())
    assert points == {"loyalty:earn:order:811": 300, "loyalty:refund:8111": -100}


def test_the_spend_kept_with_the_earn_is_read_again_after_orders_are_written(make_app, clock):
    app = tiers_app(make_app)
    created = clock.now - timedelta(minutes=30)
    cid = paid(app, 821, "200.00", created)
    seen = Seen(app.engine)
    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=clock.now)
        s = settings_of(ctx)
        op = LoyaltyOp(ctx, cid, s)
        assert op.has_entry(earn_key(821))
        before = len(seen.statements)
        assert tiers.evaluate(conn, s, clock.now, [cid], ctx=ctx) == {cid: None}
        assert len(seen.statements) == before  # the spend came with the earn's read
        conn.execute(update(t.orders).where(t.orders.c.customer_id == cid).values(subtotal=Decimal("300.00")))
        assert tiers.evaluate(conn, s, clock.now, [cid], ctx=ctx) == {cid: "silver"}
        assert len(seen.starting(SPEND_READ)) == 1
        conn.rollback()


def test_a_tier_change_with_points_marks_the_metafields_once_for_both(make_app, clock):
    app = tiers_app(make_app)
    created = clock.now - timedelta(minutes=30)
    cid = paid(app, 831, "100.00", created)
    assert sync_row(app, cid)["version"] == 1  # points, no tier
    deliver_shopify(app, "orders/paid", order(832, subtotal="200.00", created=created))
    seen = Seen(app.engine)
    assert run_worker(app).processed == 1
    assert stored_tier(app, cid) == "silver"
    assert len(seen.starting(MARK)) == 1, seen.statements
    row = sync_row(app, cid)
    # Two changes, as two marks one after the other would count them (the first order's write went out).
    assert (row["version"], row["synced_version"], row["dirty"]) == (3, 1, True)


def test_a_first_order_that_reaches_a_tier_inserts_the_mark_counting_both(make_app, clock):
    app = tiers_app(make_app)
    cid = paid(app, 841, "300.00", clock.now - timedelta(minutes=30))
    assert stored_tier(app, cid) == "silver"
    assert sync_row(app, cid)["version"] == 2


def test_storing_a_tier_builds_no_statement(make_app, clock, monkeypatch):
    """The insert and the two updates of ``customer_tiers`` are built once: building one per event cost
    about as much as running it."""
    app = tiers_app(make_app)
    cid = paid(app, 851, "10.00", clock.now - timedelta(minutes=30))

    def built(*args, **kwargs):
        raise AssertionError("a customer_tiers statement was built per call")

    monkeypatch.setattr(tiers, "update", built)
    monkeypatch.setattr(t.customer_tiers, "insert", built)
    with app.engine.begin() as conn:
        assert tiers.store_tier(conn, cid, None, clock.now) == (None, False)
        assert tiers.store_tier(conn, cid, "silver", clock.now) == (None, True)
        later = clock.now + timedelta(days=1)
        assert tiers.store_tier(conn, cid, "silver", later) == ("silver", False)
        assert tiers.store_tier(conn, cid, "gold", later + timedelta(days=1)) == ("silver", True)
        row = conn.execute(select(t.customer_tiers).where(t.customer_tiers.c.customer_id == cid)).mappings().one()
    assert (row["tier"], row["since"], row["evaluated_at"]) == (
        "gold", later + timedelta(days=1), later + timedelta(days=1))


def test_the_metafields_task_reads_the_balance_and_the_tier_in_one_statement(make_app, clock):
    app = tiers_app(make_app, sync_interval_minutes=10)
    cid = paid(app, 861, "300.00", clock.now - timedelta(minutes=30))
    marked_by_hand = update(t.loyalty_sync).where(t.loyalty_sync.c.customer_id == cid).values(dirty=True)
    with app.engine.begin() as conn:
        conn.execute(marked_by_hand)
    clock.advance(minutes=11)
    seen = Seen(app.engine)
    run_worker(app)
    assert not seen.starting(TIER_READ), seen.statements
    with app.engine.connect() as conn:
        requests = [r for (r,) in conn.execute(select(t.actions.c.request).where(
            t.actions.c.kind == "metafields_set").order_by(t.actions.c.id))]
    assert len(requests) == 2
    assert {m["key"]: m["value"] for m in requests[-1]["variables"]["metafields"]} == {
        "points": "300", "tier": "silver"}
    row = sync_row(app, cid)
    assert (row["synced_version"], row["dirty"], row["sent"]) == (row["version"], False, 2)

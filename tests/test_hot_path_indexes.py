"""The worker's per-event lookups use an index, so an event costs the same late in a burst as early (issue 19)."""

import pytest
from sqlalchemy import event, inspect, select, text

from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine


def test_ledger_rows_of_an_order_are_found_through_an_index(db_url):
    engine = make_engine(db_url)
    try:
        indexed = [ix["column_names"] for ix in inspect(engine).get_indexes("ledger")]
        assert ["order_id"] in indexed  # the migrated schema, as `retention db upgrade` leaves it
        if engine.dialect.name == "sqlite":
            L = t.ledger
            stmt = select(L.c.key, L.c.points).where(L.c.order_id == 1, L.c.kind == "reverse")
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
            with engine.connect() as conn:
                plan = " ".join(row[3] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "ix_ledger_order_id" in plan
    finally:
        engine.dispose()


#: Tables that grow with every event: a per-event statement that reads one of them whole gets
#: slower all through a burst.
GROWING = ("orders", "order_lines", "customers", "ledger", "messages", "actions", "refunds", "inbox")


def seed_history(app, customers: int, orders_each: int) -> None:
    """A shop's history as an import leaves it: customers, paid orders, one SKU on every line."""
    from datetime import timedelta
    from decimal import Decimal

    from sqlalchemy import insert

    shop = app.settings.section("shopify")["shop"]
    now = app.now()
    cs, os_, ls = [], [], []
    for cid in range(1, customers + 1):
        cs.append({"id": cid, "shop": shop, "shopify_id": 1_000_000 + cid, "email": f"h{cid}@example.com",
                   "tags": [], "created_at": now - timedelta(days=400), "updated_at": now})
        for k in range(orders_each):
            oid = len(os_) + 1
            paid = now - timedelta(days=30 + k)
            os_.append({"id": oid, "shop": shop, "shopify_id": 2_000_000 + oid, "name": f"#{oid}", "customer_id": cid,
                        "currency": "USD", "subtotal": Decimal(40), "total": Decimal(40), "created_at": paid,
                        "processed_at": paid, "paid_at": paid, "financial_status": "paid", "tags": [],
                        "discount_codes": [], "test": False})
            ls.append({"order_id": oid, "line_key": "1", "sku": "SKU-1", "tags": [], "quantity": 1,
                       "price": Decimal(40)})
    with app.engine.begin() as conn:
        conn.execute(insert(t.customers), cs)
        conn.execute(insert(t.orders), os_)
        conn.execute(insert(t.order_lines), ls)


def test_after_a_batch_the_per_event_lookups_use_selective_indexes_on_sqlite(make_app, db_url):
    """SQLite's planner, without statistics, read all orders / customers / SKU lines per event.

    The worker refreshes the statistics (``PRAGMA optimize``) in its transactions; after one
    group every statement the next events send reads by a selective index.
    """
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL keeps its own planner statistics (autovacuum)")
    from payloads import order
    from retention_plugin.testing import deliver_shopify
    from retention_plugin.worker import Worker

    app = make_app(reminders={"rules": [{"name": "ink", "skus": ["SKU-1"], "interval_days": 60}]},
                   offers={"thank_you": True}, worker={"deliveries_per_commit": 4, "commit_interval_ms": 600_000})
    seed_history(app, customers=1000, orders_each=3)
    for oid in range(8):
        deliver_shopify(app, "orders/paid", order(50_000 + oid, customer_id=1_000_000 + oid * 7,
                                                  email=f"h{oid * 7}@example.com", created=app.now()))
    w = Worker(app, name="w")
    rows = w.claim()
    assert w.process_batch(rows[:4]) == ["done"] * 4  # the first group: statistics come with its commit

    statements: dict[str, object] = {}

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.setdefault(statement, parameters)

    event.listen(app.engine, "before_cursor_execute", capture)
    try:
        assert w.process_batch(rows[4:]) == ["done"] * 4
    finally:
        event.remove(app.engine, "before_cursor_execute", capture)

    assert any("order_lines.sku" in s for s in statements)  # the reminder's lookup ran
    with app.engine.connect() as conn:
        for statement, parameters in statements.items():
            steps = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            whole = [s for s in steps if s.split()[:2] in (["SCAN", table] for table in GROWING)]
            assert not whole, f"{whole} in {' '.join(statement.split())[:300]}"
            if "order_lines.sku" in statement and "orders.customer_id = ?" in statement:
                # the customer's few orders, not every line of a SKU all customers buy
                assert "ix_orders_customer_id" in steps[0], (steps, statement)

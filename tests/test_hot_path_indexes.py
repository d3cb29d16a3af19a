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
        if conn.dialect.name == "postgresql":  # ids given explicitly: the sequences go past them
            for table in ("customers", "orders"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))


def pending_deliveries(n: int, now, body: bytes = b"{}") -> list[dict]:
    """Rows for the inbox: ``n`` stored deliveries, all pending and due at ``now``."""
    return [{"platform": "shopify", "shop": "a.myshopify.com", "delivery_id": f"d{i}", "topic": "orders/paid",
             "headers": {}, "body": body, "received_at": now, "next_attempt_at": now} for i in range(n)]


def _plan(conn, statement: str, parameters) -> list[str]:
    """The plan's steps, one line each: SQLite's ``EXPLAIN QUERY PLAN``, PostgreSQL's ``EXPLAIN``."""
    if conn.dialect.name == "sqlite":
        return [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    return [row[0].strip() for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]


def _reads_whole(steps: list[str]) -> list[str]:
    """The steps that read a growing table from end to end."""
    whole = []
    for s in steps:
        words = s.replace("->", "").split()
        if words[:2] in (["SCAN", table] for table in GROWING):  # SQLite
            whole.append(s)
        if words[:2] == ["Seq", "Scan"] and len(words) > 3 and words[3] in GROWING:  # PostgreSQL
            whole.append(s)
    return whole


def test_after_a_batch_the_per_event_lookups_use_selective_indexes(make_app, db_url):
    """Without statistics the planners read all orders / customers / SKU lines per event.

    SQLite's planner has none until ANALYZE; PostgreSQL's autovacuum analyzes only after a
    minute, and never where it is off, so a fresh database ran a burst's first minute without
    them, or the whole burst (a customer's lines of a SKU read every line of the SKU: 2.6 ms a
    call at 2,000 events and growing). The worker refreshes the
    statistics in its transactions; after one group every statement the next events send reads
    by a selective index.
    """
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

    customer_lines = [s for s in statements if "order_lines.sku" in s and "orders.customer_id = " in s]
    assert customer_lines  # the reminder's lookup ran
    with app.engine.connect() as conn:
        for statement, parameters in statements.items():
            steps = _plan(conn, statement, parameters)
            assert not _reads_whole(steps), f"{steps} in {' '.join(statement.split())[:300]}"
            if statement in customer_lines:
                # the customer's few orders, not every line of a SKU all customers buy
                assert "ix_order_lines_sku" not in " ".join(steps), (steps, statement)
                assert "ix_orders_customer_id" in " ".join(steps), (steps, statement)


def test_postgresql_tables_are_analyzed_once_grown_not_at_every_group(db_url):
    """A table is analyzed when it has grown, and a group that grew nothing analyzes nothing."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite's PRAGMA optimize keeps its own rule")
    from datetime import datetime, timezone

    from sqlalchemy import insert

    from retention_plugin.storage.db import PG_ANALYZE_LEAST_BYTES, refresh_statistics, upgrade

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            refresh_statistics(conn)  # whatever the migrations left, analyzed or too small
            assert refresh_statistics(conn) == []
            conn.execute(insert(t.inbox), pending_deliveries(2000, datetime.now(timezone.utc), body=b"{}" * 40))
            size = conn.execute(text("SELECT pg_relation_size('inbox')")).scalar()
            assert size >= PG_ANALYZE_LEAST_BYTES
            assert [n.split(".")[-1] for n in refresh_statistics(conn)] == ["inbox"]
            assert refresh_statistics(conn) == []  # analyzed: not again until it grows again
            pages = conn.execute(text("SELECT relpages FROM pg_class WHERE relname = 'inbox'")).scalar()
            assert pages > 0
    finally:
        engine.dispose()


def test_the_claim_reads_due_deliveries_by_their_index_whatever_the_statistics_last_saw(make_app):
    """A backlog analyzed while nearly every row was pending, then mostly done, as in a long burst.

    Ordered by id alone, PostgreSQL's planner then chose the primary key and read every done row
    before the first pending one, once per batch: 9 ms at 16,000 done, 50 ms at 36,000.
    """
    from sqlalchemy import insert, update

    from retention_plugin.worker import Worker

    app = make_app()
    now = app.now()
    with app.engine.begin() as conn:
        conn.execute(insert(t.inbox), pending_deliveries(3000, now))
        conn.exec_driver_sql("ANALYZE")  # the statistics of the backlog: all pending
        conn.execute(update(t.inbox).where(t.inbox.c.id <= 2900).values(status="done", processed_at=now))

    claims: dict[str, object] = {}

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "next_attempt_at <=" in statement:
            claims.setdefault(statement, parameters)

    event.listen(app.engine, "before_cursor_execute", capture)
    try:
        assert len(Worker(app, name="w").claim(limit=50)) == 50
    finally:
        event.remove(app.engine, "before_cursor_execute", capture)
    [(statement, parameters)] = claims.items()
    with app.engine.connect() as conn:
        steps = " ".join(_plan(conn, statement, parameters))
    assert "ix_inbox_due" in steps, steps

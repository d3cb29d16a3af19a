"""The analysis reads orders and their lines a chunk at a time, with the same result as reading them whole."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import event, insert

from retention_plugin.analysis import store
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)


def seed(engine, orders: int):
    with engine.begin() as conn:
        conn.execute(insert(t.customers), [{"id": c, "tags": [], "created_at": NOW, "updated_at": NOW}
                                           for c in range(1, 6)])
        conn.execute(insert(t.orders), [
            {"id": k, "customer_id": 1 + k % 5, "currency": "EUR", "subtotal": Decimal(10 + k),
             "total": Decimal(10 + k),
             "refunded": Decimal(k % 3), "total_discounts": Decimal(k % 4 == 0), "created_at": NOW - timedelta(days=k),
             "fulfilled_at": NOW - timedelta(days=k - 1) if k % 2 else None, "tags": [], "discount_codes": [],
             "test": False, "source": "webhook"} for k in range(1, orders + 1)])
        # Every order has a cheap "socks" line and a dearer line whose type is the order's category;
        # every third order's dear line has no type, so socks win there.
        conn.execute(insert(t.order_lines), [
            {"order_id": k, "line_key": key, "product_type": kind, "quantity": qty, "price": Decimal(price), "tags": []}
            for k in range(1, orders + 1)
            for key, kind, qty, price in (("1", "socks", 1, "2"),
                                          ("2", None if k % 3 == 0 else f"type-{k % 4}", 2, "9"))])


def test_orders_and_lines_are_read_in_chunks_with_the_same_history(db_url, monkeypatch):
    engine = make_engine(db_url)
    try:
        seed(engine, 23)
        chunked = []

        @event.listens_for(engine, "before_cursor_execute")
        def seen(conn, cursor, statement, parameters, context, executemany):
            if "FROM orders" in statement or "FROM order_lines" in statement:
                chunked.append(context.execution_options.get("yield_per"))

        monkeypatch.setattr(store, "CHUNK_ROWS", 4)
        h = store.load_store_history(engine, NOW)
    finally:
        engine.dispose()
    # Both reads of the two big tables went through a chunked cursor, 4 rows a fetch.
    assert chunked[:2] == [4, 4]
    # Rows come in order id order, 23 of them across six chunks, each column in step.
    assert h.orders.customer.tolist() == [1 + k % 5 for k in range(1, 24)]
    assert h.orders.amount.tolist() == [float(10 + k - k % 3) for k in range(1, 24)]
    assert h.orders.discounted.tolist() == [k % 4 == 0 for k in range(1, 24)]
    assert h.orders.category.tolist() == ["socks" if k % 3 == 0 else f"type-{k % 4}" for k in range(1, 24)]
    assert h.orders.fulfil_known.tolist() == [True] * 23  # fulfilled, or a webhook order still waiting
    assert [d == 1.0 for d in h.orders.fulfil_days.tolist() if d == d] == [True] * 12
    assert h.currency == "EUR" and h.notes == []

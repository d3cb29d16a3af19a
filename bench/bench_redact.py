"""How long one customer's erasure takes as the stored data grows.

A customer's erasure reads every stored webhook body and every free-text
column once (their own rows are found by id; everyone else's text is searched
for their whole email, phone and full name), inside the worker's transaction.
On SQLite that transaction holds the write lock, so the figure is also how long
the receivers' inserts wait (they queue; Shopify allows 5 s per delivery).

For each size it stores N orders/paid bodies in the inbox, N customers with an
order and a sent message each, then times ``erase_customer`` for one of them.
Prints one table.

    python bench/bench_redact.py [--sizes 1000,10000,50000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from payloads import order  # noqa: E402

from retention_plugin.app import Retention  # noqa: E402
from retention_plugin.context import HookContext  # noqa: E402
from retention_plugin.privacy import erase_customer  # noqa: E402
from retention_plugin.storage import tables as t  # noqa: E402
from retention_plugin.storage.db import make_engine, upgrade  # noqa: E402

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SHOP = "bench.myshopify.com"


def database(backend: str, workdir: Path):
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}", None
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"retention_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin.url.set(database=name).render_as_string(hide_password=False), (admin, name)


def fill(engine, n: int) -> None:
    first = ["Olivia", "Wei", "Li", "Ann", "Jonas", "Lina", "Weiland", "Kalina"]
    last = ["Lindqvist", "Li", "Wei", "Example", "Kazlauskas", "Chen"]
    with engine.begin() as conn:
        for start in range(0, n, 1000):
            rng = range(start, min(n, start + 1000))
            people = [(i, first[i % len(first)], last[(i // len(first)) % len(last)]) for i in rng]
            conn.execute(t.customers.insert(), [
                {"id": i + 1, "shopify_id": 10_000 + i, "email": f"c{i}@example.com", "first_name": f, "last_name": la,
                 "phone": f"+3706{i:07d}", "tags": [], "created_at": NOW, "updated_at": NOW} for i, f, la in people])
            conn.execute(t.orders.insert(), [
                {"id": i + 1, "shopify_id": 50_000 + i, "customer_id": i + 1, "email": f"c{i}@example.com",
                 "currency": "USD", "subtotal": Decimal("100"), "total": Decimal("100"), "created_at": NOW,
                 "tags": [], "discount_codes": []} for i, _, _ in people])
            conn.execute(t.messages.insert(), [
                {"key": f"thanks:{i}", "customer_id": i + 1, "kind": "thank_you", "message_class": "transactional",
                 "channel": "email", "data": {"order_name": f"#{i}"}, "due_at": NOW, "send_at": NOW, "status": "sent",
                 "created_at": NOW,
                 "rendered": {"subject": "Thank you", "text": f"Hi {f},\n\nthank you for telling us; delivery soon."}}
                for i, f, _ in people])
            conn.execute(t.inbox.insert(), [
                {"platform": "shopify", "shop": SHOP, "delivery_id": str(uuid.uuid4()), "topic": "orders/paid",
                 "headers": {}, "status": "done", "attempts": 1, "received_at": NOW, "next_attempt_at": NOW,
                 "body": json.dumps(order(50_000 + i, customer_id=10_000 + i, email=f"c{i}@example.com",
                                          first_name=f, last_name=la, phone=f"+3706{i:07d}")).encode()}
                for i, f, la in people])


def measure(backend: str, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url, pg = database(backend, Path(tmp))
        try:
            engine = make_engine(url)
            upgrade(engine)
            fill(engine, n)
            engine.dispose()
            app = Retention.from_dict({"database": {"url": url}, "shopify": {"shop": SHOP, "access_token": "x",
                                                                             "webhook_secrets": ["s"]}},
                                      path=Path(tmp) / "retention.toml", entry_points=False, clock=lambda: NOW)
            with app.engine.connect() as conn:
                target = dict(conn.execute(t.customers.select().where(t.customers.c.id == n // 2)).mappings().one())
            started = time.perf_counter()
            with app.engine.begin() as conn:
                erase_customer(HookContext(app, conn, now=NOW, source="cli"), target)
            elapsed = time.perf_counter() - started
            app.dispose()
            return elapsed
        finally:
            if pg:
                admin, name = pg
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"{'backend':<11} {'stored deliveries':>18} {'erase one customer (s)':>23}")
    for backend in args.backends.split(","):
        for n in sizes:
            print(f"{backend:<11} {n:>18} {measure(backend, n):>23.2f}", flush=True)


if __name__ == "__main__":
    main()

"""The worker end to end: stored order deliveries through `Worker.run(burst=True)`, built-ins on.

For each database (SQLite in a temporary file, PostgreSQL in a fresh database on the server of
``RETENTION_TEST_PG``, default 127.0.0.1:5432 user postgres) and each size N it stores N
real-shaped deliveries (``orders/paid`` bodies from tests/payloads.py, every tenth order also
refunded by a ``refunds/create``; customers buy about four times each), then, in a process of its
own, runs the worker in burst mode with loyalty (tiers, an automatic reward), offers (thank-you
and voucher), messages (the ``log`` channel) and reminders (a rule every line matches) on, and
prints events/s, ms per event, the worker process's peak resident memory and SQL statements per
event (a ``before_cursor_execute`` listener counts every statement the worker sends). "CPU ms/ev"
is the worker process's own CPU time per event (not the PostgreSQL server's): on a shared machine
it moves far less than wall time.

The contact policy allows every hour of every day (``allowed_hours`` 00:00-23:59, no rest days or
holidays), so the messages are sent whatever the hour the bench runs at; with the default policy a
run at night defers them all, a cheaper path (figures before 2026-12-07 02:15 UTC were taken so).

    python bench/bench_worker.py [--sizes 2000] [--db sqlite,postgresql] [--repeat 1]
    python bench/bench_worker.py --db postgresql --workers 1,2,4 --sizes 2000
    python bench/bench_worker.py --db sqlite --daily-tasks 100000
    python bench/bench_worker.py --db sqlite --core-only
    python bench/bench_worker.py --db sqlite --sql-time

``--core-only`` runs the same deliveries with every feature plugin off (messages, loyalty, offers,
reminders, recalls, referrals, ...): the queue, the parsing and the core records alone, the floor
under what the plugins add.

``--sql-time`` adds "SQL ms/ev": the time per event between handing a statement to the driver and
getting it back (on SQLite the database engine's own work, on PostgreSQL the round trip and the
server's). It is a floor no Python change can lower: only fewer or cheaper statements can.

``--workers K`` starts K worker processes on the same stored deliveries (PostgreSQL only: they
share the queue through ``FOR UPDATE SKIP LOCKED``) and reports the wall time until all are idle.
``--daily-tasks N`` instead stores N customers with orders and points and runs each daily task
once, each in a process of its own, printing seconds and peak memory per task.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from payloads import order, refund  # noqa: E402

from retention_plugin.testing.apps import base_config  # noqa: E402
from retention_plugin.testing.databases import (  # noqa: E402
    create_pg_database, drop_pg_database, pg_admin_url, sqlite_template,
)

#: Daily tasks: those registered with a period of a day or more.
DAILY_SECONDS = 24 * 3600


def sections(db_url: str) -> dict:
    return base_config(
        db_url,
        messages={"default_channel": "log", "batch_size": 500},
        contact_policy={"allowed_hours": ["00:00", "23:59"], "respect_rest_days": False,
                        "respect_public_holidays": False},
        worker={"batch_size": 100},
        offers={"thank_you": True},
        loyalty={"points_per_currency_unit": "1", "pending_days": 0, "expire_after_days": 365,
                 "expiry_warning_days": 14,
                 "tiers": [{"name": "silver", "min_spend": "250.00", "window_days": 365},
                           {"name": "gold", "min_spend": "1000.00", "window_days": 365}],
                 "rewards": [{"name": "five-off", "points": 500, "amount": "5.00", "automatic": True}]},
        reminders={"rules": [{"name": "ink", "skus": ["SKU-1"], "interval_days": 60}]},
    )


#: The plugins ``--core-only`` switches off: every one that reacts to order events.
FEATURE_PLUGINS = ["messaging", "loyalty", "offers", "links", "followups", "delays", "reminders", "recalls",
                   "recovery", "winback", "storefront", "referrals"]
CORE_ONLY = "BENCH_WORKER_CORE_ONLY"  # set by --core-only for the children
SQL_TIME = "BENCH_WORKER_SQL_TIME"  # set by --sql-time for the children


def make_app(db_url: str):
    from retention_plugin.app import Retention

    if os.environ.get(CORE_ONLY):
        cfg = base_config(db_url, worker={"batch_size": 100}, plugins={"disabled": FEATURE_PLUGINS})
    else:
        cfg = sections(db_url)
    return Retention.from_dict(cfg, path=Path(tempfile.gettempdir()) / "bench-worker.toml")


def fresh_database(kind: str, directory: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{sqlite_template(directory)}"
    return create_pg_database(pg_admin_url())


def drop_database(kind: str, url: str) -> None:
    if kind == "postgresql":
        drop_pg_database(pg_admin_url(), url)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_statements(engine) -> list[int]:
    from sqlalchemy import event

    counter = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        counter[0] += 1

    return counter


def time_statements(engine) -> list[float]:
    """Seconds spent between handing each statement to the driver and getting it back.

    On SQLite that is the database engine's own work; on PostgreSQL the round trip and the
    server's work. What is left of the worker's time is Python: ours, SQLAlchemy's, the driver's.
    """
    from sqlalchemy import event

    total = [0.0]
    started: dict[int, float] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):
        started[id(conn)] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):
        total[0] += time.perf_counter() - started.pop(id(conn))

    return total


# --- children (each in its own process, so its peak memory is its own) --------------------------

def child_ingest(url: str, n: int) -> dict:
    from retention_plugin.testing.deliveries import deliver_shopify

    app = make_app(url)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stored, oid = 0, 5_000_000
    while stored < n:
        oid += 1
        customer = 9_000_000 + oid % max(1, n // 4)
        created = now - timedelta(minutes=30)
        deliver_shopify(app, "orders/paid", order(oid, customer_id=customer, email=f"c{customer}@example.com",
                                                  subtotal=Decimal(40 + oid % 80), created=created))
        stored += 1
        if oid % 10 == 0 and stored < n:
            deliver_shopify(app, "refunds/create", refund(oid, oid, oid * 10 + 1, 1, Decimal(40 + oid % 80),
                                                         created=created + timedelta(minutes=5)))
            stored += 1
    app.dispose()
    return {"stored": stored}


def child_work(url: str, name: str) -> dict:
    from retention_plugin.worker import Worker

    app = make_app(url)
    counter = count_statements(app.engine)
    in_sql = time_statements(app.engine) if os.environ.get(SQL_TIME) else [0.0]
    worker = Worker(app, name=name)
    cpu = time.process_time()
    start = time.perf_counter()
    counts = worker.run(burst=True)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    app.dispose()
    return {"seconds": elapsed, "cpu": cpu, "processed": counts.processed, "dead": counts.dead,
            "retried": counts.retried, "statements": counter[0], "peak_mb": peak_mb(), "messages": counts.messages,
            "sql_seconds": in_sql[0]}


def child_seed_customers(url: str, n: int) -> dict:
    """N customers, each with two or three paid orders in the last year and their points."""
    from sqlalchemy import insert

    from retention_plugin.storage import tables as t

    app = make_app(url)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    chunk = 5000
    oid = lid = 0
    for lo in range(1, n + 1, chunk):
        ids = range(lo, min(n, lo + chunk - 1) + 1)
        customers, orders, ledger = [], [], []
        for cid in ids:
            customers.append({"id": cid, "shopify_id": 8_000_000 + cid, "email": f"c{cid}@example.com",
                              "first_name": "C", "locale": "en", "country": "LT", "marketing_consent": "subscribed",
                              "tags": [], "created_at": now - timedelta(days=400), "updated_at": now})
            for k in range(2 + cid % 2):
                oid += 1
                paid = now - timedelta(days=(cid * 7 + k * 97) % 380 + 1)
                amount = Decimal(30 + (cid * 13 + k) % 400)
                orders.append({"id": oid, "shopify_id": 7_000_000 + oid, "name": f"#{oid}", "customer_id": cid,
                               "email": f"c{cid}@example.com", "currency": "USD", "subtotal": amount,
                               "total": amount, "created_at": paid, "processed_at": paid, "paid_at": paid,
                               "financial_status": "paid", "tags": [], "discount_codes": [], "test": False})
                lid += 1
                ledger.append({"id": lid, "key": f"order:{7_000_000 + oid}:earn", "customer_id": cid, "kind": "earn",
                               "points": int(amount), "available_at": paid + timedelta(days=14), "order_id": oid,
                               "rate": Decimal(1), "basis": amount, "currency": "USD", "reason": "order",
                               "actor": "bench", "created_at": paid})
        with app.engine.begin() as conn:
            conn.execute(insert(t.customers), customers)
            conn.execute(insert(t.orders), orders)
            conn.execute(insert(t.ledger), ledger)
    if app.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with app.engine.begin() as conn:
            for table in ("customers", "orders", "ledger"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
            conn.execute(text("ANALYZE"))
    app.dispose()
    return {"customers": n, "orders": oid}


def child_task(url: str, task: str) -> dict:
    from retention_plugin.context import HookContext

    app = make_app(url)
    counter = count_statements(app.engine)
    func = {name: f for name, f, _ in app.tasks}[task]
    now = app.now()
    start = time.perf_counter()
    with app.engine.connect() as conn:
        func(HookContext(app, conn, now=now, source="task"))
        conn.commit()
    elapsed = time.perf_counter() - start
    app.dispose()
    return {"seconds": elapsed, "peak_mb": peak_mb(), "statements": counter[0]}


def daily_tasks(url: str) -> list[str]:
    app = make_app(url)
    try:
        return [name for name, _, every in app.tasks if every >= DAILY_SECONDS]
    finally:
        app.dispose()


# --- the parent --------------------------------------------------------------------------------

def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True)


def collect(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def run(*args: str) -> dict:
    return collect(spawn(*args))


def bench_burst(kinds, sizes, repeat, worker_counts) -> None:
    sql_time = bool(os.environ.get(SQL_TIME))
    print(f"{'db':<11}{'N':>7}{'workers':>8}{'events/s':>10}{'ms/event':>10}{'CPU ms/ev':>10}{'peak MB':>9}"
          f"{'SQL/event':>10}{'done':>7}{'dead':>6}" + (f"{'SQL ms/ev':>10}" if sql_time else ""))
    for kind in kinds:
        for n in sizes:
            for k in worker_counts:
                for _ in range(repeat):
                    with tempfile.TemporaryDirectory() as tmp:
                        url = fresh_database(kind, Path(tmp))
                        try:
                            run("ingest", url, str(n))
                            start = time.perf_counter()
                            procs = [spawn("work", url, f"bench-{i}") for i in range(k)]
                            results = [collect(p) for p in procs]
                            wall = time.perf_counter() - start if k > 1 else results[0]["seconds"]
                        finally:
                            drop_database(kind, url)
                    done = sum(r["processed"] for r in results)
                    dead = sum(r["dead"] for r in results)
                    statements = sum(r["statements"] for r in results)
                    cpu = sum(r["cpu"] for r in results)
                    print(f"{kind:<11}{n:>7}{k:>8}{done / wall:>10.0f}{1000 * wall / max(1, done):>10.2f}"
                          f"{1000 * cpu / max(1, done):>10.2f}{max(r['peak_mb'] for r in results):>9.0f}"
                          f"{statements / max(1, done):>10.1f}"
                          f"{done:>7}{dead:>6}"
                          + (f"{1000 * sum(r['sql_seconds'] for r in results) / max(1, done):>10.2f}"
                             if sql_time else ""), flush=True)


def bench_daily(kinds, n) -> None:
    print(f"{'db':<11}{'customers':>10}  {'task':<24}{'seconds':>9}{'peak MB':>9}{'SQL':>9}")
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            url = fresh_database(kind, Path(tmp))
            try:
                run("seed", url, str(n))
                for task in daily_tasks(url):
                    r = run("task", url, task)
                    print(f"{kind:<11}{n:>10}  {task:<24}{r['seconds']:>9.2f}{r['peak_mb']:>9.0f}"
                          f"{r['statements']:>9}", flush=True)
            finally:
                drop_database(kind, url)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        what, url, arg = sys.argv[2:5]
        result = {"ingest": lambda: child_ingest(url, int(arg)), "work": lambda: child_work(url, arg),
                  "seed": lambda: child_seed_customers(url, int(arg)), "task": lambda: child_task(url, arg)}[what]()
        print(json.dumps(result))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2000")
    p.add_argument("--db", default="sqlite,postgresql")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--workers", default="1", help="worker processes (PostgreSQL), e.g. 1,2,4")
    p.add_argument("--daily-tasks", type=int, metavar="N", help="N customers: run each daily task once instead")
    p.add_argument("--core-only", action="store_true", help="every feature plugin off: the core's own cost")
    p.add_argument("--sql-time", action="store_true",
                   help="also time each statement in the driver and the database (SQL ms/ev)")
    a = p.parse_args()
    if a.core_only:
        os.environ[CORE_ONLY] = "1"
    if a.sql_time:
        os.environ[SQL_TIME] = "1"
    kinds = [k for k in a.db.split(",") if k]
    if a.daily_tasks:
        bench_daily(kinds, a.daily_tasks)
        return
    workers = [int(w) for w in a.workers.split(",")]
    if "sqlite" in kinds and any(w > 1 for w in workers):
        raise SystemExit("--workers above 1 is for PostgreSQL: SQLite has one writer")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    bench_burst(kinds, [int(s) for s in a.sizes.split(",")], a.repeat, workers)


if __name__ == "__main__":
    main()

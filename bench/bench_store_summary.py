"""The per-customer summary of stored orders, computed by PostgreSQL, at 10 million orders.

    python bench/bench_store_summary.py [--orders 10000000] [--customers 1000000]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--keep] [--python-path]

Makes a scratch database (`retention_bench_<random>`), creates the schema
with the project's migrations, and loads the orders with `COPY ... FROM STDIN`
(psycopg's copy protocol; the text is made by numpy a block at a time, so the
loader's own memory stays small), as a bulk load is done: the secondary
indexes of `orders` dropped first and built again after, foreign-key
triggers off for the loading session (`session_replication_role = replica`). The orders are those of `--customers`
customers, each born on a day of 2022-2023 and buying at a Gamma-distributed
rate to the end of 2024, at hours spread over the day; 3% are cancelled, 1%
are test orders, 5% partly or fully refunded, 2% worth zero; 1% of the
customers are merged into another (some in chains of two), so every rule of
the summary is exercised.

Then `summarize_store` (analysis/store_summary.py: one query, one GROUP BY)
runs in a child process, as the daily early-warning run or a report would
call it, with a calibration cut-off at 2024-09-30 and a holdout to
2024-12-31; the table gives its wall time, the child's peak resident memory
(GNU time's figure; bench/measure.py) and PostgreSQL's `work_mem`, the bound on
each sort and hash of the query on the server side, which spills to disk
beyond it. `--python-path` also times the loader plus numpy summary on the
same database (it holds every order in Python: expect several GB at 10M).
The scratch database is dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from retention_plugin.storage.db import make_engine, upgrade  # noqa: E402

CAL, HOLD = "2024-09-30", "2024-12-31"
NULL = r"\N"  # COPY's text format
CHILD = r'''
import sys, time
from retention_plugin.analysis.dates import parse_day
from retention_plugin.storage.db import make_engine
url, cal, hold, path = sys.argv[1:5]
engine = make_engine(url)
t = time.perf_counter()
if path == "db":
    from retention_plugin.analysis.store_summary import summarize_store
    s = summarize_store(engine, calibration_end=parse_day(cal), holdout_end=parse_day(hold))
else:
    from retention_plugin.analysis.store import load_store_history
    from retention_plugin.analysis.summary import summarize
    h = load_store_history(engine, hold)
    s = summarize(h.orders.customer, h.orders.day, h.orders.amount, calibration_end=parse_day(cal),
                  holdout_end=parse_day(hold))
print(time.perf_counter() - t, len(s), int(s.x.sum()), int(s.holdout_x.sum()), float(s.total_spend.sum()))
'''


def copy_rows(conn, table: str, columns: list[str], blocks) -> None:
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        # A bulk load into a scratch database: no per-row foreign-key checks (the generator keeps them true).
        cur.execute("SET session_replication_role = replica")
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for block in blocks:
                copy.write(block)
    raw.commit()


def without_indexes(engine, table: str) -> list[str]:
    """Drop the table's unique constraints and secondary indexes; return the statements that make them again."""
    with engine.begin() as conn:
        constraints = conn.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'u'"), {"t": table}).all()
        indexes = conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass))"), {"t": table}).all()
        for name, _ in constraints:
            conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
    return ([f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' for name, definition in constraints]
            + [definition for _, definition in indexes])


def customer_blocks(n: int, merged: dict[int, int], step: int = 200_000):
    for lo in range(1, n + 1, step):
        buf = io.StringIO()
        for i in range(lo, min(lo + step, n + 1)):
            buf.write(f"{i}\t[]\t2022-01-01 00:00:00+00\t2022-01-01 00:00:00+00\t{merged.get(i, NULL)}\n")
        yield buf.getvalue()


def order_blocks(n_orders: int, n_customers: int, rng, step: int = 500_000):
    start = np.datetime64("2022-01-01").astype(np.int64)
    end = np.datetime64("2024-12-31").astype(np.int64)
    birth = start + rng.integers(0, 730, n_customers)
    rate = rng.gamma(0.7, 1.0, n_customers)  # relative purchase rates
    weight = rate * (end - birth + 1)
    weight /= weight.sum()
    done = 0
    while done < n_orders:
        m = min(step, n_orders - done)
        cust = rng.choice(n_customers, m, p=weight)
        day = birth[cust] + np.floor(rng.random(m) * (end - birth[cust] + 1)).astype(np.int64)
        seconds = rng.integers(0, 86400, m)
        stamp = (day * 86400 + seconds).astype("datetime64[s]").astype(str)
        subtotal = np.round(rng.gamma(2.0, 30.0, m), 2) * (rng.random(m) > 0.02)
        refunded = np.where(rng.random(m) < 0.05, np.round(subtotal * rng.choice([0.3, 1.0], m), 2), 0.0)
        cancelled = rng.random(m) < 0.03
        test = np.where(rng.random(m) < 0.01, "t", "f")
        cancel_at = np.where(cancelled, (day * 86400 + 86400 * 2).astype("datetime64[s]").astype(str), "")
        buf = io.StringIO()
        for k, (c, s, sub, ref, te, ca) in enumerate(zip((cust + 1).tolist(), stamp.tolist(), subtotal.tolist(),
                                                         refunded.tolist(), test.tolist(), cancel_at.tolist())):
            can = f"{ca}+00" if ca else NULL
            buf.write(f"{done + k + 1}\t{c}\tEUR\t{sub:.2f}\t{sub:.2f}\t0\t0\t0\t{ref:.2f}\t{s}+00\t{can}"
                      f"\t[]\t[]\t{te}\timport\n")
        yield buf.getvalue()
        done += m


def run_child(url: str, path: str) -> tuple[float, float, float, str]:
    wall, peak, out = run_measured([sys.executable, "-c", CHILD, url, CAL, HOLD, path],
                                   env={"PYTHONPATH": str(REPO / "src")})
    out = out.strip().splitlines()[-1]
    return wall, float(out.split()[0]), peak, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=10_000_000)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--admin-url", default=os.environ.get("RETENTION_BENCH_PG",
                                                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch database and print its URL")
    ap.add_argument("--python-path", action="store_true", help="also time load_store_history + summarize")
    ap.add_argument("--seed", type=int, default=10)
    args = ap.parse_args()

    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    name = f"retention_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url)
        upgrade(engine)
        rng = np.random.default_rng(args.seed)
        merged = {}
        for i in rng.choice(np.arange(2, args.customers + 1), args.customers // 100, replace=False).tolist():
            merged[i] = int(rng.integers(1, i))  # into an older customer, who may be merged too: chains
        t = time.perf_counter()
        rebuild = without_indexes(engine, "orders")  # built once after the load, not row by row
        with engine.connect() as conn:
            copy_rows(conn, "customers", ["id", "tags", "created_at", "updated_at", "merged_into"],
                      customer_blocks(args.customers, merged))
            copy_rows(conn, "orders", ["id", "customer_id", "currency", "subtotal", "total", "total_discounts",
                                       "total_tax", "shipping", "refunded", "created_at", "cancelled_at", "tags",
                                       "discount_codes", "test", "source"],
                      order_blocks(args.orders, args.customers, rng))
        load = time.perf_counter() - t
        t = time.perf_counter()
        with engine.begin() as conn:
            for statement in rebuild:
                conn.execute(text(statement))
        indexes = time.perf_counter() - t
        with engine.begin() as conn:
            conn.execute(text("ANALYZE customers; ANALYZE orders"))
            work_mem = conn.execute(text("SHOW work_mem")).scalar()
            size = conn.execute(text("SELECT pg_size_pretty(pg_total_relation_size('orders'))")).scalar()
        engine.dispose()
        print(f"loaded {args.orders:,} orders of {args.customers:,} customers ({len(merged):,} merged) with COPY "
              f"in {load:.1f} s, indexes rebuilt in {indexes:.1f} s; orders table {size}; work_mem {work_mem}\n")
        print(f"{'path':<44} {'wall s':>8} {'in-call s':>10} {'peak MB':>9}  customers / repeat days / holdout days")
        rows = [("summarize_store (one GROUP BY in PostgreSQL)", "db")]
        if args.python_path:
            rows.append(("load_store_history + summarize (numpy)", "python"))
        for label, path in rows:
            wall, secs, peak, out = run_child(url, path)
            _, customers, repeat, hold, _ = out.split()
            print(f"{label:<44} {wall:8.1f} {secs:10.1f} {peak:9.0f}  {int(customers):,} / {int(repeat):,} / "
                  f"{int(hold):,}")
        print(f"\nmachine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()

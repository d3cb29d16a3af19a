"""What an order event costs at least, whatever the worker's design: the work it cannot avoid.

Issue 19 asks one SQLite worker for 2,000 order events/s with loyalty, offers, messages and
reminders on: 0.5 ms per event for everything. This script runs ``bench_worker``'s burst once (N
stored deliveries through ``Worker.run(burst=True)`` on SQLite, built-ins on), then measures
three parts of it again, each on its own, and prints them per event:

- **parse**: every stored body through ``parse_delivery``, as the worker reads it.
- **render**: every message the burst sent, rendered again by the sender's renderer (the text and
  HTML of its template, with the customer it went to).
- **write**: every row the burst left in the tables it wrote, inserted into an empty copy of the
  schema in one transaction, three ways: one ``INSERT`` per row through SQLAlchemy (how the
  worker writes today), one ``executemany`` per table through SQLAlchemy (what processing a group
  of events as a set could do at best), and one ``executemany`` per table straight on the
  ``sqlite3`` driver (the database's own floor).

Reads, updates, the queue's own statements and every plugin's Python come on top of these, so
their sum is a floor under any design that does the same work per event.

    python bench/bench_event_floor.py [--events 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_worker  # noqa: E402

#: The tables one order event writes rows into, parents first (foreign keys).
WRITTEN = ("customers", "orders", "order_lines", "refunds", "ledger", "customer_tiers", "loyalty_sync",
           "messages", "reminders", "referral_households", "actions", "action_attempts")


def best(seconds: list[float]) -> float:
    # The least of several rounds: what the work costs when the shared machine is not in its way.
    return min(seconds)


def burst(directory: Path, n: int) -> str:
    """N deliveries stored and worked through, as ``bench_worker`` does; returns the database URL."""
    from retention_plugin.worker import Worker

    url = bench_worker.fresh_database("sqlite", directory)
    bench_worker.child_ingest(url, n)
    app = bench_worker.make_app(url)
    counts = Worker(app, name="floor").run(burst=True)
    app.dispose()
    if counts.processed != n:
        raise SystemExit(f"the burst processed {counts.processed} of {n} deliveries")
    return url


def time_parse(app, repeat: int) -> tuple[float, int]:
    from sqlalchemy import select

    from retention_plugin.platforms.deliveries import parse_delivery
    from retention_plugin.storage import tables as t

    with app.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(t.inbox)).mappings()]
    shop = app.settings.section("shopify").get("shop")
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for row in rows:
            parse_delivery(row, shop)
        rounds.append(time.perf_counter() - start)
    return best(rounds), len(rows)


def time_render(app, repeat: int) -> tuple[float, int]:
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from retention_plugin.messaging.outbox import renderer_for
    from retention_plugin.storage import tables as t

    renderer = renderer_for(app.settings)
    with app.engine.connect() as conn:
        sent = [dict(r) for r in conn.execute(select(t.messages).where(t.messages.c.status == "sent")).mappings()]
        customers = {r["id"]: dict(r) for r in conn.execute(select(t.customers)).mappings()}
    utc = ZoneInfo("UTC")
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for m in sent:
            customer = customers[m["customer_id"]]
            renderer.render(m["kind"], m["locale"] or customer.get("locale"), m["data"] or {}, customer=customer,
                            tz=utc, template=m["template"], message_class=m["message_class"])
        rounds.append(time.perf_counter() - start)
    return best(rounds), len(sent)


def time_writes(url: str, directory: Path, repeat: int) -> dict[str, float]:
    """Seconds to insert the burst's rows into an empty schema: per row, per table, on the driver."""
    from sqlalchemy import insert, select

    from retention_plugin.storage import tables as t
    from retention_plugin.storage.db import make_engine
    from retention_plugin.testing.databases import sqlite_copy, sqlite_template

    source = make_engine(url)
    with source.connect() as conn:
        rows = {name: [dict(r) for r in conn.execute(select(t.metadata.tables[name])).mappings()]
                for name in WRITTEN}
    source.dispose()
    (directory / "empty").mkdir()
    template = sqlite_template(directory / "empty")
    out: dict[str, list[float]] = {"per row": [], "per table": [], "driver": []}
    for _ in range(repeat):
        for way in out:
            target_dir = directory / f"write-{way.replace(' ', '-')}"
            target_dir.mkdir(exist_ok=True)
            target = sqlite_copy(template, target_dir)
            if way == "driver":
                out[way].append(_driver_insert(target, rows))
                continue
            engine = make_engine(target)
            with engine.begin() as conn:
                start = time.perf_counter()
                for name in WRITTEN:
                    table = t.metadata.tables[name]
                    if not rows[name]:
                        continue
                    if way == "per row":
                        for row in rows[name]:
                            conn.execute(insert(table), row)
                    else:
                        conn.execute(insert(table), rows[name])
                out[way].append(time.perf_counter() - start)
            engine.dispose()
    return {way: best(seconds) for way, seconds in out.items()}


def _driver_insert(url: str, rows: dict[str, list[dict]]) -> float:
    """The same rows through ``sqlite3``'s ``executemany``, values converted beforehand (not timed)."""
    import json
    from datetime import datetime
    from decimal import Decimal

    def plain(v):
        if isinstance(v, datetime):
            return v.isoformat(" ")
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, (dict, list)):
            return json.dumps(v, default=str)
        return v

    prepared = []
    for name in WRITTEN:
        if rows[name]:
            cols = list(rows[name][0])
            quoted = ", ".join(f'"{c}"' for c in cols)  # some columns are keywords ("key")
            sql = f'INSERT INTO {name} ({quoted}) VALUES ({", ".join("?" for _ in cols)})'
            prepared.append((sql, [tuple(plain(r[c]) for c in cols) for r in rows[name]]))
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("BEGIN IMMEDIATE")
    start = time.perf_counter()
    for sql, values in prepared:
        db.executemany(sql, values)
    elapsed = time.perf_counter() - start
    db.execute("COMMIT")
    db.close()
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3, help="rounds of each measurement; the least is shown")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url = burst(directory, a.events)
        app = bench_worker.make_app(url)
        parse_s, events = time_parse(app, a.repeat)
        render_s, messages = time_render(app, a.repeat)
        app.dispose()
        writes = time_writes(url, directory, a.repeat)
    per = 1000 / events
    print(f"{events} events, {messages} messages sent; least of {a.repeat} rounds; ms per event")
    print(f"{'part':<46}{'ms/event':>10}")
    print(f"{'parse the body':<46}{parse_s * per:>10.3f}")
    print(f"{'render the messages it sent':<46}{render_s * per:>10.3f}")
    print(f"{'insert its rows, one INSERT each (SQLAlchemy)':<46}{writes['per row'] * per:>10.3f}")
    print(f"{'insert its rows, executemany per table':<46}{writes['per table'] * per:>10.3f}")
    print(f"{'insert its rows, sqlite3 executemany':<46}{writes['driver'] * per:>10.3f}")
    floor = (parse_s + render_s + writes["per table"]) * per
    print(f"{'floor: parse + render + executemany':<46}{floor:>10.3f}")
    print(f"{'budget at 2,000 events/s':<46}{0.5:>10.3f}")


if __name__ == "__main__":
    main()

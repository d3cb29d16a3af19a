"""Parsing Shopify webhook bodies alone: microseconds per body, as the worker reads a stored delivery.

The bodies are the worker bench's (``bench_worker.py``): ``orders/paid`` from tests/payloads.py for
customers who buy about four times, every tenth order also refunded by a ``refunds/create``. Each
is stored as JSON text, as the inbox holds it, and parsed the way the worker does
(``parse_delivery``: ``json.loads`` then ``parse_shopify``) N times over; the shared Shopify
fixtures (../shared/fixtures/shopify) are timed too when present. Prints the best of ``--repeat``
rounds (CPU time, the least disturbed by a loaded machine) in µs per body, and Python function
calls per body (cProfile's count of one more round: deterministic, unlike the time).

    python bench/bench_parse.py [--bodies 200] [--rounds 20] [--repeat 5]

To compare two trees, run the same command with ``PYTHONPATH=<other tree>/src``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from payloads import order, refund  # noqa: E402

SHOP = "bench.myshopify.com"
FIXTURES = HERE.parent.parent / "shared" / "fixtures" / "shopify"


def worker_rows(n: int) -> list[dict]:
    """The worker bench's deliveries (bench_worker.child_ingest), as inbox rows."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows, oid = [], 5_000_000
    while len(rows) < n:
        oid += 1
        customer = 9_000_000 + oid % max(1, n // 4)
        created = now - timedelta(minutes=30)
        body = order(oid, customer_id=customer, email=f"c{customer}@example.com",
                     subtotal=Decimal(40 + oid % 80), created=created)
        rows.append(row("orders/paid", body))
        if oid % 10 == 0 and len(rows) < n:
            rows.append(row("refunds/create", refund(oid, oid, oid * 10 + 1, 1, Decimal(40 + oid % 80),
                                                     created=created + timedelta(minutes=5))))
    return rows


def row(topic: str, body: dict) -> dict:
    return {"platform": "shopify", "topic": topic, "shop": SHOP, "body": json.dumps(body).encode()}


def fixture_rows() -> list[dict]:
    # Shopify's orders/paid sample is a voided order, which that topic refuses: timed as an update.
    topics = {"orders_create": "orders/create", "orders_paid": "orders/updated", "refunds_create": "refunds/create",
              "customers_create": "customers/create", "customers_update": "customers/update"}
    return [{"platform": "shopify", "topic": topic, "shop": SHOP, "body": (FIXTURES / f"{name}.json").read_bytes()}
            for name, topic in topics.items() if (FIXTURES / f"{name}.json").exists()]


def per_body_us(rows: list[dict], rounds: int, repeat: int) -> float:
    from retention_plugin.platforms.deliveries import parse_delivery

    for r in rows:  # first use: imports, schema instances
        parse_delivery(r, SHOP)
    best = float("inf")
    for _ in range(repeat):
        cpu = time.process_time()
        for _ in range(rounds):
            for r in rows:
                parse_delivery(r, SHOP)
        best = min(best, time.process_time() - cpu)
    return 1e6 * best / (rounds * len(rows))


def calls_per_body(rows: list[dict]) -> float:
    import cProfile
    import pstats

    from retention_plugin.platforms.deliveries import parse_delivery

    profiler = cProfile.Profile()
    profiler.enable()
    for r in rows:
        parse_delivery(r, SHOP)
    profiler.disable()
    return pstats.Stats(profiler).total_calls / len(rows)  # type: ignore[attr-defined]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bodies", type=int, default=200)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()

    import retention_plugin

    rows = worker_rows(a.bodies)
    sets = {
        "worker bench mix": rows,
        "orders/paid": [r for r in rows if r["topic"] == "orders/paid"],
        "refunds/create": [r for r in rows if r["topic"] == "refunds/create"],
    }
    fixtures = fixture_rows()
    if fixtures:
        sets["shared fixtures"] = fixtures
    print(f"tree: {Path(retention_plugin.__file__).resolve().parents[2]}")
    print(f"{'bodies':<20}{'n':>6}{'µs/body':>10}{'calls/body':>12}")
    for name, chosen in sets.items():
        rounds = max(1, a.rounds * len(rows) // len(chosen)) if name == "shared fixtures" else a.rounds
        print(f"{name:<20}{len(chosen):>6}{per_body_us(chosen, rounds, a.repeat):>10.1f}"
              f"{calls_per_body(chosen):>12.0f}")


if __name__ == "__main__":
    main()

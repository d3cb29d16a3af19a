"""Support for the loyalty tests (no tests here): helpers, and a reproducible scenario with its expected balances.

The scenario is a mix of orders, duplicate deliveries, refunds and
cancellations; its expected balances are computed from the generated data
alone, with the issue's rule, never by asking the code under test.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal

from click.testing import CliRunner
from sqlalchemy import select

from payloads import order, refund
from retention_plugin.cli import LazyApp
from retention_plugin.features.loyalty.commands import loyalty
from retention_plugin.features.loyalty.ledger import balance
from retention_plugin.storage import tables as t


def customer_id(app, shopify_id: int) -> int:
    with app.engine.connect() as conn:
        return conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == shopify_id)).scalar_one()


def bal(app, shopify_id: int = 1001):
    with app.engine.connect() as conn:
        cid = conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == shopify_id)).scalar_one()
        return balance(conn, cid, app.now())


def ledger(app, **where) -> list[dict]:
    q = select(t.ledger).order_by(t.ledger.c.id)
    for k, v in where.items():
        q = q.where(t.ledger.c[k] == v)
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def actions(app, kind: str | None = None) -> list[dict]:
    q = select(t.actions).order_by(t.actions.c.id)
    if kind:
        q = q.where(t.actions.c.kind == kind)
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def rows(app, table) -> list[dict]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c[list(table.c.keys())[0]])).mappings()]


def cli(app, *args):
    """Run ``retention loyalty ...`` against this app (and its test clock)."""
    lazy = LazyApp(None)
    lazy._app = app
    return CliRunner().invoke(loyalty, list(args), obj=lazy)


def floor(x: Decimal) -> int:
    return int(Decimal(x).to_integral_value(rounding=ROUND_FLOOR))


def expected_points(rate, subtotal, refunded=Decimal(0), cancelled=False) -> int:
    """The issue's rule, computed independently: earn floor(rate x subtotal); refunds take back
    floor(earned x refunded / subtotal) in total (never more than earned); cancelling takes the rest."""
    earned = floor(Decimal(str(rate)) * Decimal(str(subtotal)))
    if cancelled:
        return 0
    subtotal = Decimal(str(subtotal))
    if subtotal <= 0:
        return earned if not refunded else 0
    back = min(earned, floor(earned * Decimal(str(refunded)) / subtotal))
    return earned - back


# --- the scenario ----------------------------------------------------------------------


@dataclass
class Scenario:
    rate: Decimal
    deliveries: list[tuple[str, dict, str]] = field(default_factory=list)  # (topic, payload, webhook id)
    orders: dict[int, dict] = field(default_factory=dict)  # order id -> {customer, subtotal, refunded, cancelled}

    def expected(self) -> dict[int, int]:
        """Shopify customer id -> points, from the generated data only."""
        out: dict[int, int] = defaultdict(int)
        for o in self.orders.values():
            out[o["customer"]] += expected_points(self.rate, o["subtotal"], o["refunded"], o["cancelled"])
        return dict(out)

    def unique_deliveries(self) -> int:
        return len({d[2] for d in self.deliveries})


def build(n_orders: int, n_customers: int, *, seed: int = 7, rate="1.5", start: datetime | None = None,
          duplicate_share=0.05) -> Scenario:
    rng = random.Random(seed)
    start = start or datetime(2026, 2, 1, tzinfo=timezone.utc)
    sc = Scenario(rate=Decimal(rate))
    timeline: list[tuple[float, str, dict]] = []
    refund_id = 70_000_000
    for i in range(n_orders):
        oid = 40_000_000 + i
        cust = 900_000 + rng.randrange(n_customers)
        subtotal = Decimal(rng.randrange(100, 40_000)) / 100
        created = start + timedelta(minutes=i)
        line_id = oid * 10 + 1
        lines = [{"id": line_id, "sku": "SKU-1", "product_id": 7001, "variant_id": 8001, "quantity": 1,
                  "price": str(subtotal)}]
        common = dict(customer_id=cust, email=f"c{cust}@example.com", subtotal=str(subtotal), created=created,
                      lines=lines)
        rec = {"customer": cust, "subtotal": subtotal, "refunded": Decimal(0), "cancelled": False}
        sc.orders[oid] = rec
        pos = float(i)
        timeline.append((pos, "orders/paid", order(oid, **common)))
        roll = rng.random()
        if roll < 0.20:  # one or two partial refunds
            left = subtotal
            for k in range(rng.choice((1, 2))):
                amount = (left * Decimal(rng.randrange(5, 100)) / 100).quantize(Decimal("0.01"))
                if amount <= 0:
                    continue
                left -= amount
                refund_id += 1
                rec["refunded"] += amount
                pos += rng.uniform(0.5, 40)
                timeline.append((pos, "refunds/create",
                                 refund(refund_id, oid, line_id, 1, amount, created=created + timedelta(days=k + 1))))
        if roll > 0.90:  # cancelled (some of them after a partial refund)
            rec["cancelled"] = True
            pos += rng.uniform(0.5, 40)
            timeline.append((pos, "orders/cancelled", order(oid, cancelled=created + timedelta(days=3),
                                                             financial_status="voided", **common)))
    timeline.sort(key=lambda x: x[0])
    for _, topic, payload in timeline:
        sc.deliveries.append((topic, payload, f"wh-{uuid.UUID(int=rng.getrandbits(128))}"))
    # Shopify delivers the same event again under new webhook ids: later, in between.
    for _ in range(int(len(sc.deliveries) * duplicate_share)):
        j = rng.randrange(len(sc.deliveries))
        topic, payload, _ = sc.deliveries[j]
        at = rng.randrange(j + 1, len(sc.deliveries) + 1)
        sc.deliveries.insert(at, (topic, payload, f"wh-{uuid.UUID(int=rng.getrandbits(128))}"))
    return sc


def store_all(engine, shop: str, sc: Scenario, now: datetime) -> int:
    """Insert every delivery into the inbox in one transaction, as the receiver would have."""
    from retention_plugin.storage import tables as t

    rows = [{"platform": "shopify", "shop": shop, "delivery_id": wid, "topic": topic, "event_id": None,
             "headers": {"topic": topic}, "body": json.dumps(payload).encode(), "received_at": now,
             "status": "pending", "attempts": 0, "next_attempt_at": now}
            for topic, payload, wid in sc.deliveries]
    with engine.begin() as conn:
        for i in range(0, len(rows), 1000):
            conn.execute(t.inbox.insert(), rows[i:i + 1000])
    return len(rows)

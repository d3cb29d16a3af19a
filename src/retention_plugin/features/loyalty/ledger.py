"""The points ledger: append-only entries under idempotency keys, balances computed from them.

Entry kinds (``ledger.kind``):

``earn``     an order was paid: ``floor(rate x basis)``; ``rate`` and ``basis`` are stored. Also the
             ``[loyalty.earn]`` rules and admin awards (:mod:`.activities`), without an order.
``reverse``  a refund or cancellation took (part of) an order's points back; it matures with
             the earn entry it reverses (``available_at`` copied), so reversing pending points
             lowers ``pending``, not ``available``.
``spend``    points turned into a reward code.
``adjust``   an admin's correction or bonus (``actor`` and ``reason`` kept: the audit trail).
``expire``   points that lapsed after ``expire_after_days`` without an order.

Balances are sums, never stored: ``available`` is every entry with ``available_at <= now``,
``pending`` the rest, ``lifetime`` the sum of earn, reverse and adjust entries (everything ever
credited, net of take-backs; spending and expiry do not lower it).

Every function here runs inside the caller's transaction. :class:`.account.LoyaltyOp` takes a row
lock on the customer first (:func:`lock_customer`) (PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
serialises writers), so two workers handling two orders of one customer cannot both spend the same points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy import bindparam, case, func, literal, select
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from ...shop_scope import current
from ...storage import tables as t
from ...storage.db import insert_ignore, is_sqlite

L = t.ledger

EARN, REVERSE, SPEND, ADJUST, EXPIRE = "earn", "reverse", "spend", "adjust", "expire"
KINDS = (EARN, REVERSE, SPEND, ADJUST, EXPIRE)
LIFETIME_KINDS = (EARN, REVERSE, ADJUST)


class LoyaltyError(Exception):
    """A request the ledger refuses (spending more than is available, ...); worded for the admin."""


def floor_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def earn_key(order_shopify_id) -> str:
    return f"loyalty:earn:order:{order_shopify_id}"


def refund_key(refund_shopify_id) -> str:
    return f"loyalty:refund:{refund_shopify_id}"


def cancel_key(order_shopify_id) -> str:
    return f"loyalty:cancel:order:{order_shopify_id}"


def stamp(when: datetime) -> str:
    """A compact UTC timestamp for keys."""
    return when.strftime("%Y%m%dT%H%M%S.%fZ")


@dataclass
class Balance:
    available: int = 0
    pending: int = 0
    lifetime: int = 0

    def as_dict(self) -> dict:
        return {"available": self.available, "pending": self.pending, "lifetime": self.lifetime}


#: ``kind IN (...)`` of plain parameters: a literal list would be expanded at every run (this is the hot path).
_LIFETIME = L.c.kind.in_([literal(k, L.c.kind.type) for k in LIFETIME_KINDS])
_BALANCE = select(
    func.coalesce(func.sum(case((L.c.available_at <= bindparam("now"), L.c.points), else_=0)), 0),
    func.coalesce(func.sum(case((L.c.available_at > bindparam("now"), L.c.points), else_=0)), 0),
    func.coalesce(func.sum(case((_LIFETIME, L.c.points), else_=0)), 0),
).where(L.c.customer_id == bindparam("cid"))


#: The balance and whether an entry's key is taken, in one statement: an order's earn asks both.
#: (Of an alias: a subquery of the outer query's own table would be correlated to its rows.)
_TAKEN = L.alias("taken")
_BALANCE_AND_ENTRY = _BALANCE.add_columns(select(_TAKEN.c.id).where(_TAKEN.c.key == bindparam("key")).exists())


def balance(conn, customer_id: int, now: datetime) -> Balance:
    row = conn.execute(_BALANCE, {"cid": customer_id, "now": now}).one()
    return Balance(int(row[0]), int(row[1]), int(row[2]))


def balance_and_entry(conn, customer_id: int, now: datetime, key: str) -> tuple[Balance, bool]:
    """:func:`balance`, and whether an entry with ``key`` exists (any customer's: keys are unique)."""
    row = conn.execute(_BALANCE_AND_ENTRY, {"cid": customer_id, "now": now, "key": key}).one()
    return Balance(int(row[0]), int(row[1]), int(row[2])), bool(row[3])


def balances(conn, now: datetime, customer_ids=None) -> dict[int, Balance]:
    """Every customer's balance in one query (``customer_ids`` narrows it)."""
    q = select(
        L.c.customer_id,
        func.sum(case((L.c.available_at <= now, L.c.points), else_=0)),
        func.sum(case((L.c.available_at > now, L.c.points), else_=0)),
        func.sum(case((L.c.kind.in_(LIFETIME_KINDS), L.c.points), else_=0)),
    ).group_by(L.c.customer_id)
    if customer_ids is not None:
        q = q.where(L.c.customer_id.in_(list(customer_ids)))
    return {r[0]: Balance(int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in conn.execute(q)}


_ENTRY = select(L).where(L.c.key == bindparam("key"))
_LOCK = select(t.customers.c.id).where(t.customers.c.id == bindparam("cid")).with_for_update(key_share=True)


_INSERT = {
    name: dialect.insert(L).on_conflict_do_nothing(index_elements=["key"]).returning(L.c.id)
    for name, dialect in (("sqlite", sqlite_dialect), ("postgresql", postgresql_dialect))
}
_ORDER = select(t.orders).where(t.orders.c.shop == bindparam("shop"), t.orders.c.shopify_id == bindparam("sid"))


def order_row(conn, shopify_id: int):
    return conn.execute(_ORDER, {"shop": current(conn), "sid": shopify_id}).mappings().first()


def insert_entry(conn, values: dict) -> int | None:
    """``insert_ignore`` on the key, with the statement built once (this is the hot path)."""
    stmt = _INSERT.get(conn.dialect.name)
    if stmt is None:
        return insert_ignore(conn, L, values, ["key"])
    row = conn.execute(stmt, values).first()
    return row[0] if row else None


def entry(conn, key: str):
    return conn.execute(_ENTRY, {"key": key}).mappings().first()


def lock_customer(conn, customer_id: int) -> None:
    """Serialise work on one customer's account (PostgreSQL row lock; SQLite already has one writer).

    ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: the transaction usually holds a
    ``KEY SHARE`` lock on the row already (inserting an order or a ledger entry
    that references the customer takes one), and two transactions upgrading
    their key-share locks to ``FOR UPDATE`` deadlock; ``NO KEY UPDATE`` does not
    conflict with key-share locks, so the second one simply waits.
    """
    if not is_sqlite(conn):  # SQLite: BEGIN IMMEDIATE took the database's only write lock already
        conn.execute(_LOCK, {"cid": customer_id})


def history(conn, customer_id: int, limit: int = 50) -> list[dict]:
    rows = conn.execute(select(L).where(L.c.customer_id == customer_id)
                        .order_by(L.c.created_at.desc(), L.c.id.desc()).limit(limit)).mappings()
    out = []
    for r in rows:
        out.append({"id": r["id"], "key": r["key"], "kind": r["kind"], "points": r["points"],
                    "created_at": r["created_at"].isoformat(), "available_at": r["available_at"].isoformat(),
                    "order_id": r["order_id"], "rate": str(r["rate"]) if r["rate"] is not None else None,
                    "basis": str(r["basis"]) if r["basis"] is not None else None, "currency": r["currency"],
                    "reason": r["reason"], "actor": r["actor"]})
    return out

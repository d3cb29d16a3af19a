"""One operation on one customer's loyalty account, and what an order earns and gives back.

:class:`LoyaltyOp` writes ledger entries (:mod:`.ledger`) once per key, keeps
the balance current as it goes, and knows the customer's tier (:mod:`.tiers`),
which an order's earning rule multiplies by.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Select, and_, bindparam, or_, select

from ...storage import tables as t
from .ledger import (
    EARN,
    KINDS,
    LIFETIME_KINDS,
    REVERSE,
    SPEND,
    Balance,
    LoyaltyError,
    balance,
    balance_and_entry,
    cancel_key,
    earn_key,
    entry,
    floor_int,
    insert_entry,
    lock_customer,
    refund_key,
)
from .ledger import _BALANCE_AND_ENTRY
from .tiers import (
    ROW_COLUMNS,
    current_tier,
    keep_spend,
    keep_tier_row,
    read_tier_and_spend,
    spend_columns,
    spend_params,
    spend_shape,
    tier_config,
)

L = t.ledger

#: The balance, whether a key is taken, the stored tier row and the customer's spend in each tier
#: window, in one statement (:meth:`LoyaltyOp.has_entry`); built once per :func:`.tiers.spend_shape`.
_TIER_AT = 4  # where the tier row's columns start


@functools.cache
def _earn_read(shape: tuple[bool, int]) -> Select:
    return _BALANCE_AND_ENTRY.add_columns(*ROW_COLUMNS, *spend_columns(shape))


# --- one operation on one customer's account ------------------------------------------


@dataclass
class Change:
    key: str
    kind: str
    points: int
    reason: str
    available: bool  # counted in ``available`` now (else pending)


class LoyaltyOp:
    """Everything one event (or command, or task) does to one customer's account.

    ``add`` writes entries once per key. The balance is read at most once,
    when first needed (or with the first :meth:`has_entry`), and kept up to
    date by later entries; a replayed order event costs one query for both. :func:`engine.finish` then
    issues automatic rewards, re-evaluates the tier, tells Shopify, and calls
    ``loyalty_changed`` once per entry with the balance after it.
    """

    def __init__(self, ctx, customer_id: int, settings: dict):
        self.ctx = ctx
        self.customer_id = customer_id
        self.settings = settings
        self.changes: list[Change] = []
        self._bal: Balance | None = None
        self._tier: tuple[str | None] | None = None
        lock_customer(ctx.conn, customer_id)

    @property
    def now(self) -> datetime:
        return self.ctx.now

    @property
    def conn(self):
        return self.ctx.conn

    @property
    def bal(self) -> Balance:
        """The balance now, including every entry this operation wrote."""
        if self._bal is None:
            self._bal = balance(self.conn, self.customer_id, self.now)
        return self._bal

    @property
    def tier(self) -> str | None:
        """The customer's stored tier when this operation started (or as this operation set it)."""
        if self._tier is None:
            self._tier = (current_tier(self.conn, self.customer_id, ctx=self.ctx) if self.settings["tiers"] else None,)
        return self._tier[0]

    @tier.setter
    def tier(self, value: str | None) -> None:
        self._tier = (value,)

    def has_entry(self, key: str) -> bool:
        """Whether the ledger holds an entry with ``key``.

        Asked before the balance is read, the same statement reads the balance too, and the
        stored tier when tiers are on and it is not known yet (an order's earn needs all three:
        it is the statement a replay costs, the earn goes by the tier and a first earn's automatic
        rewards by the balance), with the spend the tier's evaluation after the event asks. The
        tier row and the spend are kept as the context's reads of them.
        """
        if self._bal is not None:
            return entry(self.conn, key) is not None
        s = self.settings
        if self._tier is not None or not s["tiers"]:
            self._bal, found = balance_and_entry(self.conn, self.customer_id, self.now, key)
            return found
        row = self.conn.execute(_earn_read(spend_shape(s)), {"cid": self.customer_id, "now": self.now, "key": key,
                                                **spend_params(s, self.now)}).one()
        self._bal = Balance(int(row[0]), int(row[1]), int(row[2]))
        end = _TIER_AT + len(ROW_COLUMNS)
        stored = keep_tier_row(self.ctx, self.customer_id, row[_TIER_AT:end])
        keep_spend(self.ctx, s, self.customer_id, self.now, row[end:])
        self._tier = (stored["tier"] if stored else None,)
        return bool(row[3])

    def read_tier(self) -> None:
        """Before a tier evaluation: the stored tier, with the spend it is evaluated from, in one statement."""
        if self._tier is None and self.settings["tiers"]:
            stored = read_tier_and_spend(self.ctx, self.settings, self.customer_id, self.now)
            self._tier = (stored["tier"] if stored else None,)

    def add(self, key: str, kind: str, points: int, *, available_at: datetime | None = None,
            order_id: int | None = None, rate=None, basis=None, currency: str | None = None,
            reason: str | None = None, actor: str | None = None) -> bool:
        """Append an entry unless its key exists; True when written."""
        if kind not in KINDS:
            raise ValueError(f"unknown ledger kind {kind!r}")
        if isinstance(points, bool) or not isinstance(points, int):
            raise TypeError(f"points must be an int, got {points!r}")
        available_at = available_at or self.now
        new_id = insert_entry(self.conn, {
            "key": key, "customer_id": self.customer_id, "kind": kind, "points": points,
            "available_at": available_at, "order_id": order_id, "rate": rate, "basis": basis,
            "currency": currency, "reason": reason, "actor": actor, "created_at": self.now,
        })
        if new_id is None:
            return False
        now_available = available_at <= self.now
        if self._bal is not None:  # else the first read of ``bal`` includes this entry
            if now_available:
                self._bal.available += points
            else:
                self._bal.pending += points
            if kind in LIFETIME_KINDS:
                self._bal.lifetime += points
        self.changes.append(Change(key, kind, points, reason or kind, now_available))
        return True

    def notices(self) -> list[dict]:
        """One ``loyalty_changed`` payload per entry written, with the balances right after it."""
        bal = Balance(self.bal.available, self.bal.pending, self.bal.lifetime)
        out = []
        for c in reversed(self.changes):
            out.append({"points": c.points, "balance": bal.available, "pending": bal.pending,
                        "lifetime": bal.lifetime, "reason": _reason_word(c.kind, c.key), "key": c.key})
            if c.available:
                bal.available -= c.points
            else:
                bal.pending -= c.points
            if c.kind in LIFETIME_KINDS:
                bal.lifetime -= c.points
        return out[::-1]

    def spend(self, key: str, points: int, *, reason: str, actor: str | None = None) -> bool:
        """Take available points; never below zero."""
        if points <= 0:
            raise LoyaltyError("points to spend must be positive")
        if entry(self.conn, key) is not None:
            return False
        if points > self.bal.available:
            raise LoyaltyError(f"customer {self.customer_id} has {self.bal.available} points available, "
                               f"not {points}")
        return self.add(key, SPEND, -points, reason=reason, actor=actor)


def _reason_word(kind: str, key: str) -> str:
    if kind == REVERSE:
        return "cancel" if key.startswith("loyalty:cancel:") else "refund"
    if kind == SPEND:
        return "reward"
    return kind


# --- earning and taking back ---------------------------------------------------------------


def basis_amount(order, basis: str) -> Decimal:
    """What the rule multiplies, in shop money (the presentment currency never enters)."""
    if basis == "subtotal":
        return order.subtotal.amount
    if basis == "subtotal_with_shipping":
        return order.subtotal.amount + order.shipping.amount
    if basis == "total":
        return order.total.amount
    raise ValueError(f"unknown basis {basis!r}")


#: An order's earn entry and its reversals so far, in one statement (a refund's event asks both).
_EARNED_AND_REVERSED = select(L).where(or_(
    L.c.key == bindparam("key"),
    and_(L.c.order_id == bindparam("oid"), L.c.kind == REVERSE)))
_REFUNDS = (select(t.refunds).where(t.refunds.c.order_id == bindparam("oid"))
            .order_by(t.refunds.c.created_at, t.refunds.c.id))


def reconcile_order(op: LoyaltyOp, order_row) -> None:
    """Bring an order's reversals up to date with its stored refunds and cancellation.

    Called after every order event, in any order of arrival: a refund stored
    before ``orders/paid`` is reversed as soon as the points are earned; a
    second refund replayed changes nothing. The refunds reversed so far total
    ``min(E, floor(E x refunded / basis))`` whichever order they came in; a
    cancellation takes whatever is left.
    """
    conn = op.conn
    sid = order_row["shopify_id"]
    if order_row["cancelled_at"] is None and not order_row["refunded"]:
        return  # nothing refunded (with merchandise) or cancelled: nothing to take back
    key, oid = earn_key(sid), order_row["id"]
    earned, done = None, {}
    for r in conn.execute(_EARNED_AND_REVERSED, {"key": key, "oid": oid}).mappings():
        if r["key"] == key:
            earned = r
        if r["order_id"] == oid and r["kind"] == REVERSE:
            done[r["key"]] = r["points"]
    if earned is None:
        return
    E, B = earned["points"], earned["basis"] or Decimal(0)
    remaining = E + sum(done.values())
    refunded_back = -sum(p for k, p in done.items() if k.startswith("loyalty:refund:"))
    refunds = conn.execute(_REFUNDS, {"oid": oid}).mappings().all()
    counted = sum((r["merchandise"] for r in refunds if refund_key(r["shopify_id"]) in done), Decimal(0))
    for r in refunds:
        key = refund_key(r["shopify_id"])
        if key in done:
            continue
        counted += r["merchandise"]
        if B > 0:
            target = min(E, floor_int(E * counted / B))
        else:
            target = E if counted > 0 else 0
        points = max(0, min(target - refunded_back, remaining))
        op.add(key, REVERSE, -points, available_at=earned["available_at"], order_id=order_row["id"],
               rate=earned["rate"], basis=r["merchandise"], currency=r["currency"],
               reason=f"refund {r['shopify_id']} of order {order_row['name'] or sid}: "
                      f"{r['merchandise']} {r['currency']} of {B} {earned['currency']}")
        refunded_back += points
        remaining -= points
    if order_row["cancelled_at"] is not None:
        op.add(cancel_key(sid), REVERSE, -remaining, available_at=earned["available_at"],
               order_id=order_row["id"], rate=earned["rate"], currency=earned["currency"],
               reason=f"order {order_row['name'] or sid} cancelled")


def earn_for_order(op: LoyaltyOp, order, order_row) -> None:
    """Earn an order's points once (the built-in rule or a plugin's ``points_for_order``)."""
    ctx, s = op.ctx, op.settings
    key = earn_key(order.shopify_id)
    if op.has_entry(key):
        return
    if order_row["cancelled_at"] is not None:
        return  # cancelled before its orders/paid was processed: nothing to earn
    tier = op.tier
    tcfg = tier_config(s, tier) or {}
    multiplier = tcfg.get("points_multiplier", Decimal(1))
    basis = basis_amount(order, s["basis"])
    rule = {"points_per_currency_unit": s["points_per_currency_unit"], "basis": s["basis"],
            "basis_amount": basis, "currency": order.currency, "points_multiplier": multiplier,
            "tier": tier, "pending_days": s["pending_days"]}
    customer = ctx.customer(op.customer_id)
    points = ctx.hook.points_for_order(order=order, customer=customer, rule=rule, ctx=ctx)
    if points is None:
        points = 0
    if isinstance(points, bool) or not isinstance(points, int):
        raise TypeError(f"points_for_order returned {points!r}; an int is required")
    if points < 0:
        raise ValueError(f"points_for_order returned {points}; points earned cannot be negative")
    rate = (Decimal(points) / basis).quantize(Decimal("0.000001")) if basis > 0 else None
    paid = order.processed_at or order.created_at or op.now
    available_at = min(paid, op.now) + timedelta(days=s["pending_days"])
    # ``basis`` on the entry is the merchandise subtotal refunds are measured against.
    op.add(key, EARN, points, available_at=available_at, order_id=order_row["id"], rate=rate,
           basis=order.subtotal.amount, currency=order.currency,
           reason=f"order {order.name or order.shopify_id}: {basis} {order.currency} ({s['basis']})"
                  + (f", tier {tier} x{multiplier}" if tier else ""))


def builtin_points(order, rule) -> int:
    """The default rule: ``floor(points_per_currency_unit x tier multiplier x basis)``."""
    per_unit = Decimal(str(rule["points_per_currency_unit"]))
    multiplier = Decimal(str(rule.get("points_multiplier", 1)))
    return floor_int(per_unit * multiplier * Decimal(str(rule["basis_amount"])))

"""The goodwill policy: how much, within which caps, and the monthly budget under a lock.

:func:`propose` computes the built-in offer for a case:

1. the amount for the complaint's severity (``amounts``), times the larger of
   the tier multiplier and the lifetime-spend multiplier, capped at
   ``max_per_offer``;
2. refused when the customer already had ``max_offers_per_year`` offers in
   the last 365 days (repeat abuse), reduced to what is left of
   ``max_per_customer_year``, refused below ``min_amount``;
3. the monthly budget is checked by :func:`check_budget` after the
   ``recovery_offer`` hook has spoken, because it binds a plugin's offer too.

An offer waiting for approval (``pending``) counts against the budget of the
month it was decided in and the customer's caps, so approving it later never
overspends; declining it frees its amount.

Concurrency: every decision runs under :func:`lock_budget`, a row lock
(``SELECT ... FOR UPDATE``) on the ``plugin_state`` row of the budget month.
On PostgreSQL two workers deciding offers at the same time would otherwise
each read the month's total before the other's offer is committed and
together overspend the budget (or both give a customer their "last" offer).
The second worker now waits at the lock until the first commits, and because
PostgreSQL's READ COMMITTED takes a fresh snapshot per statement, its sums
read after the lock include the first worker's offer. On SQLite the
transaction already holds the database write lock from ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from ...events import Money
from ...storage import tables as t
from ...storage.db import for_update, insert_ignore
from .settings import KINDS, defaults

PLUGIN = "recovery"
CENT = Decimal("0.01")
R = t.recoveries
#: Decisions that count against the budget and caps: an offer waiting for approval holds its amount.
RESERVING = ("offered", "pending")


def cents(amount: Decimal) -> Decimal:
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) containing ``now``: [start, next start)."""
    now = now.astimezone(timezone.utc)
    start = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, nxt


def budget_key(now: datetime) -> str:
    return f"budget:{now.astimezone(timezone.utc):%Y-%m}"


def lock_budget(ctx) -> None:
    """Serialise offer decisions of one month across workers (see the module docstring)."""
    conn, ps = ctx.conn, t.plugin_state
    key = budget_key(ctx.now)
    locked = for_update(select(ps.c.key).where(ps.c.plugin == PLUGIN, ps.c.key == key), conn)
    if conn.execute(locked).first() is None:
        # The month's first decision: create the row (a concurrent creator makes us wait here), then lock it.
        insert_ignore(conn, ps, {"plugin": PLUGIN, "key": key, "value": {"spent": {}}, "updated_at": ctx.now},
                      ["plugin", "key"])
        conn.execute(locked).first()


def month_spent(conn, now: datetime, currency: str) -> Decimal:
    start, end = month_bounds(now)
    total = conn.execute(select(func.coalesce(func.sum(R.c.amount), 0)).where(
        R.c.decision.in_(RESERVING), R.c.currency == currency, R.c.created_at >= start, R.c.created_at < end)).scalar()
    return cents(Decimal(total or 0))


def record_spent(ctx, currency: str) -> None:
    """Keep the month's total in the locked state row too, for `retention recovery report` readers."""
    spent = month_spent(ctx.conn, ctx.now, currency)
    ctx.state_set(PLUGIN, budget_key(ctx.now), {"spent": {currency: str(spent)}})


def customer_year(conn, customer_id: int, now: datetime, currency: str) -> tuple[int, Decimal]:
    """Offers a customer received in the last 365 days: how many, and how much in shop currency."""
    since = now - timedelta(days=365)
    n, amount = conn.execute(select(func.count(), func.coalesce(func.sum(R.c.amount), 0)).where(
        R.c.customer_id == customer_id, R.c.decision.in_(RESERVING), R.c.created_at >= since,
        R.c.currency == currency)).one()
    return int(n), cents(Decimal(amount or 0))


def multiplier(settings: dict, tier: str | None, spend: Decimal) -> tuple[Decimal, str | None]:
    best, why = Decimal(1), None
    if tier and tier in settings["tier_multipliers"]:
        m = Decimal(settings["tier_multipliers"][tier])
        best, why = m, f"tier {tier} ×{m.normalize():f}"
    for band in settings["value_multipliers"]:
        if spend >= band["min_spend"] and (why is None or band["multiplier"] > best):
            best, why = Decimal(band["multiplier"]), f"spend ≥ {band['min_spend']} ×{band['multiplier'].normalize():f}"
    return best, why


class Decline(Exception):
    """No offer, with a reason code (``over_budget``, ``too_many_recoveries``, ...) and details."""

    def __init__(self, code: str, detail: str = ""):
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


def propose(ctx, settings: dict, *, customer: dict, severity: str, tier: str | None, spend: Decimal,
            currency: str) -> dict:
    """The built-in offer, or :class:`Decline`. Call under :func:`lock_budget`."""
    amounts = {**defaults()["amounts"], **settings["amounts"]}
    base = Decimal(amounts.get(severity) or 0)
    if base <= 0:
        raise Decline("no_amount", f"no goodwill amount for severity {severity}")
    factor, why = multiplier(settings, tier, spend)
    amount = cents(base * factor)
    reasons = [f"{severity}: {base.normalize():f} {currency}" + (f", {why}" if why else "")]
    cap = settings["max_per_offer"]
    if cap is not None and amount > cap:
        amount = cents(cap)
        reasons.append(f"capped at {amount} per offer")
    count, received = customer_year(ctx.conn, customer["id"], ctx.now, currency)
    if count >= settings["max_offers_per_year"]:
        raise Decline("too_many_recoveries",
                      f"{count} offer{'s' if count != 1 else ''} in the last 365 days "
                      f"(max_offers_per_year = {settings['max_offers_per_year']})")
    year_cap = settings["max_per_customer_year"]
    if year_cap is not None:
        left = cents(year_cap - received)
        if amount > left:
            amount = max(left, Decimal(0))
            reasons.append(f"reduced to {amount}: {received} of {year_cap} {currency} received in 365 days")
    if amount <= 0 or amount < settings["min_amount"]:
        raise Decline("customer_cap", f"{received} of {year_cap} {currency} already received in 365 days"
                      if year_cap is not None else f"amount {amount} below min_amount {settings['min_amount']}")
    kind = "store_credit" if settings["store_credit"] else "discount_code"
    return {"kind": kind, "amount": amount, "currency": currency, "valid_days": settings["valid_days"],
            "severity": severity, "reason": "; ".join(reasons)}


def normalise_offer(offer: dict, proposal: dict | None, settings: dict, currency: str) -> dict:
    """A hook's offer completed from the proposal and settings; raises ValueError when unusable."""
    if not isinstance(offer, dict):
        raise ValueError(f"recovery_offer must return a dict, False or None, got {type(offer).__name__}")
    base = dict(proposal or {})
    base.update(offer)
    amount = base.get("amount")
    if isinstance(amount, Money):
        if amount.currency != currency:
            raise ValueError(f"offer in {amount.currency}, but the shop currency is {currency}")
        amount = amount.amount
    if amount is None or isinstance(amount, (bool, float)):
        raise ValueError("an offer needs an amount (Decimal, int, str or Money; never float)")
    amount = cents(Decimal(str(amount)))
    if amount <= 0:
        raise ValueError("an offer amount must be positive")
    cur = base.get("currency") or currency
    if cur != currency:
        raise ValueError(f"offer in {cur}, but the shop currency is {currency}")
    kind = base.get("kind") or ("store_credit" if settings["store_credit"] else "discount_code")
    if kind not in KINDS:
        raise ValueError(f"offer kind must be one of {KINDS}, got {kind!r}")
    valid_days = int(base.get("valid_days") or settings["valid_days"])
    return {"kind": kind, "amount": amount, "currency": currency, "valid_days": valid_days,
            "severity": base.get("severity"), "reason": str(base.get("reason") or "decided by a recovery_offer hook")}


def check_budget(ctx, settings: dict, amount: Decimal, currency: str) -> None:
    """The monthly budget binds every offer, the built-in's and a plugin's. Call under the lock."""
    budget = settings["monthly_budget"]
    if budget is None:
        return
    spent = month_spent(ctx.conn, ctx.now, currency)
    if spent + amount > budget:
        raise Decline("over_budget", f"{spent} of {budget} {currency} spent this month; the offer was {amount}")

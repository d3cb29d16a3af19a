"""Rewards: points (or a full punch card) turned into a single-use Shopify discount code.

A reward is a ``rewards`` row, a ``spend`` ledger entry (points rewards), a
``discountCodeBasicCreate`` action (``discountCodeBxgyCreate`` for a free unit)
limited to the customer (``context.customers``), single use, with an end date,
combinable as ``[offers] combines_with`` says, and a ``reward`` message, all under keys derived
from one ``key_base`` and written in one transaction. The code's text is a
digest of the key: the action runner retrying the create sends the same
code, and Shopify's "code already taken" counts as done, so a retry never
makes a second code.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from ...storage import tables as t
from .account import LoyaltyOp
from .ledger import LoyaltyError
from .settings import reward_name
from ...discounts import code_for, customer_gid, make_code, money_text, shop_currency  # noqa: F401 (re-exported)

R = t.rewards

#: Automatic rewards one event may issue at most (a large adjustment could buy many).
MAX_AUTOMATIC_PER_EVENT = 20


def issue(op: LoyaltyOp, *, key_base: str, feature: str, points: int | None, amount: Decimal | None = None,
          percent: Decimal | None = None, valid_days: int, title: str, description: str | None = None,
          product_gids=None, variant_gids=None, free_units: int | None = None, source_ref: str | None = None,
          actor: str | None = None, message_data: dict | None = None) -> dict:
    """Issue one reward; returns its row (the existing one when ``key_base`` was used before).

    ``free_units``: that many units of ``product_gids``/``variant_gids`` free (a Buy X get Y
    code, ``percent`` 100 on the row) instead of an amount or percentage off.

    :param message_data: more variables for the ``reward`` message (``free_item``, ``translations``).

    :raises LoyaltyError: not enough points, or no Shopify customer to limit the code to.
    """
    ctx, conn, s = op.ctx, op.conn, op.settings
    key = f"loyalty:reward:{key_base}"
    existing = conn.execute(select(R).where(R.c.key == key)).mappings().first()
    if existing is not None:
        return dict(existing)
    customer = ctx.customer(op.customer_id)
    gid = customer_gid(customer)
    if gid is None:
        raise LoyaltyError(f"customer {op.customer_id} has no Shopify id: a code cannot be limited to them")
    currency = shop_currency(conn, s)
    if amount is not None and currency is None:
        raise LoyaltyError("no shop currency known yet: set [loyalty] currency")
    if points:
        op.spend(f"loyalty:spend:reward:{key_base}", points, reason=f"reward: {title}", actor=actor)
    now = ctx.now
    expires = now + timedelta(days=valid_days)
    if free_units:
        percent, amount = Decimal(100), None
    # Points are spent above, so an unbound code is refused (the check above), never held.
    reward = make_code(
        ctx, key=key, action_key=f"loyalty:discount:{key_base}", feature=feature,
        discount_kind="punch_card" if feature == "punch" else "loyalty_reward", customer=customer, title=title,
        prefix=s["code_prefix"], ends_at=expires, percent=percent, amount=amount, currency=currency,
        points=points, row_kind="free_item" if feature == "punch" else None,
        product_gids=product_gids or (), variant_gids=variant_gids or (), free_units=free_units or None,
        source_ref=source_ref, unbound="refuse")
    code = reward["code"]
    ctx.schedule_message(key=f"loyalty:reward-notice:{key_base}", customer_id=op.customer_id, kind="reward",
                         due_at=now, data={
                             "code": code, "reward_description": description,
                             "discount_percent": str(percent) if percent is not None else None,
                             "discount_amount": money_text(amount) if amount is not None else None,
                             "currency": currency, "expires_at": expires.date().isoformat(),
                             "points_balance": op.bal.available, **(message_data or {}),
                         })
    return dict(conn.execute(select(R).where(R.c.key == key)).mappings().one())


def reward_title(reward: dict, currency: str | None) -> str:
    if reward["amount"] is not None:
        return f"Loyalty reward: {money_text(reward['amount'])} {currency or ''} off".strip()
    return f"Loyalty reward: {reward['percent'].normalize():f}% off"


def issue_automatic(op: LoyaltyOp) -> list[dict]:
    """Turn available points into the largest automatic rewards they cover, one after another.

    Keys count the customer's automatic rewards (``auto:<customer>:<n>``); the
    customer row is locked, so ``n`` is the same on every replay of the same
    state, and a replay after commit finds the points already spent.
    """
    s = op.settings
    autos = sorted((r for r in s["rewards"] if r["automatic"] and r["enabled"]), key=lambda r: r["points"],
                   reverse=True)
    if not autos or autos[-1]["points"] > op.bal.available:
        return []  # not even the cheapest is covered: spare the customer, count and currency lookups
    customer = op.ctx.customer(op.customer_id)
    if customer_gid(customer) is None:
        return []
    prefix = f"loyalty:reward:auto:{op.customer_id}:"
    n = op.conn.execute(select(func.count()).select_from(R).where(R.c.key.startswith(prefix, autoescape=True))).scalar()
    issued = []
    currency = shop_currency(op.conn, s)
    while len(issued) < MAX_AUTOMATIC_PER_EVENT:
        reward = next((r for r in autos if r["points"] <= op.bal.available), None)
        if reward is None or (reward["amount"] is not None and currency is None):
            break
        issued.append(issue(op, key_base=f"auto:{op.customer_id}:{n}", feature="loyalty", points=reward["points"],
                            amount=reward["amount"], percent=reward["percent"],
                            valid_days=reward["valid_days"] or s["reward_valid_days"],
                            title=reward_title(reward, currency), source_ref=f"reward:{reward_name(reward)}"))
        n += 1
    return issued


def redeem(op: LoyaltyOp, points: int, *, key_base: str, actor: str | None = None) -> dict:
    """``retention loyalty redeem``: a configured reward of exactly ``points``, or ``point_value`` each."""
    s = op.settings
    existing = op.conn.execute(select(R).where(R.c.key == f"loyalty:reward:{key_base}")).mappings().first()
    if existing is not None:
        return dict(existing)  # the same request again: the same code
    if points < s["min_redeem_points"]:
        raise LoyaltyError(f"at least {s['min_redeem_points']} points must be redeemed")
    reward = next((r for r in s["rewards"] if r["points"] == points), None)
    currency = shop_currency(op.conn, s)
    if reward is not None:
        amount, percent, valid = reward["amount"], reward["percent"], reward["valid_days"]
        source = f"reward:{reward_name(reward)}"
        title = reward_title(reward, currency)
    elif s["point_value"] is not None:
        amount = (s["point_value"] * points).quantize(Decimal("0.01"))
        if amount <= 0:
            raise LoyaltyError(f"{points} points are worth less than 0.01")
        percent, valid, source = None, None, "redeem"
        title = f"Loyalty reward: {money_text(amount)} {currency or ''} off".strip()
    else:
        sizes = ", ".join(str(r["points"]) for r in sorted(s["rewards"], key=lambda r: r["points"])) or "none"
        raise LoyaltyError(f"no reward costs {points} points (configured: {sizes}); "
                           "set [loyalty] point_value to redeem any amount")
    if points > op.bal.available:
        raise LoyaltyError(f"customer {op.customer_id} has {op.bal.available} points available, not {points}")
    return issue(op, key_base=key_base, feature="loyalty", points=points, amount=amount, percent=percent,
                 valid_days=valid or s["reward_valid_days"], title=title, source_ref=source, actor=actor)

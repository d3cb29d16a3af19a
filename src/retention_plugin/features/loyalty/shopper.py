"""What a customer may see of their own account and do with it: ``loyalty_account`` and ``loyalty_redeem``.

Pages the customer opens (the storefront rewards page) ask through these two
hooks instead of importing loyalty, so a plugin can stand in for it. Nothing
here is about anyone but the one customer asked for.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from ...storage import tables as t
from . import engine, rewards, tiers
from .ledger import EARN, REVERSE, LoyaltyError, balance
from .settings import reward_name, settings_of

#: History entries the page shows, newest first.
HISTORY = 20


def _reward_view(reward: dict, currency: str | None, available: int) -> dict:
    return {"name": reward_name(reward), "points": reward["points"], "title": reward["title"],
            "titles": dict(reward["titles"]),
            "amount": rewards.money_text(reward["amount"]) if reward["amount"] is not None else None,
            "percent": f"{reward['percent'].normalize():f}" if reward["percent"] is not None else None,
            "currency": currency if reward["amount"] is not None else None,
            "affordable": reward["points"] <= available}


def _tier_value(conn, s: dict, cid: int, tier: dict, now) -> Decimal:
    """What counts toward ``tier`` for this customer now: spend or points earned in its window."""
    since = now - timedelta(days=tier["window_days"])
    if tier["min_spend"] is not None:
        o = t.orders
        q = select(func.coalesce(func.sum(o.c.subtotal - o.c.refunded), 0)).where(
            o.c.customer_id == cid, o.c.paid_at.is_not(None), o.c.cancelled_at.is_(None), o.c.paid_at >= since)
        if not s["include_test_orders"]:
            q = q.where(o.c.test.is_(False))
        return Decimal(conn.execute(q).scalar() or 0)
    L = t.ledger
    return Decimal(conn.execute(select(func.coalesce(func.sum(L.c.points), 0)).where(
        L.c.customer_id == cid, L.c.kind.in_((EARN, REVERSE)), L.c.created_at >= since)).scalar() or 0)


def _next_tier(conn, s: dict, cid: int, current: str | None, now) -> dict | None:
    names = [tr["name"] for tr in s["tiers"]]
    after = names.index(current) + 1 if current in names else 0
    if after >= len(names):
        return None
    tier = s["tiers"][after]
    by_spend = tier["min_spend"] is not None
    need = Decimal(tier["min_spend"] if by_spend else tier["min_points"])
    have = _tier_value(conn, s, cid, tier, now)
    return {"name": tier["name"], "title": tier["title"], "measure": "spend" if by_spend else "points",
            "needed": str(need), "have": str(have), "missing": str(max(need - have, Decimal(0))),
            "currency": s["currency"] if by_spend else None,
            "percent": int(min(100, (have * 100 / need))) if need > 0 else 100}


def account(ctx, customer_id: int) -> dict:
    """The ``loyalty_account`` answer for one customer (see docs/hooks.md)."""
    s = settings_of(ctx)
    conn, now = ctx.conn, ctx.now
    data = engine.summary(conn, s, customer_id, now, history_limit=HISTORY)
    tier_cfg = tiers.tier_config(s, data["tier"]) if data["tier"] else None
    currency = rewards.shop_currency(conn, s)
    bal = balance(conn, customer_id, now)
    data.update({
        "paused": s["paused"],
        "tier_title": (tier_cfg or {}).get("title"),
        "next_tier": _next_tier(conn, s, customer_id, data["tier"], now) if s["tiers"] else None,
        "offers": [_reward_view(r, currency, bal.available)
                   for r in sorted(s["rewards"], key=lambda r: r["points"]) if r["enabled"]],
        # The marker changes whenever the ledger does: a redeem key built from it is the same in two
        # tabs opened on one balance, and new once that balance has moved.
        "ledger_marker": conn.execute(select(func.coalesce(func.max(t.ledger.c.id), 0)).where(
            t.ledger.c.customer_id == customer_id)).scalar(),
    })
    return data


def redeem(ctx, customer_id: int, reward: str, key: str, actor: str) -> dict:
    """The ``loyalty_redeem`` answer: ``{"reward": row, "available": n}`` or ``{"refused": why, "detail": ...}``."""
    s = settings_of(ctx)
    configured = next((r for r in s["rewards"] if reward_name(r) == reward), None)
    key_base = f"shopper:{customer_id}:{key}"
    done = ctx.conn.execute(select(t.rewards).where(t.rewards.c.key == f"loyalty:reward:{key_base}")).mappings().first()
    if done is None:  # a repeat of a finished request answers the same, whatever changed since
        if s["paused"]:
            return {"refused": "paused", "detail": "the loyalty programme is paused"}
        if configured is None:
            return {"refused": "unknown", "detail": f"no reward {reward!r}"}
        if not configured["enabled"]:
            return {"refused": "disabled", "detail": f"reward {reward!r} is not offered now"}
    elif configured is None:
        configured = {"points": done["points"]}
    try:
        out = engine.redeem(ctx, customer_id, configured["points"], key_base=key_base, actor=actor)
    except LoyaltyError as e:
        op_bal = balance(ctx.conn, customer_id, ctx.now)
        if configured["points"] > op_bal.available:
            return {"refused": "insufficient_points", "detail": str(e), "available": op_bal.available}
        return {"refused": "invalid", "detail": str(e)}
    return {"reward": out["reward"], "available": out["available"], "pending": out["pending"]}

"""What the loyalty hooks, tasks and commands do, in terms of the ledger, tiers, punch cards and rewards."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select

from ...shop_scope import only
from ...storage import tables as t
from .settings import SECTION, settings_of  # noqa: F401 (SECTION: the plugin registers it by this)
from . import punch, rewards, sync, tiers
from .account import LoyaltyOp, earn_for_order, reconcile_order
from .ledger import ADJUST, EARN, EXPIRE, LoyaltyError, balance, balances

log = logging.getLogger("retention_plugin.loyalty")

L = t.ledger


def finish(op: LoyaltyOp, *, evaluate_tier: bool) -> None:
    """After an operation's entries: automatic rewards, tier, Shopify sync, ``loyalty_changed``."""
    ctx, s, cid = op.ctx, op.settings, op.customer_id
    if any(c.points > 0 for c in op.changes):
        rewards.issue_automatic(op)
    evaluate = evaluate_tier and bool(s["tiers"])
    if evaluate:
        op.read_tier()
    before = op.tier
    after, changed = before, False
    if evaluate:
        after = tiers.evaluate(op.conn, s, op.now, [cid], ctx=ctx).get(cid)
        _, changed = tiers.store_tier(op.conn, cid, after, op.now, ctx=ctx)
        op.tier = after
    if not (op.changes or changed):
        return
    # The balance's mark and the tier change's are one statement (the version counts both).
    marks = 1 if op.changes and s["metafields"] == "balance_change" else 0
    if changed:
        marks += sync.announce_tier_change(ctx, s, ctx.customer(cid), before, after, defer_mark=True)
    if marks:
        sync.mark(op.conn, cid, op.now, marks)
    if not ctx.hook.loyalty_changed.get_hookimpls():
        return  # nobody listens: spare the balance query
    for notice in op.notices():
        ctx.hook.loyalty_changed(customer_id=cid, change=dict(notice, tier=before, previous_tier=before), ctx=ctx)
    if changed:
        ctx.hook.loyalty_changed(customer_id=cid, change={
            "points": 0, "balance": op.bal.available, "pending": op.bal.pending, "lifetime": op.bal.lifetime,
            "tier": after, "previous_tier": before, "reason": "tier", "key": None}, ctx=ctx)


# --- order events ------------------------------------------------------------------------------


def on_order_event(ctx, order_shopify_id: int, order=None, *, paid: bool) -> None:
    """orders/paid (``paid=True``, with the event's order), refunds/create and orders/cancelled."""
    s = settings_of(ctx)
    row = ctx.order_row(order_shopify_id)
    if row is None or row["customer_id"] is None:
        return
    if row["test"] and not s["include_test_orders"]:
        return
    op = LoyaltyOp(ctx, row["customer_id"], s)
    if paid and order is not None:
        earn_for_order(op, order, row)
    reconcile_order(op, row)
    punch.reconcile(op, row, paid=paid)
    finish(op, evaluate_tier=True)


# --- admin operations -------------------------------------------------------------------------


def adjust(ctx, customer_id: int, points: int, *, reason: str, actor: str, key: str,
           allow_negative: bool = False) -> dict:
    s = settings_of(ctx)
    if points == 0:
        raise LoyaltyError("an adjustment of 0 points changes nothing")
    if not reason or not reason.strip():
        raise LoyaltyError("a reason is required: adjustments are audited")
    op = LoyaltyOp(ctx, customer_id, s)
    existing = ctx.conn.execute(select(L).where(L.c.key == key)).mappings().first()
    if existing is None:
        if points < 0 and op.bal.available + points < 0 and not allow_negative:
            raise LoyaltyError(f"customer {customer_id} has {op.bal.available} points available; taking "
                               f"{-points} would leave {op.bal.available + points} (pass --allow-negative)")
        op.add(key, ADJUST, points, reason=reason.strip(), actor=actor)
    finish(op, evaluate_tier=True)
    return {"key": key, "created": existing is None, **op.bal.as_dict()}


def redeem(ctx, customer_id: int, points: int, *, key_base: str, actor: str) -> dict:
    s = settings_of(ctx)
    op = LoyaltyOp(ctx, customer_id, s)
    reward = rewards.redeem(op, points, key_base=key_base, actor=actor)
    finish(op, evaluate_tier=False)
    return {"reward": reward, **op.bal.as_dict()}


# --- what a customer's account looks like ----------------------------------------------------------


def summary(conn, s: dict, customer_id: int, now, *, history_limit: int = 50) -> dict:
    from .ledger import history

    bal = balance(conn, customer_id, now)
    row = tiers.tier_row(conn, customer_id)
    tier = row["tier"] if row else None
    issued = conn.execute(select(t.rewards).where(t.rewards.c.customer_id == customer_id,
                                                  t.rewards.c.feature.in_(("loyalty", "punch")))
                          .order_by(t.rewards.c.created_at.desc(), t.rewards.c.id.desc()).limit(20)).mappings()
    return {
        "customer_id": customer_id,
        **bal.as_dict(),
        "tier": tier,
        "tier_since": row["since"].isoformat() if row and tier else None,
        "perks": tiers.perks(s, tier),
        "punch_cards": punch.cards_state(conn, s, customer_id),
        "rewards": [{"code": r["code"], "kind": r["kind"], "points": r["points"],
                     "amount": rewards.money_text(r["amount"]) if r["amount"] is not None else None,
                     "percent": f"{r['percent'].normalize():f}" if r["percent"] is not None else None,
                     "currency": r["currency"], "status": r["status"], "source": r["source_ref"],
                     "created_at": r["created_at"].isoformat(),
                     "expires_at": r["expires_at"].isoformat() if r["expires_at"] else None} for r in issued],
        "history": history(conn, customer_id, history_limit),
    }


def facts(ctx, customer_id: int) -> dict:
    s = settings_of(ctx)
    bal = balance(ctx.conn, customer_id, ctx.now)
    tier = tiers.current_tier(ctx.conn, customer_id)
    p = tiers.perks(s, tier)
    out = {"tier": tier, "points": bal.available, "available": bal.available, "pending": bal.pending,
           "lifetime": bal.lifetime, "perks": p}
    if "support_priority" in p:
        out["support_priority"] = p["support_priority"]
    if s["punch_cards"]:
        out["punch_cards"] = {c["name"]: c["punches"] for c in punch.cards_state(ctx.conn, s, customer_id)}
    return {"loyalty": out}


# --- the daily task ---------------------------------------------------------------------------------


def last_activity(conn, customer_ids) -> dict:
    """When each customer last ordered (paid, not cancelled); else their last credit of points."""
    o = t.orders
    ids = list(customer_ids)
    if not ids:
        return {}
    out = dict(conn.execute(select(o.c.customer_id, func.max(o.c.paid_at)).where(
        o.c.customer_id.in_(ids), o.c.paid_at.is_not(None), o.c.cancelled_at.is_(None))
        .group_by(o.c.customer_id)).all())
    missing = [c for c in ids if out.get(c) is None]
    if missing:
        out.update(dict(conn.execute(select(L.c.customer_id, func.max(L.c.created_at)).where(
            L.c.customer_id.in_(missing), L.c.points > 0, L.c.kind.in_((EARN, ADJUST)))
            .group_by(L.c.customer_id)).all()))
    return out


#: Customers the daily pass handles per chunk (and per transaction when it runs as the worker's task).
DAILY_CHUNK = 1000


def customer_chunks(conn, size: int | None = None):
    """Every customer id, ascending, a chunk at a time (keyset on the primary key).

    Every ledger row, order and stored tier names a customer (foreign keys), so walking the
    customers table reaches everyone the whole-table queries reached, holding one chunk at a time.
    Inside a task's shop scope (:mod:`retention_plugin.tasks`) only that shop's customers are walked.
    """
    C = t.customers
    last = 0
    while True:
        ids = [cid for (cid,) in conn.execute(
            select(C.c.id).where(C.c.id > last, only(C)).order_by(C.c.id).limit(size or DAILY_CHUNK))]
        if not ids:
            return
        yield ids
        last = ids[-1]


def _chunk_done(ctx) -> None:
    """Commit what a chunk did when running as the worker's task (its own connection).

    Each effect of the daily pass carries its key or compares with the stored state (an expiry's
    key names the customer and the day of the last order; a tier is stored before it is
    announced), so a pass stopped between chunks and run again changes nothing twice; meanwhile
    SQLite's single write lock is released between chunks instead of held for the whole pass.
    """
    if ctx.source == "task":
        ctx.conn.commit()


def run_expiry(ctx, s: dict) -> dict:
    """Expire available points ``expire_after_days`` after the last order; warn before."""
    days = s["expire_after_days"]
    counts = {"expired": 0, "warned": 0}
    if not days:
        return counts
    for ids in customer_chunks(ctx.conn):
        _expire_chunk(ctx, s, ids, counts)
        _chunk_done(ctx)
    return counts


def _expire_chunk(ctx, s: dict, ids: list[int], counts: dict) -> None:
    days = s["expire_after_days"]
    now = ctx.now
    positive = {cid: b for cid, b in balances(ctx.conn, now, ids).items() if b.available > 0}
    activity = last_activity(ctx.conn, positive)
    warn = s["expiry_warning_days"]
    for cid, bal in positive.items():
        last = activity.get(cid)
        if last is None:
            continue
        expires_at = last + timedelta(days=days)
        tag = f"{cid}:{last.date().isoformat()}"
        if now >= expires_at:
            op = LoyaltyOp(ctx, cid, s)
            if op.bal.available > 0 and op.add(f"loyalty:expire:{tag}", EXPIRE, -op.bal.available,
                                               reason=f"no order since {last.date().isoformat()}"):
                counts["expired"] += 1
            finish(op, evaluate_tier=False)
        elif warn and now >= expires_at - timedelta(days=warn):
            ctx.schedule_message(key=f"loyalty:expiry-warning:{tag}", customer_id=cid, kind="points_expiry",
                                 due_at=now, data={"points": bal.available,
                                                   "expires_at": expires_at.date().isoformat()})
            counts["warned"] += 1


def run_matured_rewards(ctx, s: dict) -> int:
    """Pending points become available by the clock alone; give their automatic rewards."""
    if not s["pending_days"] or not any(r["automatic"] for r in s["rewards"]):
        return 0
    now = ctx.now
    ids = [cid for (cid,) in ctx.conn.execute(select(L.c.customer_id).where(
        L.c.points > 0, L.c.available_at <= now, L.c.available_at > now - timedelta(days=2), only(L)).distinct())]
    n = 0
    for cid in ids:
        op = LoyaltyOp(ctx, cid, s)
        n += len(rewards.issue_automatic(op))
        finish(op, evaluate_tier=False)
    return n


def run_tiers(ctx, s: dict) -> int:
    """Re-evaluate everyone's tier: promotions after a configuration change, demotions as orders age."""
    if not s["tiers"]:
        return 0
    changes = 0
    for ids in customer_chunks(ctx.conn):
        changes += _tiers_chunk(ctx, s, ids)
        _chunk_done(ctx)
    return changes


def _tiers_chunk(ctx, s: dict, ids: list[int]) -> int:
    conn, now = ctx.conn, ctx.now
    CT = t.customer_tiers
    stored = dict(conn.execute(select(CT.c.customer_id, CT.c.tier).where(CT.c.customer_id.in_(ids))).all())
    changed = []
    # With the ids given, customers without activity come back as None: unchanged unless they held a tier.
    for cid, tier in tiers.evaluate(conn, s, now, ids).items():
        if stored.get(cid) != tier:
            before, _ = tiers.store_tier(conn, cid, tier, now)
            changed.append((cid, before, tier))
    conn.execute(CT.update().where(CT.c.customer_id.in_(ids)).values(evaluated_at=now))
    bals = balances(conn, now, [c for c, _, _ in changed]) if changed else {}
    for cid, before, tier in changed:
        bal = bals.get(cid) or balance(conn, cid, now)
        sync.announce_tier_change(ctx, s, ctx.customer(cid), before, tier)
        ctx.hook.loyalty_changed(customer_id=cid, change={
            "points": 0, "balance": bal.available, "pending": bal.pending, "lifetime": bal.lifetime,
            "tier": tier, "previous_tier": before, "reason": "tier", "key": None}, ctx=ctx)
    return len(changed)


def daily(ctx) -> dict:
    s = settings_of(ctx)
    result = run_expiry(ctx, s)
    result["rewards"] = run_matured_rewards(ctx, s)
    result["tier_changes"] = run_tiers(ctx, s)
    log.info("loyalty daily: %s", result)
    return result

"""The response watch and the outcome recorder: two periodic tasks.

``recovery.response_watch`` (every 15 minutes) looks for tickets from valued
customers (a tier in ``[recovery.watch] tiers`` or lifetime spend of at
least ``min_spend``) that have had no public agent reply for
``after_hours``. Each is escalated once: ``tickets.escalated_at`` is set by
a conditional update (the row that flips it wins), the priority is raised
and a tag added through the outbox, and ``ticket_escalated`` is called so a
plugin can tell a team channel.

``recovery.outcomes`` (hourly) records for each recovery case whether the
customer ordered again within ``outcome_days`` of the decision.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import or_, select, update

from ...customers import lifetime_spend
from ...platforms.zendesk.requests import ticket_update
from ...shop_scope import only
from ...storage import tables as t
from ...discounts import shop_currency
from .context_note import PRIORITY_RANK, customer_facts
from .settings import PRIORITIES, settings_of

WATCH_EVERY = 15 * 60
OUTCOMES_EVERY = 60 * 60


def current_priority(conn, row: dict) -> str | None:
    """The ticket's priority as it stands: the stored one, or the one routing set if that is higher.

    Routing raises a VIP's ticket to ``urgent`` through the outbox; the stored row
    only learns of it when Zendesk sends the change back (and not at all in dry
    run), so escalating from the stored ``normal`` would send ``high`` over ``urgent``.
    """
    stored = row.get("priority")
    request = conn.execute(select(t.actions.c.request).where(
        t.actions.c.key == f"recovery:route:{row['zendesk_id']}")).scalar()
    routed = (((request or {}).get("json") or {}).get("ticket") or {}).get("priority")
    if routed in PRIORITY_RANK and PRIORITY_RANK[routed] > PRIORITY_RANK.get(stored or "normal", 1):
        return routed
    return stored


def raised_priority(current: str | None, wanted: str) -> str | None:
    """The priority to set, or None when the ticket is already there (never lowers)."""
    rank = PRIORITY_RANK.get(current or "normal", PRIORITY_RANK["normal"])
    if wanted == "up":
        return PRIORITIES[rank + 1] if rank + 1 < len(PRIORITIES) else None
    return wanted if PRIORITY_RANK[wanted] > rank else None


def _standing(ctx, customer_id: int, currency: str | None) -> tuple[str | None, Decimal]:
    tier = (customer_facts(ctx, customer_id).get("loyalty") or {}).get("tier")
    spend = lifetime_spend(ctx.conn, customer_id)
    if currency is None and len(spend) == 1:
        currency = next(iter(spend))
    return tier, spend.get(currency, Decimal(0)) if currency else Decimal(0)


def valued(watch: dict, tier: str | None, spend: Decimal) -> str | None:
    """Why a customer is watched, or None."""
    if tier and tier in watch["tiers"]:
        return f"tier {tier}"
    if watch["min_spend"] is not None and spend >= watch["min_spend"]:
        return f"lifetime spend {spend:.2f} ≥ {watch['min_spend']}"
    return None


def response_watch(ctx) -> int:
    """Escalate waiting tickets of valued customers; returns how many were escalated."""
    settings = settings_of(ctx)
    watch = settings["watch"]
    if not watch["enabled"] or (not watch["tiers"] and watch["min_spend"] is None):
        return 0
    now = ctx.now
    tk = t.tickets
    due = now - timedelta(hours=watch["after_hours"])
    oldest = now - timedelta(hours=watch["max_age_hours"])
    rows = ctx.conn.execute(select(tk).where(
        tk.c.first_public_reply_at.is_(None), tk.c.escalated_at.is_(None), tk.c.customer_id.is_not(None),
        tk.c.created_at <= due, tk.c.created_at >= oldest,
        or_(tk.c.status.is_(None), tk.c.status.notin_(("solved", "closed"))), only(tk))
        .order_by(tk.c.created_at)).mappings().all()
    currency = shop_currency(ctx.conn, settings)
    standing: dict[int, tuple] = {}
    escalated = 0
    for row in rows:
        cid = row["customer_id"]
        if cid not in standing:
            standing[cid] = _standing(ctx, cid, currency)
        why = valued(watch, *standing[cid])
        if why is None:
            continue
        won = ctx.conn.execute(update(tk).where(tk.c.id == row["id"], tk.c.escalated_at.is_(None))
                               .values(escalated_at=now)).rowcount
        if won != 1:
            continue
        waited = (now - row["created_at"]).total_seconds() / 3600
        reason = f"no public reply after {waited:.1f} hours (limit {watch['after_hours']:g}); {why}"
        priority = raised_priority(current_priority(ctx.conn, row), watch["priority"])
        ctx.enqueue_action("zendesk", "ticket_update", f"recovery:escalate:{row['zendesk_id']}",
                           ticket_update(row["zendesk_id"], priority=priority, add_tags=[watch["tag"]]))
        ticket = dict(row)
        ticket["escalated_at"] = now
        customer = ctx.customer(cid)
        ctx.log.info("ticket %s escalated: %s", row["zendesk_id"], reason)
        ctx.hook.ticket_escalated(ticket=ticket, customer=customer, reason=reason, ctx=ctx)
        escalated += 1
    return escalated


# --- outcomes ------------------------------------------------------------------------------------


def repeat_order(conn, customer_id: int, anchor: datetime, days: int):
    """The first order (not cancelled, not a test) within ``days`` after ``anchor``, or None."""
    o = t.orders
    return conn.execute(select(o.c.id, o.c.created_at).where(
        o.c.customer_id == customer_id, o.c.created_at > anchor, o.c.created_at <= anchor + timedelta(days=days),
        o.c.cancelled_at.is_(None), o.c.test.is_(False)).order_by(o.c.created_at, o.c.id).limit(1)).first()


def outcome(conn, customer_id: int | None, anchor: datetime | None, days: int, now: datetime) -> tuple[str, int | None]:
    """``repeat`` (with the order id), ``no_repeat`` (window over), ``pending``, or ``unknown``."""
    if customer_id is None or anchor is None:
        return "unknown", None
    found = repeat_order(conn, customer_id, anchor, days)
    if found is not None:
        return "repeat", found.id
    if now >= anchor + timedelta(days=days):
        return "no_repeat", None
    return "pending", None


def record_outcomes(ctx) -> int:
    """Settle pending outcomes of recovery cases; returns how many were settled."""
    settings = settings_of(ctx)
    r = t.recoveries
    rows = ctx.conn.execute(select(r.c.id, r.c.customer_id, r.c.created_at).where(
        r.c.customer_id.is_not(None), or_(r.c.outcome.is_(None), r.c.outcome == "pending"), only(r))).all()
    settled = 0
    for row in rows:
        state, order_id = outcome(ctx.conn, row.customer_id, row.created_at, settings["outcome_days"], ctx.now)
        if state in ("repeat", "no_repeat"):
            ctx.conn.execute(update(r).where(r.c.id == row.id).values(
                outcome=state, outcome_order_id=order_id, outcome_at=ctx.now))
            settled += 1
    return settled

"""Context for the agent: who is writing, what they are worth, and where their ticket should go.

:func:`snapshot` gathers what the store knows about a customer (spend and
orders from the core tables, tier and points from whichever plugin answers
``customer_facts`` under ``"loyalty"``, churn risk from ``customer_scores``
once the analysis has filled it); :func:`note_text` turns it into the
internal note; :func:`route` picks priority, group and tags by the
``[[recovery.routing]]`` rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from babel.numbers import format_currency
from sqlalchemy import func, select

from ...customers import lifetime_spend
from ...discounts import shop_currency
from ...storage import tables as t
from .settings import PRIORITIES

PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}
OPEN_STATUSES_EXCLUDED = ("solved", "closed")


def money_text(amount: Decimal | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    if not currency:
        return f"{amount:.2f}"
    return format_currency(amount, currency, locale="en")


def customer_facts(ctx, customer_id: int) -> dict:
    """Everything plugins say about a customer (``customer_facts``), merged.

    When two plugins answer under the same name, the first answer wins: pluggy
    calls the most recently registered plugin first, so a plugin can stand in
    for a built-in's facts, as it can override a built-in's decisions.
    """
    merged: dict = {}
    for result in ctx.hook.customer_facts(customer_id=customer_id, ctx=ctx):
        if isinstance(result, dict):
            for name, facts in result.items():
                merged.setdefault(name, facts)
    return merged


@dataclass
class Snapshot:
    customer: dict
    currency: str | None
    spend: Decimal = Decimal(0)  # lifetime net spend in shop currency
    other_spend: dict = field(default_factory=dict)  # spend in other currencies, if any
    order_count: int = 0
    first_order_at: datetime | None = None
    recent_orders: list = field(default_factory=list)
    loyalty: dict | None = None  # None: no loyalty plugin answered
    open_complaints: list = field(default_factory=list)
    churn: dict | None = None
    goodwill_count: int = 0
    goodwill_amount: Decimal = Decimal(0)

    @property
    def tier(self) -> str | None:
        return (self.loyalty or {}).get("tier")

    @property
    def points(self):
        loyalty = self.loyalty or {}
        for k in ("available", "points", "balance"):
            if loyalty.get(k) is not None:
                return loyalty[k]
        return None

    @property
    def perks(self) -> dict:
        perks = (self.loyalty or {}).get("perks")
        return perks if isinstance(perks, dict) else {}


def snapshot(ctx, customer_id: int, settings: dict, *, exclude_ticket_id: int | None = None,
             with_orders: bool = True) -> Snapshot:
    conn = ctx.conn
    customer = ctx.customer(customer_id) or {"id": customer_id}
    currency = shop_currency(conn, settings)
    spend = lifetime_spend(conn, customer_id)
    snap = Snapshot(customer=customer, currency=currency)
    if currency is None and len(spend) == 1:
        snap.currency = currency = next(iter(spend))
    snap.spend = spend.get(currency, Decimal(0)) if currency else Decimal(0)
    snap.other_spend = {c: v for c, v in spend.items() if c != currency}
    o = t.orders
    live = (o.c.customer_id == customer_id, o.c.cancelled_at.is_(None), o.c.test.is_(False))
    snap.order_count, snap.first_order_at = conn.execute(
        select(func.count(), func.min(o.c.created_at)).where(*live)).one()
    if with_orders and settings["recent_orders"]:
        snap.recent_orders = [dict(r) for r in conn.execute(
            select(o).where(o.c.customer_id == customer_id, o.c.test.is_(False))
            .order_by(o.c.created_at.desc(), o.c.id.desc()).limit(settings["recent_orders"])).mappings()]
    facts = customer_facts(ctx, customer_id)
    if isinstance(facts.get("loyalty"), dict):
        snap.loyalty = facts["loyalty"]
    tk = t.tickets
    q = select(tk.c.zendesk_id, tk.c.complaint_severity, tk.c.complaint_reason, tk.c.status).where(
        tk.c.customer_id == customer_id, tk.c.complaint.is_(True),
        tk.c.status.is_(None) | tk.c.status.notin_(OPEN_STATUSES_EXCLUDED))
    if exclude_ticket_id is not None:
        q = q.where(tk.c.id != exclude_ticket_id)
    snap.open_complaints = [dict(r) for r in conn.execute(q.order_by(tk.c.id)).mappings()]
    sc = t.customer_scores
    churn = conn.execute(select(sc).where(sc.c.customer_id == customer_id)).mappings().first()
    snap.churn = dict(churn) if churn else None
    r = t.recoveries
    year_ago = ctx.now - timedelta(days=365)
    snap.goodwill_count, amount = conn.execute(select(func.count(), func.coalesce(func.sum(r.c.amount), 0)).where(
        r.c.customer_id == customer_id, r.c.decision == "offered", r.c.created_at >= year_ago)).one()
    snap.goodwill_amount = Decimal(amount or 0)
    return snap


def order_status(o: dict) -> str:
    if o.get("cancelled_at") is not None:
        return "cancelled"
    parts = [o.get("financial_status") or "pending"]
    if o.get("fulfilled_at") is not None or o.get("fulfillment_status") == "fulfilled":
        parts.append("fulfilled")
    else:
        parts.append(o.get("fulfillment_status") or "unfulfilled")
    refunded = o.get("refunded") or Decimal(0)
    if refunded > 0:
        parts.append(f"refunded {money_text(refunded, o.get('currency'))}")
    return ", ".join(parts)


# --- routing ---------------------------------------------------------------------------------


def _matches(rule: dict, snap: Snapshot) -> bool:
    if rule["tiers"] and snap.tier not in rule["tiers"]:
        return False
    if rule["min_spend"] is not None and snap.spend < rule["min_spend"]:
        return False
    if rule["min_orders"] is not None and snap.order_count < rule["min_orders"]:
        return False
    return True


def route(settings: dict, snap: Snapshot, current_priority: str | None) -> dict | None:
    """Priority, group and tags for a ticket, or None when nothing is to change.

    The first matching rule decides; the loyalty tier's ``support_priority``
    perk raises the priority further when ``use_tier_perks``. A priority is
    only ever raised.
    """
    rule = next((r for r in settings["routing"] if _matches(r, snap)), None)
    priority = rule["priority"] if rule else None
    why = f'rule "{rule["name"] or settings["routing"].index(rule) + 1}"' if rule else None
    perk = snap.perks.get("support_priority") if settings["use_tier_perks"] else None
    if isinstance(perk, str) and perk.lower() in PRIORITY_RANK:
        perk = perk.lower()
        if priority is None or PRIORITY_RANK[perk] > PRIORITY_RANK[priority]:
            priority = perk
            why = f"{snap.tier or 'tier'} perk support_priority" + (f" over {why}" if why else "")
    if priority is not None and current_priority in PRIORITY_RANK and \
            PRIORITY_RANK[current_priority] >= PRIORITY_RANK[priority]:
        priority = None  # already as high or higher
    group_id = rule["group_id"] if rule else None
    tags = list(rule["tags"]) if rule else []
    if priority is None and group_id is None and not tags:
        return None
    return {"rule": why, "priority": priority, "group_id": group_id, "tags": tags}


# --- the note ---------------------------------------------------------------------------------


def _name(customer: dict) -> str:
    name = " ".join(x for x in (customer.get("first_name"), customer.get("last_name")) if x)
    email = customer.get("email")
    if name and email:
        return f"{name} <{email}>"
    return name or email or f"customer {customer.get('id')}"


def note_text(snap: Snapshot, *, classification: dict | None, routing: dict | None) -> str:
    c = snap.customer
    cur = snap.currency
    lines = ["Retention context (posted once by retention-plugin)", ""]
    ident = _name(c)
    if c.get("shopify_id") is not None:
        ident += f" · Shopify customer {c['shopify_id']}"
    lines.append(f"Customer: {ident}")
    if snap.order_count:
        since = f" since {snap.first_order_at.date().isoformat()}" if snap.first_order_at else ""
        value = f"{money_text(snap.spend, cur)} lifetime spend over {snap.order_count} " \
                f"order{'s' if snap.order_count != 1 else ''}{since}"
        if snap.other_spend:
            value += " (also " + ", ".join(money_text(v, k) for k, v in sorted(snap.other_spend.items())) + ")"
    else:
        value = "no orders on record (a new customer, or one we could not match by email or id)"
    lines.append(f"Value: {value}")
    if snap.loyalty is None:
        lines.append("Loyalty: not available")
    else:
        points = snap.points
        text = f"tier {snap.tier}" if snap.tier else "no tier yet"
        if points is not None:
            text += f", {points} points available"
        if snap.perks:
            text += "; perks: " + ", ".join(f"{k}={v}" for k, v in sorted(snap.perks.items()))
        lines.append(f"Loyalty: {text}")
    if snap.recent_orders:
        lines.append(f"Last {len(snap.recent_orders)} order{'s' if len(snap.recent_orders) != 1 else ''}:")
        for o in snap.recent_orders:
            name = o.get("name") or f"order {o.get('shopify_id')}"
            lines.append(f"  - {name}, {o['created_at'].date().isoformat()}, "
                         f"{money_text(o['total'], o['currency'])}: {order_status(o)}")
    if snap.open_complaints:
        items = ", ".join(f"#{x['zendesk_id']} ({x['complaint_severity'] or 'complaint'})"
                          for x in snap.open_complaints[:5])
        more = f" and {len(snap.open_complaints) - 5} more" if len(snap.open_complaints) > 5 else ""
        lines.append(f"Open complaints: {len(snap.open_complaints)}: {items}{more}")
    else:
        lines.append("Open complaints: none")
    if snap.goodwill_count:
        lines.append(f"Goodwill in the last 12 months: {snap.goodwill_count} "
                     f"offer{'s' if snap.goodwill_count != 1 else ''}, {money_text(snap.goodwill_amount, cur)}")
    else:
        lines.append("Goodwill in the last 12 months: none")
    if snap.churn:
        p = snap.churn.get("p_alive")
        detail = [f"p_alive {Decimal(p):.2f}"] if p is not None else []
        if snap.churn.get("scored_at"):
            detail.append(f"scored {snap.churn['scored_at'].date().isoformat()}")
        segment = str(snap.churn.get("segment") or "unknown").replace("_", " ")
        lines.append(f"Churn risk: {segment}" + (f" ({', '.join(detail)})" if detail else ""))
    else:
        lines.append("Churn risk: unknown (no analysis yet)")
    if classification is not None:
        if classification["complaint"]:
            lines.append(f"This ticket: complaint, severity {classification['severity']} "
                         f"({classification['reason']})")
        else:
            lines.append("This ticket: not classified as a complaint")
    if routing:
        what = []
        if routing["priority"]:
            what.append(f"priority {routing['priority']}")
        if routing["group_id"]:
            what.append(f"group {routing['group_id']}")
        if routing["tags"]:
            what.append("tags " + " ".join(routing["tags"]))
        lines.append(f"Routing: {', '.join(what)} (by {routing['rule']})")
    return "\n".join(lines) + "\n"

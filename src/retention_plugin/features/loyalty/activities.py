"""Earning beyond orders: the rules of ``[loyalty.earn]`` and an admin's award.

Each rule writes one ``earn`` entry under a key that says what was rewarded,
so a replayed webhook, a retried review or a second daily run changes nothing:

=================  ==========================================  ===========================
rule               key                                         reason (ledger)
=================  ==========================================  ===========================
account_created    ``loyalty:activity:account_created:<cid>``  ``account_created``
birthday           ``loyalty:activity:birthday:<cid>:<year>``  ``birthday <year>``
review             ``loyalty:activity:review:<review id>``     ``review <review id>``
referral           ``loyalty:activity:referral:<referral id>`` ``referral <referral id>``
admin award        ``loyalty:activity:award:<key>``            ``award: <what the admin wrote>``
=================  ==========================================  ===========================

How many points a rule gives is ``points_for_activity``'s answer; the built-in
implementation returns the configured number. A referral taken back (its first
order refunded) is a ``reverse`` entry under the referral key plus ``:reverse``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from ...shop_scope import only_customers
from ...storage import tables as t
from ...storage.db import insert_ignore
from .account import LoyaltyOp
from .ledger import EARN, REVERSE, LoyaltyError, entry
from .settings import ACTIVITIES, settings_of

B = t.loyalty_birthdays
#: What ``loyalty award --reason`` accepts: a review the shop checked by hand, or anything else an admin gives.
AWARD_REASONS = ("review", "admin")


def activity_key(activity: str, ref) -> str:
    return f"loyalty:activity:{activity}:{ref}"


def rule_points(ctx, activity: str, customer: dict, details: dict) -> int:
    """What ``points_for_activity`` says the activity earns (0: nothing)."""
    s = settings_of(ctx)
    points = ctx.hook.points_for_activity(activity=activity, customer=customer, details=details,
                                          rule={"points": s["earn"][activity]}, ctx=ctx)
    if points is None:
        return 0
    if isinstance(points, bool) or not isinstance(points, int):
        raise TypeError(f"points_for_activity returned {points!r} for {activity}; an int is required")
    if points < 0:
        raise ValueError(f"points_for_activity returned {points} for {activity}; points earned cannot be negative")
    return points


def earn(ctx, customer_id: int, activity: str, ref, *, details: dict | None = None,
         points: int | None = None, reason: str | None = None, actor: str | None = None,
         key: str | None = None) -> dict:
    """Credit an activity once per key; returns ``{"key", "points", "created", available...}``.

    ``points`` None: ask ``points_for_activity``; a rule worth 0 writes nothing.
    """
    from .engine import finish

    if activity not in ACTIVITIES and activity != "award":
        raise ValueError(f"unknown activity {activity!r}")
    key = key or activity_key(activity, ref)
    s = settings_of(ctx)
    if entry(ctx.conn, key) is not None:
        op = LoyaltyOp(ctx, customer_id, s)
        return {"key": key, "points": entry(ctx.conn, key)["points"], "created": False, **op.bal.as_dict()}
    customer = ctx.customer(customer_id)
    if customer is None:
        raise LoyaltyError(f"no customer {customer_id}")
    if points is None:
        points = rule_points(ctx, activity, customer, {"ref": ref, **(details or {})})
    op = LoyaltyOp(ctx, customer_id, s)
    created = False
    if points > 0:
        created = op.add(key, EARN, points, reason=reason or f"{activity} {ref}", actor=actor)
    finish(op, evaluate_tier=created)
    return {"key": key, "points": points if created else 0, "created": created, **op.bal.as_dict()}


def take_back(ctx, customer_id: int, activity: str, ref, *, reason: str) -> bool:
    """Reverse what an activity earned (a referral whose order was refunded); once."""
    from .engine import finish

    earned = entry(ctx.conn, activity_key(activity, ref))
    if earned is None or earned["points"] <= 0:
        return False
    op = LoyaltyOp(ctx, customer_id, settings_of(ctx))
    done = op.add(activity_key(activity, ref) + ":reverse", REVERSE, -earned["points"], reason=reason)
    finish(op, evaluate_tier=done)
    return done


def award(ctx, customer_id: int, *, reason: str, points: int | None, ref: str | None, note: str | None,
          actor: str) -> dict:
    """``retention loyalty award``: a review the shop checked (the review rule, or ``points``), or an admin's gift.

    :raises LoyaltyError: worded for the admin, naming the option at fault.
    """
    if reason not in AWARD_REASONS:
        raise LoyaltyError(f"--reason must be one of {', '.join(AWARD_REASONS)}, not {reason!r}")
    if points is not None and points <= 0:
        raise LoyaltyError("--points must be a positive number (take points away with `loyalty adjust`)")
    if reason == "review":
        if not ref:
            raise LoyaltyError("--ref is required with --reason review: the review's id makes it count once")
        return earn(ctx, customer_id, "review", ref, points=points, actor=actor,
                    reason=f"review {ref}" + (f": {note}" if note else ""))
    if points is None:
        raise LoyaltyError("--points is required with --reason admin")
    if not note or not note.strip():
        raise LoyaltyError("--note is required with --reason admin: awards are audited")
    return earn(ctx, customer_id, "award", ref, points=points, actor=actor, reason=f"award: {note.strip()}",
                key=activity_key("award", ref))


# --- birthdays --------------------------------------------------------------------------------


def parse_birthday(value) -> tuple[int, int]:
    """(month, day) of a ``YYYY-MM-DD`` date (a metafield of type ``date``) or ``--MM-DD``.

    :raises ValueError: not such a date.
    """
    if isinstance(value, (date, datetime)):
        return value.month, value.day
    text = str(value or "").strip()
    if text.startswith("--") and len(text) == 7:
        text = "2000" + text[1:]  # a leap year, so 29 February is a date
    try:
        d = date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"birthday must be a date like 1990-04-23, got {value!r}") from None
    return d.month, d.day


def set_birthday(conn, customer_id: int, value, now: datetime, *, source: str = "api") -> bool:
    """Store a customer's birthday unless one is stored already (it is set once); True when stored.

    For the storefront and for plugins; the ``customers/create`` and ``customers/update`` webhooks
    call it with the ``[loyalty.earn] birthday_metafield`` value.
    """
    month, day = parse_birthday(value)
    if birthday_of(conn, customer_id) is not None:
        return False
    insert_ignore(conn, B, {"customer_id": customer_id, "month": month, "day": day, "source": source,
                            "set_at": now}, ["customer_id"])
    return birthday_of(conn, customer_id) == (month, day)


def birthday_of(conn, customer_id: int) -> tuple[int, int] | None:
    row = conn.execute(select(B.c.month, B.c.day).where(B.c.customer_id == customer_id)).first()
    return (row[0], row[1]) if row else None


def run_birthdays(ctx) -> int:
    """Give today's birthdays their points, once per customer and year (29 February: 28th in other years)."""
    today = ctx.now.date()
    days = [today.day]
    if today.month == 2 and today.day == 28 and not _leap(today.year):
        days.append(29)
    ids = [cid for (cid,) in ctx.conn.execute(select(B.c.customer_id).where(
        B.c.month == today.month, B.c.day.in_(days), only_customers(B.c.customer_id)))]
    n = 0
    for cid in ids:
        customer = ctx.customer(cid)
        if customer is None or customer.get("redacted_at") is not None:
            continue
        if earn(ctx, cid, "birthday", f"{cid}:{today.year}", reason=f"birthday {today.year}")["created"]:
            n += 1
    return n


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# --- customers/create and customers/update -------------------------------------------------------


def on_customer(ctx, event) -> None:
    info = event.customer
    if info is None or info.shopify_id is None:
        return
    row = ctx.conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == info.shopify_id)).first()
    if row is None:
        return
    cid = row[0]
    s = settings_of(ctx)
    value = (info.metafields or {}).get(s["earn"]["birthday_metafield"])
    if value:
        try:
            set_birthday(ctx.conn, cid, value, ctx.now, source="metafield")
        except ValueError:
            pass  # a malformed metafield is the shop's data, not a reason to dead-letter the delivery
    if event.created:
        earn(ctx, cid, "account_created", cid, reason="account_created")


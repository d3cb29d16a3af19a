"""What a referral goes through: invited -> ordered -> qualified (-> reversed), or rejected with a reason.

- **invited**: a visitor gave their email on the referrer's landing page
  (:func:`invite`). One row per email: the first referrer wins. When the email
  belongs to a Shopify customer, their first-order code is issued at once;
  otherwise when ``customers/create`` brings the account (:func:`bind_customer`).
- **ordered**: the referee's first paid order (:func:`on_order_paid`).
- **qualified**: ``pending_days`` after payment, unrefunded and uncancelled, past
  the abuse checks, the ``referrals.qualify`` task (:func:`qualify`) calls
  ``referral_qualified`` (loyalty pays the referrer there).
- **reversed**: the first order was refunded or cancelled after qualifying;
  ``referral_reversed`` is called (loyalty takes the points back).
- **rejected**: ``reason`` is one of :data:`REASONS`.

Abuse checks, each a rejection reason: the referee is the referrer (same
customer id, ``self_customer``), has the referrer's email up to case, dots in
Gmail addresses and ``+tags`` (``self_email``), or ships the first order to an
address the referrer's orders went to (``self_address``, compared as keyed
digests); the first order was refunded or cancelled before qualifying
(``refunded``, ``cancelled``); the referee had ordered before (``not_first_order``);
the referrer reached ``monthly_cap`` this calendar month (``monthly_cap``).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import bindparam, func, or_, select, update

from ...discounts import code_secret, customer_gid, issue_discount, money_text, shop_currency
from ...shop_scope import only_customers
from ...storage import tables as t
from ...storage import writes
from ...storage.db import insert_ignore, is_sqlite
from .settings import settings_of

R, H, O, C = t.referrals, t.referral_households, t.orders, t.customers
INVITED, ORDERED, QUALIFIED, REVERSED, REJECTED = "invited", "ordered", "qualified", "reversed", "rejected"
STATUSES = (INVITED, ORDERED, QUALIFIED, REVERSED, REJECTED)
REASONS = ("self_customer", "self_email", "self_address", "refunded", "cancelled", "not_first_order", "monthly_cap")
GMAIL = ("gmail.com", "googlemail.com")


class ReferralRefused(ValueError):
    """An invitation that is not taken; ``reason`` is a word, the message fit for the visitor."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def canonical_email(email: str | None) -> str | None:
    """The mailbox an address reaches: lower case, no ``+tag``, no dots for Gmail."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def household_digest(conn, address: dict | None) -> str | None:
    """A keyed digest of street, postcode and country (never stored in words)."""
    if not address or not address.get("address1"):
        return None
    parts = [" ".join(str(address.get(k) or "").lower().replace(",", " ").split())
             for k in ("address1", "address2", "zip", "country_code")]
    return hmac.new(code_secret(conn), ("household:" + "|".join(parts)).encode(), hashlib.sha256).hexdigest()


def _row(conn, referral_id: int) -> dict:
    return dict(conn.execute(select(R).where(R.c.id == referral_id)).mappings().one())


def _lock(conn, referral_id: int):
    q = select(R).where(R.c.id == referral_id)
    if not is_sqlite(conn):
        q = q.with_for_update()
    return conn.execute(q).mappings().first()


def _set(ctx, referral_id: int, **values) -> dict:
    ctx.conn.execute(update(R).where(R.c.id == referral_id).values(updated_at=ctx.now, **values))
    return _row(ctx.conn, referral_id)


def _has_paid_order(conn, customer_id: int, *, before_order=None) -> bool:
    q = select(O.c.id).where(O.c.customer_id == customer_id, O.c.paid_at.is_not(None))
    if before_order is not None:
        q = q.where(O.c.id != before_order["id"], O.c.created_at <= before_order["created_at"])
    return conn.execute(q.limit(1)).first() is not None


# --- the landing page ---------------------------------------------------------------------------


def invite(ctx, referrer_id: int, email: str) -> tuple[dict, dict | None]:
    """Record that ``email`` was invited by ``referrer_id``; returns (referral row, discount row or None).

    :raises ReferralRefused: the referrer's own address, someone invited by another, or a customer
        who has ordered already.
    """
    conn = ctx.conn
    email = email.strip().lower()
    referrer = ctx.customer(referrer_id)
    if referrer is None or referrer.get("redacted_at") is not None:
        raise ReferralRefused("unknown_referrer", "This referral link is not valid.")
    if canonical_email(referrer.get("email")) == canonical_email(email):
        raise ReferralRefused("self_email", "You cannot use your own referral link.")
    known = conn.execute(select(C).where(C.c.email == email, C.c.merged_into.is_(None))
                         .order_by(C.c.id).limit(1)).mappings().first()
    if known is not None and known["id"] == referrer_id:
        raise ReferralRefused("self_customer", "You cannot use your own referral link.")
    if known is not None and _has_paid_order(conn, known["id"]):
        raise ReferralRefused("not_first_order", "This offer is for a first order.")
    insert_ignore(conn, R, {"referrer_id": referrer_id, "referee_id": known["id"] if known else None,
                            "referee_email": email, "status": INVITED, "created_at": ctx.now,
                            "updated_at": ctx.now}, ["referee_email"])
    row = dict(conn.execute(select(R).where(R.c.referee_email == email)).mappings().one())
    if row["referrer_id"] != referrer_id:
        raise ReferralRefused("already_invited", "This email address has been invited already.")
    discount = issue_referee_discount(ctx, row) if known is not None else None
    return row, discount


def issue_referee_discount(ctx, referral: dict) -> dict | None:
    """The referee's first-order code, bound to them (once per referral); None while they are unknown."""
    if referral["referee_id"] is None or referral["status"] not in (INVITED, ORDERED):
        return None
    customer = ctx.customer(referral["referee_id"])
    if customer_gid(customer) is None:
        return None
    s = settings_of(ctx)
    key = f"referrals:discount:{referral['id']}"
    amount = s["discount_amount"]
    percent = s["discount_percent"] if amount is None else None
    currency = shop_currency(ctx.conn, ctx.section("loyalty") or {}) if amount is not None else None
    if amount is not None and currency is None:
        return None  # no shop currency known yet; a later visit or the account's webhook issues it
    off = f"{money_text(amount)} {currency}" if amount is not None else f"{Decimal(percent).normalize():f}%"
    row = issue_discount(ctx, key=key, action_key=key, feature="referrals", customer=customer, percent=percent,
                         amount=amount, currency=currency, ends_at=ctx.now + timedelta(days=s["discount_valid_days"]),
                         title=f"Welcome: {off} off your first order", prefix=s["code_prefix"],
                         source_ref=f"referral:{referral['id']}")
    if referral["discount_key"] != key:
        _set(ctx, referral["id"], discount_key=key)
    return row


# --- webhooks -----------------------------------------------------------------------------------


def bind_customer(ctx, info) -> None:
    """``customers/create``/``update``: an invited email now has an account; give its code."""
    if info is None or info.shopify_id is None or not info.email:
        return
    cid = ctx.conn.execute(select(C.c.id).where(C.c.shopify_id == info.shopify_id)).scalar()
    if cid is None:
        return
    row = ctx.conn.execute(select(R).where(R.c.referee_email == info.email.strip().lower(),
                                           R.c.referee_id.is_(None))).mappings().first()
    if row is None:
        return
    row = _set(ctx, row["id"], referee_id=cid)
    issue_referee_discount(ctx, row)


# Built once (it runs for every paid order); an empty list of emails matches none.
_INVITED = select(R).where(R.c.status == INVITED, or_(
    R.c.referee_id == bindparam("cid"), R.c.referee_email.in_(bindparam("emails", expanding=True)))
).order_by(R.c.id).limit(1)


_ANY_INVITED = select(R.c.id).where(R.c.status == INVITED).limit(1)


def none_invited(conn) -> bool:
    """Whether no referral waits for its referee's first order, so no paid order can be one's (SQLite).

    Read once per transaction until ``referrals`` is written: most orders are nobody's referral, and
    the worker's group of deliveries then asks once instead of once per order. Only on SQLite, where
    nothing else commits while the group holds the write lock: on PostgreSQL an invitation the
    landing page commits during the group must be found by the group's next orders (nothing finds
    a missed first order later), so there it is always False and each order looks.
    """
    if not is_sqlite(conn):
        return False
    return writes.cached(conn, ("referrals.none_invited",), ("referrals",),
                         lambda: conn.execute(_ANY_INVITED).first() is None)


def on_order_paid(ctx, order) -> None:
    conn = ctx.conn
    orow = ctx.order_row(order.shopify_id)
    if orow is None or orow["customer_id"] is None:
        return
    cid = orow["customer_id"]
    digest = household_digest(conn, order.shipping_address)
    if digest:
        insert_ignore(conn, H, {"customer_id": cid, "digest": digest}, ["customer_id", "digest"])
    if none_invited(conn):
        return
    emails = {e.strip().lower() for e in (order.email, (ctx.customer(cid) or {}).get("email")) if e}
    row = conn.execute(_INVITED, {"cid": cid, "emails": sorted(emails)}).mappings().first()
    if row is None:
        return
    if row["referee_id"] is None:
        row = _set(ctx, row["id"], referee_id=cid)
    if row["referee_id"] != cid:
        return  # an order of someone else under the invited email; the invitee's own order counts
    if _has_paid_order(conn, cid, before_order=orow):
        _set(ctx, row["id"], status=REJECTED, reason="not_first_order", first_order_id=orow["id"])
        return
    _set(ctx, row["id"], status=ORDERED, first_order_id=orow["id"])


def on_order_taken_back(ctx, order_shopify_id: int, reason: str) -> None:
    """A refund or cancellation of a referee's first order: reject it, or reverse a qualified one."""
    conn = ctx.conn
    # The record of this refund or cancellation has just read (or written) the order: the context has it.
    orow = ctx.order_row(order_shopify_id)
    if orow is None:
        return
    for (rid,) in conn.execute(select(R.c.id).where(R.c.first_order_id == orow["id"])).all():
        row = _lock(conn, rid)
        if row["status"] == ORDERED:
            _set(ctx, rid, status=REJECTED, reason=reason)
        elif row["status"] == QUALIFIED:
            ctx.hook.referral_reversed(referral=_set(ctx, rid, status=REVERSED, reason=reason), ctx=ctx)


# --- the qualification task ---------------------------------------------------------------------


def _self_referral(conn, row: dict, order_row) -> str | None:
    if row["referee_id"] == row["referrer_id"]:
        return "self_customer"
    emails = conn.execute(select(C.c.id, C.c.email).where(C.c.id.in_([row["referrer_id"], row["referee_id"]])))
    by_id = dict(emails.all())
    referrer = canonical_email(by_id.get(row["referrer_id"]))
    theirs = {canonical_email(e) for e in (by_id.get(row["referee_id"]), row["referee_email"], order_row["email"])}
    if referrer is not None and referrer in theirs:
        return "self_email"
    mine = select(H.c.digest).where(H.c.customer_id == row["referrer_id"])
    shared = conn.execute(select(H.c.digest).where(H.c.customer_id == row["referee_id"],
                                                   H.c.digest.in_(mine)).limit(1)).first()
    return "self_address" if shared else None


def _qualified_this_month(conn, referrer_id: int, now) -> int:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return conn.execute(select(func.count()).select_from(R).where(
        R.c.referrer_id == referrer_id, R.c.status.in_((QUALIFIED, REVERSED)), R.c.qualified_at >= start)).scalar()


def qualify(ctx) -> dict:
    """Decide every ``ordered`` referral whose pending period is over."""
    s = settings_of(ctx)
    conn, now = ctx.conn, ctx.now
    counts = {QUALIFIED: 0, REJECTED: 0}
    ids = [rid for (rid,) in conn.execute(select(R.c.id).where(R.c.status == ORDERED, only_customers(R.c.referrer_id))
                                          .order_by(R.c.id))]
    for rid in ids:
        row = _lock(conn, rid)
        if row is None or row["status"] != ORDERED:
            continue
        orow = conn.execute(select(O).where(O.c.id == row["first_order_id"])).mappings().one()
        reason = None
        if orow["cancelled_at"] is not None:
            reason = "cancelled"
        elif orow["refunded"] and orow["refunded"] > 0:
            reason = "refunded"
        elif (orow["paid_at"] or orow["created_at"]) + timedelta(days=s["pending_days"]) > now:
            continue
        else:
            reason = _self_referral(conn, dict(row), orow)
        if reason is None and _qualified_this_month(conn, row["referrer_id"], now) >= s["monthly_cap"]:
            reason = "monthly_cap"
        if reason is not None:
            _set(ctx, rid, status=REJECTED, reason=reason)
            counts[REJECTED] += 1
            continue
        ctx.hook.referral_qualified(referral=_set(ctx, rid, status=QUALIFIED, qualified_at=now), ctx=ctx)
        counts[QUALIFIED] += 1
    return counts


def facts(ctx, customer_id: int) -> dict:
    """``customer_facts``: the link (None while ``[links]`` is incomplete) and the referrer's counts."""
    from ...links import LinkError
    from .codes import referral_url

    try:
        link = referral_url(ctx.settings, {"id": customer_id})
    except LinkError:
        link = None
    counts = dict(ctx.conn.execute(select(R.c.status, func.count()).where(R.c.referrer_id == customer_id)
                                   .group_by(R.c.status)).all())
    return {"link": link, **{s: counts.get(s, 0) for s in STATUSES}}


# --- the report ---------------------------------------------------------------------------------


def report(conn, *, top: int = 20) -> dict:
    by_status = {s: 0 for s in STATUSES}
    for status, n in conn.execute(select(R.c.status, func.count()).group_by(R.c.status)):
        by_status[status] = n
    reasons = {r: n for r, n in conn.execute(select(R.c.reason, func.count()).where(R.c.reason.is_not(None))
                                             .group_by(R.c.reason).order_by(func.count().desc(), R.c.reason))}
    per = {}
    for referrer, status, n in conn.execute(select(R.c.referrer_id, R.c.status, func.count())
                                            .group_by(R.c.referrer_id, R.c.status)):
        per.setdefault(referrer, {s: 0 for s in STATUSES})[status] = n
    ranked = sorted(per.items(), key=lambda kv: (-kv[1][QUALIFIED], -sum(kv[1].values()), kv[0]))[:top]
    emails = dict(conn.execute(select(C.c.id, C.c.email).where(C.c.id.in_([k for k, _ in ranked]))).all()) \
        if ranked else {}
    return {"total": sum(by_status.values()), "by_status": by_status, "rejected_by_reason": reasons,
            "referrers": [{"customer_id": k, "email": emails.get(k), **v} for k, v in ranked]}

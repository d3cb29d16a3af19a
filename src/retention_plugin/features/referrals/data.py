"""The rows referrals keep: what their text holds, and what becomes of them on merges and erasure.

An erased referee's email goes from their invitation (the row stays, so the referrer's counts and
the ledger still add up); a merged customer's invitations follow the survivor."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select, update

from ... import hookimpl
from ...redaction import TextColumns
from ...shops import delete_shop_rows
from ...storage import tables as t

R, H = t.referrals, t.referral_households

TEXT_COLUMNS = TextColumns(
    # The invited person's address, found by their customer id or by the email itself.
    own_identity={"referrals": ("referee_email",)},
    no_words={"referrals": ("status", "reason", "discount_key"), "referral_households": ("digest",)},
)


@hookimpl
def customers_merged(survivor, merged, ctx):
    conn = ctx.conn
    conn.execute(update(R).where(R.c.referrer_id == merged).values(referrer_id=survivor))
    conn.execute(update(R).where(R.c.referee_id == merged).values(referee_id=survivor))
    theirs = select(H.c.digest).where(H.c.customer_id == survivor)
    conn.execute(delete(H).where(H.c.customer_id == merged, H.c.digest.in_(theirs)))
    conn.execute(update(H).where(H.c.customer_id == merged).values(customer_id=survivor))


@hookimpl
def customer_data_request(event, ctx):
    """The invitations this person received, found by customer or by address, and how many address
    digests are kept for them. Who invited them is the inviter's data and stays out; the invitations
    they sent are counted by ``customer_facts`` (link and counts), whose addresses are others'."""
    from ...customers import customer_for
    from ...privacy import find_person

    info = event.customer
    # Who the person is as the erasure below sees them (every merged row, every address), so what is
    # exported is what an erasure would scrub.
    person = find_person(ctx.conn, customer_for(ctx.conn, shopify_id=info.shopify_id, email=info.email), info)
    ids, emails = person.customer_ids, person.emails
    # An invited address that never became a customer is still this person's, found by the address alone.
    found = ctx.conn.execute(select(R.c.referee_email, R.c.status, R.c.reason, R.c.discount_key, R.c.created_at,
                                    R.c.qualified_at)
                             .where(or_(R.c.referee_id.in_(ids), R.c.referee_email.in_(emails)))
                             .order_by(R.c.id)).mappings().all()
    digests = 0
    if ids:
        digests = ctx.conn.execute(select(func.count()).select_from(H).where(H.c.customer_id.in_(ids))).scalar_one()
    if not found and not digests:
        return None
    received = [{"email": r["referee_email"], "status": r["status"], "reason": r["reason"],
                 "first_order_discount": r["discount_key"], "invited_at": r["created_at"].isoformat(),
                 "qualified_at": r["qualified_at"].isoformat() if r["qualified_at"] else None} for r in found]
    return {"referral_invitations_received": received, "referral_address_digests_kept": digests}


@hookimpl
def customer_redact(event, ctx):
    erasure = ctx.erasure
    if erasure is None:
        return
    ids = erasure.person.customer_ids
    emails = {e.lower() for e in erasure.person.emails if e}
    n = ctx.conn.execute(update(R).where(or_(R.c.referee_id.in_(ids), R.c.referee_email.in_(emails)))
                         .values(referee_email=None)).rowcount
    erasure.count("referrals", n)
    erasure.count("referral_households", ctx.conn.execute(delete(H).where(H.c.customer_id.in_(ids))).rowcount)


@hookimpl
def shop_redact(event, ctx):
    for table in (H, R):  # rows follow their customers' shop: other shops' referrals stay
        delete_shop_rows(ctx.conn, table, event.shop)

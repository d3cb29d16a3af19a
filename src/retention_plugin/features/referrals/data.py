"""The rows referrals keep: what their text holds, and what becomes of them on merges and erasure.

An erased referee's email goes from their invitation (the row stays, so the referrer's counts and
the ledger still add up); a merged customer's invitations follow the survivor."""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update

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

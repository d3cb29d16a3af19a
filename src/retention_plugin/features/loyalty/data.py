"""The rows loyalty keeps (``ledger``, ``punches``, ``customer_tiers``, ``loyalty_sync``): what their
text holds, and what becomes of them when customers merge, a customer is erased or the shop's data
is deleted. Erasing a person never changes a sum: entries stay, only words go."""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update

from ... import hookimpl
from ...records.merging import move_rows
from ...redaction import REDACTED, TextColumns
from ...shops import delete_shop_rows
from ...storage import tables as t
from .ledger import ADJUST

L, P, CT, S, B = t.ledger, t.punches, t.customer_tiers, t.loyalty_sync, t.loyalty_birthdays

TEXT_COLUMNS = TextColumns(
    free_text={"ledger": ("reason", "actor")},
    no_words={"ledger": ("shop", "key", "kind", "currency"), "punches": ("shop", "key", "card"),
              "customer_tiers": ("tier",), "loyalty_sync": ("action_key",), "loyalty_birthdays": ("source",)},
)


@hookimpl
def customers_merged(survivor, merged, ctx):
    move_rows(ctx.conn, [L, P], survivor, merged)
    # One tier per customer: the survivor's stands; the merged row's moves only when the survivor has none.
    if ctx.conn.execute(select(CT.c.customer_id).where(CT.c.customer_id == survivor)).first():
        ctx.conn.execute(delete(CT).where(CT.c.customer_id == merged))
    else:
        move_rows(ctx.conn, [CT], survivor, merged)
    # A birthday is set once: the survivor's stands.
    if ctx.conn.execute(select(B.c.customer_id).where(B.c.customer_id == survivor)).first():
        ctx.conn.execute(delete(B).where(B.c.customer_id == merged))
    else:
        move_rows(ctx.conn, [B], survivor, merged)


@hookimpl
def customer_redact(event, ctx):
    # An adjustment's reason is an admin's free text; the generated ones name only orders.
    erasure = ctx.erasure
    if erasure is None:
        return
    # So is an award's note and a review's (``loyalty award --note``).
    ids = erasure.person.customer_ids
    n = ctx.conn.execute(update(L).where(L.c.customer_id.in_(ids), or_(
        L.c.kind == ADJUST, L.c.key.startswith("loyalty:activity:award:"),
        L.c.key.startswith("loyalty:activity:review:"))).values(reason=REDACTED)).rowcount
    erasure.count("ledger", n)
    erasure.count("loyalty_birthdays", ctx.conn.execute(delete(B).where(B.c.customer_id.in_(ids))).rowcount)


@hookimpl
def shop_redact(event, ctx):
    for table in (B, S, CT, P, L):
        delete_shop_rows(ctx.conn, table, event.shop)

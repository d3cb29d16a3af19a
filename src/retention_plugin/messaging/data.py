"""The messages the messaging plugin keeps (``messages``): what their text holds, and what becomes
of them when customers merge, a customer is erased or the shop's data is deleted."""

from __future__ import annotations

from sqlalchemy import update

from .. import hookimpl
from ..records.merging import move_rows
from ..redaction import TextColumns
from ..shops import delete_shop_rows
from ..storage import tables as t

m = t.messages

TEXT_COLUMNS = TextColumns(
    free_text={"messages": ("data", "rendered", "reason")},
    no_words={"messages": ("shop", "key", "kind", "message_class", "channel", "template", "locale", "status",
                           "provider_id")},
)


@hookimpl
def customers_merged(survivor, merged, ctx):
    move_rows(ctx.conn, [m], survivor, merged)


@hookimpl
def customer_redact(event, ctx):
    """Their messages keep kind, status and times (the contact policy counts them); what they said goes."""
    erasure = ctx.erasure
    if erasure is None:
        return
    n = ctx.conn.execute(update(m).where(m.c.customer_id.in_(erasure.person.customer_ids))
                         .values(data={}, rendered=None)).rowcount
    erasure.count("messages", n)


# After every plugin whose rows point at a message (recall cases, reminders, win-back groups).
@hookimpl(trylast=True)
def shop_redact(event, ctx):
    delete_shop_rows(ctx.conn, m, event.shop)

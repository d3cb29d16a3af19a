"""The rows win-back keeps (``winback``: who was offered and who held out): what their text holds,
and what becomes of them when customers merge or the shop's data is deleted. A row holds a key, a
group and a segment: no words of anyone's, so erasing a person needs no step here."""

from __future__ import annotations


from retention_plugin import hookimpl
from retention_plugin.records.merging import move_rows
from retention_plugin.redaction import TextColumns
from retention_plugin.shops import delete_shop_rows
from retention_plugin.storage import tables as t

W = t.winback

TEXT_COLUMNS = TextColumns(no_words={"winback": ("shop", "key", "group", "segment")})


@hookimpl
def customers_merged(survivor, merged, ctx):
    move_rows(ctx.conn, [W], survivor, merged)


@hookimpl
def shop_redact(event, ctx):
    delete_shop_rows(ctx.conn, W, event.shop)

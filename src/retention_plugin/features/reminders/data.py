"""The rows reminders keeps (``reminders``): what their text holds, and what becomes of them when
customers merge or the shop's data is deleted. A reminder holds keys, a rule, a SKU and times: no
words of anyone's, so erasing a person needs no step here."""

from __future__ import annotations


from retention_plugin import hookimpl
from retention_plugin.records.merging import move_rows
from retention_plugin.redaction import TextColumns
from retention_plugin.shops import delete_shop_rows
from retention_plugin.storage import tables as t

R = t.reminders

TEXT_COLUMNS = TextColumns(no_words={"reminders": ("shop", "key", "rule", "sku", "status")})


@hookimpl
def customers_merged(survivor, merged, ctx):
    move_rows(ctx.conn, [R], survivor, merged)


@hookimpl
def shop_redact(event, ctx):
    delete_shop_rows(ctx.conn, R, event.shop)

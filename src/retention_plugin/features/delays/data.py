"""The rows the delays plugin keeps (``shipments``: each fulfillment's latest carrier status): what
their text holds, and what becomes of them when the shop's data is deleted. A shipment belongs to an
order, not to a customer, and holds no words: merges and erasure need nothing here."""

from __future__ import annotations


from retention_plugin import hookimpl
from retention_plugin.redaction import TextColumns
from retention_plugin.shops import delete_shop_rows
from retention_plugin.storage import tables as t

TEXT_COLUMNS = TextColumns(no_words={"shipments": ("status",)})


@hookimpl
def shop_redact(event, ctx):
    delete_shop_rows(ctx.conn, t.shipments, event.shop)

"""The rows the recalls plugin keeps (``recalls``, ``recall_cases``): what their text holds, and what
becomes of them when customers merge or the shop's data is deleted.

A recall names a product, never a customer, and a case only ids: erasing a
person needs no step of its own here. ``recalls.title`` is an admin's words,
declared free text below, so the core's search removes the person's email,
phone and full name from it like from everyone's text.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from retention_plugin import hookimpl
from retention_plugin.records.merging import move_rows
from retention_plugin.redaction import TextColumns
from retention_plugin.shops import delete_shop_rows
from retention_plugin.storage import tables as t

from .settings import PLUGIN

rc, rl = t.recall_cases, t.recalls

TEXT_COLUMNS = TextColumns(
    free_text={"recalls": ("title",)},
    no_words={"recalls": ("shop", "key", "sku", "severity", "status"), "recall_cases": ("shop", "status",)},
)


@hookimpl
def customers_merged(survivor, merged, ctx):
    # A case is unique per (recall, customer): where both rows have a case in the same recall,
    # the survivor's stays and the merged one's goes.
    ctx.conn.execute(delete(rc).where(rc.c.customer_id == merged, rc.c.recall_id.in_(
        select(rc.c.recall_id).where(rc.c.customer_id == survivor))))
    move_rows(ctx.conn, [rc], survivor, merged)


@hookimpl
def shop_redact(event, ctx):
    # Each recall's options live in plugin_state, which carries no shop: they go with the shop's recalls.
    shop = event.shop.strip().lower()
    ids = ctx.conn.execute(select(rl.c.id).where(rl.c.shop == shop)).scalars().all()
    if ids:
        ps = t.plugin_state
        ctx.conn.execute(delete(ps).where(ps.c.plugin == PLUGIN, ps.c.key.in_([f"recall:{i}" for i in ids])))
    for table in (rc, rl):
        delete_shop_rows(ctx.conn, table, shop)

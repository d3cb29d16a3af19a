"""Merging two customer rows into one: the core moves its rows, each plugin moves its own.

:func:`.customers.resolve_customer` merges when one delivery names two stored
rows (a ticket's requester has the email of one customer and the Zendesk id of
another); the older row survives. The merged row keeps its id, points at the
survivor (``merged_into``) and gives up its unique links. The core's tables
follow here; then ``customers_merged(survivor, merged, ctx)`` lets every
plugin move the rows it keeps, in the same transaction, so a plugin with
tables of its own takes part exactly as the built-ins do. Last, the rows of a
switched-off plugin (a table of the schema nobody declares) follow too, where
no uniqueness makes it a choice: its hook cannot run, and its rows would
otherwise stay with the merged row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

from sqlalchemy import UniqueConstraint, update

from ..redaction import declared_columns
from ..storage import tables as t

#: The core's tables whose ``customer_id`` follows a merge (``rewards`` is written by the discounts
#: library on behalf of every feature that hands out codes).
CORE_TABLES = ("orders", "tickets", "ratings", "rewards")


class MergeWithoutPlugins(RuntimeError):
    """Two customer rows must be merged, but the caller gave no HookContext to tell the plugins with."""


def merge_customers(conn, survivor: Mapping, merged: Mapping, now: datetime, ctx) -> None:
    """Fold ``merged`` into ``survivor`` (both customer rows as read before the merge)."""
    if ctx is None:
        raise MergeWithoutPlugins(
            f"customers {merged['id']} and {survivor['id']} are one person, but nothing lets the plugins move "
            "their rows: pass ctx (a HookContext of this transaction)")
    c = t.customers
    links = {}
    for col in ("shopify_id", "zendesk_user_id", "external_id", "email"):
        if survivor[col] is None and merged[col] is not None:
            links[col] = merged[col]
    # Unique columns move: clear them on the merged row first.
    conn.execute(update(c).where(c.c.id == merged["id"]).values(
        merged_into=survivor["id"], shopify_id=None, zendesk_user_id=None, updated_at=now))
    if links:
        conn.execute(update(c).where(c.c.id == survivor["id"]).values(**links))
    move_rows(conn, CORE_TABLES, survivor["id"], merged["id"])
    ctx.hook.customers_merged(survivor=survivor["id"], merged=merged["id"], ctx=ctx)
    move_rows(conn, unowned_tables(ctx.pm), survivor["id"], merged["id"])


def move_rows(conn, tables, survivor: int, merged: int) -> None:
    """Point the ``customer_id`` of ``tables`` (names or Table objects) at the survivor.

    For tables without a uniqueness that involves the customer; the others decide which row stays.
    """
    for table in tables:
        table = t.metadata.tables[table] if isinstance(table, str) else table
        conn.execute(update(table).where(table.c.customer_id == merged).values(customer_id=survivor))


def unowned_tables(pm) -> list:
    """Tables of the schema with a ``customer_id`` that neither the core nor a registered plugin declares
    (a switched-off plugin's), and where the customer is in no unique key, so a row can simply follow."""
    owned = {name for d in declared_columns(pm) if d.metadata is None for name in d.tables()}
    out = []
    for table in t.metadata.sorted_tables:
        if table.name in owned or "customer_id" not in table.c:
            continue
        unique = [table.primary_key] + [c for c in table.constraints if isinstance(c, UniqueConstraint)]
        unique += [ix for ix in table.indexes if ix.unique]
        if any("customer_id" in {col.name for col in key.columns} for key in unique):
            continue
        out.append(table)
    return out

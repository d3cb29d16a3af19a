"""What the admin console may do with recalls (``register_admin_operations``)."""

from __future__ import annotations

from sqlalchemy import select

from retention_plugin.operations import NotFound, OperationRefused
from retention_plugin.shop_scope import only
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import read_only


def list_recalls(retention) -> list[dict]:
    """Every recall, newest first, with its shop; in a shop's scope (an embedded console session), its own."""
    from .engine import recall_status

    rl = t.recalls
    # Reads only (a notice sent since the last ``recalls.sync`` shows as notified all the same): the
    # console's GET waits for no worker's group on SQLite.
    with read_only(retention.engine) as conn:
        found = conn.execute(select(rl.c.id, rl.c.shop).where(only(rl)).order_by(rl.c.id.desc())).all()
        return [{**recall_status(conn, i), "shop": shop} for i, shop in found]


def status(retention, *, recall_id: int) -> dict:
    """One recall's counts and each case (the CLI's ``recall status`` and ``recall cases``)."""
    from .engine import recall_cases, recall_status

    rl = t.recalls
    with read_only(retention.engine) as conn:
        # Another shop's recall is no recall here (the same answer as an id nobody has).
        if conn.execute(select(rl.c.id).where(rl.c.id == recall_id, only(rl))).first() is None:
            raise NotFound(f"no recall with id {recall_id}")
        return {**recall_status(conn, recall_id), "cases": recall_cases(conn, recall_id)}


def create(retention, *, preview: bool, sku: str | None = None, product_id: int | None = None,
           ordered_from: str | None = None, ordered_to: str | None = None, severity: str = "safety",
           title: str | None = None, instructions: str | None = None, remedy: str | None = None) -> dict:
    """The CLI's ``recall create`` (``--preview`` counts who would be affected and changes nothing).

    In a shop's scope (an embedded console session) the recall is that shop's and reaches its buyers only
    (``create_recall`` keys and matches it by the shop in scope)."""
    from .engine import RecallError, create_recall

    try:
        return create_recall(retention, sku=sku, product_id=product_id, ordered_from=ordered_from,
                             ordered_to=ordered_to, severity=severity, title=title, instructions=instructions,
                             remedy=remedy, tickets=None, preview=preview, texts={})
    except RecallError as e:
        raise OperationRefused(str(e)) from None


def register(register):
    register("recalls.list", list_recalls)
    register("recalls.create", create)
    register("recalls.status", status)

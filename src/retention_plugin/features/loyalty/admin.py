"""What the admin console may do with loyalty accounts (``register_admin_operations``)."""

from __future__ import annotations

from sqlalchemy import select

from retention_plugin.context import HookContext
from retention_plugin.operations import NotFound, OperationRefused
from retention_plugin.shop_scope import only
from retention_plugin.storage import tables as t

from .ledger import LoyaltyError


def adjust(retention, *, customer_id: int, points: int, reason: str, actor: str, key: str) -> dict:
    """The CLI's ``loyalty adjust``; ``key`` (the form's own) makes a resubmitted form adjust once."""
    from .engine import adjust as engine_adjust

    c = t.customers
    try:
        with retention.engine.begin() as conn:
            # In a shop's scope (an embedded console session) another shop's customer is no customer at all.
            if conn.execute(select(c.c.id).where(c.c.id == customer_id, only(c))).first() is None:
                raise NotFound(f"no customer {customer_id}")
            ctx = HookContext(retention, conn, now=retention.now(), source="console")
            return engine_adjust(ctx, customer_id, points, reason=reason, actor=actor,
                                 key=f"loyalty:adjust:{key}")
    except LoyaltyError as e:
        raise OperationRefused(str(e)) from None


def register(register):
    register("loyalty.adjust", adjust)

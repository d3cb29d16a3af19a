"""What the admin console may do with loyalty accounts (``register_admin_operations``)."""

from __future__ import annotations

from retention_plugin.context import HookContext
from retention_plugin.operations import OperationRefused

from .ledger import LoyaltyError


def adjust(retention, *, customer_id: int, points: int, reason: str, actor: str, key: str) -> dict:
    """The CLI's ``loyalty adjust``; ``key`` (the form's own) makes a resubmitted form adjust once."""
    from .engine import adjust as engine_adjust

    try:
        with retention.engine.begin() as conn:
            ctx = HookContext(retention, conn, now=retention.now(), source="console")
            return engine_adjust(ctx, customer_id, points, reason=reason, actor=actor,
                                 key=f"loyalty:adjust:{key}")
    except LoyaltyError as e:
        raise OperationRefused(str(e)) from None


def register(register):
    register("loyalty.adjust", adjust)

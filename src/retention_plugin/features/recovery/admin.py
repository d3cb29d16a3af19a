"""What the admin console may do with goodwill offers (``register_admin_operations``)."""

from __future__ import annotations

from sqlalchemy import select

from retention_plugin.context import HookContext
from retention_plugin.operations import OperationRefused
from retention_plugin.shop_scope import only
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import read_only

from .settings import settings_of


def _case(row: dict) -> dict:
    out = {k: row.get(k) for k in ("id", "shop", "key", "customer_id", "trigger", "severity", "decision", "reason",
                                   "hold", "reviewed_by", "review_note", "created_at", "reviewed_at")}
    out["amount"] = f"{row['amount']:.2f}" if row.get("amount") is not None else None
    out["currency"] = row.get("currency")
    return out


def pending(retention) -> list[dict]:
    """The CLI's ``recovery pending``; in a shop's scope (an embedded console session), that shop's cases."""
    r = t.recoveries
    with read_only(retention.engine) as conn:  # the console's recovery page: no wait for a worker's group
        return [_case(row) for row in conn.execute(select(r).where(r.c.decision == "pending", only(r))
                                                   .order_by(r.c.id)).mappings()]


def _review(retention, case_id: int, approve: bool, actor: str, text: str | None) -> dict:
    from .offers import ApprovalError
    from .offers import approve as do_approve
    from .offers import decline as do_decline

    try:
        with retention.engine.begin() as conn:
            # Another shop's case answers like a case that does not exist (offers' own refusal), and is left as it is.
            r = t.recoveries
            if conn.execute(select(r.c.id).where(r.c.id == case_id, only(r))).first() is None:
                raise OperationRefused(f"no recovery case {case_id}")
            ctx = HookContext(retention, conn, now=retention.now(), source="console")
            if approve:
                row, now = do_approve(ctx, settings_of(retention), case_id, by=actor, note=text)
            else:
                if not (text or "").strip():
                    raise OperationRefused("a reason is required to decline an offer")
                row, now = do_decline(ctx, case_id, by=actor, reason=text.strip())
    except ApprovalError as e:
        raise OperationRefused(str(e)) from None
    return {**_case(row), "changed_now": now}


def approve(retention, *, case_id: int, actor: str, note: str | None = None) -> dict:
    return _review(retention, case_id, True, actor, note)


def decline(retention, *, case_id: int, actor: str, reason: str) -> dict:
    return _review(retention, case_id, False, actor, reason)


def register(register):
    register("recovery.pending", pending)
    register("recovery.approve", approve)
    register("recovery.decline", decline)

"""The outbox runner: every call to Shopify or Zendesk is a row first, performed here.

Each action has a unique idempotency key (enforced by the table), so a
feature may enqueue it as often as deliveries repeat; it is performed once.
Each attempt is recorded with its outcome and duration, so an admin can see
what failed and why, and replay it.
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from .platforms.errors import AlreadyExists, TransientError
from .storage import tables as t
from .storage.db import for_update

log = logging.getLogger("retention_plugin.actions")

LEASE = timedelta(minutes=5)


def claim(app, limit: int) -> list[dict]:
    now = app.now()
    a = t.actions
    due = or_(and_(a.c.status == "pending", a.c.next_attempt_at <= now),
              and_(a.c.status == "running", a.c.lease_until < now))
    with app.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(for_update(
            select(a.c.id).where(due).order_by(a.c.id).limit(limit), conn, skip_locked=True))]
        if not ids:
            return []
        conn.execute(update(a).where(a.c.id.in_(ids)).values(
            status="running", lease_until=now + LEASE, attempts=a.c.attempts + 1, updated_at=now))
        return [dict(r) for r in conn.execute(select(a).where(a.c.id.in_(ids)).order_by(a.c.id)).mappings()]


def perform(app, action: dict) -> dict:
    """Make the call; returns the result to store. Raises on failure."""
    request = action["request"]
    if action["platform"] == "shopify":
        return app.shopify_client().perform(request)
    if action["platform"] == "zendesk":
        return app.zendesk_client().perform(request)
    raise ValueError(f"unknown platform {action['platform']!r}")


def _classify(exc: Exception) -> str:
    """done (it exists already), retry (transient) or failed (retrying cannot help)."""
    if isinstance(exc, AlreadyExists):
        return "done"
    if isinstance(exc, TransientError) and exc.ambiguous:
        # The call may have taken effect (a timeout after sending a store credit):
        # repeating it blindly could pay twice, so a person decides (`actions retry`).
        return "failed"
    if isinstance(exc, TransientError) or getattr(exc, "transient", False):
        return "retry"
    return "failed"


def run_due(app, limit: int | None = None) -> dict:
    settings = app.settings.section("actions")
    counts: dict[str, int] = {}
    for action in claim(app, limit or settings["batch_size"]):
        started = app.now()
        t0 = time.monotonic()
        result = error = None
        http_status = None
        if app.dry_run:
            outcome, result = "dry_run", {"dry_run": True}
        else:
            try:
                result = perform(app, action)
                outcome = "done"
            except Exception as e:  # every failure is recorded on the action, never lost
                outcome = _classify(e)
                error = f"{type(e).__name__}: {e}"[:4000]
                http_status = getattr(e, "status", None)
                if outcome == "done":
                    result = {"already_exists": True}
        duration_ms = int((time.monotonic() - t0) * 1000)
        status = outcome
        next_at = app.now()
        if outcome == "retry":
            if action["attempts"] >= settings["max_attempts"]:
                status = "failed"
            else:
                status = "pending"
                next_at = app.now() + timedelta(seconds=min(3600, 5 * 2 ** action["attempts"]) * random.uniform(0.5, 1))
        with app.engine.begin() as conn:
            conn.execute(t.action_attempts.insert().values(
                action_id=action["id"], started_at=started, duration_ms=duration_ms, outcome=outcome,
                http_status=http_status, response=json.dumps(result, default=str)[:8000] if result else None,
                error=error))
            conn.execute(update(t.actions).where(t.actions.c.id == action["id"]).values(
                status=status, result=result, last_error=error, lease_until=None,
                next_attempt_at=next_at, updated_at=app.now()))
        if error:
            log.warning("action %s (%s %s) %s: %s", action["id"], action["platform"], action["kind"], status, error)
        counts[status] = counts.get(status, 0) + 1
    return counts


def retry(app, ids=None, status: str | None = None) -> int:
    conds = []
    if ids:
        conds.append(t.actions.c.id.in_(ids))
    if status:
        conds.append(t.actions.c.status == status)
    with app.engine.begin() as conn:
        return conn.execute(update(t.actions).where(and_(*conds), t.actions.c.status != "running").values(
            status="pending", attempts=0, next_attempt_at=app.now(), updated_at=app.now())).rowcount

"""The outbox runner: every call to Shopify or Zendesk is a row first, performed here.

Each action has a unique idempotency key (enforced by the table), so a
feature may enqueue it as often as deliveries repeat; it is performed once.
Each attempt is recorded with its outcome and duration, so an admin can see
what failed and why, and replay it.

Outages are waited out by the schedule, not in process: a client tries a
call at most twice, at once (a stale pooled connection, a blip), and then
hands the failure back; the action is attempted again after
``[actions] backoff_base_seconds`` doubling up to ``backoff_max_seconds``
(or after the platform's ``Retry-After``, if longer), up to
``[actions] max_attempts``. So one unreachable platform costs the worker
loop a connection attempt per due action, not seconds of sleep.
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from . import shops
from .platforms.errors import AlreadyExists, TransientError
from .shop_scope import scope
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


#: In-process retries of the runner's clients: one more try at once, and a
#: wait the platform asks for only when it is this short (seconds). Anything
#: longer goes back to the schedule.
IN_PROCESS = {"max_attempts": 2, "backoff_base": 0.0, "max_retry_after": 1.0}


class Clients:
    """The API clients of one pass of the runner, made on first use (one HTTP session each)."""

    def __init__(self, app):
        self.app = app
        self.made: dict[str, object] = {}

    def __call__(self, platform: str):
        if platform not in self.made:
            if platform == "shopify":
                self.made[platform] = self.app.shopify_client(**IN_PROCESS)
            elif platform == "zendesk":
                self.made[platform] = self.app.zendesk_client(**IN_PROCESS)
            else:
                raise ValueError(f"unknown platform {platform!r}")
        return self.made[platform]


def perform(app, action: dict, clients: Clients | None = None) -> dict:
    """Make the call; returns the result to store. Raises on failure."""
    return (clients or Clients(app))(action["platform"]).perform(action["request"])


def _classify(exc: Exception) -> str:
    """done (it exists already), retry (transient) or failed (retrying cannot help)."""
    if isinstance(exc, AlreadyExists):
        return "done"
    if isinstance(exc, TransientError) and exc.ambiguous:
        # The call may have taken effect and is not safe to repeat (a timeout after
        # sending a store credit or a comment): repeating it blindly could do it
        # twice, so a person decides (`actions retry`). Clients raise this only for
        # such calls; a failure before sending, or of a call safe to repeat, retries.
        return "failed"
    if isinstance(exc, TransientError) or getattr(exc, "transient", False):
        return "retry"
    return "failed"


def backoff(settings: dict, attempts: int, retry_after: float | None = None) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones.

    Exponential with jitter in [half, full] so a burst of actions that failed
    together does not come back together; never sooner than the platform's
    ``Retry-After``.
    """
    ceiling = min(settings["backoff_max_seconds"], settings["backoff_base_seconds"] * 2 ** max(0, attempts - 1))
    wait = ceiling * random.uniform(0.5, 1)
    return max(wait, retry_after or 0.0)


def run_due(app, limit: int | None = None) -> dict:
    settings = app.settings.section("actions")
    counts: dict[str, int] = {}
    clients_of: dict[str, Clients] = {}
    stopped_of: dict[str, bool] = {}  # per pass: an uninstall stops the shop's actions from the next pass on
    for action in claim(app, limit or settings["batch_size"]):
        started = app.now()
        t0 = time.monotonic()
        result = error = retry_after = None
        http_status = None
        shop = action.get("shop") or app.default_shop
        if shop not in stopped_of:
            with app.engine.connect() as conn:
                stopped_of[shop] = bool(shop) and shops.stopped(conn, shop)
        if stopped_of[shop]:
            outcome, error = "failed", f"{shop} uninstalled the app: its actions are not performed"
        elif app.dry_run:
            outcome, result = "dry_run", {"dry_run": True}
        else:
            try:
                # The shop's own API client (its token, its [shops."<shop>"] settings).
                with scope(shop or None):
                    clients = clients_of.setdefault(shop, Clients(app))
                    result = perform(app, action, clients)
                outcome = "done"
            except Exception as e:  # every failure is recorded on the action, never lost
                outcome = _classify(e)
                retry_after = getattr(e, "retry_after", None)
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
                next_at = app.now() + timedelta(seconds=backoff(settings, action["attempts"], retry_after))
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

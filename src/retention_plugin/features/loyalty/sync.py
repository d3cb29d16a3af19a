"""Shopify's view of an account: the tier tags, and the ``<namespace>.points`` and ``<namespace>.tier`` metafields.

A tier change swaps the customer's tier tags at once (:func:`announce_tier_change`).

Every change of a customer's balance or tier *marks* them (``loyalty_sync``:
``version`` + 1, ``dirty``) in the transaction that made it: an earn, a
reversal, a reward, an adjustment, an expiry, a tier change. Points that
mature by the clock change ``available`` with no transaction at all; the task
finds them in the ledger (entries whose ``available_at`` passed since its last
run) and marks their owners.

The task ``loyalty.metafields`` (every minute) turns marks into writes: one
``metafieldsSet`` action per customer with the balance and tier *as they are
when the action is made*, at most once per ``sync_interval_minutes``. Three
rules keep the value in Shopify the latest one:

- the version is read before the balance, and the mark is cleared only if the
  version is still that one (``dirty = version != read``): a change that
  commits while the write is prepared leaves the customer marked;
- a customer's next write is not made while the previous one is pending or
  running, so a slow or retried write can never land after a newer one;
- a write that failed marks the customer again (after a back-off that doubles
  with each failure in a row), so the value goes out again, current by then.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, or_, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from ...discounts import customer_gid
from ...platforms.shopify.mutations import metafields_set, tags_add, tags_remove
from ...shop_scope import of_row, only_customers, scope
from ...storage import tables as t
from .ledger import _BALANCE, stamp
from .settings import settings_of
from .tiers import TIER_COLUMN, tag_for

log = logging.getLogger("retention_plugin.loyalty")

S = t.loyalty_sync
A = t.actions
L = t.ledger

#: Customers written per run; the rest wait for the next minute.
BATCH = 500
#: The back-off after failed writes stops doubling here (2^7 intervals).
MAX_BACKOFF_STEPS = 7
WATERMARK = "metafields:matured_until"
IN_FLIGHT = ("pending", "running")


def _mark_stmt(dialect):
    stmt = dialect.insert(S).values(customer_id=bindparam("cid"), version=bindparam("n"), synced_version=0,
                                    dirty=True, changed_at=bindparam("now"), sent=0, failures=0)
    return stmt.on_conflict_do_update(index_elements=["customer_id"], set_={
        "version": S.c.version + bindparam("n"), "dirty": True, "changed_at": bindparam("now")})


# Built once: this runs for every order event that changes a balance.
_MARK = {"sqlite": _mark_stmt(sqlite_dialect), "postgresql": _mark_stmt(postgresql_dialect)}


def mark(conn, customer_id: int, now: datetime, changes: int = 1) -> None:
    """Note that a customer's balance or tier changed (inside the transaction that changed it).

    ``changes`` marks at once: the row is what that many marks one after the other would leave.
    """
    conn.execute(_MARK[conn.dialect.name], {"cid": customer_id, "now": now, "n": changes})


# Built once: the task runs these for every customer it writes.
#: The balance and the stored tier, in one statement: what a metafields write says.
_BALANCE_AND_TIER = _BALANCE.add_columns(TIER_COLUMN)
_OF_CUSTOMER = S.c.customer_id == bindparam("s_cid")
#: Written (or skipped): the version read is synced; still dirty if a change came since.
_SYNCED = {"synced_version": bindparam("s_version"),
           "dirty": case((S.c.version != bindparam("s_version"), True), else_=False)}
_RETRY_LATER = update(S).where(_OF_CUSTOMER).values(dirty=True, failures=bindparam("s_failures"),
                                                     due_at=bindparam("s_due"), action_key=None)
_SKIPPED = update(S).where(_OF_CUSTOMER).values(**_SYNCED, failures=0, action_key=None)
_WRITTEN = update(S).where(_OF_CUSTOMER).values(
    **_SYNCED, sent=bindparam("s_sent"), sent_at=bindparam("s_now"), due_at=bindparam("s_due"),
    failures=bindparam("s_failures"), action_key=bindparam("s_key"))


def mark_matured(ctx, settings: dict) -> int:
    """Mark the customers whose pending points became available since the last run."""
    conn, now = ctx.conn, ctx.now
    seen = ctx.state_get("loyalty", WATERMARK)
    # First run: look back over one return window, so points maturing around an upgrade are not missed.
    since = datetime.fromisoformat(seen) if seen else now - timedelta(days=settings["pending_days"] + 1)
    ids = [cid for (cid,) in conn.execute(select(L.c.customer_id).where(
        L.c.available_at > since, L.c.available_at <= now, L.c.available_at > L.c.created_at).distinct())]
    for cid in ids:
        mark(conn, cid, now)
    ctx.state_set("loyalty", WATERMARK, now.isoformat())
    return len(ids)


def mark_everyone(conn, now: datetime) -> int:
    """Every customer with loyalty history (``retention loyalty sync-metafields``)."""
    ids = {cid for (cid,) in conn.execute(select(L.c.customer_id).distinct())}
    ids |= {cid for (cid,) in conn.execute(select(t.customer_tiers.c.customer_id))}
    for cid in sorted(ids):
        mark(conn, cid, now)
    return len(ids)


def run(ctx) -> dict:
    """The ``loyalty.metafields`` task."""
    s = settings_of(ctx)
    out = {"matured": 0, "written": 0, "skipped": 0, "failed": 0}
    if s["metafields"] == "off":
        return out
    conn, now = ctx.conn, ctx.now
    if s["metafields"] == "balance_change":
        out["matured"] = mark_matured(ctx, s)
    interval = timedelta(minutes=s["sync_interval_minutes"])
    last = A.alias("last_write")
    rows = conn.execute(
        select(S, last.c.status.label("last_status")).outerjoin(last, last.c.key == S.c.action_key)
        .where(or_(S.c.dirty.is_(True), last.c.status == "failed"),
               or_(S.c.due_at.is_(None), S.c.due_at <= now),
               or_(last.c.status.is_(None), last.c.status.notin_(IN_FLIGHT)),
               only_customers(S.c.customer_id))
        .order_by(S.c.changed_at, S.c.customer_id).limit(BATCH)).mappings().all()
    for row in rows:
        cid, version = row["customer_id"], row["version"]  # the version is read before the balance
        failures = row["failures"]
        if row["last_status"] in ("done", "dry_run"):
            failures = 0
        elif row["last_status"] == "failed":
            failures += 1
            out["failed"] += 1
            retry_at = (row["sent_at"] or now) + interval * 2 ** min(failures - 1, MAX_BACKOFF_STEPS)
            if retry_at > now:
                # Counted once: the failed write is forgotten, the customer waits marked.
                conn.execute(_RETRY_LATER, {"s_cid": cid, "s_failures": failures, "s_due": retry_at})
                continue
        customer = ctx.customer(cid)
        gid = customer_gid(customer) if customer and customer.get("redacted_at") is None else None
        if gid is None:  # nobody in Shopify to write to (a Zendesk-only or erased customer)
            conn.execute(_SKIPPED, {"s_cid": cid, "s_version": version})
            out["skipped"] += 1
            continue
        available, _, _, tier = conn.execute(_BALANCE_AND_TIER, {"cid": cid, "now": now}).one()
        n = row["sent"] + 1
        key = f"loyalty:sync:{cid}:{n}"
        with scope(customer["shop"]):  # the write goes to the customer's shop
            ctx.enqueue_action("shopify", "metafields_set", key,
                               metafields_request(s, gid, int(available), tier))
        conn.execute(_WRITTEN, {"s_cid": cid, "s_version": version, "s_sent": n, "s_now": now,
                                "s_due": now + interval, "s_failures": failures, "s_key": key})
        out["written"] += 1
    if out["written"] or out["failed"]:
        log.info("loyalty metafields: %s", out)
    return out


def metafields_request(settings: dict, gid: str, points: int, tier: str | None) -> dict:
    ns = settings["metafield_namespace"]
    return metafields_set(gid, [
        {"namespace": ns, "key": "points", "type": "number_integer", "value": str(int(points))},
        {"namespace": ns, "key": "tier", "type": "single_line_text_field", "value": tier or "none"},
    ])


def announce_tier_change(ctx, settings: dict, customer: dict, previous: str | None, tier: str | None,
                         *, defer_mark: bool = False) -> int:
    """Tell Shopify: swap the tier tags (once per change: the key has its time); mark the metafields stale.

    Returns the marks due (0 or 1); with ``defer_mark`` the caller makes them, with its own (:func:`mark`'s
    ``changes``), so a tier change and a balance change cost one statement.
    """
    gid = customer_gid(customer)
    if gid is None:
        return 0  # a customer we know only from Zendesk: nothing to tag in Shopify
    cid, when = customer["id"], stamp(ctx.now)
    with of_row(customer):  # the daily task tags each customer in their own shop
        if previous is not None:
            ctx.enqueue_action("shopify", "tags_remove", f"loyalty:tier:{cid}:-{previous}:{when}",
                               tags_remove(gid, [tag_for(settings, previous)]))
        if tier is not None:
            ctx.enqueue_action("shopify", "tags_add", f"loyalty:tier:{cid}:+{tier}:{when}",
                               tags_add(gid, [tag_for(settings, tier)]))
    if settings["metafields"] == "off":
        return 0
    if not defer_mark:
        mark(ctx.conn, cid, ctx.now)  # the sync task writes points and tier as they are then
    return 1

"""Deleting a whole shop's data: after the shop uninstalled the app, or on an admin's word.

Shopify sends ``shop/redact`` 48 hours after a shop uninstalls the app
("Privacy law compliance", https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance).
Its HMAC covers the body, not the ``X-Shopify-Topic`` header, so a captured
signed body re-sent as ``shop/redact`` must not be able to wipe the shop. Beside
the parser's shape checks, the worker erases only when an ``app/uninstalled``
from the same shop was received and not yet used, and the ``shop_id`` of the
redact equals the ``id`` in that uninstall's body. Any other ``shop/redact`` is
held: ``dead``, with a reason saying how to release it
(``retention privacy shop-redact --confirm``), and nothing erased.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import delete, func, select, update

from . import events as ev
from .platforms.errors import DeadLetter
from .shop_scope import scope
from .shops import revoke, shop_rows
from .storage import tables as t

log = logging.getLogger("retention_plugin.privacy")

#: ``inbox.last_error`` of a held shop/redact starts with this; the admin command finds them by it.
HELD = "held:"
TOPIC = "shop/redact"

_RELEASE = ("Shopify sends shop/redact 48 hours after the app is uninstalled; if it was, see what would be "
            "erased with `retention privacy shop-redact`, then erase it with "
            "`retention privacy shop-redact --confirm`.")


def _is_id(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2 ** 63


def delivery_body(ctx) -> dict:
    """The JSON object of the delivery being handled ({} outside the worker, or when it is not one)."""
    if ctx.inbox_id is None:
        return {}
    raw = ctx.conn.execute(select(t.inbox.c.body).where(t.inbox.c.id == ctx.inbox_id)).scalar()
    try:
        payload = json.loads(bytes(raw or b""))
    except (ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}


def record_uninstall(ctx, event: ev.AppUninstalled) -> bool:
    """Remember an app/uninstalled, with the shop id from its body (a Shop: ``id``, ``myshopify_domain``).

    A body that is not this shop's Shop object (an order re-sent under this topic)
    is no uninstall: it is not remembered, so it cannot unlock a shop/redact.
    """
    body = delivery_body(ctx)
    domain, shop_id = body.get("myshopify_domain"), body.get("id")
    if not (isinstance(domain, str) and domain.strip().lower() == event.shop.strip().lower() and _is_id(shop_id)):
        log.warning("app/uninstalled delivery %s is not a Shop object of %s; not recorded as an uninstall",
                    ctx.inbox_id, event.shop)
        return False
    shop = event.shop.strip().lower()
    ctx.conn.execute(t.app_uninstalls.insert().values(shop=shop, shop_id=shop_id,
                                                      inbox_id=ctx.inbox_id, received_at=ctx.now))
    # The token no longer works and must not be used again; with the uninstall recorded, the
    # shop's work stops (shops.stopped) until it installs the app again.
    revoke(ctx.conn, shop)
    return True


def uninstalls(conn, shop: str) -> list[dict]:
    u = t.app_uninstalls
    return [dict(r) for r in conn.execute(select(u).where(func.lower(u.c.shop) == shop.strip().lower())
                                          .order_by(u.c.id)).mappings()]


def hold_reason(conn, shop: str, body: dict) -> str | None:
    """Why a shop/redact must wait for an admin, or None when an unused uninstall of this shop vouches for it."""
    known = uninstalls(conn, shop)
    if not known:
        return (f"{HELD} shop/redact for {shop} arrived but no app/uninstalled was received from that shop; "
                f"nothing was erased. {_RELEASE}")
    shop_id = body.get("shop_id")
    if not _is_id(shop_id) or shop_id not in {u["shop_id"] for u in known}:
        named = f"shop_id {shop_id}" if _is_id(shop_id) else "no valid shop_id"
        ids = ", ".join(str(u["shop_id"]) for u in known)
        return (f"{HELD} shop/redact for {shop} names {named}, but the app/uninstalled received from that shop "
                f"named shop id {ids}; nothing was erased. {_RELEASE}")
    return None


def _rows(conn, shop: str, keep_inbox) -> dict:
    """Rows per table of the shop's data: every table but ``task_runs``, and ``inbox`` but the requests kept."""
    rows = {}
    for table in t.metadata.sorted_tables:
        where = _erasable(conn, table, shop, keep_inbox)
        if where is None:
            continue
        n = conn.execute(select(func.count()).select_from(table).where(where)).scalar()
        if n:
            rows[table.name] = n
    return rows


def _erasable(conn, table, shop: str, keep_inbox):
    """Which rows of ``table`` an erasure of ``shop`` deletes (None: none)."""
    if table is t.task_runs:
        return None
    where = shop_rows(conn, table, shop)
    if where is not None and table is t.inbox:
        where = where & table.c.id.not_in(list(keep_inbox) or [-1])
    return where


def erase_shop(ctx, event: ev.ShopRedact, keep_inbox: list[int] = ()) -> dict[str, int]:
    """Delete every row of the shop's data (the uninstall record too); returns rows deleted per table.

    Only the shop's rows go (:func:`.shops.rows_of`): another shop of the install keeps every byte.
    Rows that carry no shop (``plugin_state``, a plugin's table without a ``shop`` column) are
    deleted only when no other shop has data. Every plugin deletes its own rows first
    (``shop_redact``: while the core's rows they point at are still there); then the core deletes
    the rest, children first, which also empties the tables of a plugin that is switched off.
    ``keep_inbox``: the request(s) being honoured, kept with the record that they were.
    """
    conn = ctx.conn
    shop = event.shop.strip().lower()
    with scope(shop):
        deleted = _rows(conn, shop, keep_inbox)
        ctx.hook.shop_redact(event=event, ctx=ctx)
        for table in reversed(t.metadata.sorted_tables):
            where = _erasable(conn, table, shop, keep_inbox)
            if where is not None:
                conn.execute(delete(table).where(where))
        conn.execute(t.privacy_requests.insert().values(kind="shop_redact", inbox_id=max(keep_inbox, default=None),
                                                        created_at=ctx.now))
    return deleted


def shop_redact_for_request(ctx, event: ev.ShopRedact) -> None:
    reason = hold_reason(ctx.conn, event.shop, delivery_body(ctx))
    if reason:
        log.warning("shop/redact delivery %s held: %s", ctx.inbox_id, reason)
        raise DeadLetter(reason)
    erase_shop(ctx, event, [ctx.inbox_id] if ctx.inbox_id is not None else [])


# --- the admin's view and confirmation ---------------------------------------------------------


def held_requests(conn) -> list[dict]:
    i = t.inbox
    return [dict(r) for r in conn.execute(
        select(i.c.id, i.c.shop, i.c.received_at, i.c.last_error).where(
            i.c.platform == "shopify", i.c.topic == TOPIC, i.c.status == "dead", i.c.last_error.like(f"{HELD}%"))
        .order_by(i.c.id)).mappings()]


def plan(conn, shop: str) -> dict:
    """What ``retention privacy shop-redact --confirm`` would do, erasing nothing."""
    held = [h for h in held_requests(conn) if h["shop"] == shop]
    rows = _rows(conn, shop, [h["id"] for h in held])
    return {"shop": shop, "uninstalls": uninstalls(conn, shop), "held": held, "rows": rows}


def confirm(app, shop: str, now) -> dict:
    """Erase the shop on an admin's word, releasing every held shop/redact (they end ``done``)."""
    from .context import HookContext

    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=now, source="cli")
        before = plan(conn, shop)
        keep = [h["id"] for h in before["held"]]
        deleted = erase_shop(ctx, ev.ShopRedact(platform="shopify", shop=shop), keep)
        if keep:
            conn.execute(update(t.inbox).where(t.inbox.c.id.in_(keep)).values(
                status="done", last_error=None, processed_at=now, lease_until=None))
    return {**before, "deleted": deleted}

"""The shops one install serves.

A shop is installed when the configuration names it (``[shopify] shop``, or a
``[shops."<domain>"]`` table of per-shop settings), or when an install through
OAuth stored its token (``shop_tokens``, authorization code grant). Domains
are kept normalised: lower case ``<name>.myshopify.com``.

``app/uninstalled`` revokes the shop's token and stops its work: until the shop
installs the app again (a token stored after the uninstall), its deliveries
other than the privacy ones are skipped and its actions are not performed. The
receiver keeps accepting the privacy topics from an uninstalled shop, since
Shopify sends ``shop/redact`` 48 hours after the uninstall.
"""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, delete, func, select, true

from .shop_scope import normalise
from .storage import tables as t
from .storage import writes

log = logging.getLogger("retention_plugin.shops")

#: Topics an uninstalled shop still sends, and that must still be honoured.
PRIVACY_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact", "app/uninstalled"})


#: Where a shop with a Zendesk account of its own has Zendesk post its webhooks (its domain follows).
ZENDESK_PATH = "/webhooks/zendesk"


def own_zendesk(settings, shop: str) -> bool:
    """Whether ``shop`` has a Zendesk account of its own (``[shops."<shop>".zendesk]``)."""
    return "zendesk" in settings.per_shop.get(shop, {})


def zendesk_path(shop: str) -> str:
    """The receiver path of ``shop``'s own Zendesk webhook."""
    return f"{ZENDESK_PATH}/{shop}"


def delivery_shop(row) -> str | None:
    """The shop an inbox row is processed for: a Shopify delivery names it; a Zendesk delivery is
    its shop's when it came through that shop's own path (its ``shop`` is then the shop's domain,
    where the shared path stores the Zendesk subdomain), else the configured shop's (None)."""
    if row["platform"] == "shopify":
        return row["shop"]
    return normalise(row["shop"]) if row["platform"] == "zendesk" and "." in (row["shop"] or "") else None


def configured(settings) -> list[str]:
    """The shops the configuration names, the ``[shopify] shop`` first."""
    out: list[str] = []
    main = settings.configured_shop
    if main:
        out.append(main)
    for shop in settings.shop_overrides():
        if shop not in out:
            out.append(shop)
    return out


def installed(app, conn) -> list[str]:
    """Every shop served: the configured ones, then those installed through OAuth, sorted."""
    out = configured(app.settings)
    st = t.shop_tokens
    for (shop,) in conn.execute(select(st.c.shop).where(st.c.grant_type == "authorization_code",
                                                        st.c.access_token.is_not(None)).order_by(st.c.shop)):
        if shop not in out:
            out.append(shop)
    return out


def is_installed(app, conn, shop: str) -> bool:
    shop = normalise(shop) or ""
    if shop in configured(app.settings):
        return True
    st = t.shop_tokens
    return conn.execute(select(st.c.id).where(st.c.shop == shop, st.c.grant_type == "authorization_code",
                                              st.c.access_token.is_not(None))).first() is not None


# Built once: the worker asks before every delivery of a shop.
_LAST_UNINSTALL = select(func.max(t.app_uninstalls.c.received_at)).where(t.app_uninstalls.c.shop == bindparam("shop"))
_TOKEN_SINCE = select(t.shop_tokens.c.created_at).where(t.shop_tokens.c.shop == bindparam("shop"))


def uninstalled_at(conn, shop: str):
    """When the shop last uninstalled the app, if it has not installed it again since; else None.

    Read once per transaction of ``conn`` (the worker asks before each delivery of its group) until
    ``app_uninstalls`` or ``shop_tokens`` is written on it, so an ``app/uninstalled`` handled earlier
    in the same group stops the shop's next deliveries. One committed by another worker during the
    group shows from the next group on (PostgreSQL; on SQLite none can commit meanwhile): those
    deliveries were as much in flight as the ones before it, and the shop's actions are checked
    again when they run (:func:`retention_plugin.actions.run_due`).
    """
    return writes.cached(conn, ("shops.uninstalled_at", shop), ("app_uninstalls", "shop_tokens"),
                         lambda: _uninstalled_at(conn, shop))


def _uninstalled_at(conn, shop: str):
    last = conn.execute(_LAST_UNINSTALL, {"shop": shop}).scalar()
    if last is None:
        return None
    token_since = conn.execute(_TOKEN_SINCE, {"shop": shop}).scalar()
    if token_since is not None and token_since > last:
        return None
    return last


def stopped(conn, shop: str) -> bool:
    """Whether the shop's work is stopped (it uninstalled the app)."""
    return uninstalled_at(conn, shop) is not None


def accepts(app, conn, shop: str, topic: str) -> bool:
    """Whether the receiver stores a delivery of ``topic`` from ``shop``."""
    if is_installed(app, conn, shop):
        return True
    if topic in PRIVACY_TOPICS:
        u = t.app_uninstalls
        return conn.execute(select(u.c.id).where(u.c.shop == shop).limit(1)).first() is not None
    return False


def revoke(conn, shop: str) -> int:
    """Forget the shop's Admin API token (in the caller's transaction); returns rows deleted."""
    n = conn.execute(delete(t.shop_tokens).where(t.shop_tokens.c.shop == shop)).rowcount
    if n:
        log.info("revoked the stored token of %s", shop)
    return n


def listing(app, conn) -> list[dict]:
    """For ``retention shops list``: each shop, how it is installed, and whether its work is stopped."""
    conf = configured(app.settings)
    st = t.shop_tokens
    tokens = {r["shop"]: r for r in conn.execute(select(st.c.shop, st.c.grant_type, st.c.access_token.is_not(None)
                                                        .label("has_token"))).mappings()}
    u = t.app_uninstalls
    seen = [r[0] for r in conn.execute(select(u.c.shop).distinct().order_by(u.c.shop))]
    out = []
    for shop in list(dict.fromkeys(installed(app, conn) + seen)):
        tok = tokens.get(shop)
        when = uninstalled_at(conn, shop)
        out.append({
            "shop": shop,
            "source": "config" if shop in conf else "oauth" if tok else "uninstalled",
            "token": (tok["grant_type"] if tok and tok["has_token"] else None),
            "stopped": when is not None,
            "uninstalled_at": when,
        })
    return out


def rows_of(table, shop: str):
    """A WHERE clause for ``table``'s rows that belong to ``shop``, or None when rows carry no shop.

    Rows with a ``shop`` column say it; others belong to the shop of the row a required foreign key
    points at (an order's lines, a customer's tier), followed as far as it goes.
    """
    if table is t.inbox:
        return (table.c.platform == "shopify") & (table.c.shop == shop)
    if "shop" in table.c:
        return table.c.shop == shop
    for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
        if fk.parent.nullable or fk.column.table is table:
            continue
        parent = rows_of(fk.column.table, shop)
        if parent is not None:
            return fk.parent.in_(select(fk.column).where(parent))
    return None


def others_have_data(conn, shop: str) -> bool:
    """Whether any other shop has rows: then rows that carry no shop cannot be told apart and are kept."""
    for table in (t.customers, t.orders, t.actions, t.messages, t.analysis_runs, t.recalls):
        if conn.execute(select(table.c.id).where(table.c.shop != shop).limit(1)).first() is not None:
            return True
    i = t.inbox
    return conn.execute(select(i.c.id).where(i.c.platform == "shopify", i.c.shop != shop).limit(1)).first() is not None


def shop_rows(conn, table, shop: str):
    """:func:`rows_of`, or, for rows that carry no shop, all of them when no other shop has data (else None:
    nothing of the table is the shop's for sure). For a plugin's ``shop_redact``: ``delete(T).where(...)``."""
    where = rows_of(table, shop)
    if where is not None:
        return where
    return None if others_have_data(conn, shop) else true()


def delete_shop_rows(conn, table, shop: str) -> int:
    """Delete ``table``'s rows of ``shop`` (:func:`shop_rows`); returns how many went."""
    where = shop_rows(conn, table, shop.strip().lower())
    if where is None:
        return 0
    return conn.execute(delete(table).where(where)).rowcount

"""HookContext: what a hook gets to change state, inside the caller's transaction."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable, Hashable, Iterable, Mapping

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection

from .shop_scope import current
from .storage import tables as t
from .storage import writes
from .storage.db import insert_ignore, upsert

# The per-event lookups, built once: constructing a select() at every call costs more than running it.
_ORDER_BY_SHOPIFY_ID = select(t.orders).where(t.orders.c.shop == bindparam("shop"),
                                              t.orders.c.shopify_id == bindparam("sid"))
_ORDER_BY_ID = select(t.orders).where(t.orders.c.id == bindparam("id"))
_ORDER_LINES = select(t.order_lines).where(t.order_lines.c.order_id == bindparam("id")).order_by(t.order_lines.c.id)
_CUSTOMER = select(t.customers).where(t.customers.c.id == bindparam("id"))
_STATE = select(t.plugin_state.c.value).where(t.plugin_state.c.plugin == bindparam("plugin"),
                                              t.plugin_state.c.key == bindparam("key"))


_NAMES: dict[tuple, tuple[str, ...]] = {}


def _names(tables: Iterable) -> tuple[str, ...]:
    # Every lookup passes its tables: the tuples the code holds are converted once (a cap bounds a
    # caller that builds new ones).
    names = _NAMES.get(tables) if type(tables) is tuple else None
    if names is None:
        names = tuple(x.name if isinstance(x, Table) else str(x) for x in tables)
        if type(tables) is tuple and len(_NAMES) < 512:
            _NAMES[tables] = names
    return names


_CUSTOMER_TABLES: tuple[str, ...] = ()


def _customer_tables() -> tuple[str, ...]:
    """``customers`` and every table with a ``customer_id`` (built on first use, when all are declared)."""
    global _CUSTOMER_TABLES
    if not _CUSTOMER_TABLES:
        _CUSTOMER_TABLES = ("customers", *sorted(name for name, table in t.metadata.tables.items()
                                                 if "customer_id" in table.c))
    return _CUSTOMER_TABLES


class HookContext:
    """Handed to every reaction hook as ``ctx``.

    Everything written through ``ctx.conn`` (directly or via the helpers)
    commits with the delivery's ``done`` status, or rolls back with it.
    Every helper that records an effect takes an idempotency ``key``: a
    replayed delivery calls it again with the same key and nothing changes.

    The lookups (:meth:`order_row`, :meth:`order`, :meth:`order_lines`,
    :meth:`customer`, and :meth:`cached` for a plugin's own)
    read a row once per context, i.e. once per delivery, however many plugins
    ask: every plugin of an order event reads the same order and customer. A
    write to the table through the connection (by a helper, a plugin's own
    ``ctx.conn.execute(update(...))`` or text SQL), a rollback to a savepoint,
    a commit or a new transaction makes the next lookup read again, so a
    plugin that updates a row and reads it back sees its write.
    """

    def __init__(self, app, conn: Connection, *, now: datetime, inbox_id: int | None = None,
                 source: str = "webhook"):
        self.app = app
        self.conn = conn
        self.now = now
        self.inbox_id = inbox_id
        self.source = source  # "webhook", "import", "task", "cli"
        self.log = logging.getLogger("retention_plugin.hooks")
        #: During ``customer_redact``: the :class:`~retention_plugin.privacy.Erasure` running (who the person is).
        self.erasure = None
        self._reads: dict[Hashable, tuple[tuple, Any]] = {}
        self._epoch: int | None = None

    @property
    def settings(self):
        return self.app.settings

    @property
    def pm(self):
        return self.app.pm

    @property
    def hook(self):
        return self.app.pm.hook

    def section(self, name: str) -> dict[str, Any]:
        return self.app.settings.section(name)

    # --- outbound calls ----------------------------------------------------

    def enqueue_action(self, platform: str, kind: str, key: str, request: dict) -> int:
        """Record an outbound API call to make once; returns the action id.

        The key is unique: a second enqueue with the same key returns the
        first action's id and changes nothing.
        """
        new_id = insert_ignore(self.conn, t.actions, {
            "key": key, "platform": platform, "kind": kind, "request": request,
            "status": "pending", "attempts": 0, "next_attempt_at": self.now,
            "inbox_id": self.inbox_id, "created_at": self.now, "updated_at": self.now,
        }, ["key"])
        if new_id is not None:
            return new_id
        return self.conn.execute(select(t.actions.c.id).where(t.actions.c.key == key)).scalar_one()

    # --- messages ------------------------------------------------------------

    def schedule_message(self, *, key: str, customer_id: int, kind: str, due_at: datetime,
                         data: dict | None = None, message_class: str | None = None,
                         channel: str | None = None, locale: str | None = None) -> int:
        """Schedule a message once per key; the contact policy decides at send time."""
        from .messaging.schedule import schedule_message

        return schedule_message(self.conn, key=key, customer_id=customer_id, kind=kind,
                                message_class=message_class or self.app.message_kinds.get(kind),
                                due_at=due_at, data=data or {}, channel=channel, locale=locale, now=self.now)

    # --- lookups (read once per context) ----------------------------------------------

    def cached(self, key: Hashable, tables: Iterable, load: Callable[[], Any]) -> Any:
        """``load()``, read once per context until ``tables`` (Table objects or names) are written.

        ``key`` names what is read (include the plugin's name: keys are shared by all plugins);
        ``load`` reads only ``tables`` through ``ctx.conn``. The value is shared by every caller,
        so return something immutable (a row mapping, a tuple) or copy it before changing it.
        """
        stamp = self._stamp(tables)
        if stamp is None:  # no connection, or one of an engine not made by make_engine: nothing is known
            return load()
        return writes.remember(self._reads, key, stamp, load)

    def _stamp(self, tables: Iterable) -> tuple | None:
        stamp = None if self.conn is None else writes.stamp(self.conn, _names(tables))
        if stamp is not None and stamp[0] != self._epoch:
            # A stamp's epoch only grows (a commit, a rollback, a write the counts cannot place), so
            # every read kept under an earlier one is stale for good: drop them, or a context that
            # outlives many transactions (a daily task committing chunk by chunk) keeps every row it
            # ever read.
            self._reads.clear()
            self._epoch = stamp[0]
        return stamp

    def forget(self) -> None:
        """Drop every cached read (the next lookups read again)."""
        self._reads.clear()

    def _keep(self, key: Hashable, tables: Iterable, value: Any) -> None:
        """Cache ``value`` as just written (the caller read it back with RETURNING)."""
        stamp = self._stamp(tables)
        if stamp is not None:
            self._reads[key] = (stamp, value)

    # --- what this delivery's record knows without reading ---------------------------------

    def _customer_created(self, customer_id: int) -> None:
        """The record inserted this customer through ``conn``: no row of any table names them yet."""
        stamp = self._stamp(_customer_tables())
        if stamp is not None:
            self._reads[("customers.created", customer_id)] = (stamp, None)

    def customer_is_new(self, customer_id: int, table: str) -> bool:
        """Whether this context's record created the customer and neither ``table`` nor ``customers`` was
        written since: then no row of ``table`` names them (a foreign key lets no row name an id before it
        exists), and a plugin can skip looking for one. False whenever it is not known."""
        hit = self._reads.get(("customers.created", customer_id))
        tables = _customer_tables()
        if hit is None or table not in tables:
            return False
        now = writes.stamp(self.conn, ("customers", table))
        then = hit[0]
        return now == (then[0], then[1], then[1 + tables.index(table)])

    def _orders_known(self, customer_id: int, order_ids: tuple[int, ...]) -> None:
        """The record knows every order of the customer (it created them all in this context)."""
        self._keep(("customers.orders", customer_id), ("customers", "orders"), order_ids)

    def known_order_ids(self, customer_id: int) -> tuple[int, ...] | None:
        """The ids of every order of the customer when this context knows them without reading (the
        record created the customer and then their order, and ``orders`` was not written since), else None."""
        hit = self._reads.get(("customers.orders", customer_id))
        if hit is None or hit[0] != writes.stamp(self.conn, ("customers", "orders")):
            return None
        return hit[1]

    def order_row(self, shopify_id: int) -> Mapping | None:
        """The stored order with this Shopify id, of the shop in scope (a read-only row mapping), or None."""
        shop = current(self.conn)

        def load():
            row = self.conn.execute(_ORDER_BY_SHOPIFY_ID, {"shop": shop, "sid": shopify_id}).mappings().first()
            if row is not None:
                self._keep(("orders", row["id"]), ("orders",), row)
            return row

        return self.cached(("orders.shopify_id", shop, shopify_id), ("orders",), load)

    def order(self, order_id: int) -> Mapping | None:
        """The stored order with this internal id (a read-only row mapping), or None."""
        return self.cached(("orders", order_id), ("orders",), lambda: self.conn.execute(
            _ORDER_BY_ID, {"id": order_id}).mappings().first())

    def order_lines(self, order_id: int) -> list[dict]:
        """The order's stored lines, in id order; a new list of new dicts at every call."""
        rows = self.cached(("order_lines", order_id), ("order_lines",), lambda: tuple(self.conn.execute(
            _ORDER_LINES, {"id": order_id}).mappings().all()))
        return [dict(r) for r in rows]

    def customer(self, customer_id: int) -> dict | None:
        """The customer row with this id (merged or not), as a new dict, or None."""
        row = self.cached(("customers", customer_id), ("customers",), lambda: self.conn.execute(
            _CUSTOMER, {"id": customer_id}).mappings().first())
        return dict(row) if row else None

    def state_get(self, plugin: str, key: str, default=None):
        """A plugin's stored value under ``key`` (read each time: the caller may change what it gets)."""
        v = self.conn.execute(_STATE, {"plugin": plugin, "key": key}).first()
        return default if v is None else v[0]

    def state_set(self, plugin: str, key: str, value) -> None:
        upsert(self.conn, t.plugin_state,
               {"plugin": plugin, "key": key, "value": value, "updated_at": self.now},
               ["plugin", "key"], {"value": value, "updated_at": self.now})


def touch(conn: Connection, table, row_id: int, **values) -> None:
    conn.execute(update(table).where(table.c.id == row_id).values(**values))

"""HookContext: what a hook gets to change state, inside the caller's transaction."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from .storage import tables as t
from .storage.db import insert_ignore, upsert


class HookContext:
    """Handed to every reaction hook as ``ctx``.

    Everything written through ``ctx.conn`` (directly or via the helpers)
    commits with the delivery's ``done`` status, or rolls back with it.
    Every helper that records an effect takes an idempotency ``key``: a
    replayed delivery calls it again with the same key and nothing changes.
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

    # --- lookups ---------------------------------------------------------------

    def customer(self, customer_id: int) -> dict | None:
        row = self.conn.execute(select(t.customers).where(t.customers.c.id == customer_id)).mappings().first()
        return dict(row) if row else None

    def state_get(self, plugin: str, key: str, default=None):
        v = self.conn.execute(select(t.plugin_state.c.value).where(
            t.plugin_state.c.plugin == plugin, t.plugin_state.c.key == key)).first()
        return default if v is None else v[0]

    def state_set(self, plugin: str, key: str, value) -> None:
        upsert(self.conn, t.plugin_state,
               {"plugin": plugin, "key": key, "value": value, "updated_at": self.now},
               ["plugin", "key"], {"value": value, "updated_at": self.now})


def touch(conn: Connection, table, row_id: int, **values) -> None:
    conn.execute(update(table).where(table.c.id == row_id).values(**values))

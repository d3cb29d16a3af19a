"""Support for the tests of pages that only read (no tests here): another process's writer holds the database.

:func:`writer_holding` plays the worker in the middle of a group: a transaction of its own engine (as a
separate process has) has written and not committed, so on SQLite it holds the one write lock and the
receivers' turn (``storage.turns``). Meanwhile the app under test is made to give up at once instead of
waiting: no turn wait, SQLite's busy timeout 0. A page whose reads took an ordinary transaction
(``BEGIN IMMEDIATE`` after the turn) then fails, where in production it waited for the whole group; one
that reads through ``storage.db.read_only`` answers from the last commit. No timing is involved.

On PostgreSQL the same writer holds an uncommitted row, which readers never wait for: the pages must
answer there too.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.exc import OperationalError

from retention_plugin.storage import tables as t
from retention_plugin.storage import turns
from retention_plugin.storage.db import is_sqlite, make_engine


def _no_busy_wait(dbapi_conn, _record):
    dbapi_conn.execute("PRAGMA busy_timeout=0")


@contextmanager
def writer_holding(app, monkeypatch):
    """For the block, another engine's open transaction holds the database as a worker's group does."""
    sqlite = is_sqlite(app.engine)
    if sqlite:
        monkeypatch.setattr(turns, "WAIT", 0.0)
        # After the engine's own connect listener (busy_timeout=30000), so this one wins; the pooled
        # connections go so that every connection from here on is a new one.
        event.listen(app.engine, "connect", _no_busy_wait)
        app.engine.dispose()
    other = make_engine(app.engine.url.render_as_string(hide_password=False))
    writer = other.connect()
    try:
        writer.begin()
        writer.execute(insert(t.inbox).values(
            platform="shopify", shop="writer.myshopify.com", delivery_id="held-by-the-writer",
            topic="orders/paid", headers={}, body=b"{}", received_at=app.now(), status="processing",
            attempts=1, next_attempt_at=app.now()))
        if sqlite:
            # The setup holds: an ordinary transaction of the app gives up at once instead of waiting.
            with pytest.raises(OperationalError, match="locked"), app.engine.connect() as plain:
                plain.execute(select(1))
        yield
    finally:
        writer.close()  # rolls the write back
        other.dispose()
        if sqlite:
            event.remove(app.engine, "connect", _no_busy_wait)
            app.engine.dispose()

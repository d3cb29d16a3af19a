"""What each connection has written, table by table: how a read cache knows its rows are still good.

:func:`watch` (every engine :func:`~.db.make_engine` makes) counts, per connection, the INSERTs,
UPDATEs and DELETEs sent for each table. A value read under :func:`stamp` ``(conn, tables)`` is
good while the stamp is unchanged: no write to those tables since. Anything the counts cannot
attribute to one table (a DELETE, which may cascade; text SQL; DDL; a rollback to a savepoint, a
rollback, a commit or a new transaction, after which other connections' commits may show) changes
every stamp.

The listeners are the engine's, added once: listening on each connection instead costs about a
millisecond per connection, as much as several statements.
"""

from __future__ import annotations

import weakref

from sqlalchemy import Table, event
from sqlalchemy.engine import Connection, Engine


class _Writes:
    __slots__ = ("epoch", "tables")

    def __init__(self) -> None:
        self.epoch = 0
        self.tables: dict[str, int] = {}


_BY_CONNECTION: weakref.WeakKeyDictionary[Connection, _Writes] = weakref.WeakKeyDictionary()


def stamp(conn: Connection, tables: tuple[str, ...]) -> tuple | None:
    """The write state of ``tables`` on ``conn``; None when its engine is not watched (cache nothing)."""
    w = _BY_CONNECTION.get(conn)
    if w is None:
        return None
    counts = w.tables
    return (w.epoch, *[counts.get(name, 0) for name in tables])


def _connected(conn: Connection) -> None:
    _BY_CONNECTION[conn] = _Writes()


def _sent(conn, cursor, statement: str, parameters, context, executemany) -> None:
    w = _BY_CONNECTION.get(conn)
    if w is None:
        return
    if getattr(context, "isinsert", False) or getattr(context, "isupdate", False):
        table = getattr(getattr(context, "compiled", None), "statement", None)
        table = getattr(table, "table", None)
        if isinstance(table, Table):
            w.tables[table.name] = w.tables.get(table.name, 0) + 1
            return
    # A DELETE may cascade to other tables (an order's lines go with it): it counts as anything.
    elif not getattr(context, "isdelete", False) and statement.lstrip()[:6].upper() == "SELECT":
        return
    w.epoch += 1


def _boundary(conn, *args) -> None:
    w = _BY_CONNECTION.get(conn)
    if w is not None:
        w.epoch += 1


def watch(engine: Engine) -> Engine:
    event.listen(engine, "engine_connect", _connected)
    event.listen(engine, "before_cursor_execute", _sent)
    for name in ("begin", "commit", "rollback", "rollback_savepoint"):
        event.listen(engine, name, _boundary)
    return engine

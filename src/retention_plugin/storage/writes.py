"""What each connection has written, table by table: how a read cache knows its rows are still good.

:func:`watch` (every engine :func:`~.db.make_engine` makes) counts, per connection, the INSERTs,
UPDATEs and DELETEs sent for each table. A value read under :func:`stamp` ``(conn, tables)`` is
good while the stamp is unchanged: no write to those tables since. Anything the counts cannot
attribute to one table (a DELETE, which may cascade; text SQL; DDL; a rollback to a savepoint, a
rollback, a commit or a new transaction, after which other connections' commits may show) changes
every stamp.

The listeners are the engine's, added once: listening on each connection instead costs about a
millisecond per connection, as much as several statements.

:func:`cached` keeps a read for the rest of the connection's transaction (until its tables are
written): the worker's deliveries of one group share a transaction, so a value they all ask for
(the shop's uninstall, the code secret, whether any recall is open) is read once per group
instead of once per delivery.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Hashable

from sqlalchemy import Table, event
from sqlalchemy.engine import Connection, Engine


class _Writes:
    __slots__ = ("epoch", "tables", "reads")

    def __init__(self) -> None:
        self.epoch = 0
        self.tables: dict[str, int] = {}
        #: :func:`cached`'s values: key -> (stamp when read, value).
        self.reads: dict[Hashable, tuple[tuple, Any]] = {}


_BY_CONNECTION: weakref.WeakKeyDictionary[Connection, _Writes] = weakref.WeakKeyDictionary()


def stamp(conn: Connection, tables: tuple[str, ...]) -> tuple | None:
    """The write state of ``tables`` on ``conn``; None when its engine is not watched (cache nothing)."""
    w = _BY_CONNECTION.get(conn)
    return None if w is None else _stamp(w, tables)


def _stamp(w: _Writes, tables) -> tuple:
    counts = w.tables
    return (w.epoch, *[counts.get(name, 0) for name in tables])


def remember(reads: dict, key: Hashable, now: tuple, load: Callable[[], Any]) -> Any:
    """``reads[key]``'s value if it was read under the stamp ``now``, else ``load()`` kept under it.

    Take ``now`` before loading: a load that writes one of its own tables is read again next time.
    """
    hit = reads.get(key)
    if hit is not None and hit[0] == now:
        return hit[1]
    value = load()
    reads[key] = (now, value)
    return value


def cached(conn: Connection, key: Hashable, tables: tuple[str, ...], load: Callable[[], Any]) -> Any:
    """``load()``, run once per transaction of ``conn`` until one of ``tables`` is written on it.

    The value is shared by every caller for the rest of the transaction (the worker's whole group of
    deliveries), so ``load`` must return something immutable and read only ``tables``, and must not
    lock (``FOR UPDATE``: a lock is taken to see the latest commit, a cached value is not that).
    Within the transaction it is what a fresh read would give, the transaction's own writes
    included: any write to ``tables`` on ``conn``, a rollback to a savepoint, a commit or a new
    transaction reads again. Other connections' commits: on SQLite none can land while the
    transaction runs (the worker's group holds the one write lock from its ``BEGIN IMMEDIATE``);
    on PostgreSQL one that lands during the transaction shows from its next transaction on, as
    under ``REPEATABLE READ``: a caller whose value must follow other workers' commits within a
    transaction does not cache it.
    """
    w = _BY_CONNECTION.get(conn)
    if w is None:  # an engine not made by make_engine: nothing is known of its writes
        return load()
    return remember(w.reads, key, _stamp(w, tables), load)


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
    elif not getattr(context, "isdelete", False):
        head = statement.lstrip()[:9].upper()
        # Starting or releasing a savepoint changes nothing this connection sees (the worker opens
        # one per delivery, and the reads its group shares must outlive them); rolling back to one
        # does, and counts as anything (``ROLLBACK TO SAVEPOINT``, and the ``rollback_savepoint`` event).
        if head[:6] == "SELECT" or head == "SAVEPOINT" or head[:7] == "RELEASE":
            return
    _new_epoch(w)


def _boundary(conn, *args) -> None:
    w = _BY_CONNECTION.get(conn)
    if w is not None:
        _new_epoch(w)


def _new_epoch(w: _Writes) -> None:
    # Every read kept under an earlier epoch is stale for good (the epoch only grows): dropping them
    # keeps a connection that lives through many transactions from holding every value it ever read.
    w.epoch += 1
    w.reads.clear()


def watch(engine: Engine) -> Engine:
    event.listen(engine, "engine_connect", _connected)
    event.listen(engine, "before_cursor_execute", _sent)
    for name in ("begin", "commit", "rollback", "rollback_savepoint"):
        event.listen(engine, name, _boundary)
    return engine

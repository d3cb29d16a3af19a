"""Storing deliveries: the one insert the receiver makes, shared with tests and tools."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone

from .storage import tables as t
from .storage.db import insert_ignore
from .storage.turns import lock_path


def store_delivery(engine, *, platform: str, shop: str, delivery_id: str, topic: str, body: bytes,
                   now: datetime, headers: dict | None = None, event_id: str | None = None) -> int | None:
    """Insert a verified delivery; returns its id, or None when the delivery id was already stored."""
    with engine.begin() as conn:
        return insert_ignore(conn, t.inbox, {
            "platform": platform, "shop": shop, "delivery_id": delivery_id[:255], "topic": topic[:128],
            "event_id": event_id[:255] if event_id else None, "headers": headers or {}, "body": body,
            "received_at": now, "status": "pending", "attempts": 0, "next_attempt_at": now,
        }, ["platform", "shop", "delivery_id"])


log = logging.getLogger("retention_plugin.inbox")


class _Waiting:
    """One delivery waiting for its group commit."""

    __slots__ = ("params", "done", "lead", "stored", "error")

    def __init__(self, params):
        self.params = params
        self.done = threading.Event()
        self.lead = False  # set (with done) when this thread is to commit the next group
        self.stored: bool | None = None
        self.error: Exception | None = None

    def result(self) -> bool:
        if self.error is not None:
            # Every delivery of a failed group is refused (503: the platform sends it again).
            raise sqlite3.OperationalError(f"group commit failed: {type(self.error).__name__}: {self.error}")
        return bool(self.stored)


class FastInserter:
    """The receiver's hot path: one prepared INSERT on a connection kept per thread.

    The receiver's whole job is this one statement, and SQLAlchemy's
    statement construction, pool checkout and transaction bookkeeping cost
    several times what the database itself spends. So the receiver keeps a
    plain DBAPI connection in autocommit mode (the single INSERT is its own
    transaction, durable before we answer) and writes rows in exactly the
    representation SQLAlchemy's column types read back (tests check that).

    "Durable before we answer" on SQLite depends on ``synchronous``: with
    ``full`` (``[database] sqlite_synchronous``, the default) each commit syncs
    the WAL to disk before the 200 goes out, so an answered delivery survives a
    power cut; ``normal`` leaves that sync to the next checkpoint, and the last
    commits before a power cut or OS crash can vanish after the platform was
    told they arrived (figures in docs/performance.md).

    A sync per delivery would make the disk's sync latency the ceiling, so on
    SQLite the threads of a process commit together (group commit): the first
    to arrive writes every delivery that is waiting, up to ``MAX_GROUP``, in one
    transaction with one sync, during one ``flock`` turn, and each thread
    answers once that commit returned. Deliveries that arrive meanwhile wait
    for the next group, whose first member leads it. No request waits for
    others to arrive: a lone delivery is a group of one.

    On SQLite the receiver's commits never checkpoint the WAL themselves: a
    checkpoint copies pages into the database file and waits for two fsyncs,
    and done inside a commit it held every other receiver at the door for
    milliseconds. A thread in each receiver process checkpoints instead,
    every ``CHECKPOINT_EVERY`` stored deliveries (about SQLite's own default
    of 1,000 WAL pages), while the requests go on.
    """

    CHECKPOINT_EVERY = 250
    # A passive checkpoint cannot restart the WAL while receivers keep
    # appending, so under a sustained flood the file would grow without end.
    # Past this many pages (about 80 MB) the checkpoint takes the receivers'
    # turn once, catches up, and the next commit starts the WAL afresh.
    WAL_LIMIT_PAGES = 20_000

    #: Deliveries written in one SQLite transaction at most (one turn, one sync).
    MAX_GROUP = 64

    COLUMNS = ("platform", "shop", "delivery_id", "topic", "event_id", "headers", "body", "received_at",
               "status", "attempts", "next_attempt_at")

    def __init__(self, engine, synchronous: str = "full"):
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.url = engine.url
        self.dialect = engine.dialect.name
        self.synchronous = synchronous
        self.local = threading.local()
        self.writes = 0  # approximate under threads, which is all a cadence needs
        self.checkpointer: threading.Thread | None = None
        self.wake = threading.Event()
        self.start_lock = threading.Lock()
        self.checkpointed = threading.Event()  # set after each background checkpoint (tests wait on it)
        self.group_lock = threading.Lock()
        self.group: list[_Waiting] = []  # SQLite deliveries waiting for the next group commit
        self.leading = False  # a thread is committing a group right now
        ph = "?" if self.dialect == "sqlite" else "%s"
        self.sql = (f"INSERT INTO inbox ({', '.join(self.COLUMNS)}) VALUES ({', '.join([ph] * len(self.COLUMNS))}) "
                    "ON CONFLICT (platform, shop, delivery_id) DO NOTHING RETURNING id")

    @contextmanager
    def _turn(self):
        """SQLite: one receiver writes at a time, queued by the kernel (PostgreSQL: no turns).

        SQLite lets one writer in; the others wait in its busy handler, which
        sleeps 1, 2, 5, 10 ms... between tries. Under load most of a receiver's
        time went to those sleeps, not to writing. An exclusive ``flock`` on a
        file beside the database hands the turn over the moment it is free.
        Each thread opens its own descriptor: flock excludes per open file.
        """
        if self.dialect != "sqlite":
            yield
            return
        fd = getattr(self.local, "lock_fd", None)
        if fd is None:
            fd = self.local.lock_fd = os.open(lock_path(self.url.database) or os.devnull, os.O_RDWR | os.O_CREAT,
                                             0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _connect(self):
        if self.dialect == "sqlite":
            conn = sqlite3.connect(self.url.database, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it
            return conn
        import psycopg

        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(dsn, autocommit=True)

    def _params(self, platform, shop, delivery_id, topic, event_id, headers, body, now):
        import json

        if self.dialect == "sqlite":
            # SQLAlchemy's SQLite DateTime stores this exact text; UTCDateTime stores UTC, naive.
            stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
            return (platform, shop, delivery_id, topic, event_id, json.dumps(headers), body, stamp, "pending", 0, stamp)
        from psycopg.types.json import Json

        return (platform, shop, delivery_id, topic, event_id, Json(headers), body, now, "pending", 0, now)

    def insert(self, *, platform: str, shop: str, delivery_id: str, topic: str, body: bytes, now: datetime,
               headers: dict | None = None, event_id: str | None = None) -> bool:
        """True when stored, False when this delivery id was already there. DB errors propagate."""
        params = self._params(platform, shop, delivery_id[:255], topic[:128], event_id[:255] if event_id else None,
                              headers or {}, body, now)
        if self.dialect == "sqlite":
            return self._insert_grouped(params)
        conn = self._connection()
        try:
            # PostgreSQL shares one WAL flush among concurrent commits by itself.
            return conn.execute(self.sql, params).fetchone() is not None
        except Exception:
            self._drop_connection()
            raise

    def _connection(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self._connect()
        return conn

    def _drop_connection(self) -> None:
        """A broken connection must not poison every later request: reconnect next time."""
        conn, self.local.conn = getattr(self.local, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    # --- SQLite: group commit ------------------------------------------------------------

    def _insert_grouped(self, params) -> bool:
        me = _Waiting(params)
        with self.group_lock:
            self.group.append(me)
            lead = not self.leading
            self.leading = True
        if not lead:
            me.done.wait()
            if not me.lead:  # our group was committed (or failed) by another thread
                return me.result()
        self._commit_group()
        return me.result()

    def _commit_group(self) -> None:
        batch: list[_Waiting] = []
        error = None
        try:
            conn = self._connection()
            with self._turn():
                # Taken once the turn is ours: whoever arrived while we waited for it joins in.
                batch = self._take_group()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for waiting in batch:
                        waiting.stored = conn.execute(self.sql, waiting.params).fetchone() is not None
                    conn.execute("COMMIT")
                except BaseException:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise
        except Exception as e:
            error = e
            self._drop_connection()
            batch = batch or self._take_group()  # failed before taking: fail those waiting, us included
        finally:
            with self.group_lock:
                if self.group:  # the next group is led by its first member
                    self.group[0].lead = True
                    self.group[0].done.set()
                else:
                    self.leading = False
            for waiting in batch:
                waiting.error = error
                waiting.lead = False
                waiting.done.set()
        if error is None:
            self._count_write(len(batch))

    def _take_group(self) -> list[_Waiting]:
        with self.group_lock:
            batch, self.group = self.group[:self.MAX_GROUP], self.group[self.MAX_GROUP:]
        return batch

    # --- SQLite: checkpoints off the request path ------------------------------------

    def _count_write(self, n: int = 1) -> None:
        self.writes += n
        if self.writes < self.CHECKPOINT_EVERY:
            return
        self.writes = 0
        # Started on first need, so it lives in the process that writes (gunicorn forks first).
        with self.start_lock:
            if self.checkpointer is None or not self.checkpointer.is_alive():
                self.checkpointer = threading.Thread(target=self._checkpoint_loop, name="retention-wal-checkpoint",
                                                     daemon=True)
                self.checkpointer.start()
        self.wake.set()

    def _checkpoint_loop(self) -> None:
        conn = None
        while True:
            self.wake.wait()
            self.wake.clear()
            try:
                if conn is None:
                    conn = self._connect()
                self.checkpoint(conn)
            except (sqlite3.Error, OSError) as e:
                # The deliveries are stored either way; a later round (or any other
                # connection's automatic checkpoint) moves them into the main file.
                log.warning("WAL checkpoint failed: %s", e)
                if conn is not None:
                    conn.close()
                conn = None
            self.checkpointed.set()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy committed WAL pages into the database file without stopping the writers."""
        _busy, pages, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if pages > self.WAL_LIMIT_PAGES:
            with self._turn():
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

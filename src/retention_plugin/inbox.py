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
            fd = self.local.lock_fd = os.open(f"{self.url.database}-receiver.lock", os.O_RDWR | os.O_CREAT, 0o600)
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
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self._connect()
        params = self._params(platform, shop, delivery_id[:255], topic[:128], event_id[:255] if event_id else None,
                              headers or {}, body, now)
        try:
            with self._turn():
                stored = conn.execute(self.sql, params).fetchone() is not None
        except Exception:
            # A broken connection must not poison every later request: reconnect next time.
            self.local.conn = None
            try:
                conn.close()
            except Exception:
                pass
            raise
        if self.dialect == "sqlite":
            self._count_write()
        return stored

    # --- SQLite: checkpoints off the request path ------------------------------------

    def _count_write(self) -> None:
        self.writes += 1
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

"""SQLite's one writer at a time, handed over at once: every transaction takes the receivers' turn.

SQLite lets one writer in; the others wait in its busy handler, which sleeps 1, 2, 5 ... up to
100 ms between tries and is never told when the lock comes free. The receivers queue on an
exclusive ``flock`` beside the database instead (``inbox.Inbox._turn``), which the kernel
hands over the moment it is released. The worker, the message sender and every other
SQLAlchemy writer used to leave that queue out: a worker draining a backlog begins its next
transaction microseconds after committing the last, so a receiver asleep in the busy
handler kept missing the gap and answered Shopify after seconds (``bench/bench_ingest_backlog.py``
measured a p99 of 3.5-4.4 s at 50 deliveries per commit, and deliveries over Shopify's 5 s
limit at 1 per commit).

So each transaction on a SQLite engine takes the same turn before its ``BEGIN IMMEDIATE``
and gives it back at commit or rollback. A receiver waiting on the lock is woken by the
kernel; a transaction here asks again every few milliseconds, so between two transactions
of a worker the waiting receivers go first. Two safety valves keep the old behaviour where
the turn would do harm: a thread that already holds the turn through another connection
does not wait for it again (it would wait for itself), and a turn not had in 30 s (SQLite's
own busy timeout here) is given up with a warning and the transaction queues in the busy
handler as before.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

__all__ = ["READ_ONLY", "lock_path", "take_turns"]

#: Execution option of a connection that only reads: its transactions neither take the turn nor
#: SQLite's write lock (``storage.db.read_only``).
READ_ONLY = "retention_read_only"

#: Seconds a transaction waits for the turn before it goes on without it.
WAIT = 30.0
#: The longest pause between two asks: a released turn is seen within this.
MAX_PAUSE = 0.004


def lock_path(database: str | None) -> str | None:
    """The receivers' lock file of a SQLite database file, or None for an in-memory database."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return f"{database}-receiver.lock"


class _Turns:
    def __init__(self, path: str):
        self.path = path
        self.local = threading.local()  # how many turns this thread holds, through any connection

    def _fd(self, info: dict) -> int:
        fd = info.get("turn_fd")
        if fd is None:
            # One descriptor per connection: flock excludes per open file, not per process.
            fd = info["turn_fd"] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    def take(self, info: dict) -> None:
        if getattr(self.local, "held", 0):
            return  # this thread's other connection holds it: waiting would be waiting for ourselves
        fd = self._fd(info)
        deadline = time.monotonic() + WAIT
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    log.warning("no turn at the SQLite database in %.0f s; going on in SQLite's busy handler", WAIT)
                    return
                time.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)
        info["turn_held"] = True
        self.local.held = getattr(self.local, "held", 0) + 1

    def give_back(self, info: dict) -> None:
        if not info.pop("turn_held", False):
            return
        fcntl.flock(info["turn_fd"], fcntl.LOCK_UN)
        self.local.held = max(0, getattr(self.local, "held", 0) - 1)

    def forget(self, info: dict) -> None:
        """The connection is going away: closing its descriptor gives any turn back too."""
        if info.pop("turn_held", False):
            self.local.held = max(0, getattr(self.local, "held", 0) - 1)
        fd = info.pop("turn_fd", None)
        if fd is not None:
            os.close(fd)


def take_turns(engine: Engine) -> None:
    """Make each transaction on the SQLite ``engine`` take the receivers' turn (see the module)."""
    path = lock_path(engine.url.database)
    if path is None:
        return
    turns = _Turns(path)

    # Registered before the listener that sends BEGIN IMMEDIATE, so the turn comes first.
    @event.listens_for(engine, "begin")
    def _begin(conn):
        if not conn.get_execution_options().get(READ_ONLY):
            turns.take(conn.info)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _end(conn):
        # Before the COMMIT itself: a receiver woken now finds the write lock free within the
        # commit's sync, a few milliseconds of SQLite's shortest busy sleeps.
        turns.give_back(conn.info)

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn, record):
        turns.give_back(record.info)  # a transaction that neither committed nor rolled back

    @event.listens_for(engine, "close")
    @event.listens_for(engine, "invalidate")
    def _close(_dbapi_conn, record, *_exc):
        turns.forget(record.info)

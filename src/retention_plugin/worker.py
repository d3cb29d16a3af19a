"""The worker: claim deliveries, turn them into events, let plugins react, commit once.

A delivery's effects are atomic: the core records, every hook's writes and
the delivery's ``done`` status commit together, or not at all. Several
claimed deliveries share one transaction (``[worker] deliveries_per_commit``,
closed early after ``commit_interval_ms``), each in a savepoint of its own: a
delivery that fails rolls back to its savepoint only, and its failure
(retry, dead, ignored) is written on the same connection, so a group costs
one commit (one disk sync on SQLite) and never waits on a second writer
while it holds SQLite's write lock. A worker killed anywhere leaves its
claimed rows ``processing`` with a lease; when the lease runs out another
worker (or the same one restarted) claims them again, and because every
effect carries an idempotency key the replay changes nothing twice.
"""

from __future__ import annotations

import decimal
import logging
import os
import random
import signal
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import timedelta

from marshmallow import ValidationError
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from . import records
from . import shop_scope, shops
from .context import HookContext
from .platforms.deliveries import parse_delivery
from .platforms.errors import DeadLetter, PlatformError, UnsupportedTopic
from .storage import tables as t
from .storage.db import for_update, is_sqlite, refresh_statistics

log = logging.getLogger("retention_plugin.worker")


@dataclass
class Counts:
    processed: int = 0
    ignored: int = 0
    retried: int = 0
    dead: int = 0
    actions: dict = field(default_factory=dict)
    messages: dict = field(default_factory=dict)
    tasks: int = 0

    def add_actions(self, d: dict):
        for k, v in d.items():
            self.actions[k] = self.actions.get(k, 0) + v

    def add_messages(self, d: dict):
        for k, v in d.items():
            self.messages[k] = self.messages.get(k, 0) + v


#: SQLSTATE classes of integrity errors that a retry could get past: a unique
#: key another worker inserted first (the retry then finds the row), a parent
#: row not there yet. NOT NULL and CHECK violations are the values themselves.
_RACE_SQLSTATES = frozenset({"23505", "23503"})
_RACE_SQLITE = ("UNIQUE constraint failed", "FOREIGN KEY constraint failed")


def permanent(exc: BaseException) -> bool:
    """Whether retrying the delivery cannot change this outcome (so it goes ``dead`` at once).

    Values out of range, data the database refuses, validation failures: the
    same body meets the same error on every attempt, and spending retries on
    it only delays the dead letter by hours.
    """
    if isinstance(exc, StatementError) and not isinstance(exc, (DataError, IntegrityError)):
        # SQLAlchemy wraps what went wrong before the statement reached the database.
        return exc.orig is not None and permanent(exc.orig)
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, IntegrityError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate is not None:
            return sqlstate not in _RACE_SQLSTATES
        return not any(text in str(exc.orig) for text in _RACE_SQLITE)
    return isinstance(exc, (ValueError, ValidationError, OverflowError, decimal.DecimalException, RecursionError))


def storable_error(text: str, limit: int = 4000) -> str:
    """Error text every database can store: no NUL, no lone surrogates, bounded length.

    Messages can quote the body that caused them, and the body is anyone's.
    """
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


#: Events whose hook the privacy code calls itself, at the point where plugins
#: must contribute (the export) or erase (before the request is recorded done).
SELF_DISPATCHED = {"customer_data_request", "customer_redact", "shop_redact"}


def dispatch(app, ctx: HookContext, event) -> None:
    """Record the event in the core tables, then call the hook named after it."""
    records.record(event, ctx)
    if event.name not in SELF_DISPATCHED:
        getattr(app.pm.hook, event.name)(event=event, ctx=ctx)


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception (PayloadError's message already names the field)."""
    if isinstance(exc, PlatformError):
        return str(exc)
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


@dataclass(frozen=True)
class Unreadable:
    """A delivery whose body gives no events: what becomes of it, and why."""

    status: str  # "ignored" or "dead"
    reason: str


class TransactionLost(Exception):
    """The group's transaction ended under it: nothing more can be written in it."""


def _require_open(conn) -> None:
    """Raise unless the group's transaction can still take writes.

    A lost connection invalidates it. SQLite ends a transaction by itself after
    some errors (a full disk, an I/O error), and what followed would then run
    outside it, each statement committed on its own. On PostgreSQL a failed
    statement aborts the transaction until a savepoint's rollback ends that; if
    that rollback did not happen (or a plugin ended the transaction itself), the
    COMMIT would quietly roll everything back while we count it done.
    """
    tx = conn.get_transaction()
    if conn.invalidated or tx is None or not tx.is_active:
        raise TransactionLost("the connection or its transaction is gone")
    raw = conn.connection.driver_connection
    if is_sqlite(conn):
        if not raw.in_transaction:
            raise TransactionLost("SQLite ended the transaction by itself")
        return
    # psycopg 3. IDLE is a transaction not begun yet (psycopg begins at the first statement): a
    # plugin that ended ours could only leave IDLE until our next statement, whose savepoint
    # then fails and leaves INERROR.
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    if status is not None and status.name in ("INERROR", "UNKNOWN"):
        raise TransactionLost(f"the PostgreSQL transaction is {status.name}")


@dataclass
class _Group:
    """What a group's transaction knows of its rows: those still ours, and those done so far."""

    ours: set[int]
    done: list[dict] = field(default_factory=list)


# The worker's own statements of every group, built once (building one per delivery cost more than running it).
_RENEW = (update(t.inbox).where(t.inbox.c.id.in_(bindparam("ids", expanding=True)),
                                t.inbox.c.claimed_by == bindparam("me"), t.inbox.c.status == "processing")
          .values(lease_until=bindparam("until")).returning(t.inbox.c.id))
_DONE = (update(t.inbox).where(t.inbox.c.id == bindparam("_id"))
         .values(status="done", processed_at=bindparam("_at"), lease_until=None, last_error=None))


class Worker:
    def __init__(self, app, *, name: str | None = None):
        self.app = app
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        w = app.settings.section("worker")
        self.batch_size = w["batch_size"]
        self.per_commit = w["deliveries_per_commit"]
        self.commit_interval = w["commit_interval_ms"] / 1000
        self.lease = timedelta(seconds=w["lease_seconds"])
        self.max_attempts = w["max_attempts"]
        self.backoff_base = w["backoff_base_seconds"]
        self.backoff_max = w["backoff_max_seconds"]
        self.poll = w["poll_seconds"]
        self.stopping = False
        self.buried = 0  # rows buried at claim, counted into the next pass's dead

    # --- inbox -------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> list[dict]:
        """Take due deliveries: pending ones whose time has come, and expired leases.

        A row whose lease expired was left by a worker that died (or stalled)
        while it held it, and the row itself may be what killed it. Such rows
        are taken back one at a time, so a killer cannot take the rest of a
        batch down with it again; and a row already claimed ``max_attempts``
        times is buried here instead of handed out again, so a body that kills
        the process every time (no attempt ever gets to record a failure)
        ends ``dead`` instead of stopping the queue forever.
        """
        now = self.app.now()
        inbox = t.inbox
        orphaned = and_(inbox.c.status == "processing", inbox.c.lease_until < now)
        due = and_(inbox.c.status == "pending", inbox.c.next_attempt_at <= now)
        with self.app.engine.begin() as conn:
            while True:
                found = conn.execute(for_update(select(inbox.c.id, inbox.c.attempts).where(orphaned)
                                                .order_by(inbox.c.id).limit(1), conn, skip_locked=True)).all()
                if not found:
                    # Oldest due first, in the order ix_inbox_due (status, next_attempt_at) holds them, so the
                    # scan stops after the batch whatever the planner's statistics last saw. Ordered by id,
                    # PostgreSQL's planner took the primary key and read every row done before the first
                    # pending one (9 ms at 16,000 done, 50 ms at 36,000, once per batch), or read and sorted
                    # them all; SQLite read the whole table. The batch is handled in id order all the same.
                    found = conn.execute(for_update(select(inbox.c.id, inbox.c.attempts).where(due).order_by(
                        inbox.c.next_attempt_at).limit(limit or self.batch_size), conn, skip_locked=True)).all()
                if not found:
                    return []
                spent = [r[0] for r in found if r[1] >= self.max_attempts]
                ids = [r[0] for r in found if r[1] < self.max_attempts]
                if spent:
                    self._bury_spent(conn, spent, now)
                if ids:
                    break
            conn.execute(update(inbox).where(inbox.c.id.in_(ids)).values(
                status="processing", claimed_by=self.name, lease_until=now + self.lease,
                attempts=inbox.c.attempts + 1))
            rows = conn.execute(select(inbox).where(inbox.c.id.in_(ids)).order_by(inbox.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def _bury_spent(self, conn, ids: list[int], now) -> None:
        conn.execute(update(t.inbox).where(t.inbox.c.id.in_(ids)).values(
            status="dead", processed_at=now, lease_until=None, claimed_by=self.name,
            last_error=f"claimed {self.max_attempts} times without finishing "
                       "(the worker may have died on it each time); buried at claim"))
        self.buried += len(ids)
        log.error("buried deliveries %s: claimed %s times without finishing", ids, self.max_attempts)

    def process(self, row: dict) -> str:
        """Handle one claimed delivery in a transaction of its own; returns its new status."""
        return self.process_group([row])[0]

    def process_batch(self, rows: list[dict]) -> list[str]:
        """Handle claimed deliveries, several per transaction; returns their statuses in order."""
        statuses: list[str] = []
        # Each body is read once: a group that closes at commit_interval_ms leaves the rows it did not
        # take, already read, to the next group (reading them again cost 5-30% more reads in a burst).
        parsed: list = []
        while len(statuses) < len(rows):
            start = len(statuses)
            end = min(start + self.per_commit, len(rows))
            parsed += [self._parse(row) for row in rows[len(parsed):end]]
            statuses += self.process_group(rows[start:end], parsed[start:end])
        return statuses

    def process_group(self, rows: list[dict], parsed: list | None = None) -> list[str]:
        """Handle ``rows`` from the first in one transaction, until they or ``commit_interval_ms`` run out.

        Returns the statuses of the rows it took (at least one), in order; never raises
        for a bad body or a failing plugin. When the transaction itself fails (the
        database went away, the commit failed) none of it happened: each taken row is
        ``error`` and stays ours until its lease runs out, and the claim count buries a
        row that keeps doing this.
        """
        # Reading the bodies needs no database: done before the transaction, it leaves SQLite's
        # write lock free meanwhile, the moment another process's writer (a receiver) gets in.
        if parsed is None:
            parsed = [self._parse(row) for row in rows]
        statuses: list[str] = []
        taken = 0
        started = time.monotonic()
        try:
            with self.app.engine.begin() as conn:
                group = _Group(self._renew_leases(conn, rows))
                for row, events in zip(rows, parsed):
                    taken += 1
                    statuses.append(self._deliver(conn, row, events, group))
                    if time.monotonic() - started >= self.commit_interval:
                        break
                _require_open(conn)
                if group.done:
                    conn.execute(_DONE, group.done)
                self._refresh_statistics(conn)
        except Exception as e:
            taken = max(1, taken)  # no transaction at all: the first row's turn is spent
            ids = [r["id"] for r in rows[:taken]]
            log.exception("deliveries %s: their transaction failed, none of them is recorded: %s", ids, e)
            return ["error"] * taken
        return statuses

    def _renew_leases(self, conn, rows: list[dict]) -> set[int]:
        """Renew the group's leases in one statement; returns the ids still ours.

        Renewing takes the rows' locks on PostgreSQL before any effect, so a second worker that
        reclaimed an expired lease waits here and then finds its row done (and on SQLite the
        group's write lock keeps them ours until it commits). A row the commit interval leaves to
        the next group is renewed again there.
        """
        now = self.app.now()
        found = conn.execute(_RENEW, {"ids": [r["id"] for r in rows], "me": self.name,
                                      "until": now + self.lease})
        return {r[0] for r in found}

    def _refresh_statistics(self, conn) -> None:
        """The planner's statistics (``storage.db.refresh_statistics``), before the group commits.

        In the group's transaction: SQLite's ``PRAGMA optimize`` looks at what this connection
        queried, and PostgreSQL's ANALYZE then takes its lock only until the commit that follows.
        In a savepoint: statistics are an optimisation, and failing to refresh them must not cost
        the group its commit.
        """
        try:
            with conn.begin_nested():
                analyzed = refresh_statistics(conn)
        except Exception as e:
            _require_open(conn)
            log.warning("could not refresh the planner's statistics: %s", e)
            return
        if analyzed:
            log.info("analyzed %s for the query planner: grown since their last statistics", ", ".join(analyzed))

    @staticmethod
    def _shop(row: dict) -> str | None:
        # A Shopify delivery is its shop's work: its rows carry the shop and its settings are the shop's.
        # A Zendesk delivery is the configured shop's, unless it came through a shop's own Zendesk path.
        return shops.delivery_shop(row)

    def _parse(self, row: dict) -> list | Unreadable:
        """The delivery's events, or the outcome of a body that has none."""
        shop = self._shop(row)
        with shop_scope.scope(shop):
            try:
                return parse_delivery(row, shop or self.app.settings.section("shopify").get("shop"))
            except UnsupportedTopic as e:
                return Unreadable("ignored", str(e))
            except RecursionError:
                # The receiver's parser takes nesting up to 1,024 levels; Python's stops short of that.
                return Unreadable("dead", "bad payload: JSON nests too deeply to read")
            except Exception as e:
                # A payload we cannot read will not improve with retries: dead letter now, with
                # the reason. Any exception counts: a parser bug must not stop the queue either.
                return Unreadable("dead", f"bad payload: {_describe(e)}")

    def _deliver(self, conn, row: dict, events: list | Unreadable, group: _Group) -> str:
        shop = self._shop(row)
        with shop_scope.scope(shop):
            return self._deliver_scoped(conn, row, shop, events, group)

    def _deliver_scoped(self, conn, row: dict, shop: str | None, events: list | Unreadable, group: _Group) -> str:
        if shop is not None and row["topic"] not in shops.PRIVACY_TOPICS and shops.stopped(conn, shop):
            return self._finish(conn, row, "ignored", f"{shop} uninstalled the app; its work is stopped")
        if isinstance(events, Unreadable):
            return self._finish(conn, row, events.status, events.reason)
        if row["id"] not in group.ours:
            log.info("delivery %s is no longer ours; skipping", row["id"])
            return "lost"
        try:
            # The savepoint is what makes a failure this delivery's alone: rolling back to it
            # undoes its writes and nothing of the deliveries before it in the transaction, and
            # on PostgreSQL it also ends the "transaction aborted" state a failed statement
            # leaves (even one a plugin caught and went on from).
            with conn.begin_nested():
                now = self.app.now()
                ctx = HookContext(self.app, conn, now=now, inbox_id=row["id"])
                for event in events:
                    dispatch(self.app, ctx, event)
            # Its ``done`` is written with the group's, in the same transaction (one statement for
            # all): the effects and the status still commit together or not at all.
            group.done.append({"_id": row["id"], "_at": now})
            return "done"
        except DeadLetter as e:
            return self._finish(conn, row, "dead", str(e))
        except Exception as e:  # a plugin's bug must not stop the queue: retry, then dead-letter
            log.warning("delivery %s (%s %s) failed on attempt %s: %s", row["id"], row["platform"],
                        row["topic"], row["attempts"], storable_error(str(e), 500))
            if permanent(e):
                return self._finish(conn, row, "dead", f"cannot succeed on retry: {_describe(e)}")
            return self._retry_or_bury(conn, row, e)

    def _finish(self, conn, row, status: str, error: str | None) -> str:
        return self._record(conn, row, status, status=status, processed_at=self.app.now(), lease_until=None,
                            last_error=None if error is None else storable_error(error))

    def _record(self, conn, row, outcome: str, **values) -> str:
        """Write a delivery's outcome in the group's transaction, in a savepoint of its own.

        A write that fails here costs this delivery alone: it stays ours until its lease
        runs out, and the deliveries around it in the transaction still commit.
        """
        _require_open(conn)
        try:
            with conn.begin_nested():
                res = conn.execute(update(t.inbox).where(t.inbox.c.id == row["id"],
                                                         t.inbox.c.claimed_by == self.name).values(**values))
        except Exception as e:
            _require_open(conn)
            log.exception("delivery %s: could not record its outcome: %s", row["id"], e)
            return "error"
        if res.rowcount != 1:
            log.info("delivery %s is no longer ours; its outcome (%s) is not recorded", row["id"], outcome)
            return "lost"
        return outcome

    def backoff(self, attempts: int) -> float:
        # Full jitter: spreads retries of a burst of failures instead of synchronising them.
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempts - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def _retry_or_bury(self, conn, row, exc: Exception) -> str:
        error = storable_error(_describe(exc))
        if row["attempts"] >= self.max_attempts:
            return self._finish(conn, row, "dead", f"after {row['attempts']} attempts: {error}")
        when = self.app.now() + timedelta(seconds=self.backoff(row["attempts"]))
        return self._record(conn, row, "retry", status="pending", next_attempt_at=when, lease_until=None,
                            last_error=error)

    # --- the loop ----------------------------------------------------------------------

    def run_once(self) -> Counts:
        """One pass: a batch of deliveries, due tasks, due actions, due messages."""
        from . import actions, tasks

        counts = Counts()
        claimed = self.claim()
        counts.dead += self.buried
        self.buried = 0
        for status in self.process_batch(claimed):
            if status == "done":
                counts.processed += 1
            elif status == "ignored":
                counts.ignored += 1
            elif status == "retry":
                counts.retried += 1
            elif status == "dead":
                counts.dead += 1
            # On SIGTERM the claimed batch is still finished: its rows are ours until the
            # lease runs out, and leaving them would delay them by a whole lease.
        counts.tasks = tasks.run_due(self.app)
        counts.add_actions(actions.run_due(self.app))
        counts.add_messages(self.send_messages())
        return counts

    def send_messages(self) -> dict:
        from .messaging.outbox import send_due

        now = self.app.now()
        return send_due(self.app.engine, now=now, channels=self.app.channels, pm=self.app.pm,
                        settings=self.app.settings,
                        ctx_factory=lambda conn: HookContext(self.app, conn, now=now, source="messages"))

    def busy(self, counts: Counts) -> bool:
        return bool(counts.processed or counts.ignored or counts.retried or counts.dead
                    or sum(counts.actions.values()) or counts.messages.get("sent", 0)
                    or counts.messages.get("failed", 0) or counts.messages.get("suppressed", 0))

    def run(self, *, burst: bool = False) -> Counts:
        """Loop until SIGTERM/SIGINT (finishing the batch in hand) or, with burst, until idle."""
        total = Counts()
        self._install_signals()
        while not self.stopping:
            c = self.run_once()
            total.processed += c.processed
            total.ignored += c.ignored
            total.retried += c.retried
            total.dead += c.dead
            total.tasks += c.tasks
            total.add_actions(c.actions)
            total.add_messages(c.messages)
            if not self.busy(c):
                if burst:
                    break
                time.sleep(self.poll)
        return total

    def _install_signals(self):
        def stop(signum, frame):
            log.info("signal %s: finishing the current batch, then stopping", signum)
            self.stopping = True

        try:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        except ValueError:  # not the main thread (embedded use): the caller stops us
            pass


def replay(app, *, ids=None, status: str | None = None) -> int:
    """Put deliveries back in the queue; the idempotency keys make a replay safe."""
    conds = []
    if ids:
        conds.append(t.inbox.c.id.in_(ids))
    if status:
        conds.append(t.inbox.c.status == status)
    if not conds:
        raise ValueError("replay needs ids or a status")
    with app.engine.begin() as conn:
        res = conn.execute(update(t.inbox).where(and_(*conds), t.inbox.c.status != "processing").values(
            status="pending", attempts=0, next_attempt_at=app.now(), lease_until=None, claimed_by=None))
        return res.rowcount

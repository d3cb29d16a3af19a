"""Scheduled messages in storage: send what is due, explain, list.

Features schedule through ``ctx.schedule_message`` (:mod:`.schedule`, whose
functions this module re-exports). The worker calls :func:`send_due`, which

1. claims due rows (``scheduled``/``deferred`` with ``send_at <= now``) under a
   lease, in a short transaction (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so
   workers never share a row);
2. sends them in groups, a transaction each (``[messages] messages_per_commit``,
   committed early after ``commit_interval_ms``): the group's rows are read once,
   locked, where the lease is still ours (a row another worker took is skipped);
   for each: applies the contact policy, and stores ``suppressed`` or ``deferred``
   (with the new ``send_at``) and the reason, or renders and sends, storing
   ``sent`` with the provider id and what was rendered. A Zendesk/Shopify action
   is queued in the same transaction, in a savepoint with the message's status: a
   failed send rolls back to it, then records the attempt beside the others (a
   transient error is retried later with exponential backoff, anything else, or
   the last attempt, is ``failed``, with the reason).

A channel that sends outside the database (SMTP) does not declare
``sends_in_transaction``; the group is committed right after such a send, so a
crash between a send and its commit never holds more than that one message.

A worker that dies mid-batch leaves rows whose lease runs out; the next
worker takes them again. A transaction that fails leaves its rows the same way,
and nothing it wrote (no action) behind. An email sent just before such a crash
may go out twice, with the same Message-ID (derived from the key) so it is
recognisable.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection, Engine

from .. import links
from ..context import HookContext
from ..customers import follow_merges as load_customer  # noqa: F401 (features import it from here)
from ..shop_scope import scope
from ..storage import tables as t
from ..storage.db import for_update, is_sqlite
from .channels import Channel, ChannelError, unsubscribe_links
from .kinds import MARKETING, KindRegistry
from .policy import DEFER, SUPPRESS, WINDOW, Decision, PolicySettings, decide
from .schedule import (  # noqa: F401 (re-exported: messaging's API for scheduling)
    CANCELLED,
    DEFAULT_CHANNEL,
    DEFERRED,
    FAILED,
    PENDING,
    SCHEDULED,
    SENT,
    STATUSES,
    SUPPRESSED,
    _utc,
    cancel_message,
    jsonable,
    pending,
    record_suppressed,
    retry_message,
    schedule_message,
)
from .settings import section, templates_dir
from .templates import Renderer, RenderError

log = logging.getLogger(__name__)

m, c = t.messages, t.customers


# --- customers ----------------------------------------------------------------------------


def recent_marketing(conn: Connection, customer_id, until: datetime, *, exclude_id=None,
                     span: timedelta = WINDOW) -> list[datetime]:
    """When this customer's marketing messages went out, any channel, in ``span`` before ``until``."""
    q = select(m.c.sent_at).where(m.c.customer_id == customer_id, m.c.message_class == MARKETING,
                                  m.c.status == SENT, m.c.sent_at > until - span, m.c.sent_at <= until)
    if exclude_id is not None:
        q = q.where(m.c.id != exclude_id)
    return [r[0] for r in conn.execute(q)]


# --- plugin hooks as the policy's callbacks ---------------------------------------------------


def timezone_hook(pm) -> Callable[[Mapping], str | None] | None:
    if pm is None:
        return None
    return lambda customer: pm.hook.customer_timezone(customer=customer)


def veto_hook(pm) -> Callable[[Mapping, Mapping, datetime], str | None] | None:
    """``contact_allowed``: any False vetoes; the reason names the plugin that said no."""
    if pm is None:
        return None

    def veto(message, customer, when):
        args = {"message": message, "customer": customer, "when": when}
        for impl in reversed(pm.hook.contact_allowed.get_hookimpls()):  # pluggy's calling order
            if impl.hookwrapper or impl.wrapper:
                continue
            if impl.function(*[args[a] for a in impl.argnames]) is False:
                return f"vetoed by plugin {impl.plugin_name!r} (contact_allowed)"
        return None

    return veto


def _policy_inputs(settings, pm):
    return PolicySettings.from_settings(settings), timezone_hook(pm), veto_hook(pm)


def explain(conn: Connection, customer_id, kind: str, message_class: str | None, at: datetime, settings=None,
            pm=None) -> Decision:
    """What the policy would decide for a ``kind`` message to this customer due at ``at``."""
    at = _utc(at, "at")
    customer = load_customer(conn, customer_id)
    if customer is None:
        raise LookupError(f"no customer with id {customer_id}")
    if message_class is None:
        message_class = KindRegistry.from_pm(pm).class_of(kind)
    policy, tz_hook, veto = _policy_inputs(settings, pm)
    span = max(WINDOW, policy.min_gap)
    return decide(message_class=message_class, kind=kind, customer=customer, due_at=at, now=at,
                  recent_marketing=recent_marketing(conn, customer["id"], at, span=span), settings=policy,
                  timezone_hook=tz_hook, veto_hook=veto,
                  message={"kind": kind, "message_class": message_class, "customer_id": customer["id"],
                           "due_at": at})


def list_messages(conn: Connection, *, customer_id=None, status: str | None = None, limit: int = 50) -> list[dict]:
    q = select(m.c.id, m.c.key, m.c.customer_id, m.c.kind, m.c.message_class, m.c.channel, m.c.locale,
               m.c.status, m.c.reason, m.c.due_at, m.c.send_at, m.c.sent_at, m.c.attempts, m.c.provider_id)
    if customer_id is not None:
        q = q.where(m.c.customer_id == customer_id)
    if status is not None:
        q = q.where(m.c.status == status)
    return [dict(r) for r in conn.execute(q.order_by(m.c.send_at.desc(), m.c.id.desc()).limit(limit)).mappings()]


# --- sending --------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _cached_renderer(override_dir, fallback, strict, shop_name, shop_url) -> Renderer:
    return Renderer(override_dir, fallback_locale=fallback, strict=strict, shop_name=shop_name, shop_url=shop_url)


def renderer_for(settings) -> Renderer:
    """One renderer per template configuration, so compiled templates are reused across batches."""
    s = section(settings, "messages")
    d = templates_dir(settings)
    return _cached_renderer(str(d) if d else None, s["fallback_locale"], s["strict_templates"], s["shop_name"],
                            s["shop_url"])


class _SendFailed(Exception):
    def __init__(self, reason: str, transient: bool):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def claim_due(engine: Engine, now: datetime, limit: int, lease_seconds: int) -> tuple[list[int], datetime]:
    """Lease up to ``limit`` due messages to this worker; returns their ids and the lease."""
    lease = now + timedelta(seconds=lease_seconds)
    with engine.begin() as conn:
        q = (select(m.c.id)
             .where(m.c.status.in_(PENDING), m.c.send_at <= now,
                    or_(m.c.lease_until.is_(None), m.c.lease_until < now))
             .order_by(m.c.send_at, m.c.id).limit(limit))
        ids = list(conn.execute(for_update(q, conn, skip_locked=True)).scalars())
        if ids:
            conn.execute(update(m).where(m.c.id.in_(ids)).values(lease_until=lease))
    return ids, lease


def sends_in_transaction(channel) -> bool:
    """Whether ``channel`` declares that its send only writes through ``ctx`` (``sends_in_transaction = True``).

    Such a send commits or rolls back with the message, so several of them can share a transaction.
    Anything else (SMTP, an HTTP call, a channel that does not say) has an effect no rollback undoes,
    and its message is committed right after the send.
    """
    return getattr(channel, "sends_in_transaction", False) is True


def send_due(engine: Engine, *, now: datetime, channels: Mapping[str, Channel], pm=None, settings=None,
             limit: int | None = None, ctx_factory: Callable[[Connection], Any] | None = None,
             renderer: Renderer | None = None) -> dict[str, int]:
    """Send what is due at ``now``; returns counts: sent, deferred, suppressed, failed, retry, skipped.

    :param channels: name -> channel, from the ``register_channels`` hook.
    :param ctx_factory: ``ctx_factory(conn)`` gives the ``ctx`` channels receive; it
        must offer ``settings`` and ``enqueue_action`` writing in ``conn``. Default: a
        :class:`~retention_plugin.context.HookContext` over ``settings``.
    """
    now = _utc(now, "now")
    cfg = section(settings, "messages")
    ids, lease = claim_due(engine, now, limit or cfg["batch_size"], cfg["lease_seconds"])
    return send_claimed(engine, ids, lease, now=now, channels=channels, pm=pm, settings=settings,
                        ctx_factory=ctx_factory, renderer=renderer)


def send_claimed(engine: Engine, ids: list[int], lease: datetime, *, now: datetime, channels: Mapping[str, Channel],
                 pm=None, settings=None, ctx_factory: Callable[[Connection], Any] | None = None,
                 renderer: Renderer | None = None) -> dict[str, int]:
    """Send the messages :func:`claim_due` leased (``ids`` under ``lease``); counts as :func:`send_due`.

    A message whose lease is no longer ``lease`` (it ran out and another worker took the message),
    or that was cancelled meanwhile, is skipped.
    """
    sender = _Sender(now=_utc(now, "now"), lease=lease, channels=channels, pm=pm, settings=settings,
                     ctx_factory=ctx_factory, renderer=renderer)
    counts = dict.fromkeys(("sent", "deferred", "suppressed", "failed", "retry", "skipped"), 0)
    done = 0
    try:
        while done < len(ids):
            taken, committed = sender.send_group(engine, ids[done:done + sender.per_commit], counts)
            if not committed:  # the database is in trouble: the rest wait for their lease too
                break
            done += taken
    finally:
        if ids:
            log.info("messages: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none recorded")
    return counts


@lru_cache(maxsize=64)
def _finish_statement(columns: tuple[str, ...]):
    """The UPDATE recording a message's outcome, with ``columns`` set besides status and reason.

    Built once per set of columns (a handful: sent, deferred, failed, retry...), as building it per
    message cost more than running it.
    """
    # The lease in the condition: a message taken from us is never written over.
    return (update(m).where(m.c.id == bindparam("finish_id"), pending(m.c.status),
                            m.c.lease_until == bindparam("finish_lease"))
            .values(status=bindparam("finish_status", type_=m.c.status.type),
                    reason=bindparam("finish_reason", type_=m.c.reason.type), lease_until=None,
                    **{c: bindparam(f"finish_{c}", type_=m.c[c].type) for c in columns}))


_SAVEPOINT, _RELEASE, _ROLLBACK_TO = (f"{verb} retention_message" for verb in (
    "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """What ``with conn.begin_nested():`` does, in statements of one name.

    SQLAlchemy names each savepoint anew (``sa_savepoint_<n>``, counting up for the connection's
    life), so each one's SAVEPOINT and RELEASE were compiled again: that cost more than the rest of
    the send. Its way out kept: RELEASE after the block; after an error, ROLLBACK TO (unless the
    transaction or the connection is gone: no savepoint is left to roll back to), then the error.
    A failed RELEASE rolls back to the savepoint too, and raises.
    """
    conn.exec_driver_sql(_SAVEPOINT)
    try:
        yield
        conn.exec_driver_sql(_RELEASE)
    except BaseException:
        if conn.in_transaction() and not conn.invalidated:
            conn.exec_driver_sql(_ROLLBACK_TO)
        raise


class _LeaseLost(Exception):
    """The message is no longer ours (or no longer due): what its send wrote is rolled back."""


class _Sender:
    """One ``send_claimed`` call: the settings it reads once, and the groups it sends.

    A group is up to ``[messages] messages_per_commit`` messages in one transaction, closed
    early after ``commit_interval_ms``, and right after any send through a channel that is not
    ``sends_in_transaction``: a crash between such a send and its commit sends it again, so
    nothing else may wait on that commit.
    """

    def __init__(self, *, now, lease, channels, pm, settings, ctx_factory, renderer):
        self.now, self.lease, self.channels, self.settings = now, lease, channels, settings
        self.cfg = section(settings, "messages")
        self.email_cfg = section(settings, "email")
        self.policy, self.tz_hook, self.veto = _policy_inputs(settings, pm)
        self.span = max(WINDOW, self.policy.min_gap)
        self.renderer = renderer or renderer_for(settings)
        self.ctx_factory = ctx_factory
        self.per_commit = self.cfg["messages_per_commit"]
        self.interval = self.cfg["commit_interval_ms"] / 1000
        self.outside = False  # whether the message in hand was handed to a channel outside the database

    def send_group(self, engine: Engine, ids: list[int], counts: dict[str, int]) -> tuple[int, bool]:
        """Send ``ids`` from the first in one transaction; returns how many it took, and whether it committed.

        Outcomes are counted once their commit succeeded. When the transaction fails, nothing of
        it happened: its messages stay leased and come back when the lease runs out.
        An unexpected error in a message (a plugin's policy hook, a database error) ends the
        group: what came before it commits, then the error is raised, as a message's own
        transaction raised it before messages shared one.
        """
        outcomes: list[str] = []
        error: BaseException | None = None
        taken = 0
        started = time.monotonic()
        try:
            with engine.begin() as conn:
                group = _Group(conn, ids, self)
                for mid in ids:
                    taken += 1
                    row = group.rows.get(mid)
                    if row is None:  # cancelled meanwhile, or the lease ran out and another worker took it
                        outcomes.append("skipped")
                        continue
                    try:
                        outcome, outside = self._one(conn, dict(row), group)
                    except Exception as e:
                        error = e
                        break
                    outcomes.append(outcome)
                    if outside or time.monotonic() - started >= self.interval:
                        break
        except Exception as e:
            log.exception("messages %s: their transaction failed, none of them is recorded; they are sent "
                          "when their lease runs out: %s", ids[:max(1, taken)], e)
            if error is not None:
                raise error from e
            return taken, False
        for outcome in outcomes:
            counts[outcome] += 1
        if error is not None:
            raise error
        return taken, True

    def _one(self, conn, msg: dict, group: _Group) -> tuple[str, bool]:
        """One message's outcome, written in ``conn``; and whether a send reached outside the database."""
        self.outside = False
        # What the send writes (a Zendesk or Shopify channel's action) is the message's shop's.
        with scope(msg["shop"]):
            try:
                return self._attempt(conn, msg, group), self.outside
            except _LeaseLost:
                return "skipped", self.outside
            except _SendFailed as e:  # the send's savepoint is rolled back: record the attempt beside it
                return self._record_failure(conn, msg, e), self.outside

    def _finish(self, conn, mid, status: str, reason: str, **values) -> None:
        params = {f"finish_{k}": v for k, v in values.items()}
        params.update(finish_id=mid, finish_lease=self.lease, finish_status=status, finish_reason=reason)
        res = conn.execute(_finish_statement(tuple(values)), params)
        if res.rowcount != 1:
            raise _LeaseLost(mid)

    def _attempt(self, conn, msg: dict, group: _Group) -> str:
        mid, now, cfg, policy = msg["id"], self.now, self.cfg, self.policy
        marketing = msg["message_class"] == MARKETING
        customer = group.customer(msg["customer_id"], marketing)
        if customer is None:
            self._finish(conn, mid, FAILED, f"customer {msg['customer_id']} not found")
            return "failed"

        recent = group.recent_marketing(customer["id"], mid) if marketing else []
        d = decide(message_class=msg["message_class"], kind=msg["kind"], customer=customer, due_at=msg["due_at"],
                   now=now, recent_marketing=recent, settings=policy, timezone_hook=self.tz_hook,
                   veto_hook=self.veto, message=msg)
        if d.decision == SUPPRESS:
            self._finish(conn, mid, SUPPRESSED, d.reason)
            return "suppressed"
        if d.decision == DEFER:
            self._finish(conn, mid, DEFERRED, d.reason, send_at=d.send_at)
            return "deferred"

        name = cfg["default_channel"] if msg["channel"] == DEFAULT_CHANNEL else msg["channel"]
        channel = self.channels.get(name)
        if channel is None:
            self._finish(conn, mid, FAILED,
                         f"unknown channel {name!r} (registered: {', '.join(sorted(self.channels)) or 'none'})")
            return "failed"
        offers_unsubscribe = policy.offers_unsubscribe(msg["message_class"], msg["kind"])
        try:
            secret = links.secret_of(self.settings)
            unsubscribe = (unsubscribe_links(self.email_cfg, customer, msg, link_secret=secret, now=now)[0]
                           if offers_unsubscribe else None)
        except ChannelError as e:
            raise _SendFailed(f"{name}: {e.message}", e.transient) from e
        msg["list_unsubscribe"] = offers_unsubscribe  # the email channel adds the header by this
        try:
            rendered = self.renderer.render(msg["kind"], msg["locale"] or customer.get("locale"), msg["data"] or {},
                                            customer=customer, tz=ZoneInfo(d.timezone or "UTC"),
                                            unsubscribe_url=unsubscribe, template=msg["template"],
                                            message_class=msg["message_class"])
        except RenderError as e:
            self._finish(conn, mid, FAILED, str(e), attempts=msg["attempts"] + 1)
            return "failed"
        # The savepoint makes a failed send this message's alone: what the channel wrote is undone
        # and the messages before it in the transaction keep theirs.
        with _savepoint(conn):
            ctx = self.ctx_factory(conn) if self.ctx_factory else _default_ctx(conn, self.settings, now)
            self.outside = not sends_in_transaction(channel)
            try:
                provider_id = channel.send(msg, customer, rendered, ctx)
            except ChannelError as e:
                raise _SendFailed(f"{name}: {e.message}", e.transient) from e
            except Exception as e:  # a plugin's channel with a bug: retried, then failed, never lost silently
                log.exception("channel %s raised on message %s", name, msg["key"])
                raise _SendFailed(f"{name}: unexpected {type(e).__name__}: {e}", True) from e
            self._finish(conn, mid, SENT, f"{name}: {d.reason}", sent_at=now, provider_id=str(provider_id)[:255],
                         rendered=rendered.to_dict(), attempts=msg["attempts"] + 1)
        if marketing:
            group.spent(customer["id"], now)
        return "sent"

    def _record_failure(self, conn, msg: dict, e: _SendFailed) -> str:
        cfg, mid = self.cfg, msg["id"]
        attempts = msg["attempts"] + 1
        try:
            if e.transient and attempts < cfg["max_attempts"]:
                when = self.now + backoff(attempts, cfg)
                self._finish(conn, mid, msg["status"],
                             f"attempt {attempts} of {cfg['max_attempts']} failed: {e.reason}; "
                             f"retrying at {when.isoformat()}", attempts=attempts, send_at=when)
                return "retry"
            why = "" if not e.transient else f" (gave up after {attempts} attempts)"
            self._finish(conn, mid, FAILED, f"{e.reason}{why}", attempts=attempts)
        except _LeaseLost:
            return "skipped"
        return "failed"


class _Group:
    """What a group's messages read once: their rows (the lease check) and their customers.

    The rows are read locked (PostgreSQL) under this worker's lease, so they stay ours and as read
    until the commit. Where the database has row locks, a marketing message reads its customer
    locked and its recent marketing one at a time, so two workers cannot both spend the last slot of
    the cap; on SQLite the transaction's write lock (``BEGIN IMMEDIATE``) already keeps every other
    writer out until the commit, so the group reads those once too, and counts its own sends.
    """

    def __init__(self, conn, ids: list[int], sender: _Sender):
        self.conn, self.span, self.now = conn, sender.span, sender.now
        self.exclusive = is_sqlite(conn)
        q = select(m).where(m.c.id.in_(ids), m.c.status.in_(PENDING), m.c.lease_until == sender.lease)
        self.rows = {r["id"]: r for r in conn.execute(for_update(q, conn)).mappings()}
        marketing = {r["customer_id"] for r in self.rows.values() if r["message_class"] == MARKETING}
        wanted = {r["customer_id"] for r in self.rows.values()} - (set() if self.exclusive else marketing)
        self.customers = ({r["id"]: r for r in conn.execute(select(c).where(c.c.id.in_(wanted))).mappings()}
                          if wanted else {})
        self.recent: dict[int, list[datetime]] = {}
        if self.exclusive and marketing:
            self.recent = {cid: [] for cid in marketing}
            q = select(m.c.customer_id, m.c.sent_at).where(
                m.c.customer_id.in_(marketing), m.c.message_class == MARKETING, m.c.status == SENT,
                m.c.sent_at > self.now - self.span, m.c.sent_at <= self.now)
            for cid, at in conn.execute(q):
                self.recent[cid].append(at)

    def customer(self, customer_id, marketing: bool) -> dict | None:
        row = self.customers.get(customer_id)
        if row is not None and row["merged_into"] is None:
            return dict(row)
        # Not read with the group (a marketing message's, to be locked), or merged into another.
        return load_customer(self.conn, customer_id, lock=marketing)

    def recent_marketing(self, customer_id, message_id) -> list[datetime]:
        if customer_id in self.recent:
            return list(self.recent[customer_id])
        return recent_marketing(self.conn, customer_id, self.now, exclude_id=message_id, span=self.span)

    def spent(self, customer_id, at: datetime) -> None:
        """A marketing message to this customer was sent in the group."""
        if customer_id in self.recent:
            self.recent[customer_id].append(at)


def _default_ctx(conn, settings, now):
    return HookContext(SimpleNamespace(settings=settings), conn, now=now, source="messages")


def backoff(attempt: int, cfg: Mapping) -> timedelta:
    """Exponential: base, 2 x base, 4 x base ... capped at backoff_max_seconds."""
    seconds = cfg["backoff_base_seconds"] * 2 ** max(attempt - 1, 0)
    return timedelta(seconds=min(seconds, cfg["backoff_max_seconds"]))


def dumps(value) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)

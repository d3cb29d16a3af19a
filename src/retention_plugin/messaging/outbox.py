"""Scheduled messages in storage: send what is due, explain, list.

Features schedule through ``ctx.schedule_message`` (:mod:`.schedule`, whose
functions this module re-exports). The worker calls :func:`send_due`, which

1. claims due rows (``scheduled``/``deferred`` with ``send_at <= now``) under a
   lease, in a short transaction (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so
   workers never share a row);
2. for each, in a transaction of its own: applies the contact policy, and
   stores ``suppressed`` or ``deferred`` (with the new ``send_at``) and the
   reason, or renders and sends, storing ``sent`` with the provider id and
   what was rendered. A Zendesk/Shopify action is queued in that same
   transaction. A failed send rolls all of it back, then records the attempt:
   a transient error is retried later with exponential backoff, anything else
   (or the last attempt) is ``failed``, with the reason.

A worker that dies mid-batch leaves rows whose lease runs out; the next
worker takes them again. An email sent just before such a crash may go out
twice, with the same Message-ID (derived from the key) so it is recognisable.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection, Engine

from .. import links
from ..context import HookContext
from ..customers import follow_merges as load_customer  # noqa: F401 (features import it from here)
from ..shop_scope import scope
from ..storage import tables as t
from ..storage.db import for_update
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
    email_cfg = section(settings, "email")
    policy, tz_hook, veto = _policy_inputs(settings, pm)
    renderer = renderer or renderer_for(settings)
    counts = dict.fromkeys(("sent", "deferred", "suppressed", "failed", "retry", "skipped"), 0)
    ids, lease = claim_due(engine, now, limit or cfg["batch_size"], cfg["lease_seconds"])
    shop_of = {}
    if ids:
        with engine.connect() as conn:
            m = t.messages
            shop_of = dict(conn.execute(select(m.c.id, m.c.shop).where(m.c.id.in_(ids))).all())
    for mid in ids:
        try:
            # What the send writes (a Zendesk or Shopify channel's action) is the message's shop's.
            with engine.begin() as conn, scope(shop_of.get(mid)):
                outcome = _attempt(conn, mid, lease, now, channels=channels, cfg=cfg, email_cfg=email_cfg,
                                   policy=policy, tz_hook=tz_hook, veto=veto, renderer=renderer,
                                   ctx_factory=ctx_factory, settings=settings)
        except _SendFailed as e:  # the send's transaction is rolled back; record the attempt on its own
            with engine.begin() as conn:
                outcome = _record_failure(conn, mid, now, e, cfg)
        counts[outcome] += 1
    if ids:
        log.info("messages: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return counts


def _finish(conn, mid, status: str, reason: str, **values) -> None:
    conn.execute(update(m).where(m.c.id == mid).values(status=status, reason=reason, lease_until=None, **values))


def _attempt(conn, mid, lease, now, *, channels, cfg, email_cfg, policy, tz_hook, veto, renderer, ctx_factory,
             settings) -> str:
    q = select(m).where(m.c.id == mid, m.c.status.in_(PENDING), m.c.lease_until == lease)
    row = conn.execute(for_update(q, conn)).mappings().first()
    if row is None:  # cancelled meanwhile, or the lease ran out and another worker took it
        return "skipped"
    msg = dict(row)
    marketing = msg["message_class"] == MARKETING
    # Lock the customer while deciding, so two workers can't both spend the last slot of the cap.
    customer = load_customer(conn, msg["customer_id"], lock=marketing)
    if customer is None:
        _finish(conn, mid, FAILED, f"customer {msg['customer_id']} not found")
        return "failed"

    recent = recent_marketing(conn, customer["id"], now, exclude_id=mid, span=max(WINDOW, policy.min_gap))
    d = decide(message_class=msg["message_class"], kind=msg["kind"], customer=customer, due_at=msg["due_at"],
               now=now, recent_marketing=recent, settings=policy, timezone_hook=tz_hook, veto_hook=veto,
               message=msg)
    if d.decision == SUPPRESS:
        _finish(conn, mid, SUPPRESSED, d.reason)
        return "suppressed"
    if d.decision == DEFER:
        _finish(conn, mid, DEFERRED, d.reason, send_at=d.send_at)
        return "deferred"

    name = cfg["default_channel"] if msg["channel"] == DEFAULT_CHANNEL else msg["channel"]
    channel = channels.get(name)
    if channel is None:
        _finish(conn, mid, FAILED, f"unknown channel {name!r} (registered: {', '.join(sorted(channels)) or 'none'})")
        return "failed"
    offers_unsubscribe = policy.offers_unsubscribe(msg["message_class"], msg["kind"])
    try:
        secret = links.secret_of(settings)
        unsubscribe = (unsubscribe_links(email_cfg, customer, msg, link_secret=secret, now=now)[0]
                       if offers_unsubscribe else None)
    except ChannelError as e:
        raise _SendFailed(f"{name}: {e.message}", e.transient) from e
    msg["list_unsubscribe"] = offers_unsubscribe  # the email channel adds the header by this
    try:
        rendered = renderer.render(msg["kind"], msg["locale"] or customer.get("locale"), msg["data"] or {},
                                   customer=customer, tz=ZoneInfo(d.timezone or "UTC"),
                                   unsubscribe_url=unsubscribe, template=msg["template"],
                                   message_class=msg["message_class"])
    except RenderError as e:
        _finish(conn, mid, FAILED, str(e), attempts=msg["attempts"] + 1)
        return "failed"
    ctx = ctx_factory(conn) if ctx_factory else _default_ctx(conn, settings, now)
    try:
        provider_id = channel.send(msg, customer, rendered, ctx)
    except ChannelError as e:
        raise _SendFailed(f"{name}: {e.message}", e.transient) from e
    except Exception as e:  # a plugin's channel with a bug: retried, then failed, never lost silently
        log.exception("channel %s raised on message %s", name, msg["key"])
        raise _SendFailed(f"{name}: unexpected {type(e).__name__}: {e}", True) from e
    _finish(conn, mid, SENT, f"{name}: {d.reason}", sent_at=now, provider_id=str(provider_id)[:255],
            rendered=rendered.to_dict(), attempts=msg["attempts"] + 1)
    return "sent"


def _default_ctx(conn, settings, now):
    return HookContext(SimpleNamespace(settings=settings), conn, now=now, source="messages")


def backoff(attempt: int, cfg: Mapping) -> timedelta:
    """Exponential: base, 2 x base, 4 x base ... capped at backoff_max_seconds."""
    seconds = cfg["backoff_base_seconds"] * 2 ** max(attempt - 1, 0)
    return timedelta(seconds=min(seconds, cfg["backoff_max_seconds"]))


def _record_failure(conn, mid, now, e: _SendFailed, cfg) -> str:
    row = conn.execute(select(m.c.attempts, m.c.status).where(m.c.id == mid)).first()
    if row is None:
        return "skipped"
    attempts = row.attempts + 1
    if e.transient and attempts < cfg["max_attempts"]:
        when = now + backoff(attempts, cfg)
        _finish(conn, mid, row.status if row.status in PENDING else SCHEDULED,
                f"attempt {attempts} of {cfg['max_attempts']} failed: {e.reason}; retrying at {when.isoformat()}",
                attempts=attempts, send_at=when)
        return "retry"
    why = "" if not e.transient else f" (gave up after {attempts} attempts)"
    _finish(conn, mid, FAILED, f"{e.reason}{why}", attempts=attempts)
    return "failed"


def dumps(value) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)

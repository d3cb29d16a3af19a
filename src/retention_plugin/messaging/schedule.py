"""Message rows: schedule one, withdraw it, put a failed one back, or record one never sent.

The core's ``ctx.schedule_message`` writes through :func:`schedule_message`,
inside the delivery's transaction; the unique ``key`` makes a replayed event a
no-op. Sending is :mod:`.outbox`'s.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy import bindparam, literal, select, update
from sqlalchemy.engine import Connection

from ..storage import tables as t
from ..storage.db import insert_ignore
from .kinds import KindRegistry, check_class

SCHEDULED, DEFERRED, SENT, SUPPRESSED, FAILED, CANCELLED = (
    "scheduled", "deferred", "sent", "suppressed", "failed", "cancelled")
STATUSES = (SCHEDULED, DEFERRED, SENT, SUPPRESSED, FAILED, CANCELLED)
PENDING = (SCHEDULED, DEFERRED)
#: Stored when a feature leaves the channel open: ``[messages] default_channel`` at send time.
DEFAULT_CHANNEL = "default"

m = t.messages


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    return value.astimezone(timezone.utc)


_PLAIN = frozenset((str, int, bool))


def jsonable(value: Any) -> Any:
    """Message data as JSON: Decimal as text (never float), dates ISO 8601, Money as {amount, currency}."""
    # Most values are already JSON (exactly these types, not subclasses, which go the long way):
    # they skip the chain of isinstance checks, is_dataclass among them.
    if value is None or type(value) in _PLAIN:
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, float):
        return str(Decimal(str(value)))
    return value


def schedule_message(conn: Connection, *, key: str, customer_id: int, kind: str, message_class: str | None = None,
                     due_at: datetime, data: Mapping | None = None, channel: str | None = None,
                     locale: str | None = None, template: str | None = None, now: datetime | None = None,
                     kinds: KindRegistry | None = None) -> int:
    """Schedule a message once per ``key``; returns its id, whether new or already there.

    :param message_class: ``transactional`` or ``marketing``; None takes the kind's default
        (built-ins, or ``kinds`` for kinds a plugin registered).
    :param channel: None: ``[messages] default_channel`` at send time.
    :param locale: the order's ``customer_locale``; None: the customer's locale at send time.
    """
    new_id = _insert(conn, key=key, customer_id=customer_id, kind=kind, message_class=message_class, due_at=due_at,
                     data=data, channel=channel, locale=locale, template=template, now=now, kinds=kinds)
    return new_id if new_id is not None else _id_of(conn, key)


def _id_of(conn: Connection, key: str) -> int:
    return conn.execute(select(m.c.id).where(m.c.key == key)).scalar_one()


def _insert(conn: Connection, *, key: str, customer_id: int, kind: str, message_class: str | None,
            due_at: datetime, data: Mapping | None, channel: str | None, locale: str | None,
            template: str | None, now: datetime | None, kinds: KindRegistry | None,
            status: str = SCHEDULED, reason: str | None = None) -> int | None:
    """The message row's INSERT (unless its key is there): the new id, or None when it was there."""
    if not key or len(key) > 255:
        raise ValueError(f"message key must be 1..255 characters, got {key!r}")
    if message_class is None:
        message_class = (kinds or KindRegistry.from_pm()).class_of(kind)
    check_class(message_class)
    due_at = _utc(due_at, "due_at")
    now = _utc(now, "now") if now else datetime.now(timezone.utc)
    return insert_ignore(conn, m, {
        "key": key, "customer_id": customer_id, "kind": kind, "message_class": message_class,
        "channel": channel or DEFAULT_CHANNEL, "template": template, "locale": locale,
        "data": jsonable(dict(data or {})), "due_at": due_at, "send_at": due_at, "status": status,
        "reason": reason, "attempts": 0, "created_at": now,
    }, ["key"])


def pending(status):
    """``status IN ('scheduled', 'deferred')`` of plain parameters: for statements built once and run
    per message (a literal list would be expanded at every run)."""
    return status.in_([literal(v, status.type) for v in PENDING])


# Built once: a reorder cancels the earlier order's reminder, so paid orders ask it over and over.
_CANCEL = (update(m).where(m.c.key == bindparam("cancel_key"), pending(m.c.status))
           .values(status=CANCELLED, reason=bindparam("cancel_reason", type_=m.c.reason.type), lease_until=None))


def cancel_message(conn: Connection, key: str, reason: str) -> bool:
    """Withdraw a message not yet sent (e.g. the order was refunded). True if one was cancelled."""
    res = conn.execute(_CANCEL, {"cancel_key": key, "cancel_reason": f"cancelled: {reason}"})
    return res.rowcount > 0


def retry_message(conn: Connection, message_id: int, now: datetime) -> bool:
    """Put a ``failed`` message back in the queue (after fixing a template or the SMTP settings)."""
    now = _utc(now, "now")
    res = conn.execute(update(m).where(m.c.id == message_id, m.c.status == FAILED).values(
        status=SCHEDULED, send_at=now, attempts=0, lease_until=None, reason="requeued by an admin"))
    return res.rowcount > 0


def record_suppressed(ctx, *, key: str, customer_id: int, kind: str, data: Mapping, reason: str,
                      locale: str | None = None) -> int:
    """A message row that is never sent, stored ``suppressed`` with ``reason``, so an admin sees why."""
    # A new row is stored suppressed by its INSERT (one statement); one already there (a replay) is
    # suppressed only while it is still scheduled, as a row scheduled and then suppressed would be.
    new_id = _insert(ctx.conn, key=key, customer_id=customer_id, kind=kind,
                     message_class=ctx.app.message_kinds.get(kind), due_at=ctx.now, data=dict(data), channel=None,
                     locale=locale, template=None, now=ctx.now, kinds=None, status=SUPPRESSED, reason=reason)
    if new_id is not None:
        return new_id
    mid = _id_of(ctx.conn, key)
    ctx.conn.execute(update(m).where(m.c.id == mid, m.c.status == SCHEDULED)
                     .values(status=SUPPRESSED, reason=reason))
    return mid

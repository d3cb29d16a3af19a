"""Zendesk webhook payloads -> domain events.

Two shapes arrive at ``/webhooks/zendesk``:

(a) **event-subscribed envelopes** Zendesk defines: ``{"type":
    "zen:event-type:ticket.status_changed", "id": <uuid>, "time": ...,
    "detail": {ticket}, "event": {what changed}}``, with ids as strings and
    enums in upper case;
(b) **trigger bodies this project ships** in ``config/zendesk/``: JSON a
    trigger's "notify webhook" action renders from placeholders, marked by
    ``"retention_event"``. Every value is a string there (an unset
    placeholder renders empty, and a bare empty number would break the JSON).

:func:`parse_zendesk` accepts both; :func:`parse_satisfaction_ratings` reads
``GET /api/v2/satisfaction_ratings``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Mapping

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from ...events import (
    Comment,
    CommentAdded,
    CustomerInfo,
    Event,
    Rating,
    SatisfactionRated,
    Ticket,
    TicketCreated,
    TicketSolved,
    TicketUpdated,
)
from ..errors import PayloadError, UnsupportedTopic
from ..schema_fields import (
    BlankableString,
    Id,
    Inline,
    OptionalId,
    OptionalUtcDateTime,
    Tags,
    Text,
    UtcDateTime,
    load_body,
    normalise_email,
    payload_error_from,
    storable_json,
)

PLATFORM = "zendesk"
EVENT_TYPE_PREFIX = "zen:event-type:"
SOLVED_STATUSES = frozenset({"solved", "closed"})

#: ``retention_event`` values of the shipped trigger bodies.
TRIGGER_EVENTS = ("ticket.created", "ticket.solved", "satisfaction.rated", "ticket.complaint_tagged")


class _Schema(Schema):
    class Meta:
        unknown = EXCLUDE


def _opt_str():
    return BlankableString(allow_none=True, load_default=None)


def _opt_id():
    return OptionalId(allow_none=True, load_default=None)


def _opt_time():
    return OptionalUtcDateTime(allow_none=True, load_default=None)


# --- (a) event-subscribed envelopes --------------------------------------------------


class ViaSchema(_Schema):
    channel = _opt_str()


class TicketDetailSchema(_Schema):
    id = Id(required=True)
    subject = _opt_str()
    description = _opt_str()
    status = _opt_str()
    priority = _opt_str()
    tags = Tags(allow_none=True, load_default=None)
    requester_id = _opt_id()
    group_id = _opt_id()
    form_id = _opt_id()
    created_at = _opt_time()
    updated_at = _opt_time()
    via = Inline(ViaSchema, allow_none=True, load_default=None)


class EnvelopeSchema(_Schema):
    type = Text(required=True)
    id = _opt_str()
    subject = _opt_str()
    time = UtcDateTime(required=True)
    detail = Inline(TicketDetailSchema, required=True)
    event = fields.Dict(allow_none=True, load_default=dict)


class CommentAuthorSchema(_Schema):
    id = _opt_id()
    is_staff = fields.Boolean(allow_none=True, load_default=None)
    name = _opt_str()


class EventCommentSchema(_Schema):
    id = _opt_id()
    body = Text(allow_none=True, load_default=None)
    is_public = fields.Boolean(required=True)
    author = Inline(CommentAuthorSchema, allow_none=True, load_default=None)


class CommentEventSchema(_Schema):
    comment = Inline(EventCommentSchema, required=True)


class ChangeEventSchema(_Schema):
    current = fields.Raw(allow_none=True, load_default=None)
    previous = fields.Raw(allow_none=True, load_default=None)


# --- (b) shipped trigger bodies ------------------------------------------------------


class TriggerTicketSchema(_Schema):
    id = Id(required=True)
    subject = _opt_str()
    description = _opt_str()
    status = _opt_str()
    priority = _opt_str()
    tags = Tags(allow_none=True, load_default=None)
    via = _opt_str()
    group_id = _opt_id()
    created_at = _opt_time()
    updated_at = _opt_time()


class TriggerRequesterSchema(_Schema):
    id = _opt_id()
    email = _opt_str()
    first_name = _opt_str()
    last_name = _opt_str()
    external_id = _opt_str()


class TriggerSatisfactionSchema(_Schema):
    rating = _opt_str()
    comment = _opt_str()


class TriggerBodySchema(_Schema):
    retention_event = Text(required=True)
    ticket = Inline(TriggerTicketSchema, required=True)
    requester = Inline(TriggerRequesterSchema, allow_none=True, load_default=None)
    satisfaction = Inline(TriggerSatisfactionSchema, allow_none=True, load_default=None)


# --- satisfaction ratings API ----------------------------------------------------------


class RatingSchema(_Schema):
    id = Id(required=True)
    score = Text(required=True)
    comment = _opt_str()
    ticket_id = _opt_id()
    requester_id = _opt_id()
    created_at = UtcDateTime(required=True)
    updated_at = _opt_time()


def _load(schema: type[Schema], data: Any, prefix: str = "") -> dict[str, Any]:
    # One schema instance per class, nested objects loaded inline (schema_fields.load_body):
    # a new EnvelopeSchema per delivery built its nested schemas again, most of its parse.
    if not isinstance(data, Mapping):
        raise PayloadError(prefix or "<payload>", "expected a JSON object")
    try:
        return load_body(schema, data)
    except ValidationError as exc:
        raise payload_error_from(exc, prefix) from None


# --- helpers ---------------------------------------------------------------------------


def _enum(value: Any) -> str | None:
    """Zendesk enums: upper case in events, capitalised in placeholders; '-' when unset."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return None if value in ("", "-") else value


def _tags(value: Any) -> list[str]:
    # Event payloads send a list; {{ticket.tags}} renders space-separated text.
    if value is None:
        return []
    if isinstance(value, str):
        items = re.split(r"[\s,]+", value)
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value if v is not None]
    else:
        raise PayloadError("ticket.tags", "expected a list or a space-separated string")
    return [t.strip() for t in items if t and t.strip()]


def _score(text: str | None, field: str) -> tuple[str, float | None]:
    """Normalise a CSAT score: API codes (``good``) or placeholder text (``Good, I'm satisfied``)."""
    value = (text or "").strip().lower()
    if value.startswith("good"):
        return "good", 1.0
    if value.startswith("bad"):
        return "bad", 0.0
    if value.startswith("offered"):
        return "offered", None
    raise PayloadError(field, f"unrecognised satisfaction rating {text!r} (expected good or bad)")


# --- envelopes -> events -----------------------------------------------------------------


def _ticket_from_detail(detail: Mapping[str, Any]) -> Ticket:
    requester = (
        CustomerInfo(zendesk_user_id=detail["requester_id"]) if detail.get("requester_id") else None
    )
    return Ticket(
        zendesk_id=detail["id"],
        subject=detail.get("subject"),
        description=detail.get("description"),
        status=_enum(detail.get("status")),
        priority=_enum(detail.get("priority")),
        tags=_tags(detail.get("tags")),
        requester=requester,
        created_at=detail.get("created_at"),
        updated_at=detail.get("updated_at"),
        group_id=detail.get("group_id"),
        form_id=detail.get("form_id"),
        via=(detail.get("via") or {}).get("channel"),
    )


_SUBJECT_TICKET = re.compile(r"^zen:ticket:(\d+)$")


def _check_subject(subject: str | None, ticket_id: int) -> None:
    """The envelope's ``subject`` (``zen:ticket:<id>``) and ``detail.id`` must name one ticket."""
    match = _SUBJECT_TICKET.match(subject or "")
    if match and int(match.group(1)) != ticket_id:
        raise PayloadError("subject", f"names ticket {match.group(1)}, but detail.id is {ticket_id}")


def _envelope_events(payload: Mapping[str, Any], shop: str) -> list[Event]:
    data = _load(EnvelopeSchema, payload)
    _check_subject(data.get("subject"), data["detail"]["id"])
    kind = data["type"][len(EVENT_TYPE_PREFIX):]
    ticket_event = kind.removeprefix("ticket.") if kind.startswith("ticket.") else None
    if ticket_event is None:
        raise UnsupportedTopic(data["type"], PLATFORM)
    ticket = _ticket_from_detail(data["detail"])
    common = {"platform": PLATFORM, "shop": shop, "occurred_at": data["time"]}
    event = data.get("event") or {}

    if ticket_event == "created":
        return [TicketCreated(ticket=ticket, **common)]

    if ticket_event == "comment_added":
        body = _load(CommentEventSchema, event, "event")
        comment = body["comment"]
        author = comment.get("author") or {}
        return [
            CommentAdded(
                ticket=ticket,
                comment=Comment(
                    ticket_id=ticket.zendesk_id,
                    author_id=author.get("id"),
                    public=comment["is_public"],
                    body=comment.get("body"),
                    created_at=data["time"],
                    by_agent=author.get("is_staff"),
                ),
                **common,
            )
        ]

    if ticket_event.endswith("_changed"):
        field = _CHANGED_FIELDS.get(ticket_event, ticket_event.removesuffix("_changed"))
        change = _load(ChangeEventSchema, event, "event")
        if ticket_event == "custom_field_changed":
            _apply_custom_field(ticket, event)
        events: list[Event] = [TicketUpdated(ticket=ticket, changed=[field], **common)]
        if ticket_event == "status_changed":
            current = _enum(change.get("current")) or ticket.status
            previous = _enum(change.get("previous"))
            if current:
                ticket.status = current
            # solved -> closed is the same resolution; only the first counts.
            if current in SOLVED_STATUSES and previous not in SOLVED_STATUSES:
                events.append(TicketSolved(ticket=ticket, **common))
        return events

    raise UnsupportedTopic(data["type"], PLATFORM)


_CHANGED_FIELDS = {
    "group_assignment_changed": "group_id",
    "agent_assignment_changed": "assignee_id",
    "form_changed": "form_id",
    "custom_field_changed": "custom_fields",
}


def _apply_custom_field(ticket: Ticket, event: Mapping[str, Any]) -> None:
    field = event.get("custom_field") if isinstance(event, Mapping) else None
    current = event.get("current") if isinstance(event, Mapping) else None
    if isinstance(field, Mapping) and field.get("id") is not None:
        value = current.get("value") if isinstance(current, Mapping) else current
        if not storable_json(field["id"]) or not storable_json(value):
            raise PayloadError("event.custom_field", "holds a value no database can store")
        ticket.custom_fields[str(field["id"])[:100]] = value


# --- trigger bodies -> events --------------------------------------------------------------


def _trigger_events(payload: Mapping[str, Any], shop: str) -> list[Event]:
    data = _load(TriggerBodySchema, payload)
    kind = data["retention_event"].strip().lower()
    if kind not in TRIGGER_EVENTS:
        raise UnsupportedTopic(kind, PLATFORM)
    t = data["ticket"]
    r = data.get("requester") or {}
    requester = None
    if any(r.get(k) for k in ("id", "email", "external_id")):
        requester = CustomerInfo(
            zendesk_user_id=r.get("id"),
            email=normalise_email(r.get("email")),
            first_name=r.get("first_name"),
            last_name=r.get("last_name"),
            external_id=r.get("external_id"),
        )
    ticket = Ticket(
        zendesk_id=t["id"],
        subject=t.get("subject"),
        description=t.get("description"),
        status=_enum(t.get("status")),
        priority=_enum(t.get("priority")),
        tags=_tags(t.get("tags")),
        requester=requester,
        created_at=t.get("created_at"),
        updated_at=t.get("updated_at"),
        group_id=t.get("group_id"),
        via=t.get("via"),
    )
    when = ticket.updated_at or ticket.created_at
    common = {"platform": PLATFORM, "shop": shop, "occurred_at": when}

    if kind == "ticket.created":
        return [TicketCreated(ticket=ticket, **common)]
    if kind == "ticket.solved":
        return [TicketSolved(ticket=ticket, **common)]
    if kind == "ticket.complaint_tagged":
        return [TicketUpdated(ticket=ticket, changed=["tags"], **common)]

    # satisfaction.rated
    satisfaction = data.get("satisfaction") or {}
    score, value = _score(satisfaction.get("rating"), "satisfaction.rating")
    if when is None:
        raise PayloadError("ticket.updated_at", "needed to identify the rating")
    rating = Rating(
        source="zendesk",
        # The trigger cannot render the rating's own id; ticket + update time
        # identifies this rating, and a later change of mind gets a new row.
        source_id=f"ticket:{ticket.zendesk_id}:{_iso(when)}",
        score=score,
        value=value,
        comment=satisfaction.get("comment"),
        created_at=when,
        ticket_id=ticket.zendesk_id,
        customer=requester,
    )
    return [SatisfactionRated(rating=rating, ticket=ticket, **common)]


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- public entry points ---------------------------------------------------------------------


def parse_zendesk(payload: Mapping[str, Any], *, shop: str = "") -> list[Event]:
    """Turn one Zendesk webhook body into domain events.

    Accepts event-subscribed envelopes (``"type": "zen:event-type:ticket.*"``)
    and the trigger bodies shipped in ``config/zendesk/`` (``"retention_event"``).

    - ``ticket.created`` -> :class:`TicketCreated`
    - ``ticket.comment_added`` -> :class:`CommentAdded`
    - ``ticket.<field>_changed`` -> :class:`TicketUpdated` (``changed=[field]``),
      plus :class:`TicketSolved` when the status moves to solved/closed
    - trigger ``ticket.solved`` -> :class:`TicketSolved`;
      ``ticket.complaint_tagged`` -> :class:`TicketUpdated` (``changed=["tags"]``);
      ``satisfaction.rated`` -> :class:`SatisfactionRated`

    :param shop: what to put in ``Event.shop`` (e.g. the Zendesk subdomain);
        the payload itself does not say.
    :raises UnsupportedTopic: for other event types (user, organization,
        ticket.merged, ...).
    :raises PayloadError: naming the missing or invalid field.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("<payload>", f"expected a JSON object, got {type(payload).__name__}")
    kind = payload.get("type")
    if isinstance(kind, str) and kind.startswith(EVENT_TYPE_PREFIX):
        return _envelope_events(payload, shop)
    if "retention_event" in payload:
        return _trigger_events(payload, shop)
    raise PayloadError(
        "type",
        "neither a Zendesk event envelope (zen:event-type:...) nor a retention_event trigger body",
    )


def zendesk_event_id(payload: Mapping[str, Any]) -> str | None:
    """The envelope ``id`` (a UUID) of an event-subscribed delivery, else None.

    Trigger bodies have no id of their own: the receiver dedupes those on the
    ``X-Zendesk-Webhook-Invocation-Id`` header.
    """
    if not isinstance(payload, Mapping):
        return None
    kind = payload.get("type")
    event_id = payload.get("id")
    if isinstance(kind, str) and kind.startswith(EVENT_TYPE_PREFIX) and isinstance(event_id, str):
        return event_id.strip() or None
    return None


def parse_satisfaction_ratings(api_response: Mapping[str, Any]) -> list[Rating]:
    """Ratings from a ``GET /api/v2/satisfaction_ratings`` page.

    ``good`` is 1, ``bad`` 0; ``offered`` (survey sent, no answer) has no
    value; ``unoffered`` records are skipped. ``source_id`` is the rating id.
    """
    if not isinstance(api_response, Mapping):
        raise PayloadError("<payload>", "expected a JSON object")
    items = api_response.get("satisfaction_ratings")
    if not isinstance(items, list):
        raise PayloadError("satisfaction_ratings", "missing or not a list")
    ratings = []
    for i, raw in enumerate(items):
        where = f"satisfaction_ratings.{i}"
        data = _load(RatingSchema, raw, where)
        if data["score"].strip().lower() == "unoffered":
            continue
        score, value = _score(data["score"], f"{where}.score")
        requester = data.get("requester_id")
        ratings.append(
            Rating(
                source="zendesk",
                source_id=str(data["id"]),
                score=score,
                value=value,
                comment=data.get("comment"),
                created_at=data["created_at"],
                ticket_id=data.get("ticket_id"),
                customer=CustomerInfo(zendesk_user_id=requester) if requester else None,
            )
        )
    return ratings


"""``retention import zendesk --since DATE``: tickets (with requesters) and satisfaction ratings.

Tickets come from the cursor-based incremental export,
``GET /api/v2/incremental/tickets/cursor.json?start_time=<unix>&include=users``,
following ``after_cursor`` until ``end_of_stream``; the ``users`` sideload
gives each requester's email, which links the ticket to the customer who
ordered. Every ticket changed since the date is recorded with
:func:`records.record_ticket` (an upsert: newest ``updated_at`` wins), then
the ratings of ``GET /api/v2/satisfaction_ratings?start_time=<unix>`` with
:func:`records.record_rating` (stored once per rating id). Deleted tickets
are skipped. One transaction per page.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from .. import events as ev
from ..platforms.errors import PayloadError
from ..platforms.schema_fields import (
    BlankableString,
    Id,
    OptionalId,
    OptionalUtcDateTime,
    normalise_email,
    payload_error_from,
)
from ..platforms.zendesk.payloads import parse_satisfaction_ratings
from ..records.support import record_rating, record_ticket, ticket_row
from .report import ImportReport
from .values import split_name
from .writer import import_context

TICKETS_PATH = "/api/v2/incremental/tickets/cursor.json"


class _Schema(Schema):
    class Meta:
        unknown = EXCLUDE


class _Via(_Schema):
    channel = BlankableString(allow_none=True, load_default=None)


class _CustomField(_Schema):
    id = Id(required=True)
    value = fields.Raw(allow_none=True, load_default=None)


class TicketSchema(_Schema):
    """A ticket of the Support API (``/api/v2/tickets``, incremental export)."""

    id = Id(required=True)
    subject = BlankableString(allow_none=True, load_default=None)
    description = fields.String(allow_none=True, load_default=None)
    status = BlankableString(allow_none=True, load_default=None)
    priority = BlankableString(allow_none=True, load_default=None)
    tags = fields.List(fields.String(), allow_none=True, load_default=list)
    requester_id = OptionalId(allow_none=True, load_default=None)
    group_id = OptionalId(allow_none=True, load_default=None)
    ticket_form_id = OptionalId(allow_none=True, load_default=None)
    created_at = OptionalUtcDateTime(allow_none=True, load_default=None)
    updated_at = OptionalUtcDateTime(allow_none=True, load_default=None)
    via = fields.Nested(_Via, allow_none=True, load_default=None)
    custom_fields = fields.List(fields.Nested(_CustomField), allow_none=True, load_default=list)


def requester_info(user: Mapping[str, Any]) -> ev.CustomerInfo | None:
    """What a sideloaded user says about a requester (only what the customers table keeps)."""
    uid = user.get("id")
    if isinstance(uid, bool) or not isinstance(uid, int):
        return None
    first, last = split_name(user.get("name") if isinstance(user.get("name"), str) else None)
    external = user.get("external_id")
    locale = user.get("locale")
    return ev.CustomerInfo(
        zendesk_user_id=uid,
        email=normalise_email(user.get("email")),
        first_name=first,
        last_name=last,
        external_id=str(external) if external not in (None, "") else None,
        locale=locale if isinstance(locale, str) and locale else None,
    )


def ticket_from_api(data: Mapping[str, Any], users: Mapping[int, ev.CustomerInfo]) -> ev.Ticket:
    """A :class:`~retention_plugin.events.Ticket` from an API ticket object."""
    try:
        t = TicketSchema().load(data)
    except ValidationError as e:
        raise payload_error_from(e) from None
    rid = t.get("requester_id")
    requester = users.get(rid) if rid is not None else None
    if requester is None and rid is not None:
        requester = ev.CustomerInfo(zendesk_user_id=rid)
    return ev.Ticket(
        zendesk_id=t["id"],
        subject=t.get("subject"),
        description=t.get("description"),
        status=(t.get("status") or "").lower() or None,
        priority=(t.get("priority") or "").lower() or None,
        tags=[x.strip() for x in t.get("tags") or [] if x and x.strip()],
        requester=requester,
        created_at=t.get("created_at"),
        updated_at=t.get("updated_at"),
        group_id=t.get("group_id"),
        form_id=t.get("ticket_form_id"),
        custom_fields={str(f["id"]): f.get("value") for f in t.get("custom_fields") or []
                       if f.get("value") not in (None, "", [])},
        via=(t.get("via") or {}).get("channel"),
    )


def _epoch(when: datetime) -> int:
    return int(when.astimezone(timezone.utc).timestamp())


def import_zendesk(engine, client, *, since: datetime, now: datetime, ratings: bool = True,
                   on_progress: Callable[[datetime], None] | None = None, app=None) -> ImportReport:
    """Import tickets changed since ``since``, then ratings given since then.

    ``report.imported`` / ``updated`` count tickets new and already stored;
    ``report.skipped`` deleted tickets; ``report.extra`` holds the ratings' counts.
    :param on_progress: called with the update time the export has reached.
    :param app: the app, whose plugins move their rows when a requester turns out to be a known customer.
    """
    report = ImportReport(kind="tickets")
    users: dict[int, ev.CustomerInfo] = {}
    params: dict[str, Any] = {"start_time": _epoch(since), "include": "users"}
    page = 0
    while True:
        body = client.request("GET", TICKETS_PATH, params=params)
        page += 1
        for user in body.get("users") or []:
            if isinstance(user, Mapping):
                info = requester_info(user)
                if info is not None:
                    users[info.zendesk_user_id] = info
        tickets = body.get("tickets") or []
        reached = None
        with engine.begin() as conn:
            for raw in tickets:
                where = f"ticket {raw.get('id')!r}" if isinstance(raw, Mapping) else f"page {page}"
                if not isinstance(raw, Mapping):
                    report.reject(None, f"{where}: not a JSON object")
                    continue
                if (raw.get("status") or "").lower() == "deleted":
                    report.skipped += 1
                    continue
                try:
                    ticket = ticket_from_api(raw, users)
                except PayloadError as e:
                    report.reject(None, f"{where}: {e}")
                    continue
                known = ticket_row(conn, ticket.zendesk_id) is not None
                record_ticket(conn, ticket, now, ctx=import_context(app, conn, now))
                if known:
                    report.updated += 1
                else:
                    report.imported += 1
                reached = ticket.updated_at or reached
        if on_progress is not None and reached is not None:
            on_progress(reached)
        if body.get("end_of_stream") or not body.get("after_cursor"):
            break
        params = {"cursor": body["after_cursor"], "include": "users"}
    new = old = 0
    if ratings:
        for body in client.satisfaction_ratings(start_time=since):
            items = body.get("satisfaction_ratings") or []
            with engine.begin() as conn:
                for raw in items:
                    where = f"satisfaction rating {raw.get('id')!r}" if isinstance(raw, Mapping) else "rating"
                    try:
                        parsed = parse_satisfaction_ratings({"satisfaction_ratings": [raw]})
                    except PayloadError as e:
                        report.reject(None, f"{where}: {e.field.removeprefix('satisfaction_ratings.0.')}: "
                                            f"{e.message}")
                        continue
                    for rating in parsed:  # none for "unoffered"
                        if rating.customer is not None and rating.customer.zendesk_user_id in users:
                            rating.customer = users[rating.customer.zendesk_user_id]
                        if record_rating(conn, rating, now, ctx=import_context(app, conn, now)) is None:
                            old += 1
                        else:
                            new += 1
    report.extra["ratings_imported"] = new
    report.extra["ratings_skipped"] = old
    return report

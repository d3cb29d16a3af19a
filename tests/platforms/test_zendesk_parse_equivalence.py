"""Zendesk bodies load through ``Inline`` (one schema instance per class) as marshmallow's own path loads them.

For every envelope, trigger body and ratings page below, broken at each position with each bad value
(or with the key removed), the events or the field and message of the error are the same as when
every nested schema is loaded by ``Schema.load`` (``fields.Nested``) and validators run as ``Field``
runs them.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from marshmallow import fields

from retention_plugin.platforms.errors import PayloadError, UnsupportedTopic
from retention_plugin.platforms.schema_fields import Inline, _Checked
from retention_plugin.platforms.zendesk import parse_satisfaction_ratings, parse_zendesk

from .helpers import broken
from .test_zendesk_payloads import envelope

BAD_VALUES: list[Any] = [None, "", " ", "-", "x", "\x00", -1, 0, 1.5, 2**64, True, [], {}, [{}], {"a": 1},
                         "2026-03-01T10:00:00", "9999-12-31T23:59:59-14:00", "GOOD", "bad"]


def _trigger(kind: str) -> dict:
    return {"retention_event": kind,
            "ticket": {"id": "12", "subject": "Hi", "description": "d", "status": "Solved", "priority": "High",
                       "tags": "a b", "via": "Web form", "group_id": "", "created_at": "2026-03-01T10:00:00Z",
                       "updated_at": "2026-03-02T10:00:00+02:00"},
            "requester": {"id": "5", "email": " A@x.com", "first_name": "A", "last_name": "", "external_id": "e1"},
            "satisfaction": {"rating": "Good, I'm satisfied", "comment": "thanks"}}


def bodies() -> list[tuple[str, Any, dict]]:
    comment = {"comment": {"id": "9876543210", "body": "We are sending a replacement.", "is_public": True,
                           "author": {"id": "8447388090494", "is_staff": True, "name": "Support Agent"}}}
    return [
        ("envelope created", parse_zendesk, envelope("ticket.created")),
        ("envelope comment", parse_zendesk, envelope("ticket.comment_added", comment)),
        ("envelope status", parse_zendesk,
         envelope("ticket.status_changed", {"current": "SOLVED", "previous": "OPEN"})),
        ("envelope custom field", parse_zendesk, envelope("ticket.custom_field_changed", {
            "custom_field": {"id": "360001", "name": "Reason"}, "current": {"value": "damaged"}})),
        ("trigger rated", parse_zendesk, _trigger("satisfaction.rated")),
        ("trigger solved", parse_zendesk, _trigger("ticket.solved")),
        ("ratings page", parse_satisfaction_ratings, {"satisfaction_ratings": [
            {"id": 1, "score": "bad", "comment": "Too slow", "ticket_id": 10, "requester_id": 5,
             "created_at": "2026-03-01T00:00:00Z", "updated_at": "2026-03-01T01:00:00Z"},
            {"id": "2", "score": "good", "ticket_id": 11, "created_at": "2026-03-01T00:00:00Z"}]}),
    ]


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__,
                **{f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, (Decimal, datetime)):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def outcome(parse, body: Any) -> Any:
    try:
        return plain(parse(body))
    except PayloadError as exc:
        return {"error": exc.field, "message": exc.message}
    except UnsupportedTopic as exc:
        return {"unsupported": str(exc)}



@pytest.mark.parametrize("name,parse,body", bodies(), ids=[b[0] for b in bodies()])
def test_every_broken_body_loads_as_marshmallow_loads_it(monkeypatch, name, parse, body):
    body = copy.deepcopy(body)
    assert isinstance(outcome(parse, body), list)
    fast = [(where, outcome(parse, body)) for where in broken(body, BAD_VALUES)]
    with monkeypatch.context() as m:
        m.setattr(Inline, "_deserialize", fields.Nested._deserialize)
        m.setattr(_Checked, "_validate", fields.Field._validate)
        reference = [outcome(parse, body) for _ in broken(body, BAD_VALUES)]
    assert len(fast) == len(reference) > 50
    assert [(where, f, r) for (where, f), r in zip(fast, reference) if f != r] == []
    assert any("error" in r and "." in r["error"] for r in reference)

"""Zendesk envelopes, shipped trigger bodies and the ratings API -> domain events."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from retention_plugin.events import (
    CommentAdded,
    TicketCreated,
    TicketSolved,
    TicketUpdated,
)
from retention_plugin.platforms.errors import PayloadError, UnsupportedTopic
from retention_plugin.platforms.zendesk import (
    parse_satisfaction_ratings,
    parse_zendesk,
    zendesk_event_id,
)

from .helpers import fixture_payload

UTC = timezone.utc


def envelope(kind: str, event: dict | None = None, **detail) -> dict:
    """An event-subscribed delivery as Zendesk documents it: string ids, upper-case enums."""
    base = {
        "actor_id": "8447388090494",
        "assignee_id": "8447388090494",
        "brand_id": "8447346621310",
        "created_at": "2026-03-01T10:00:00Z",
        "custom_status": "8447320465790",
        "description": "My order arrived broken",
        "external_id": None,
        "form_id": "8646151517822",
        "group_id": "8447320466430",
        "id": "5158",
        "is_public": True,
        "organization_id": None,
        "priority": "NORMAL",
        "requester_id": "8447388090495",
        "status": "OPEN",
        "subject": "Broken mug",
        "submitter_id": "8447388090495",
        "tags": ["shipping"],
        "type": "INCIDENT",
        "updated_at": "2026-03-02T09:30:00Z",
        "via": {"channel": "web_form"},
    }
    base.update(detail)
    return {
        "account_id": 22129848,
        "detail": base,
        "event": event or {},
        "id": "2b24ef10-19d4-4740-93cf-8f98ec4776c0",
        "subject": "zen:ticket:5158",
        "time": "2026-03-02T09:30:00.123456789Z",
        "type": f"zen:event-type:{kind}",
        "zendesk_event_version": "2022-11-06",
    }


# --- the shared fixture ---------------------------------------------------------------------


def test_ticket_created_fixture():
    payload = fixture_payload("fixtures", "zendesk", "event_ticket_created.json")
    [event] = parse_zendesk(payload)
    assert isinstance(event, TicketCreated)
    assert event.platform == "zendesk"
    t = event.ticket
    assert t.zendesk_id == 5158 and isinstance(t.zendesk_id, int)
    assert t.status == "open" and t.priority == "low"
    assert t.tags == ["ticket-info-test-tag"]
    assert t.requester.zendesk_user_id == 8447388090494
    assert t.group_id == 8447320466430 and t.form_id == 8646151517822
    assert t.via == "web_service"
    assert t.created_at == datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC)
    assert event.occurred_at == datetime(2025, 1, 8, 10, 12, 7, 672717, tzinfo=UTC)
    assert zendesk_event_id(payload) == "cbe4028c-7239-495d-b020-f22348516046"


def test_event_shop_is_what_the_caller_says():
    [event] = parse_zendesk(envelope("ticket.created"), shop="acme")
    assert event.shop == "acme"


def test_satisfaction_ratings_fixture():
    payload = fixture_payload("fixtures", "zendesk", "satisfaction_ratings_list.json")
    [rating] = parse_satisfaction_ratings(payload)
    assert rating.source == "zendesk"
    assert rating.source_id == "35436"
    assert (rating.score, rating.value) == ("good", 1.0)
    assert rating.comment == "Awesome support!"
    assert rating.ticket_id == 208
    assert rating.customer.zendesk_user_id == 7881
    assert rating.created_at == datetime(2011, 7, 20, 22, 55, 29, tzinfo=UTC)


# --- each ticket event type ----------------------------------------------------------------


def test_status_changed_to_solved_updates_and_solves():
    events = parse_zendesk(envelope("ticket.status_changed", {"current": "SOLVED", "previous": "OPEN"},
                                    status="SOLVED"))
    assert [type(e) for e in events] == [TicketUpdated, TicketSolved]
    assert events[0].changed == ["status"]
    assert events[1].ticket.status == "solved"
    assert events[1].occurred_at == datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=UTC)


def test_solved_to_closed_is_not_a_second_solve():
    events = parse_zendesk(envelope("ticket.status_changed", {"current": "CLOSED", "previous": "SOLVED"},
                                    status="CLOSED"))
    assert [type(e) for e in events] == [TicketUpdated]


def test_pending_to_closed_counts_as_solved():
    events = parse_zendesk(envelope("ticket.status_changed", {"current": "CLOSED", "previous": "PENDING"}))
    assert [type(e) for e in events] == [TicketUpdated, TicketSolved]
    assert events[1].ticket.status == "closed"


def test_status_changed_to_open():
    [event] = parse_zendesk(envelope("ticket.status_changed", {"current": "OPEN", "previous": "NEW"}))
    assert isinstance(event, TicketUpdated) and event.ticket.status == "open"


def test_priority_changed():
    [event] = parse_zendesk(envelope("ticket.priority_changed", {"current": "URGENT", "previous": "NORMAL"},
                                     priority="URGENT"))
    assert isinstance(event, TicketUpdated)
    assert event.changed == ["priority"] and event.ticket.priority == "urgent"


def test_tags_changed():
    [event] = parse_zendesk(envelope("ticket.tags_changed",
                                     {"tags_added": ["complaint"], "tags_removed": []},
                                     tags=["shipping", "complaint"]))
    assert event.changed == ["tags"]
    assert event.ticket.tags == ["shipping", "complaint"]


def test_other_field_changes():
    [event] = parse_zendesk(envelope("ticket.group_assignment_changed", {"current": "1", "previous": "2"}))
    assert event.changed == ["group_id"]
    [event] = parse_zendesk(envelope("ticket.subject_changed", {"current": "New", "previous": "Old"}))
    assert event.changed == ["subject"]


def test_custom_field_changed_records_the_value():
    [event] = parse_zendesk(envelope(
        "ticket.custom_field_changed",
        {"current": {"value": "damaged"}, "previous": {"value": None},
         "custom_field": {"id": "360001", "title": "Reason", "type": "tagger"}},
    ))
    assert event.changed == ["custom_fields"]
    assert event.ticket.custom_fields == {"360001": "damaged"}


def test_comment_added():
    [event] = parse_zendesk(envelope("ticket.comment_added", {
        "comment": {"id": "9876543210", "body": "We are sending a replacement.", "is_public": True,
                    "author": {"id": "8447388090494", "is_staff": True, "name": "Support Agent"}},
    }))
    assert isinstance(event, CommentAdded)
    c = event.comment
    assert c.ticket_id == 5158
    assert c.author_id == 8447388090494
    assert c.public is True and c.by_agent is True
    assert c.body == "We are sending a replacement."
    assert c.created_at == datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=UTC)


def test_private_comment_by_end_user():
    [event] = parse_zendesk(envelope("ticket.comment_added", {
        "comment": {"id": "1", "body": "thanks", "is_public": False,
                    "author": {"id": "8447388090495", "is_staff": False, "name": "Ann"}}}))
    assert event.comment.public is False and event.comment.by_agent is False


@pytest.mark.parametrize("kind", ["ticket.merged", "ticket.soft_deleted", "user.created",
                                  "organization.created", "ticket.comment_made_private"])
def test_unsupported_event_types(kind):
    with pytest.raises(UnsupportedTopic) as err:
        parse_zendesk(envelope(kind))
    assert err.value.topic == f"zen:event-type:{kind}"


def test_event_id_only_for_envelopes():
    assert zendesk_event_id(envelope("ticket.created")) == "2b24ef10-19d4-4740-93cf-8f98ec4776c0"
    assert zendesk_event_id({"retention_event": "ticket.solved", "id": "x"}) is None
    assert zendesk_event_id({"type": "zen:event-type:ticket.created", "id": 12}) is None
    assert zendesk_event_id(None) is None


# --- invalid envelopes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["detail"].pop("id"), "detail.id"),
        (lambda p: p["detail"].update(id="T-1"), "detail.id"),
        (lambda p: p["detail"].update(requester_id=12.5), "detail.requester_id"),
        (lambda p: p.pop("detail"), "detail"),
        (lambda p: p.pop("time"), "time"),
        (lambda p: p["detail"].update(updated_at="soon"), "detail.updated_at"),
    ],
)
def test_invalid_envelopes_name_the_field(mutate, field):
    payload = envelope("ticket.created")
    mutate(payload)
    with pytest.raises(PayloadError) as err:
        parse_zendesk(payload)
    assert err.value.field == field


def test_comment_without_is_public_names_the_field():
    with pytest.raises(PayloadError) as err:
        parse_zendesk(envelope("ticket.comment_added", {"comment": {"id": "1", "body": "x"}}))
    assert err.value.field == "event.comment.is_public"


def test_neither_shape():
    with pytest.raises(PayloadError) as err:
        parse_zendesk({"ticket": {"id": 1}})
    assert err.value.field == "type"
    with pytest.raises(PayloadError):
        parse_zendesk("not json object")


# --- ratings API edge cases -------------------------------------------------------------------


def test_ratings_bad_offered_unoffered():
    page = {"satisfaction_ratings": [
        {"id": 1, "score": "bad", "comment": "Too slow", "ticket_id": 10, "requester_id": 5,
         "created_at": "2026-03-01T00:00:00Z", "reason_code": 5},
        {"id": 2, "score": "offered", "ticket_id": 11, "requester_id": 6, "created_at": "2026-03-01T00:00:00Z"},
        {"id": 3, "score": "unoffered", "ticket_id": 12, "requester_id": 7, "created_at": "2026-03-01T00:00:00Z"},
    ], "meta": {"has_more": False}}
    ratings = parse_satisfaction_ratings(page)
    assert [(r.source_id, r.score, r.value) for r in ratings] == [("1", "bad", 0.0), ("2", "offered", None)]


def test_ratings_invalid_name_the_field():
    page = fixture_payload("fixtures", "zendesk", "satisfaction_ratings_list.json")
    broken = copy.deepcopy(page)
    broken["satisfaction_ratings"][0]["score"] = "meh"
    with pytest.raises(PayloadError) as err:
        parse_satisfaction_ratings(broken)
    assert err.value.field == "satisfaction_ratings.0.score"
    broken = copy.deepcopy(page)
    del broken["satisfaction_ratings"][0]["created_at"]
    with pytest.raises(PayloadError) as err:
        parse_satisfaction_ratings(broken)
    assert err.value.field == "satisfaction_ratings.0.created_at"
    with pytest.raises(PayloadError) as err:
        parse_satisfaction_ratings({"tickets": []})
    assert err.value.field == "satisfaction_ratings"

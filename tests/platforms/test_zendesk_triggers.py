"""The trigger definitions and bodies shipped in config/zendesk, rendered the way Zendesk would."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from retention_plugin.events import SatisfactionRated, TicketCreated, TicketSolved, TicketUpdated
from retention_plugin.platforms.errors import PayloadError
from retention_plugin.platforms.zendesk import install_requests, load_trigger_definitions, parse_zendesk
from retention_plugin.platforms.zendesk.payloads import TRIGGER_EVENTS
from retention_plugin.platforms.zendesk.triggers import DEFAULT_DIRECTORY, render_body, webhook_settings

from .helpers import REPO

UTC = timezone.utc

#: Placeholders from Zendesk's placeholder reference the shipped bodies may use.
#: A typo (say {{ticket.requestor.email}}) renders empty in Zendesk; this list catches it here.
DOCUMENTED_PLACEHOLDERS = {
    "ticket.id", "ticket.title", "ticket.description", "ticket.status", "ticket.priority",
    "ticket.tags", "ticket.via", "ticket.created_at_with_timestamp", "ticket.updated_at_with_timestamp",
    "ticket.requester.id", "ticket.requester.email", "ticket.requester.first_name",
    "ticket.requester.last_name", "ticket.requester.external_id",
    "satisfaction.current_rating", "satisfaction.current_comment",
}

#: What a solved, rated ticket renders to (Zendesk renders every placeholder as text).
SAMPLE = {
    "ticket.id": "5158",
    "ticket.title": 'Mug "Classic" arrived broken',
    "ticket.description": "It was in pieces.\nPhoto attached.",
    "ticket.status": "Solved",
    "ticket.priority": "High",
    "ticket.tags": "complaint shipping damaged",
    "ticket.via": "Web form",
    "ticket.created_at_with_timestamp": "2026-03-01T10:00Z",
    "ticket.updated_at_with_timestamp": "2026-03-02T09:30Z",
    "ticket.requester.id": "8447388090495",
    "ticket.requester.email": " Ann@Example.com",
    "ticket.requester.first_name": "Ann",
    "ticket.requester.last_name": "Example",
    "ticket.requester.external_id": "",
    "satisfaction.current_rating": "Good, I'm satisfied",
    "satisfaction.current_comment": "Quick replacement, thanks!",
}


def definitions():
    return {d.key: d for d in load_trigger_definitions()}


def test_the_shipped_directory_is_package_data_and_config_shows_it():
    # Installed wheels carry the bodies inside the package; config/zendesk in a checkout is the same files.
    assert DEFAULT_DIRECTORY.parts[-3:] == ("retention_plugin", "data", "zendesk")
    assert (REPO / "config" / "zendesk").resolve() == DEFAULT_DIRECTORY.resolve()


def test_one_definition_per_shipped_body():
    defs = definitions()
    assert set(defs) == {"ticket_created", "ticket_solved", "satisfaction_rated", "complaint_tagged"}
    files = {p.name for p in DEFAULT_DIRECTORY.glob("*.json")} - {"triggers.json"}
    assert files == {d.body_file for d in defs.values()}
    assert {d.body["retention_event"] for d in defs.values()} == set(TRIGGER_EVENTS)
    assert webhook_settings()["name"] == "retention-plugin"


@pytest.mark.parametrize("key", ["ticket_created", "ticket_solved", "satisfaction_rated", "complaint_tagged"])
def test_bodies_use_only_documented_placeholders_and_quote_them(key):
    d = definitions()[key]
    assert d.placeholders() <= DOCUMENTED_PLACEHOLDERS, d.placeholders() - DOCUMENTED_PLACEHOLDERS
    text = (DEFAULT_DIRECTORY / d.body_file).read_text()
    # Every placeholder sits inside a JSON string: an empty render must still be valid JSON.
    for line in text.splitlines():
        if "{{" in line:
            assert line.strip().rstrip(",").endswith('"'), line


def test_ticket_created_body():
    [event] = parse_zendesk(render_body(definitions()["ticket_created"].body, SAMPLE))
    assert isinstance(event, TicketCreated)
    t = event.ticket
    assert t.zendesk_id == 5158
    assert t.subject == 'Mug "Classic" arrived broken'
    assert t.description == "It was in pieces.\nPhoto attached."
    assert t.status == "solved" and t.priority == "high"
    assert t.tags == ["complaint", "shipping", "damaged"]
    assert t.created_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert t.requester.zendesk_user_id == 8447388090495
    assert t.requester.email == "ann@example.com"
    assert t.requester.external_id is None
    assert (t.requester.first_name, t.requester.last_name) == ("Ann", "Example")


def test_ticket_solved_body():
    [event] = parse_zendesk(render_body(definitions()["ticket_solved"].body, SAMPLE))
    assert isinstance(event, TicketSolved)
    assert event.ticket.zendesk_id == 5158
    assert event.occurred_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_complaint_tagged_body():
    [event] = parse_zendesk(render_body(definitions()["complaint_tagged"].body, SAMPLE))
    assert isinstance(event, TicketUpdated)
    assert event.changed == ["tags"]
    assert "complaint" in event.ticket.tags


@pytest.mark.parametrize(
    ("rendered", "score", "value"),
    [("Good, I'm satisfied", "good", 1.0), ("Bad, I'm unsatisfied", "bad", 0.0), ("good", "good", 1.0)],
)
def test_satisfaction_rated_body(rendered, score, value):
    body = render_body(definitions()["satisfaction_rated"].body,
                       dict(SAMPLE, **{"satisfaction.current_rating": rendered}))
    [event] = parse_zendesk(body)
    assert isinstance(event, SatisfactionRated)
    r = event.rating
    assert (r.source, r.score, r.value) == ("zendesk", score, value)
    assert r.source_id == "ticket:5158:2026-03-02T09:30:00Z"
    assert r.ticket_id == 5158
    assert r.comment == "Quick replacement, thanks!"
    assert r.customer.email == "ann@example.com"
    assert r.created_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert event.ticket.zendesk_id == 5158


def test_unknown_rating_text_names_the_field():
    body = render_body(definitions()["satisfaction_rated"].body,
                       dict(SAMPLE, **{"satisfaction.current_rating": "Bueno"}))
    with pytest.raises(PayloadError) as err:
        parse_zendesk(body)
    assert err.value.field == "satisfaction.rating"


def test_unset_placeholders_render_empty_and_parse_as_none():
    minimal = {"ticket.id": "77"}
    [event] = parse_zendesk(render_body(definitions()["ticket_created"].body, minimal))
    t = event.ticket
    assert t.zendesk_id == 77
    assert t.subject is None and t.priority is None and t.tags == [] and t.requester is None
    assert t.created_at is None


def test_priority_dash_means_none():
    [event] = parse_zendesk(render_body(definitions()["ticket_solved"].body,
                                        dict(SAMPLE, **{"ticket.priority": "-"})))
    assert event.ticket.priority is None


def test_trigger_body_invalid_fields():
    body = render_body(definitions()["ticket_solved"].body, dict(SAMPLE, **{"ticket.id": "abc"}))
    with pytest.raises(PayloadError) as err:
        parse_zendesk(body)
    assert err.value.field == "ticket.id"
    body = render_body(definitions()["ticket_solved"].body, dict(SAMPLE, **{"ticket.id": ""}))
    with pytest.raises(PayloadError) as err:
        parse_zendesk(body)
    assert err.value.field == "ticket.id"
    body = render_body(definitions()["ticket_solved"].body,
                       dict(SAMPLE, **{"ticket.updated_at_with_timestamp": "March 2"}))
    with pytest.raises(PayloadError) as err:
        parse_zendesk(body)
    assert err.value.field == "ticket.updated_at"


def test_install_requests():
    requests = install_requests("01F1KRFQ6BG29CNWFR60NK5FNY", category_id=42)
    assert len(requests) == 4
    by_title = {r["json"]["trigger"]["title"]: r for r in requests}
    for request in requests:
        assert request["method"] == "POST" and request["path"] == "/api/v2/triggers"
        trigger = request["json"]["trigger"]
        assert trigger["active"] is True and trigger["category_id"] == "42"
        assert trigger["conditions"]["all"] or trigger["conditions"]["any"]
        action = trigger["actions"][0]
        assert action["field"] == "notification_webhook"
        webhook_id, body_text = action["value"]
        assert webhook_id == "01F1KRFQ6BG29CNWFR60NK5FNY"
        assert json.loads(body_text)["retention_event"] in TRIGGER_EVENTS
    complaint = by_title["retention-plugin: complaint tagged"]["json"]["trigger"]
    assert {"field": "current_tags", "value": "retention_complaint_notified"} in complaint["actions"]
    assert {"field": "current_tags", "operator": "not_includes", "value": "retention_complaint_notified"} \
        in complaint["conditions"]["all"]
    solved = by_title["retention-plugin: ticket solved"]["json"]["trigger"]
    assert {"field": "status", "operator": "is", "value": "solved"} in solved["conditions"]["all"]


def test_loading_from_another_directory(tmp_path):
    (tmp_path / "triggers.json").write_text(json.dumps({"triggers": [
        {"key": "x", "title": "X", "body": "x.json", "conditions": {"all": [], "any": [
            {"field": "status", "operator": "is", "value": "open"}]}}]}))
    (tmp_path / "x.json").write_text('{"ticket": {"id": "{{ticket.id}}"}}')
    with pytest.raises(ValueError, match="retention_event"):
        load_trigger_definitions(tmp_path)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_trigger_definitions(tmp_path)

"""Zendesk request builders: documented paths and bodies, plain JSON."""

from __future__ import annotations

import json

import pytest

from retention_plugin.platforms.zendesk import requests as r


def test_ticket_comment():
    assert r.ticket_comment(5158, "We are on it.", public=False) == {
        "method": "PUT",
        "path": "/api/v2/tickets/5158",
        "json": {"ticket": {"comment": {"body": "We are on it.", "public": False}}},
    }
    with pytest.raises(ValueError):
        r.ticket_comment(5158, "  ", True)
    with pytest.raises(ValueError):
        r.ticket_comment("5158", "x", True)


def test_ticket_update_uses_additional_and_remove_tags():
    request = r.ticket_update(5158, priority="high", group_id=44, add_tags=["vip", "recovery"],
                              remove_tags=["complaint"])
    assert request == {
        "method": "PUT",
        "path": "/api/v2/tickets/5158",
        "json": {"ticket": {"priority": "high", "group_id": 44, "additional_tags": ["vip", "recovery"],
                            "remove_tags": ["complaint"]}},
    }
    assert "tags" not in request["json"]["ticket"]  # never overwrite the whole tag list
    with pytest.raises(ValueError):
        r.ticket_update(5158)
    with pytest.raises(ValueError):
        r.ticket_update(5158, priority="critical")
    with pytest.raises(ValueError):
        r.ticket_update(5158, add_tags="vip")
    with pytest.raises(ValueError):
        r.ticket_update(5158, add_tags=["two words"])


def test_ticket_create():
    request = r.ticket_create(" Ann@Example.com ", "Ann Example", "Your order #1042", "A recall notice ...",
                              ["recall"], external_id="recall:12:order:1042", idempotency_key="recall:12:1042")
    assert request == {
        "method": "POST",
        "path": "/api/v2/tickets",
        "json": {"ticket": {
            "subject": "Your order #1042",
            "comment": {"body": "A recall notice ...", "public": True},
            "requester": {"email": "ann@example.com", "name": "Ann Example"},
            "tags": ["recall", "retention_created"],  # every ticket we open says so (never classified)
            "external_id": "recall:12:order:1042",
        }},
        "idempotency_key": "recall:12:1042",
    }
    json.dumps(request)
    with pytest.raises(ValueError):
        r.ticket_create("not-an-email", None, "s", "b")


def test_webhook_create():
    request = r.webhook_create("retention-plugin", "https://retention.example.com/webhooks/zendesk",
                               signing_secret="s3cret", description="d")
    assert request["method"] == "POST" and request["path"] == "/api/v2/webhooks"
    assert request["json"] == {"webhook": {
        "name": "retention-plugin",
        "endpoint": "https://retention.example.com/webhooks/zendesk",
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
        "description": "d",
        "signing_secret": {"algorithm": "sha256", "secret": "s3cret"},
    }}
    events = r.webhook_create("events", "https://x.example/z", subscriptions=["zen:event-type:ticket.created"])
    assert events["json"]["webhook"]["subscriptions"] == ["zen:event-type:ticket.created"]
    assert "signing_secret" not in events["json"]["webhook"]
    with pytest.raises(ValueError):
        r.webhook_create("x", "http://plain.example")


def test_lists_and_secret():
    assert r.webhooks_list() == {"method": "GET", "path": "/api/v2/webhooks", "json": None}
    assert r.webhooks_list("retention")["params"] == {"filter[name_contains]": "retention"}
    assert r.webhook_signing_secret("01F1")["path"] == "/api/v2/webhooks/01F1/signing_secret"
    assert r.triggers_list() == {"method": "GET", "path": "/api/v2/triggers", "json": None}
    assert r.triggers_list(active=True)["params"] == {"active": "true"}


def test_trigger_create():
    request = r.trigger_create(
        "retention-plugin: ticket solved",
        {"all": [{"field": "status", "operator": "is", "value": "solved"}]},
        [{"field": "notification_webhook", "value": ["01F1", "{\"a\": 1}"]}],
        description="d",
    )
    assert request == {"method": "POST", "path": "/api/v2/triggers", "json": {"trigger": {
        "title": "retention-plugin: ticket solved",
        "active": True,
        "conditions": {"all": [{"field": "status", "operator": "is", "value": "solved"}], "any": []},
        "actions": [{"field": "notification_webhook", "value": ["01F1", "{\"a\": 1}"]}],
        "description": "d",
    }}}
    with pytest.raises(ValueError):
        r.trigger_create("t", {"all": [], "any": []}, [{"field": "x", "value": "y"}])
    with pytest.raises(ValueError):
        r.trigger_create("t", {"all": [{"field": "status", "operator": "is", "value": "open"}]}, [])

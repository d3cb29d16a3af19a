"""ZendeskClient against documented Support/Webhooks API responses (HTTP mocked with `responses`)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
import requests
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from retention_plugin.platforms.errors import PermanentError, TransientError
from retention_plugin.platforms.zendesk import ZendeskClient, parse_satisfaction_ratings
from retention_plugin.platforms.zendesk import requests as zr

from .helpers import SleepRecorder

BASE = "https://acme.zendesk.com"
EMAIL = "agent@acme.example"
TOKEN = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"


@pytest.fixture
def sleep():
    return SleepRecorder()


@pytest.fixture
def client(sleep):
    return ZendeskClient("acme", EMAIL, TOKEN, sleep=sleep)


@pytest.fixture
def rsps():
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        yield mock


TICKET = {"ticket": {"id": 5158, "status": "open", "tags": ["vip"]}, "audit": {"id": 1, "events": []}}


def test_request_url_auth_and_body(client, rsps):
    rsps.add(responses.PUT, f"{BASE}/api/v2/tickets/5158", json=TICKET)
    result = client.perform(zr.ticket_update(5158, add_tags=["vip"]))
    assert result["ticket"]["id"] == 5158
    sent = rsps.calls[0].request
    expected = base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body) == {"ticket": {"additional_tags": ["vip"]}}


def test_paths_are_normalised(client, rsps):
    rsps.add(responses.GET, f"{BASE}/api/v2/triggers", json={"triggers": []})
    rsps.add(responses.GET, f"{BASE}/api/v2/webhooks", json={"webhooks": []})
    rsps.add(responses.GET, f"{BASE}/api/v2/users/me", json={"user": {"id": 1}})
    assert client.perform(zr.triggers_list()) == {"triggers": []}
    assert client.request("GET", "webhooks") == {"webhooks": []}
    assert client.request("GET", f"{BASE}/api/v2/users/me") == {"user": {"id": 1}}


def test_foreign_hosts_never_get_credentials(client):
    for url in ("https://evil.example/api/v2/tickets", "http://acme.zendesk.com/api/v2/tickets"):
        with pytest.raises(ValueError):
            client.request("GET", url)


def test_429_with_retry_after(client, rsps, sleep):
    rsps.add(responses.PUT, f"{BASE}/api/v2/tickets/5158", status=429, headers={"Retry-After": "7"},
             body="Rate limit exceeded")
    rsps.add(responses.PUT, f"{BASE}/api/v2/tickets/5158", json=TICKET)
    client.perform(zr.ticket_update(5158, priority="high"))
    assert sleep.calls == [7.0]


def test_5xx_retried_then_success(client, rsps, sleep):
    rsps.add(responses.GET, f"{BASE}/api/v2/triggers", status=503)
    rsps.add(responses.GET, f"{BASE}/api/v2/triggers", status=500)
    rsps.add(responses.GET, f"{BASE}/api/v2/triggers", json={"triggers": []})
    assert client.perform(zr.triggers_list()) == {"triggers": []}
    assert sleep.calls == [1.0, 2.0]


def test_5xx_gives_up_with_transient_error(client, rsps, sleep):
    for _ in range(5):
        rsps.add(responses.GET, f"{BASE}/api/v2/webhooks", status=502)
    with pytest.raises(TransientError) as err:
        client.perform(zr.webhooks_list())
    assert err.value.status == 502 and err.value.attempts == 5
    assert TOKEN not in str(err.value)


def test_409_conflict_is_retried(client, rsps, sleep):
    rsps.add(responses.PUT, f"{BASE}/api/v2/tickets/5158", status=409,
             json={"error": "UpdateConflict", "description": "Ticket was updated by someone else"})
    rsps.add(responses.PUT, f"{BASE}/api/v2/tickets/5158", json=TICKET)
    client.perform(zr.ticket_comment(5158, "Sorry for the trouble", public=True))
    assert len(sleep.calls) == 1


def test_422_is_permanent_with_the_error_message(client, rsps, sleep):
    rsps.add(responses.POST, f"{BASE}/api/v2/tickets", status=422, json={
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {"requester": [{"description": "Requester: Email is not properly formatted",
                                   "error": "InvalidValue"}]},
    })
    with pytest.raises(PermanentError) as err:
        client.perform(zr.ticket_create("ann@example.com", "Ann", "s", "b", idempotency_key="k1"))
    message = str(err.value)
    assert err.value.status == 422
    assert "RecordInvalid" in message and "Requester: Email is not properly formatted" in message
    assert len(rsps.calls) == 1 and sleep.calls == []


def test_webhooks_api_error_shape(client, rsps):
    rsps.add(responses.POST, f"{BASE}/api/v2/webhooks", status=400, json={"errors": [
        {"code": "InvalidInput", "title": "Invalid input", "detail": "endpoint must be a valid URL"}]})
    with pytest.raises(PermanentError) as err:
        client.perform(zr.webhook_create("x", "https://x.example/hook"))
    assert "endpoint must be a valid URL" in str(err.value)


def test_401_is_permanent(client, rsps):
    rsps.add(responses.GET, f"{BASE}/api/v2/triggers", status=401, json={"error": "Couldn't authenticate you"})
    with pytest.raises(PermanentError) as err:
        client.perform(zr.triggers_list())
    assert "Couldn't authenticate you" in str(err.value)
    assert TOKEN not in str(err.value)


def test_comment_is_not_repeated_after_an_ambiguous_failure(client, rsps, sleep):
    rsps.add(responses.PUT, f"{BASE}/api/v2/tickets/5158", status=500)
    with pytest.raises(TransientError) as err:
        client.perform(zr.ticket_comment(5158, "Internal note", public=False))
    assert err.value.ambiguous and len(rsps.calls) == 1 and sleep.calls == []


def test_keyed_ticket_create_is_retried_with_its_idempotency_key(client, rsps, sleep):
    rsps.add(responses.POST, f"{BASE}/api/v2/tickets", body=requests.ReadTimeout("read timed out"))
    rsps.add(responses.POST, f"{BASE}/api/v2/tickets", status=201, json={"ticket": {"id": 99}},
             match=[matchers.header_matcher({"Idempotency-Key": "recall:12:1042"})])
    result = client.perform(zr.ticket_create("ann@example.com", "Ann", "Recall", "Please return ...",
                                             idempotency_key="recall:12:1042"))
    assert result == {"ticket": {"id": 99}}
    assert rsps.calls[0].request.headers["Idempotency-Key"] == "recall:12:1042"


def test_unkeyed_create_is_not_repeated(client, rsps):
    rsps.add(responses.POST, f"{BASE}/api/v2/tickets", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(TransientError) as err:
        client.perform(zr.ticket_create("ann@example.com", "Ann", "s", "b"))
    assert err.value.ambiguous


def test_incremental_ticket_export_pages(client, rsps):
    rsps.add(responses.GET, f"{BASE}/api/v2/incremental/tickets/cursor.json", json={
        "tickets": [{"id": 1}, {"id": 2}], "after_cursor": "MTU3NjYxMzUzOS4wfHw0Njd8",
        "after_url": f"{BASE}/api/v2/incremental/tickets/cursor.json?cursor=MTU3NjYxMzUzOS4wfHw0Njd8",
        "before_cursor": None, "before_url": None, "end_of_stream": False},
        match=[matchers.query_param_matcher({"start_time": "1772323200"})])
    rsps.add(responses.GET, f"{BASE}/api/v2/incremental/tickets/cursor.json", json={
        "tickets": [{"id": 3}], "after_cursor": "MTU3NjYxMzUzOS4wfHw0Njh8", "end_of_stream": True},
        match=[matchers.query_param_matcher({"cursor": "MTU3NjYxMzUzOS4wfHw0Njd8"})])
    pages = list(client.incremental_ticket_pages(datetime(2026, 3, 1, tzinfo=timezone.utc)))
    assert [[t["id"] for t in p.tickets] for p in pages] == [[1, 2], [3]]
    assert pages[-1].end_of_stream and pages[-1].after_cursor == "MTU3NjYxMzUzOS4wfHw0Njh8"


def test_incremental_export_resumes_from_a_cursor(client, rsps):
    rsps.add(responses.GET, f"{BASE}/api/v2/incremental/tickets/cursor.json",
             json={"tickets": [], "after_cursor": "abc", "end_of_stream": True},
             match=[matchers.query_param_matcher({"cursor": "abc"})])
    [page] = list(client.incremental_ticket_pages(cursor="abc"))
    assert page.tickets == [] and page.end_of_stream
    with pytest.raises(ValueError):
        next(client.incremental_ticket_pages())


def test_satisfaction_ratings_cursor_pagination(client, rsps):
    rating = {"id": 35436, "score": "good", "ticket_id": 208, "requester_id": 7881,
              "created_at": "2011-07-20T22:55:29Z", "comment": "Awesome support!"}
    rsps.add(responses.GET, f"{BASE}/api/v2/satisfaction_ratings", json={
        "satisfaction_ratings": [rating], "meta": {"has_more": True, "after_cursor": "xyz"}},
        match=[matchers.query_param_matcher({"page[size]": "100", "score": "received"})])
    rsps.add(responses.GET, f"{BASE}/api/v2/satisfaction_ratings", json={
        "satisfaction_ratings": [dict(rating, id=35437, score="bad")], "meta": {"has_more": False}},
        match=[matchers.query_param_matcher({"page[size]": "100", "score": "received", "page[after]": "xyz"})])
    pages = list(client.satisfaction_ratings(score="received"))
    ratings = [r for page in pages for r in parse_satisfaction_ratings(page)]
    assert [(r.source_id, r.score) for r in ratings] == [("35436", "good"), ("35437", "bad")]


def test_empty_response_body(client, rsps):
    rsps.add(responses.DELETE, f"{BASE}/api/v2/webhooks/01F1", status=204)
    assert client.request("DELETE", "/api/v2/webhooks/01F1") == {}


def test_constructor_validation_and_masking():
    client = ZendeskClient("acme.zendesk.com", EMAIL, TOKEN)
    assert client.base_url == BASE
    assert TOKEN not in repr(client)
    for bad in ("", "https://acme.zendesk.com", "acme/evil"):
        with pytest.raises(ValueError):
            ZendeskClient(bad, EMAIL, TOKEN)
    with pytest.raises(ValueError):
        ZendeskClient("acme", "", TOKEN)
    with pytest.raises(ValueError):
        ZendeskClient("acme", EMAIL, "")

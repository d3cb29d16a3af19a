"""Zendesk with an OAuth access token instead of an API token (issue 15, item 5).

Zendesk's "Creating and using OAuth access tokens with the API": the token goes
in ``Authorization: Bearer <token>``; API tokens keep ``{email}/token`` basic auth.
"""

from __future__ import annotations

import base64
import logging

import pytest
import responses

from retention_plugin import config as cfg
from retention_plugin.app import Retention
from retention_plugin.platforms.errors import PermanentError
from retention_plugin.platforms.zendesk.client import ZendeskClient

OAUTH = "zd_oauth_3f6c1e0b9a8d7c6b5a4f3e2d1c0b9a8f"
URL = "https://acme.zendesk.com/api/v2/users/me.json"


def zendesk_app(tmp_path, **zendesk):
    return Retention.from_dict({"database": {"url": f"sqlite:///{tmp_path}/r.db"},
                                "zendesk": {"subdomain": "acme", "webhook_secret": "s", **zendesk}},
                               entry_points=False)


def test_an_oauth_token_is_sent_as_a_bearer_token_and_nothing_else(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    client = zendesk_app(tmp_path, oauth_token=OAUTH).zendesk_client()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, json={"user": {"id": 1, "role": "admin"}})
        assert client.request("GET", "users/me.json")["user"]["id"] == 1
        assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {OAUTH}"
    assert OAUTH not in repr(client) and OAUTH not in caplog.text


def test_api_tokens_keep_working_as_basic_auth(tmp_path):
    client = zendesk_app(tmp_path, email="agent@example.com", api_token="zd-api").zendesk_client()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, json={"user": {"id": 2}})
        client.request("GET", "users/me.json")
        expected = base64.b64encode(b"agent@example.com/token:zd-api").decode()
        assert rsps.calls[0].request.headers["Authorization"] == f"Basic {expected}"


def test_a_refused_oauth_token_is_permanent_and_not_echoed(tmp_path):
    client = zendesk_app(tmp_path, oauth_token=OAUTH).zendesk_client(max_attempts=1)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, URL, status=401, json={"error": "invalid_token",
                                                      "error_description": "The access token provided is expired"})
        with pytest.raises(PermanentError) as e:
            client.request("GET", "users/me.json")
    assert e.value.status == 401 and OAUTH not in str(e.value)


def test_exactly_one_of_api_token_and_oauth_token(tmp_path):
    with pytest.raises(cfg.ConfigError) as e:
        zendesk_app(tmp_path, email="a@example.com", api_token="t", oauth_token=OAUTH)
    assert "[zendesk].oauth_token" in str(e.value) and "not both" in str(e.value)
    with pytest.raises(ValueError):
        ZendeskClient("acme", "a@example.com", "t", oauth_token=OAUTH)
    with pytest.raises(ValueError):
        ZendeskClient("acme", "", "")  # neither
    assert ZendeskClient("acme", "", "", oauth_token=OAUTH).email == ""  # no email needed with OAuth


def test_the_oauth_token_is_masked_in_config_output(tmp_path):
    settings = zendesk_app(tmp_path, oauth_token=OAUTH).settings
    assert settings.masked()["zendesk"]["oauth_token"] == "********"


def test_requester_lookups_work_with_an_oauth_token(make_app):
    from payloads import zendesk_envelope
    from retention_plugin.testing import deliver_zendesk, run_worker

    app = make_app(actions={"dry_run": False}, zendesk={"api_token": None, "email": None, "oauth_token": OAUTH},
                   plugins={"disabled": ["loyalty", "offers", "followups", "delays", "reminders", "recalls",
                                         "recovery", "winback"]})
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, "https://retention-test.zendesk.com/api/v2/users/8811.json",
                 json={"user": {"id": 8811, "email": "rui@example.com"}})
        deliver_zendesk(app, zendesk_envelope("ticket.created", 4301, requester_id=8811))
        run_worker(app)
        assert [c.request.headers["Authorization"] for c in rsps.calls] == [f"Bearer {OAUTH}"]

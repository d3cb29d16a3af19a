"""`retention zendesk install`: the webhook and the shipped triggers, created once; dry-run sends nothing."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
import responses

from conftest import ZENDESK_SECRET
from retention_plugin.platforms.zendesk.triggers import load_trigger_definitions
from retention_plugin.subscriptions.commands import zendesk_group

from .conftest import invoke

BASE = "https://retention-test.zendesk.com"
URL = "https://retention.example.com/webhooks/zendesk"
TITLES = [d.title for d in load_trigger_definitions()]


class FakeZendesk:
    """Webhooks (cursor pagination) and triggers (offset pagination, one per page) of one account."""

    def __init__(self, webhooks=(), triggers=(), secret=ZENDESK_SECRET):
        self.webhooks = [dict(w) for w in webhooks]
        self.triggers = [dict(x) for x in triggers]
        self.secret = secret
        self.posts: list[tuple[str, dict]] = []

    def register(self, rsps):
        rsps.add_callback(responses.GET, f"{BASE}/api/v2/webhooks", callback=self.list_webhooks)
        rsps.add_callback(responses.POST, f"{BASE}/api/v2/webhooks", callback=self.create_webhook)
        rsps.add_callback(responses.GET, re.compile(rf"{BASE}/api/v2/webhooks/[^/]+/signing_secret"),
                          callback=self.signing_secret)
        rsps.add_callback(responses.GET, re.compile(rf"{BASE}/api/v2/triggers(\.json)?(\?.*)?$"),
                          callback=self.list_triggers)
        rsps.add_callback(responses.POST, f"{BASE}/api/v2/triggers", callback=self.create_trigger)

    @staticmethod
    def ok(body, status=200):
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    def list_webhooks(self, request):
        return self.ok({"webhooks": self.webhooks, "meta": {"has_more": False, "after_cursor": None},
                        "links": {"next": None, "prev": None}})

    def create_webhook(self, request):
        body = json.loads(request.body)
        self.posts.append(("webhook", body))
        hook = dict(body["webhook"], id=f"01HNEW{len(self.webhooks)}", created_at="2026-03-02T12:00:00Z")
        self.webhooks.append(hook)
        return self.ok({"webhook": hook}, 201)

    def signing_secret(self, request):
        wid = urlsplit(request.url).path.split("/")[-2]
        assert any(w["id"] == wid for w in self.webhooks)
        return self.ok({"signing_secret": {"algorithm": "SHA256", "secret": self.secret}})

    def list_triggers(self, request):
        page = int(dict(p.split("=") for p in (urlsplit(request.url).query or "page=1").split("&")).get("page", 1))
        items = self.triggers[page - 1:page]
        more = page < len(self.triggers)
        return self.ok({"triggers": items, "count": len(self.triggers),
                        "next_page": f"{BASE}/api/v2/triggers.json?page={page + 1}" if more else None,
                        "previous_page": None})

    def create_trigger(self, request):
        body = json.loads(request.body)
        self.posts.append(("trigger", body))
        trigger = dict(body["trigger"], id=9000 + len(self.triggers))
        self.triggers.append(trigger)
        return self.ok({"trigger": trigger}, 201)


OLD_SOLVED = {"id": 81, "title": "retention-plugin: ticket solved", "active": True,
              "actions": [{"field": "notification_webhook", "value": ["01HOLD", "{}"]}]}
NOTIFY = {"id": 80, "title": "Notify requester and CCs of received request", "active": True,
          "actions": [{"field": "notification_user", "value": ["requester_and_ccs", "Received", "..."]}]}


def test_creates_the_webhook_and_missing_triggers_once(live_config):
    fake = FakeZendesk(triggers=[NOTIFY, OLD_SOLVED])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        r = invoke(zendesk_group, live_config, "install", "--callback-url", URL)
        assert r.exit_code == 0, r.output
        kinds = [k for k, _ in fake.posts]
        assert kinds == ["webhook", "trigger", "trigger", "trigger"]
        hook = fake.posts[0][1]["webhook"]
        assert hook["name"] == "retention-plugin" and hook["endpoint"] == URL
        assert hook["subscriptions"] == ["conditional_ticket_events"] and "signing_secret" not in hook
        created = {b["trigger"]["title"]: b["trigger"] for k, b in fake.posts[1:]}
        assert set(created) == set(TITLES) - {OLD_SOLVED["title"]}
        complaint = created["retention-plugin: complaint tagged"]
        action = complaint["actions"][0]
        assert action["field"] == "notification_webhook" and action["value"][0] == "01HNEW0"
        assert json.loads(action["value"][1])["retention_event"] == "ticket.complaint_tagged"
        assert {"field": "current_tags", "value": "retention_complaint_notified"} in complaint["actions"]
        out = r.stdout
        assert f"webhook 01HNEW0 (retention-plugin) -> {URL}: created" in out
        assert "triggers created 3:" in out and "triggers already there 1: retention-plugin: ticket solved" in out
        assert "matches [zendesk].webhook_secret" in out and ZENDESK_SECRET not in out
        assert "notifies 01HOLD, not 01HNEW0" in r.stderr

        fake.posts.clear()
        r = invoke(zendesk_group, live_config, "install", "--callback-url", URL, "--json")
        assert r.exit_code == 0, r.output
        assert fake.posts == []
        result = json.loads(r.stdout)
        assert result["webhook_created"] is False and result["triggers_created"] == []
        assert sorted(result["triggers_existing"]) == sorted(TITLES)


def test_a_different_signing_secret_is_reported_and_shown_on_request(live_config):
    fake = FakeZendesk(webhooks=[{"id": "01HW", "name": "my hook", "endpoint": URL, "status": "active"}],
                       triggers=[], secret="zendesk-generated")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        r = invoke(zendesk_group, live_config, "install", "--callback-url", URL)
        assert r.exit_code == 0, r.output
        assert [k for k, _ in fake.posts] == ["trigger"] * len(TITLES)  # the webhook is reused
        assert "differs from [zendesk].webhook_secret" in r.stdout and "zendesk-generated" not in r.stdout
        r = invoke(zendesk_group, live_config, "install", "--callback-url", URL, "--show-secret")
        assert "signing secret: zendesk-generated" in r.stdout


def test_a_webhook_of_our_name_elsewhere_stops_the_install(live_config):
    other = {"id": "01HX", "name": "retention-plugin", "endpoint": "https://old.example.com/webhooks/zendesk"}
    fake = FakeZendesk(webhooks=[other])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        r = invoke(zendesk_group, live_config, "install", "--callback-url", URL)
    assert r.exit_code == 1
    assert "already sends to https://old.example.com/webhooks/zendesk" in r.output
    assert fake.posts == []


@pytest.mark.parametrize("flag", [False, True])
def test_dry_run_prints_the_requests_and_sends_nothing(config, live_config, flag):
    with responses.RequestsMock():  # nothing registered: any request would fail the test
        r = invoke(zendesk_group, live_config if flag else config, "install", "--callback-url",
                   "https://retention.example.com", "--json", *(["--dry-run"] if flag else []))
        assert r.exit_code == 0, r.output
        plan = json.loads(r.stdout)
        assert plan["callback_url"] == URL
        reqs = plan["requests"]
        assert [(x["method"], x["url"]) for x in reqs[:4]] == [
            ("GET", f"{BASE}/api/v2/webhooks"), ("POST", f"{BASE}/api/v2/webhooks"),
            ("GET", f"{BASE}/api/v2/webhooks/<id of the retention-plugin webhook>/signing_secret"),
            ("GET", f"{BASE}/api/v2/triggers")]
        assert reqs[1]["json"]["webhook"]["endpoint"] == URL
        triggers = reqs[4:]
        assert [x["json"]["trigger"]["title"] for x in triggers] == TITLES
        assert all(x["method"] == "POST" and x["url"] == f"{BASE}/api/v2/triggers" for x in triggers)
        r = invoke(zendesk_group, config, "install", "--callback-url", URL)
        assert r.exit_code == 0 and r.stdout.startswith("dry run: nothing was sent to retention-test.zendesk.com")


def test_under_the_shop_option_a_shop_with_its_own_zendesk_gets_its_own_path(db_url, tmp_path):
    from conftest import base_config
    from server_util import write_config

    from retention_plugin import shop_scope

    b = "second-shop.myshopify.com"
    cfg = base_config(db_url, shops={b: {"zendesk": {"subdomain": "shop-b-support",
                                                     "webhook_secret": "shop-b-zendesk-secret-0123456789"}}})
    path = write_config(tmp_path / "retention.toml", cfg)
    with responses.RequestsMock():
        with shop_scope.scope(b):  # what `retention --shop <b>` sets for the whole command
            r = invoke(zendesk_group, path, "install", "--callback-url", "https://retention.example.com", "--json")
        assert r.exit_code == 0, r.output
        plan = json.loads(r.stdout)
        assert plan["callback_url"] == f"https://retention.example.com/webhooks/zendesk/{b}"
        assert plan["requests"][0]["url"].startswith("https://shop-b-support.zendesk.com/")
        r = invoke(zendesk_group, path, "install", "--callback-url", "https://retention.example.com", "--json")
        assert json.loads(r.stdout)["callback_url"] == "https://retention.example.com/webhooks/zendesk"

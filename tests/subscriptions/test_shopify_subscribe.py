"""`retention shopify subscribe`: webhookSubscriptionCreate for what is missing, nothing twice.

A dry run sends nothing."""

from __future__ import annotations

import json

import pytest
import responses

from conftest import SHOP, base_config
from server_util import write_config
from retention_plugin.platforms.shopify.payloads import SUPPORTED_TOPICS
from retention_plugin.subscriptions.commands import shopify_group
from retention_plugin.subscriptions.shopify import COMPLIANCE_TOPICS, TOPIC_SCOPES, TOPICS, required_scopes, topic_name

from .conftest import invoke

GRAPHQL = f"https://{SHOP}/admin/api/2026-07/graphql.json"
URL = "https://retention.example.com/webhooks/shopify"


class FakeShopify:
    """Webhook subscriptions of one app on one shop; lists two per page whatever `first` asks."""

    def __init__(self, existing, user_errors=()):
        self.subs = [dict(s) for s in existing]
        self.created: list[dict] = []
        self.list_calls: list[dict] = []
        self.user_errors = list(user_errors)

    def __call__(self, request):
        body = json.loads(request.body)
        query, v = body["query"].lstrip(), body.get("variables") or {}
        if query.startswith("query webhookSubscriptions"):
            self.list_calls.append(v)
            start = int(v["after"]) if v.get("after") else 0
            more = start + 2 < len(self.subs)
            data = {"webhookSubscriptions": {"nodes": self.subs[start:start + 2], "pageInfo": {
                "hasNextPage": more, "endCursor": str(start + 2) if more else None}}}
        else:
            assert query.startswith("mutation webhookSubscriptionCreate"), query
            assert v["webhookSubscription"] == {"uri": URL, "format": "JSON"}
            if self.user_errors:
                data = {"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": self.user_errors}}
            else:
                sub = {"id": f"gid://shopify/WebhookSubscription/{len(self.subs) + 1}", "topic": v["topic"],
                       "uri": v["webhookSubscription"]["uri"], "format": "JSON"}
                self.subs.append(sub)
                self.created.append(sub)
                data = {"webhookSubscriptionCreate": {"webhookSubscription": sub, "userErrors": []}}
        return 200, {"Content-Type": "application/json"}, json.dumps({"data": data})


EXISTING = [
    {"id": "gid://shopify/WebhookSubscription/1", "topic": "ORDERS_PAID", "uri": URL, "format": "JSON"},
    {"id": "gid://shopify/WebhookSubscription/2", "topic": "ORDERS_CREATE", "uri": "https://old.example.com/hooks",
     "format": "JSON"},
    {"id": "gid://shopify/WebhookSubscription/3", "topic": "CUSTOMERS_DELETE", "uri": URL + "/", "format": "JSON"},
]


def test_every_subscribed_topic_has_a_parser():
    assert len(TOPICS) == 13 and "FULFILLMENT_EVENTS_CREATE" in TOPICS  # carrier tracking (late deliveries)
    assert {topic_name(x) for x in TOPICS} <= set(SUPPORTED_TOPICS)
    assert set(TOPICS) - {"APP_UNINSTALLED"} <= set(TOPIC_SCOPES)
    assert required_scopes() == ["read_customers", "read_fulfillments", "read_orders"]
    assert not set(COMPLIANCE_TOPICS) & {topic_name(x) for x in TOPICS}


def test_creates_only_the_missing_subscriptions_and_nothing_the_second_time(live_config):
    fake = FakeShopify(EXISTING)
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GRAPHQL, callback=fake)
        r = invoke(shopify_group, live_config, "subscribe", "--callback-url", URL)
        assert r.exit_code == 0, r.output
        assert [s["topic"] for s in fake.created] == [x for x in TOPICS if x not in ("ORDERS_PAID",
                                                                                     "CUSTOMERS_DELETE")]
        assert [c.get("after") for c in fake.list_calls] == [None, "2"]  # both pages read
        out = r.stdout
        assert "created 11: ORDERS_CREATE, ORDERS_UPDATED" in out
        assert "read_customers, read_fulfillments, read_orders" in out
        assert "already subscribed 2: ORDERS_PAID, CUSTOMERS_DELETE" in out
        assert "ORDERS_CREATE            https://old.example.com/hooks" in out
        assert "compliance_topics = [\"customers/data_request\", \"customers/redact\", \"shop/redact\"]" in out

        fake.created.clear()
        fake.list_calls.clear()
        r = invoke(shopify_group, live_config, "subscribe", "--callback-url", URL, "--json")
        assert r.exit_code == 0, r.output
        assert fake.created == []
        result = json.loads(r.stdout)
        assert result["created"] == [] and result["already_subscribed"] == list(TOPICS)
        assert len(result["existing"]) == 14 and "read_fulfillments" in result["required_scopes"]


def test_a_bare_origin_gets_the_receiver_path(live_config):
    fake = FakeShopify([{"id": f"gid://shopify/WebhookSubscription/{i}", "topic": x, "uri": URL}
                        for i, x in enumerate(TOPICS)])
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GRAPHQL, callback=fake)
        r = invoke(shopify_group, live_config, "subscribe", "--callback-url", "https://retention.example.com")
    assert r.exit_code == 0, r.output
    assert f"callback {URL}" in r.stdout and fake.created == []


@pytest.mark.parametrize("flag", [False, True])
def test_dry_run_prints_the_exact_requests_and_sends_nothing(config, live_config, flag):
    with responses.RequestsMock():  # nothing registered: any request would fail the test
        args = ["subscribe", "--callback-url", URL, "--json"]
        r = invoke(shopify_group, live_config if flag else config, *args, *(["--dry-run"] if flag else []))
        assert r.exit_code == 0, r.output
        plan = json.loads(r.stdout)
        assert plan["dry_run"] is True
        requests = plan["requests"]
        assert all(x["method"] == "POST" and x["url"] == GRAPHQL for x in requests)
        assert requests[0]["json"]["query"].startswith("query webhookSubscriptions")
        assert requests[0]["json"]["variables"] == {"first": 100, "after": None}
        creates = requests[1:]
        assert [x["json"]["variables"]["topic"] for x in creates] == list(TOPICS)
        assert all(x["json"]["query"].startswith("mutation webhookSubscriptionCreate") for x in creates)
        assert all(x["json"]["variables"]["webhookSubscription"] == {"uri": URL, "format": "JSON"} for x in creates)

        r = invoke(shopify_group, config, "subscribe", "--callback-url", URL)
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith(f"dry run: nothing was sent to {SHOP}.")
        assert r.stdout.count('"query": "mutation webhookSubscriptionCreate') == 13
        assert "cannot be subscribed through the API" in r.stdout


def test_bad_input_and_refusals_are_clear(live_config, db_url, tmp_path):
    r = invoke(shopify_group, live_config, "subscribe", "--callback-url", "http://retention.example.com/x")
    assert r.exit_code == 2 and "--callback-url" in r.output and "https://" in r.output

    fake = FakeShopify([], user_errors=[{"field": ["webhookSubscription", "callbackUrl"],
                                         "message": "Address for this topic has already been taken"}])
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GRAPHQL, callback=fake)
        r = invoke(shopify_group, live_config, "subscribe", "--callback-url", URL)
    assert r.exit_code == 1
    assert "webhookSubscriptionCreate returned user errors" in r.output and "already been taken" in r.output

    cfg = base_config(db_url, actions={"dry_run": False})
    del cfg["shopify"]
    r = invoke(shopify_group, write_config(tmp_path / "none.toml", cfg), "subscribe", "--callback-url", URL)
    assert r.exit_code == 2 and "no [shopify] section" in r.output

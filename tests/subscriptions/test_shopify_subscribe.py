"""`retention shopify subscribe`: webhookSubscriptionCreate for what is missing, nothing twice.

A dry run sends nothing."""

from __future__ import annotations

import json

import pytest
import responses

from conftest import SHOP, base_config
from server_util import write_config
from retention_plugin.platforms.shopify.payloads import SUPPORTED_TOPICS
from retention_plugin import hookimpl
from retention_plugin.cli import LazyApp
from retention_plugin.subscriptions.commands import shopify_group
from retention_plugin.subscriptions.shopify import COMPLIANCE_TOPICS, TOPIC_SCOPES, TOPICS, required_scopes, topic_name

from .conftest import invoke
from platforms.helpers import shopify_request_errors

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


class MetafieldShopify(FakeShopify):
    """FakeShopify that keeps the metafields each subscription names, and takes updates."""

    def __init__(self, existing):
        super().__init__(existing)
        self.requests: list[dict] = []
        self.updated: list[dict] = []

    def __call__(self, request):
        body = json.loads(request.body)
        self.requests.append(body)
        query, v = body["query"].lstrip(), body.get("variables") or {}
        if query.startswith("mutation webhookSubscriptionUpdate"):
            sub = next(s for s in self.subs if s["id"] == v["id"])
            assert set(v["webhookSubscription"]) == {"metafields"}  # URI, format and filter left alone
            sub["metafields"] = v["webhookSubscription"]["metafields"]
            self.updated.append(sub)
            data = {"webhookSubscriptionUpdate": {"webhookSubscription": sub, "userErrors": []}}
            return 200, {"Content-Type": "application/json"}, json.dumps({"data": data})
        if query.startswith("mutation webhookSubscriptionCreate"):
            sub = {"id": f"gid://shopify/WebhookSubscription/{len(self.subs) + 1}", "topic": v["topic"],
                   "uri": v["webhookSubscription"]["uri"], "format": "JSON",
                   "metafields": v["webhookSubscription"].get("metafields", [])}
            self.subs.append(sub)
            self.created.append(sub)
            data = {"webhookSubscriptionCreate": {"webhookSubscription": sub, "userErrors": []}}
            return 200, {"Content-Type": "application/json"}, json.dumps({"data": data})
        return super().__call__(request)


BIRTHDAY = {"namespace": "facts", "key": "birth_date"}


def test_hook_shopify_webhook_metafields(db_url, tmp_path):
    """Birthdays earn points: the customer subscriptions must name the birthday metafield, or the
    bodies never carry it. A new subscription names it; an old one gains it and keeps what it named."""
    from retention_plugin.subscriptions.shopify import wanted_metafields

    cfg = base_config(db_url, actions={"dry_run": False}, loyalty={"earn": {"birthday": 50}})
    path = write_config(tmp_path / "birthday.toml", cfg)
    other = {"namespace": "crm", "key": "segment"}
    fake = MetafieldShopify([
        {"id": "gid://shopify/WebhookSubscription/1", "topic": "CUSTOMERS_UPDATE", "uri": URL, "format": "JSON",
         "metafields": [other]},
        {"id": "gid://shopify/WebhookSubscription/2", "topic": "ORDERS_PAID", "uri": URL, "format": "JSON",
         "metafields": []},
    ])
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GRAPHQL, callback=fake)
        r = invoke(shopify_group, path, "subscribe", "--callback-url", URL)
        assert r.exit_code == 0, r.output
        assert [s["topic"] for s in fake.updated] == ["CUSTOMERS_UPDATE"]
        assert fake.subs[0]["metafields"] == [other, BIRTHDAY] or fake.subs[0]["metafields"] == [BIRTHDAY, other]
        created = {s["topic"]: s["metafields"] for s in fake.created}
        assert created["CUSTOMERS_CREATE"] == [BIRTHDAY]
        assert all(m == [] for t, m in created.items() if t != "CUSTOMERS_CREATE")
        assert "CUSTOMERS_UPDATE bodies carry the metafields facts.birth_date" in r.stdout
        for body in fake.requests:  # every document and variable set, against both pinned schemas
            assert shopify_request_errors(body) == [], body
            assert shopify_request_errors(body, "2026-10") == [], body

        fake.created.clear()
        fake.updated.clear()
        r = invoke(shopify_group, path, "subscribe", "--callback-url", URL, "--json")
        assert r.exit_code == 0, r.output
        assert fake.created == [] and fake.updated == [] and json.loads(r.stdout)["updated"] == []

    # Birthdays off (the default): nothing is named.
    lazy = LazyApp(str(write_config(tmp_path / "plain.toml", base_config(db_url))))
    try:
        assert wanted_metafields(lazy.app.pm, lazy.app.settings) == {}
    finally:
        lazy.app.dispose()


class _Named:
    def __init__(self, pairs):
        self.pairs = pairs

    @hookimpl
    def shopify_webhook_metafields(self, settings):
        return self.pairs


@pytest.mark.parametrize("pairs, message", [
    ([("ORDERS_DELETE", "facts.x1")], "'ORDERS_DELETE' is not a subscribed topic"),
    ([("CUSTOMERS_UPDATE", "birthday")], "'birthday' for CUSTOMERS_UPDATE: expected namespace.key"),
])
def test_a_plugin_naming_a_metafield_wrongly_is_told_which(pairs, message):
    import pluggy

    from retention_plugin import hookspecs
    from retention_plugin.subscriptions.shopify import wanted_metafields

    pm = pluggy.PluginManager("retention_plugin")
    pm.add_hookspecs(hookspecs)
    pm.register(_Named([("CUSTOMERS_CREATE", "facts.ok")]))
    assert wanted_metafields(pm, None) == {"CUSTOMERS_CREATE": ["facts.ok"]}
    pm.register(_Named(pairs))
    with pytest.raises(ValueError, match=message):
        wanted_metafields(pm, None)


def test_the_dry_run_names_the_metafields_in_its_creates(db_url, tmp_path):
    cfg = base_config(db_url, loyalty={"earn": {"birthday": 50, "birthday_metafield": "custom.born_on"}})
    with responses.RequestsMock():
        path = write_config(tmp_path / "dry.toml", cfg)
        r = invoke(shopify_group, path, "subscribe", "--callback-url", URL, "--json")
    assert r.exit_code == 0, r.output
    creates = {x["json"]["variables"]["topic"]: x["json"]["variables"]["webhookSubscription"]
               for x in json.loads(r.stdout)["requests"][1:]}
    assert creates["CUSTOMERS_UPDATE"]["metafields"] == [{"namespace": "custom", "key": "born_on"}]
    assert "metafields" not in creates["ORDERS_PAID"]

"""``retention shopify app-config``: the shopify.app.toml Shopify CLI deploys (issue 15, item 4).

The shape is checked against Shopify's "App configuration" reference: top-level
client_id, name, application_url (strings) and embedded (boolean);
[access_scopes] scopes (a comma-separated string); [auth] redirect_urls (an
array of URLs); [webhooks] api_version and [[webhooks.subscriptions]] with
topics, compliance_topics and uri; [app_proxy] url, subpath, prefix (prefix
one of apps, a, community, tools).
"""

from __future__ import annotations

import tomllib
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from retention_plugin.cli import cli, register_plugin_commands
from retention_plugin.install.app_config import app_config, render
from retention_plugin.install.scopes import DEFAULT_SCOPES
from retention_plugin.subscriptions.shopify import COMPLIANCE_TOPICS, TOPICS, required_scopes, topic_name
from server_util import write_config

SHOPIFY = {"shop": "retention-test.myshopify.com", "client_id": "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a",
           "client_secret": "shpss_app_config_secret", "app_url": "https://retention.example.com",
           "api_version": "2026-07"}


def run(tmp_path, shopify, *args):
    register_plugin_commands([])
    path = write_config(tmp_path / "retention.toml", {"database": {"url": f"sqlite:///{tmp_path}/r.db"},
                                                      "shopify": shopify})
    return CliRunner().invoke(cli, ["--config", str(path), "shopify", "app-config", *args], catch_exceptions=False)


def test_app_config_writes_the_documented_shape(tmp_path):
    out = tmp_path / "shopify.app.toml"
    result = run(tmp_path, SHOPIFY, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "shopify app deploy" in result.output
    doc = tomllib.loads(out.read_text())
    assert set(doc) == {"client_id", "name", "application_url", "embedded", "access_scopes", "auth", "webhooks",
                        "app_proxy"}
    assert doc["client_id"] == SHOPIFY["client_id"] and isinstance(doc["name"], str) and doc["name"]
    assert doc["application_url"] == "https://retention.example.com" and doc["embedded"] is False

    scopes = doc["access_scopes"]["scopes"]
    assert isinstance(scopes, str) and " " not in scopes
    assert set(scopes.split(",")) == set(DEFAULT_SCOPES) | {"write_app_proxy"}

    assert doc["auth"] == {"redirect_urls": ["https://retention.example.com/auth/shopify/callback"]}

    hooks = doc["webhooks"]
    assert hooks["api_version"] == "2026-07"
    (sub,) = hooks["subscriptions"]
    assert sub["uri"] == "https://retention.example.com/webhooks/shopify"
    assert sub["topics"] == [topic_name(x) for x in TOPICS]
    assert {"orders/paid", "refunds/create", "fulfillment_events/create", "app/uninstalled"} <= set(sub["topics"])
    assert sub["compliance_topics"] == ["customers/data_request", "customers/redact", "shop/redact"]
    assert list(COMPLIANCE_TOPICS) == sub["compliance_topics"]

    assert doc["app_proxy"] == {"url": "https://retention.example.com/proxy/rewards", "subpath": "rewards",
                                "prefix": "apps"}
    for url in (doc["application_url"], doc["app_proxy"]["url"], *doc["auth"]["redirect_urls"], sub["uri"]):
        assert urlsplit(url).scheme == "https"


def test_every_topic_scope_is_requested():
    assert set(required_scopes()) <= set(DEFAULT_SCOPES)


def test_installs_open_the_install_route_and_the_proxy_follows_the_config(tmp_path):
    shopify = {**SHOPIFY, "grant": "authorization_code", "app_proxy_prefix": "tools", "app_proxy_subpath": "loyalty",
               "scopes": ["read_orders", "write_discounts"]}
    result = run(tmp_path, shopify, "--out", "-", "--name", 'Rewards "Plus"')
    assert result.exit_code == 0, result.output
    doc = tomllib.loads(result.output)
    assert doc["name"] == 'Rewards "Plus"'
    assert doc["application_url"] == "https://retention.example.com/auth/shopify/install"
    assert doc["app_proxy"] == {"url": "https://retention.example.com/proxy/rewards", "subpath": "loyalty",
                                "prefix": "tools"}
    assert doc["access_scopes"]["scopes"] == "read_orders,write_discounts,write_app_proxy"


def test_without_the_app_proxy(tmp_path):
    doc = tomllib.loads(render(app_config(SHOPIFY, app_proxy=False)))
    assert "app_proxy" not in doc and "write_app_proxy" in doc["access_scopes"]["scopes"]  # default scopes have it
    doc = tomllib.loads(render(app_config({**SHOPIFY, "scopes": ["read_orders"]}, app_proxy=False)))
    assert doc["access_scopes"]["scopes"] == "read_orders"


def test_what_is_missing_is_named_all_at_once(tmp_path):
    result = run(tmp_path, {"shop": SHOPIFY["shop"], "access_token": "shpat_x", "webhook_secrets": ["w"]})
    assert result.exit_code == 2
    assert "[shopify].client_id" in result.output and "[shopify].app_url" in result.output


@pytest.mark.parametrize("app_url", ["http://127.0.0.1:8000", "http://localhost"])
def test_shopify_needs_https(tmp_path, app_url):
    result = run(tmp_path, {**SHOPIFY, "app_url": app_url})
    assert result.exit_code == 2 and "https" in result.output


def test_a_bad_proxy_prefix_is_a_config_error(tmp_path):
    result = run(tmp_path, {**SHOPIFY, "app_proxy_prefix": "shop"})
    assert result.exit_code == 2 and "[shopify].app_proxy_prefix" in result.output


def test_the_proxy_url_is_where_the_rewards_page_answers(tmp_path):
    register_plugin_commands([])
    path = write_config(tmp_path / "retention.toml", {"database": {"url": f"sqlite:///{tmp_path}/r.db"},
                                                      "shopify": SHOPIFY, "storefront": {"path": "/shop-proxy/points"}})
    result = CliRunner().invoke(cli, ["--config", str(path), "shopify", "app-config", "--out", "-"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.output)["app_proxy"]["url"] == "https://retention.example.com/shop-proxy/points"

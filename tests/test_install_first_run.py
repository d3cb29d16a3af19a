"""First run: `retention config check` names everything missing at once and checks tokens live (issue 15, item 6).

Also: the client secret verifies webhooks while webhook_secrets is unset (item 1).
"""

from __future__ import annotations

import json

import falcon.testing
import responses
from click.testing import CliRunner

from conftest import SHOP, base_config, dumps, shopify_headers
from retention_plugin.app import Retention
from retention_plugin.cli import cli
from retention_plugin.shop_tokens import KEY_ENV
from retention_plugin.web import create_app
from server_util import write_config
from shopify_token_stub import ShopifyTokenStub

CLIENT_ID = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
SECRET = "shpss_first_run_0f1e2d3c4b5a6978"


def check(path, *args, env=None):
    return CliRunner().invoke(cli, ["--config", str(path), "config", "check", *args], env=env,
                              catch_exceptions=False)


def test_every_unset_environment_variable_is_named_at_once(tmp_path, monkeypatch):
    for name in ("SHOPIFY_CLIENT_SECRET_X", "ZENDESK_API_TOKEN_X", "ZENDESK_WEBHOOK_SECRET_X"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "retention.toml"
    path.write_text(f'[shopify]\nshop = "{SHOP}"\nclient_id = "{CLIENT_ID}"\n'
                    'client_secret = "${SHOPIFY_CLIENT_SECRET_X}"\n'
                    '[zendesk]\nsubdomain = "x"\nemail = "a@example.com"\napi_token = "${ZENDESK_API_TOKEN_X}"\n'
                    'webhook_secret = "${ZENDESK_WEBHOOK_SECRET_X}"\n')
    result = check(path)
    assert result.exit_code == 2
    for name, key in (("SHOPIFY_CLIENT_SECRET_X", "shopify.client_secret"),
                      ("ZENDESK_API_TOKEN_X", "zendesk.api_token"),
                      ("ZENDESK_WEBHOOK_SECRET_X", "zendesk.webhook_secret")):
        assert name in result.output and key in result.output


def test_every_invalid_key_is_named_at_once(tmp_path):
    path = tmp_path / "retention.toml"
    path.write_text('[actions]\ndry_runn = true\n[worker]\nbatch_size = "many"\n[server]\nport = 0\n')
    result = check(path)
    assert result.exit_code == 2
    for key in ("[actions].dry_runn", "[worker].batch_size", "[server].port"):
        assert key in result.output


def test_every_missing_setting_is_named_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = write_config(tmp_path / "retention.toml", {
        "shopify": {"shop": SHOP, "webhook_secrets": ["w"], "grant": "authorization_code"},
        "zendesk": {"subdomain": "x", "webhook_secret": "z", "api_token": "t"}})
    result = check(path)
    assert result.exit_code == 1, result.output
    for missing in ("[shopify].client_id", "[shopify].client_secret", "[shopify].app_url", KEY_ENV,
                    "[zendesk].email"):
        assert missing in result.output


def test_an_unsubscribe_token_without_the_links_secret_is_a_problem(tmp_path):
    """{token} used to need [email] unsubscribe_secret at load; now [links] secret signs it: said here."""
    cfg = {"email": {"unsubscribe_url": "https://x.example/r/unsubscribe?c={customer_id}&t={token}",
                     "unsubscribe_secret": "an-old-unsubscribe-secret"}}
    result = check(write_config(tmp_path / "retention.toml", cfg))
    assert result.exit_code == 1 and "[links] secret is not set: [email].unsubscribe_url uses {token}" in result.output
    cfg["links"] = {"secret": "a-link-secret-0123456789"}
    result = check(write_config(tmp_path / "retention.toml", cfg))
    assert result.exit_code == 0 and "[links] secret" not in result.output, result.output


def test_a_malformed_token_key_is_a_problem_naming_the_variable_not_its_value(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not-a-fernet-key-but-secret-text")
    path = write_config(tmp_path / "retention.toml", {"shopify": {
        "shop": SHOP, "client_id": CLIENT_ID, "client_secret": SECRET}})
    result = check(path)
    assert result.exit_code == 1 and KEY_ENV in result.output
    assert "not-a-fernet-key-but-secret-text" not in result.output


def test_dry_run_says_what_it_would_request_and_sends_nothing(tmp_path, token_key):
    path = write_config(tmp_path / "retention.toml", {
        "shopify": {"shop": SHOP, "client_id": CLIENT_ID, "client_secret": SECRET},
        "zendesk": {"subdomain": "acme", "webhook_secret": "z", "oauth_token": "zd-oauth-0123456789"}})
    with responses.RequestsMock() as rsps:  # any request would fail the test
        result = check(path)
        assert len(rsps.calls) == 0
    assert result.exit_code == 0, result.output
    assert (f"would request a token with POST https://{SHOP}/admin/oauth/access_token "
            f"(grant_type=client_credentials, client_id={CLIENT_ID}") in result.output
    assert "{ shop { name } }" in result.output
    assert "would GET https://acme.zendesk.com/api/v2/users/me.json with an OAuth bearer token" in result.output
    assert SECRET not in result.output and "zd-oauth-0123456789" not in result.output
    assert "verified with the client secret" in result.output


def live_config(tmp_path, db_url, stub, **shopify):
    return write_config(tmp_path / "retention.toml", {
        "database": {"url": db_url}, "actions": {"dry_run": False},
        "shopify": {"shop": SHOP, "client_id": CLIENT_ID, "client_secret": SECRET, "admin_base_url": stub.url,
                    **shopify}})


def test_live_check_requests_a_token_and_asks_the_shop_its_name(tmp_path, db_url, token_key):
    stub = ShopifyTokenStub(CLIENT_ID, SECRET)
    try:
        result = check(live_config(tmp_path, db_url, stub))
        as_json = check(live_config(tmp_path, db_url, stub), "--json")
    finally:
        stub.close()
    assert result.exit_code == 0, result.output
    assert "shopify: ok:" in result.output and "(Stub Shop) answered with a client_credentials token" in result.output
    assert len(stub.token_requests) == 1  # the second run used the stored token
    for secret in (SECRET, "shpat_stub_0001", token_key):
        assert secret not in result.output and secret not in as_json.output
    checks = json.loads(as_json.output)["checks"]
    assert checks["live"] == [{"platform": "shopify", "ok": True, "detail": checks["live"][0]["detail"]}]


def test_live_check_reports_a_refused_secret_without_it(tmp_path, db_url, token_key):
    stub = ShopifyTokenStub(CLIENT_ID, "shpss_the_real_one")
    try:
        result = check(live_config(tmp_path, db_url, stub))
    finally:
        stub.close()
    assert result.exit_code == 1
    assert "shopify: FAILED:" in result.output and "invalid_client" in result.output
    assert SECRET not in result.output


def test_live_check_of_an_app_not_installed_yet_says_where_to_install(tmp_path, db_url, token_key):
    stub = ShopifyTokenStub(CLIENT_ID, SECRET)
    try:
        result = check(live_config(tmp_path, db_url, stub, grant="authorization_code",
                                   app_url="https://retention.example.com"))
    finally:
        stub.close()
    assert result.exit_code == 1
    assert "has not been installed" in result.output and f"/auth/shopify/install?shop={SHOP}" in result.output
    assert stub.token_requests == []


def test_live_zendesk_check_with_an_oauth_token(tmp_path, db_url):
    path = write_config(tmp_path / "retention.toml", {
        "database": {"url": db_url}, "actions": {"dry_run": False},
        "zendesk": {"subdomain": "acme", "webhook_secret": "z", "oauth_token": "zd-oauth-0123456789"}})
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, "https://acme.zendesk.com/api/v2/users/me.json",
                 json={"user": {"id": 35436, "role": "admin"}},
                 match=[responses.matchers.header_matcher({"Authorization": "Bearer zd-oauth-0123456789"})])
        result = check(path)
    assert result.exit_code == 0, result.output
    assert "zendesk: ok: authenticated as user 35436 (admin)" in result.output
    assert "zd-oauth-0123456789" not in result.output


def test_the_client_secret_verifies_webhooks_when_webhook_secrets_is_unset(db_url, clock, tmp_path):
    cfg = base_config(db_url)
    cfg["shopify"] = {"shop": SHOP, "client_id": CLIENT_ID, "client_secret": SECRET}
    app = Retention.from_dict(cfg, path=tmp_path / "retention.toml", entry_points=False, clock=clock)
    try:
        web = falcon.testing.TestClient(create_app(app))
        body = dumps({"id": 1, "email": "a@example.com"})
        good = web.simulate_post("/webhooks/shopify", body=body,
                                 headers=shopify_headers(body, "customers/create", secret=SECRET))
        bad = web.simulate_post("/webhooks/shopify", body=body,
                                headers=shopify_headers(body, "customers/create", secret="shpss_test_secret"))
    finally:
        app.dispose()
    assert good.status_code == 200 and bad.status_code == 401

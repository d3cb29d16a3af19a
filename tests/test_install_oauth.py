"""Installing on a shop with the authorization code grant: /auth/shopify/install and /callback (issue 15, item 2).

Shopify's "Implement authorization code grant manually": the install sends the
merchant to /admin/oauth/authorize with client_id, scope, redirect_uri and a
state; the callback's query is signed (hex HMAC-SHA256 under the client secret
of its other parameters, by Shopify's escaping and array rules), and is refused
with a 4xx, storing nothing, when the signature, the shop, the timestamp or the
state is wrong or already used. Token exchange via `responses`; one run
through the real server and a local token stub at the end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import falcon.testing
import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import SHOP
from retention_plugin.install import shopify_oauth
from retention_plugin.install.scopes import DEFAULT_SCOPES
from retention_plugin.shop_tokens import KEY_ENV
from retention_plugin.storage import tables as t
from retention_plugin.subscriptions.shopify import TOPICS
from retention_plugin.web import create_app

APP_URL = "https://retention.example.com"
CLIENT_ID = "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
SECRET = "shpss_install_0a1b2c3d4e5f6a7b8c9d"
TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
EXCHANGED = {"access_token": "shpat_offline_0001", "scope": ",".join(DEFAULT_SCOPES), "expires_in": 3600,
             "refresh_token": "shprt_0001", "refresh_token_expires_in": 7776000}

def shopify_message(pairs) -> str:
    """The text Shopify signs, by its documented rules (written here independently of verify.py)."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)

    def esc(text):
        return text.replace("%", "%25").replace("&", "%26")

    parts = []
    for key, values in grouped.items():
        name, value = (key[:-2], json.dumps(values)) if key.endswith("[]") else (key, values[0])
        parts.append(esc(name).replace("=", "%3D") + "=" + esc(value))
    return "&".join(sorted(parts))


def signed(pairs, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), shopify_message(pairs).encode(), hashlib.sha256).hexdigest()
    return urlencode([*pairs, ("hmac", digest)])


INSTALL = {"access_token": None, "client_id": CLIENT_ID, "client_secret": SECRET, "grant": "authorization_code",
           "app_url": APP_URL}


@pytest.fixture
def app(make_app, token_key):
    return make_app(shopify=INSTALL)


@pytest.fixture
def web(app):
    return falcon.testing.TestClient(create_app(app))


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def start(web) -> str:
    """Run the install step; the state Shopify will send back."""
    result = web.simulate_get("/auth/shopify/install", query_string=f"shop={SHOP}")
    assert result.status_code == 302, result.text
    return parse_qs(urlsplit(result.headers["Location"]).query)["state"][0]


def callback_pairs(state: str, when: datetime, code: str = "0907a61c0c8d55e99db179b68161bc00", shop: str = SHOP):
    return [("code", code), ("host", "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvcmV0ZW50aW9uLXRlc3Q"), ("shop", shop),
            ("state", state), ("timestamp", str(int(when.timestamp())))]


def stored(app) -> dict:
    with app.engine.connect() as conn:
        return {"tokens": conn.execute(select(func.count()).select_from(t.shop_tokens)).scalar(),
                "actions": conn.execute(select(func.count()).select_from(t.actions)).scalar()}


def test_install_redirects_to_the_authorize_page_with_the_documented_parameters(app, web, clock):
    result = web.simulate_get("/auth/shopify/install", query_string=f"shop={SHOP}")
    assert result.status_code == 302
    url = urlsplit(result.headers["Location"])
    assert (url.scheme, url.netloc, url.path) == ("https", SHOP, "/admin/oauth/authorize")
    query = parse_qs(url.query)
    assert set(query) == {"client_id", "scope", "redirect_uri", "state"}  # no grant_options[]: offline token
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == [",".join(DEFAULT_SCOPES)]
    assert query["redirect_uri"] == [APP_URL + "/auth/shopify/callback"]
    state = query["state"][0]
    assert len(state) >= 32
    with app.engine.connect() as conn:
        row = conn.execute(select(t.oauth_states)).mappings().one()
    assert row["state_hash"] == hashlib.sha256(state.encode()).hexdigest()  # the nonce itself is not stored
    assert row["shop"] == SHOP and row["expires_at"] == clock.now + timedelta(minutes=10)
    assert result.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("shop, status", [
    ("", 400), ("evil.example.com", 400), ("retention-test.myshopify.com.evil.com", 400),
    ("RETENTION TEST.myshopify.com", 400), ("other-shop.myshopify.com", 403),
])
def test_install_refuses_bad_and_foreign_shops(app, web, shop, status):
    result = web.simulate_get("/auth/shopify/install", query_string=urlencode({"shop": shop}))
    assert result.status_code == status
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.oauth_states)).scalar() == 0


def test_an_install_request_signed_by_shopify_must_verify(app, web, clock):
    pairs = [("host", "YWRtaW4"), ("shop", SHOP), ("timestamp", str(int(clock.now.timestamp())))]
    assert web.simulate_get("/auth/shopify/install", query_string=signed(pairs)).status_code == 302
    assert web.simulate_get("/auth/shopify/install", query_string=signed(pairs, "other")).status_code == 401


def test_callback_stores_the_offline_token_encrypted_and_queues_the_webhooks(app, web, rsps, clock):
    rsps.add(responses.POST, TOKEN_URL, json=EXCHANGED)
    state = start(web)
    result = web.simulate_get("/auth/shopify/callback", query_string=signed(callback_pairs(state, clock.now)))
    assert result.status_code == 200, result.text
    assert "Installed on retention-test.myshopify.com" in result.text
    assert result.headers["Referrer-Policy"] == "no-referrer"
    sent = {k: v[0] for k, v in parse_qs(rsps.calls[0].request.body).items()}
    assert sent == {"client_id": CLIENT_ID, "client_secret": SECRET, "code": "0907a61c0c8d55e99db179b68161bc00",
                    "expiring": "1"}
    with app.engine.connect() as conn:
        row = conn.execute(select(t.shop_tokens)).mappings().one()
        actions = conn.execute(select(t.actions).order_by(t.actions.c.id)).mappings().all()
    assert row["grant_type"] == "authorization_code" and row["encrypted"] and row["shop"] == SHOP
    for secret in ("shpat_offline_0001", "shprt_0001"):
        assert secret not in (row["access_token"] + row["refresh_token"])
    assert row["expires_at"] == clock.now + timedelta(seconds=3600)
    assert row["refresh_expires_at"] == clock.now + timedelta(seconds=7776000)
    assert [a["request"]["variables"]["topic"] for a in actions] == list(TOPICS)
    assert {a["request"]["variables"]["webhookSubscription"]["uri"] for a in actions} == {
        APP_URL + "/webhooks/shopify"}
    assert {a["kind"] for a in actions} == {"webhook_subscription_create"}


def test_the_installed_token_is_used_and_renewed_with_its_refresh_token(app, web, rsps, clock):
    rsps.add(responses.POST, TOKEN_URL, json=EXCHANGED)
    state = start(web)
    assert web.simulate_get("/auth/shopify/callback",
                            query_string=signed(callback_pairs(state, clock.now))).status_code == 200
    used = []

    def graphql(request):
        used.append(request.headers["X-Shopify-Access-Token"])
        return 200, {}, '{"data": {"shop": {"name": "Retention Test"}}}'

    rsps.add_callback(responses.POST, f"https://{SHOP}/admin/api/2026-07/graphql.json", callback=graphql)
    client = app.shopify_client()
    client.graphql("{ shop { name } }")
    rsps.replace(responses.POST, TOKEN_URL, json={**EXCHANGED, "access_token": "shpat_offline_0002",
                                                  "refresh_token": "shprt_0002"})
    clock.advance(seconds=3600 - 299)
    client.graphql("{ shop { name } }")
    assert used == ["shpat_offline_0001", "shpat_offline_0002"]
    refresh = {k: v[0] for k, v in parse_qs(rsps.calls[-2].request.body).items()}
    assert refresh == {"client_id": CLIENT_ID, "client_secret": SECRET, "grant_type": "refresh_token",
                       "refresh_token": "shprt_0001"}
    assert app.shop_tokens.describe(SHOP)["version"] == 2


def test_a_replayed_callback_is_refused_and_changes_nothing(app, web, rsps, clock):
    rsps.add(responses.POST, TOKEN_URL, json=EXCHANGED)
    state = start(web)
    query = signed(callback_pairs(state, clock.now))
    assert web.simulate_get("/auth/shopify/callback", query_string=query).status_code == 200
    before = stored(app) | {"version": app.shop_tokens.describe(SHOP)["version"]}
    again = web.simulate_get("/auth/shopify/callback", query_string=query)
    assert again.status_code == 400 and "bad_state" in again.text
    assert stored(app) | {"version": app.shop_tokens.describe(SHOP)["version"]} == before
    assert len(rsps.calls) == 1  # the code was not exchanged twice


@pytest.mark.parametrize("case", ["forged", "tampered", "no_hmac", "stale", "future", "unknown_state",
                                  "expired_state", "foreign_shop", "not_myshopify", "no_code", "two_codes"])
def test_bad_callbacks_are_refused_with_4xx_and_store_nothing(app, web, rsps, clock, case):
    rsps.add(responses.POST, TOKEN_URL, json=EXCHANGED)
    state = start(web)
    pairs = callback_pairs(state, clock.now)
    query = signed(pairs)
    expected = 400
    if case == "forged":
        query, expected = signed(pairs, "shpss_someone_elses_secret"), 401
    elif case == "tampered":
        query, expected = query.replace("code=0907", "code=1907"), 401
    elif case == "no_hmac":
        query, expected = urlencode(pairs), 401
    elif case == "stale":
        query = signed(callback_pairs(state, clock.now - timedelta(minutes=11)))
    elif case == "future":
        query = signed(callback_pairs(state, clock.now + timedelta(minutes=11)))
    elif case == "unknown_state":
        query = signed(callback_pairs("0.6784241404160823", clock.now))
    elif case == "expired_state":
        clock.advance(minutes=11)
        query = signed(callback_pairs(state, clock.now))
    elif case == "foreign_shop":
        query, expected = signed(callback_pairs(state, clock.now, shop="other-shop.myshopify.com")), 403
    elif case == "not_myshopify":
        query = signed(callback_pairs(state, clock.now, shop="retention-test.example.com"))
    elif case == "no_code":
        query = signed([p for p in pairs if p[0] != "code"])
    elif case == "two_codes":
        query, expected = signed([*pairs, ("code", "second")]), (400, 401)
    result = web.simulate_get("/auth/shopify/callback", query_string=query)
    assert result.status_code in (expected if isinstance(expected, tuple) else (expected,)), result.text
    assert stored(app) == {"tokens": 0, "actions": 0}
    assert len(rsps.calls) == 0  # no code was exchanged
    if case in ("forged", "tampered", "no_hmac", "stale", "future", "foreign_shop", "not_myshopify"):
        # Refused before the state was looked at: the merchant's real callback still works.
        ok = web.simulate_get("/auth/shopify/callback", query_string=signed(callback_pairs(state, clock.now)))
        assert ok.status_code == 200, ok.text


def test_a_code_shopify_refuses_is_a_502_and_nothing_is_stored(app, web, rsps, clock):
    rsps.add(responses.POST, TOKEN_URL, status=400, json={
        "error": "invalid_request", "error_description": "The authorization code was not found or was already used"})
    state = start(web)
    result = web.simulate_get("/auth/shopify/callback", query_string=signed(callback_pairs(state, clock.now)))
    assert result.status_code == 502 and "already used" in result.text
    assert SECRET not in result.text
    assert stored(app) == {"tokens": 0, "actions": 0}


def test_shopifys_documented_callback_verifies(make_app, token_key, rsps, clock):
    """The example query of Shopify's OAuth documentation (secret "hush"), exactly as Shopify sent it."""
    shop = "some-shop.myshopify.com"
    app = make_app(shopify={**INSTALL, "shop": shop, "client_secret": "hush"})
    clock.now = datetime.fromtimestamp(1337178173, timezone.utc)
    with app.engine.begin() as conn:
        conn.execute(t.oauth_states.insert().values(
            state_hash=hashlib.sha256(b"0.6784241404160823").hexdigest(), shop=shop, created_at=clock.now,
            expires_at=clock.now + timedelta(minutes=10)))
    rsps.add(responses.POST, f"https://{shop}/admin/oauth/access_token", json=EXCHANGED)
    query = ("code=0907a61c0c8d55e99db179b68161bc00"
             "&hmac=700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
             "&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173")
    web = falcon.testing.TestClient(create_app(app))
    result = web.simulate_get("/auth/shopify/callback", query_string=query)
    assert result.status_code == 200, result.text
    assert app.shop_tokens.describe(shop)["grant"] == "authorization_code"


@pytest.mark.parametrize("extra", [
    [("ids[]", "1"), ("ids[]", "2")],  # an array: signed as ids=["1", "2"]
    [("ids[]", "7")],  # a one-element array is still a list
    [("note", "a&b=c%d")],  # & and % escaped in values, = left alone
    [("we=ird&key", "v")],  # & % = escaped in keys
])
def test_callbacks_signed_by_shopifys_array_and_escaping_rules_verify(app, web, rsps, clock, extra):
    rsps.add(responses.POST, TOKEN_URL, json=EXCHANGED)
    state = start(web)
    pairs = [*callback_pairs(state, clock.now), *extra]
    naive = "&".join(f"{k}={v}" for k, v in sorted(pairs))  # what a verifier without the rules would sign
    forged = urlencode([*pairs, ("hmac", hmac.new(SECRET.encode(), naive.encode(), hashlib.sha256).hexdigest())])
    assert web.simulate_get("/auth/shopify/callback", query_string=forged).status_code == 401
    result = web.simulate_get("/auth/shopify/callback", query_string=signed(pairs))
    assert result.status_code == 200, result.text


def test_the_routes_refuse_to_start_without_the_token_key(make_app, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    app = make_app(shopify={**INSTALL, "app_url": None})
    with pytest.raises(shopify_oauth.InstallNotReady) as e:
        create_app(app)
    assert KEY_ENV in str(e.value) and "[shopify].app_url" in str(e.value)


def test_serve_refuses_to_start_without_the_token_key(db_url, tmp_path, monkeypatch):
    from retention_plugin.cli import cli
    from server_util import write_config

    monkeypatch.delenv(KEY_ENV, raising=False)
    path = write_config(tmp_path / "retention.toml", {"database": {"url": db_url}, "shopify": {
        "shop": SHOP, "client_id": CLIENT_ID, "client_secret": SECRET, "grant": "authorization_code",
        "app_url": APP_URL}})
    result = CliRunner().invoke(cli, ["--config", str(path), "serve"], catch_exceptions=False)
    assert result.exit_code == 1 and KEY_ENV in result.output


def test_client_credentials_installs_serve_no_install_routes(make_app, token_key):
    app = make_app(shopify={**INSTALL, "grant": "client_credentials"})
    web = falcon.testing.TestClient(create_app(app))
    assert web.simulate_get("/auth/shopify/install", query_string=f"shop={SHOP}").status_code == 404


def test_install_and_callback_through_the_real_server(module_db_url, tmp_path, token_key):
    import time

    import requests

    from server_util import running_server, write_config
    from shopify_token_stub import ShopifyTokenStub

    stub = ShopifyTokenStub(CLIENT_ID, SECRET)
    path = write_config(tmp_path / "retention.toml", {"database": {"url": module_db_url}, "shopify": {
        "shop": SHOP, "client_id": CLIENT_ID, "client_secret": SECRET, "grant": "authorization_code",
        "app_url": APP_URL, "admin_base_url": stub.url}})
    try:
        with running_server(path, workers=1) as base:
            start_ = requests.get(base + "/auth/shopify/install", params={"shop": SHOP}, allow_redirects=False,
                                  timeout=30)
            assert start_.status_code == 302
            state = parse_qs(urlsplit(start_.headers["Location"]).query)["state"][0]
            now = datetime.fromtimestamp(time.time(), timezone.utc)
            query = signed(callback_pairs(state, now, code="c0de-real-server"))
            done = requests.get(f"{base}/auth/shopify/callback?{query}", timeout=30)
            assert done.status_code == 200, done.text
            replay = requests.get(f"{base}/auth/shopify/callback?{query}", timeout=30)
            assert replay.status_code == 400
            forged = requests.get(f"{base}/auth/shopify/callback?{signed(callback_pairs(state, now), 'x')}",
                                  timeout=30)
            assert forged.status_code == 401
    finally:
        stub.close()
    assert [r.get("code") for r in stub.token_requests] == ["c0de-real-server"]
    assert stub.token_requests[0]["expiring"] == "1"


def test_the_queued_subscriptions_validate_against_the_pinned_admin_schema(app, web, rsps, clock):
    from platforms.helpers import shopify_request_errors

    rsps.add(responses.POST, TOKEN_URL, json=EXCHANGED)
    state = start(web)
    assert web.simulate_get("/auth/shopify/callback",
                            query_string=signed(callback_pairs(state, clock.now))).status_code == 200
    with app.engine.connect() as conn:
        requests_ = conn.execute(select(t.actions.c.request)).scalars().all()
    assert len(requests_) == len(TOPICS)
    for version in ("2026-07", "2026-10"):
        assert [shopify_request_errors(r, version) for r in requests_] == [[]] * len(TOPICS)


def test_installing_another_shop_makes_it_an_installed_shop_with_its_own_subscriptions(make_app, token_key, rsps,
                                                                                       clock):
    other = "agency-client.myshopify.com"
    app = make_app(shopify=INSTALL, shops={other: {}})  # the agency lists the shops it serves
    web = falcon.testing.TestClient(create_app(app))
    rsps.add(responses.POST, f"https://{other}/admin/oauth/access_token", json=EXCHANGED)
    result = web.simulate_get("/auth/shopify/install", query_string=f"shop={other}")
    state = parse_qs(urlsplit(result.headers["Location"]).query)["state"][0]
    result = web.simulate_get("/auth/shopify/callback",
                              query_string=signed(callback_pairs(state, clock.now, shop=other)))
    assert result.status_code == 200, result.text
    from retention_plugin import shops

    with app.engine.connect() as conn:
        assert shops.installed(app, conn) == [SHOP, other]
        actions = conn.execute(select(t.actions)).mappings().all()
    # The subscriptions are the new shop's: the action runner makes them with its token, not [shopify] shop's.
    assert len(actions) == len(TOPICS) and {a["shop"] for a in actions} == {other}

"""Dev Dashboard tokens: the client credentials grant, cached in the database, renewed once (HTTP via `responses`).

Shapes from Shopify's "Using the client credentials grant": a form POST of
grant_type, client_id and client_secret to /admin/oauth/access_token, answered
``{"access_token", "scope", "expires_in": 86399}``; errors as
``{"error", "error_description"}`` with a 4xx.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import responses
from cryptography.fernet import Fernet
from sqlalchemy import select

from retention_plugin.platforms.errors import AlreadyExists, PermanentError, TransientError
from retention_plugin.platforms.shopify import mutations as m
from retention_plugin.platforms.shopify.client import raise_for_user_errors
from retention_plugin.platforms.shopify.oauth import TokenRefused
from retention_plugin.shop_tokens import KEY_ENV, ShopTokens
from retention_plugin.storage import tables as t

from shopify_token_stub import lock_waiters

from .helpers import shopify_request_errors

SHOP = "retention-test.myshopify.com"
TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
GRAPHQL_URL = f"https://{SHOP}/admin/api/2026-07/graphql.json"
CLIENT_ID = "3f1c0de5a2b94c7e8d6f0a1b2c3d4e5f"
CLIENT_SECRET = "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"
APP_CREDENTIALS = {"access_token": None, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
SHOP_ANSWER = {"data": {"shop": {"name": "Retention Test", "myshopifyDomain": SHOP}}}


@pytest.fixture
def cc_app(make_app, token_key):
    app = make_app(shopify=APP_CREDENTIALS)
    return app


class TokenServer:
    """The token endpoint as `responses` callbacks: numbered tokens, every request kept."""

    def __init__(self, rsps, expires_in=86399, hold=None):
        self.requests: list[dict] = []
        self.expires_in = expires_in
        self.hold = hold  # called inside the first answer (another worker runs meanwhile)
        self.lock = threading.Lock()
        rsps.add_callback(responses.POST, TOKEN_URL, callback=self.answer)

    def answer(self, request):
        with self.lock:
            self.requests.append({k: v[0] for k, v in parse_qs(request.body).items()})
            n = len(self.requests)
        if self.hold:
            self.hold()
        return 200, {"Content-Type": "application/json"}, (
            f'{{"access_token": "shpat_cc_token_{n:04d}", "scope": "read_orders,write_discounts", '
            f'"expires_in": {self.expires_in}}}')

    @property
    def tokens(self) -> list[str]:
        return [f"shpat_cc_token_{i + 1:04d}" for i in range(len(self.requests))]


class GraphqlServer:
    """The Admin API: answers tokens it knows, 401 for a refused one; remembers which token each call used."""

    def __init__(self, rsps, refuse=()):
        self.used: list[str] = []
        self.refuse = set(refuse)
        rsps.add_callback(responses.POST, GRAPHQL_URL, callback=self.answer)

    def answer(self, request):
        token = request.headers.get("X-Shopify-Access-Token")
        self.used.append(token)
        if token in self.refuse:
            return 401, {"Content-Type": "application/json"}, '{"errors": "[API] Invalid API key or access token"}'
        return 200, {"Content-Type": "application/json"}, '{"data": {"shop": {"name": "Retention Test"}}}'


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_first_token_is_requested_with_the_documented_form_and_stored_encrypted(cc_app, rsps):
    tokens = TokenServer(rsps)
    api = GraphqlServer(rsps)
    client = cc_app.shopify_client()
    client.graphql("{ shop { name } }")
    client.graphql("{ shop { name } }")
    assert tokens.requests == [{"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                "client_secret": CLIENT_SECRET}]
    assert rsps.calls[0].request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert api.used == ["shpat_cc_token_0001"] * 2
    with cc_app.engine.connect() as conn:
        row = conn.execute(select(t.shop_tokens)).mappings().one()
    assert row["shop"] == SHOP and row["grant_type"] == "client_credentials" and row["encrypted"]
    assert "shpat_cc_token_0001" not in row["access_token"]
    assert row["expires_at"] - row["obtained_at"] == timedelta(seconds=86399)
    # Another process (a new app object on the same database) uses the stored token: no new request.
    other = cc_app.shopify_client()
    other.graphql("{ shop { name } }")
    assert len(tokens.requests) == 1 and api.used[-1] == "shpat_cc_token_0001"


def test_token_is_replaced_five_minutes_before_it_expires(cc_app, rsps, clock):
    tokens = TokenServer(rsps)
    api = GraphqlServer(rsps)
    client = cc_app.shopify_client()
    client.graphql("{ shop { name } }")
    clock.advance(seconds=86399 - 301)
    client.graphql("{ shop { name } }")
    assert len(tokens.requests) == 1
    clock.advance(seconds=2)  # now 299 s before expiry: inside the margin
    client.graphql("{ shop { name } }")
    assert len(tokens.requests) == 2
    assert api.used == ["shpat_cc_token_0001", "shpat_cc_token_0001", "shpat_cc_token_0002"]


def test_a_short_lived_token_is_replaced_at_nine_tenths_of_its_life(cc_app, rsps, clock):
    tokens = TokenServer(rsps, expires_in=100)
    GraphqlServer(rsps)
    client = cc_app.shopify_client()
    client.graphql("{ shop { name } }")
    clock.advance(seconds=89)
    client.graphql("{ shop { name } }")
    assert len(tokens.requests) == 1
    clock.advance(seconds=2)
    client.graphql("{ shop { name } }")
    assert len(tokens.requests) == 2


def test_a_401_renews_the_token_once_and_repeats_the_request(cc_app, rsps):
    tokens = TokenServer(rsps)
    api = GraphqlServer(rsps, refuse={"shpat_cc_token_0001"})  # revoked, say, by a secret rotation
    data = cc_app.shopify_client().graphql("{ shop { name } }")
    assert data == {"shop": {"name": "Retention Test"}}
    assert api.used == ["shpat_cc_token_0001", "shpat_cc_token_0002"]
    assert len(tokens.requests) == 2


def test_a_second_401_is_final(cc_app, rsps):
    tokens = TokenServer(rsps)
    api = GraphqlServer(rsps, refuse={"shpat_cc_token_0001", "shpat_cc_token_0002", "shpat_cc_token_0003"})
    with pytest.raises(PermanentError) as e:
        cc_app.shopify_client().graphql("{ shop { name } }")
    assert e.value.status == 401
    assert len(tokens.requests) == 2 and len(api.used) == 2  # one renewal, one repeat


def test_a_401_after_another_worker_renewed_takes_their_token(cc_app, rsps, make_app):
    tokens = TokenServer(rsps)
    api = GraphqlServer(rsps, refuse={"shpat_cc_token_0001"})
    worker_a = cc_app.shopify_client()
    worker_a._tokens.token()  # worker A holds version 1
    worker_b = make_app(shopify=APP_CREDENTIALS)
    worker_b.shop_tokens.refresh(SHOP, stale_version=1)  # B was refused first and renewed it
    assert len(tokens.requests) == 2
    worker_a.graphql("{ shop { name } }")  # A's 401 finds version 2 stored: no third request
    assert len(tokens.requests) == 2
    assert api.used == ["shpat_cc_token_0001", "shpat_cc_token_0002"]


def test_a_static_access_token_is_used_as_it_is_and_a_401_is_final(make_app, rsps):
    tokens = TokenServer(rsps)
    api = GraphqlServer(rsps, refuse={"shpat_test"})
    app = make_app()  # conftest's legacy access_token
    with pytest.raises(PermanentError) as e:
        app.shopify_client().graphql("{ shop { name } }")
    assert e.value.status == 401 and api.used == ["shpat_test"] and tokens.requests == []


@pytest.mark.parametrize("stored", ["none", "expired"])
def test_two_workers_renewing_at_once_make_one_request(cc_app, make_app, rsps, clock, stored, db_url):
    """Both workers find no fresh token; B goes on to renew while A's token request is on the wire.

    B waits for the shop's lock, then reads A's token instead of asking for another. On
    PostgreSQL A's answer is held until B is seen waiting for the lock (or B asks for a
    token of its own, the defect); on SQLite every transaction takes the write lock.
    """
    b_decided, a_asking = threading.Event(), threading.Event()
    hold = {"on": None}
    tokens = TokenServer(rsps, hold=lambda: hold["on"] and hold["on"]())
    if stored == "expired":
        cc_app.shop_tokens.current(SHOP)
        clock.advance(days=1)
    first = len(tokens.requests)
    results: dict[str, object] = {}
    worker_b = make_app(shopify=APP_CREDENTIALS)

    class Instrumented(ShopTokens):
        def _renew(self, shop, stale_version):
            b_decided.set()
            assert a_asking.wait(30), "worker A never asked for a token"
            return super()._renew(shop, stale_version)

    store_b = Instrumented(worker_b.engine, grant="client_credentials", endpoint=worker_b.shop_tokens.endpoint,
                           cipher=worker_b.shop_tokens.cipher, clock=worker_b.now)

    def run_b():
        try:
            results["b"] = store_b.current(SHOP).token
        except BaseException as e:  # reported by the assertion below
            results["b"] = e

    def while_a_asks():
        hold["on"] = None
        a_asking.set()
        if "postgresql" in db_url:
            deadline = time.monotonic() + 30
            while len(tokens.requests) == first + 1 and not lock_waiters(db_url):
                assert time.monotonic() < deadline, "worker B neither waited for the lock nor asked"
                time.sleep(0.01)  # readiness poll of another session's state, not a timing assumption

    hold["on"] = while_a_asks
    thread = threading.Thread(target=run_b)
    thread.start()
    assert b_decided.wait(30)  # B has seen no token and decided to renew
    results["a"] = cc_app.shop_tokens.current(SHOP).token
    thread.join(60)
    assert not thread.is_alive()
    expected = f"shpat_cc_token_{first + 1:04d}"
    assert results == {"a": expected, "b": expected}
    assert len(tokens.requests) == first + 1


def test_refusals_are_reported_with_shopifys_words_and_no_secret(cc_app, rsps):
    rsps.add(responses.POST, TOKEN_URL, status=400, json={
        "error": "shop_not_permitted", "error_description": "Client credentials cannot be performed on this shop."})
    with pytest.raises(TokenRefused) as e:
        cc_app.shopify_client().graphql("{ shop { name } }")
    text = str(e.value)
    assert e.value.error == "shop_not_permitted" and "cannot be performed on this shop" in text
    assert CLIENT_SECRET not in text and CLIENT_SECRET not in repr(e.value)
    with cc_app.engine.connect() as conn:
        assert conn.execute(select(t.shop_tokens.c.access_token)).scalars().all() in ([], [None])


def test_a_token_endpoint_outage_is_transient(cc_app, rsps):
    rsps.add(responses.POST, TOKEN_URL, status=503)
    with pytest.raises(TransientError):
        cc_app.shopify_client().graphql("{ shop { name } }")


def test_secrets_and_tokens_never_reach_logs_or_stderr(cc_app, rsps, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    TokenServer(rsps)
    GraphqlServer(rsps, refuse={"shpat_cc_token_0001"})
    client = cc_app.shopify_client()
    client.graphql("{ shop { name } }")
    rsps.add(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_client"})
    logging.getLogger("retention_plugin").debug("client: %r, store: %r", client, cc_app.shop_tokens)
    out, err = capfd.readouterr()
    logged = caplog.text + out + err + repr(client) + repr(cc_app.shop_tokens)
    assert "new access token" in caplog.text  # the renewal is logged...
    for secret in (CLIENT_SECRET, "shpat_cc_token_0001", "shpat_cc_token_0002"):
        assert secret not in logged  # ...without anything secret


def test_a_stored_token_is_unreadable_without_its_key_and_is_then_replaced(cc_app, make_app, rsps, monkeypatch):
    tokens = TokenServer(rsps)
    GraphqlServer(rsps)
    cc_app.shopify_client().graphql("{ shop { name } }")
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())  # the key was replaced
    make_app(shopify=APP_CREDENTIALS).shopify_client().graphql("{ shop { name } }")
    assert len(tokens.requests) == 2


def test_key_rotation_reads_old_tokens_with_the_second_key(cc_app, make_app, rsps, monkeypatch, token_key):
    tokens = TokenServer(rsps)
    GraphqlServer(rsps)
    cc_app.shopify_client().graphql("{ shop { name } }")
    monkeypatch.setenv(KEY_ENV, f"{Fernet.generate_key().decode()},{token_key}")
    make_app(shopify=APP_CREDENTIALS).shopify_client().graphql("{ shop { name } }")
    assert len(tokens.requests) == 1


def test_a_webhook_subscription_that_exists_counts_as_done():
    with pytest.raises(AlreadyExists):
        raise_for_user_errors({"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": [
            {"field": ["webhookSubscription", "callbackUrl"],
             "message": "Address for this topic has already been taken"}]}}, "webhookSubscriptionCreate")


def test_the_shop_name_query_validates_against_the_pinned_admin_schema():
    assert shopify_request_errors(m.shop_name()) == []
    assert shopify_request_errors(m.shop_name(), "2026-10") == []


def test_an_error_that_echoes_the_request_is_scrubbed(cc_app, rsps):
    rsps.add(responses.POST, TOKEN_URL, status=400, json={
        "error": "invalid_request", "error_description": f"bad client_secret={CLIENT_SECRET}"})
    with pytest.raises(TokenRefused) as e:
        cc_app.shopify_client().graphql("{ shop { name } }")
    assert CLIENT_SECRET not in str(e.value) and "****" in str(e.value)

"""Shared fixtures: real SQLite and real PostgreSQL, a controllable clock, signed requests.

Every test that takes ``db_url`` (directly or through ``app``) runs twice:
on SQLite and on PostgreSQL at $RETENTION_TEST_PG (default
127.0.0.1:5432, user postgres, database test). On a developer machine
without PostgreSQL those runs skip, saying why; under CI=true they fail.

The databases, the clock, the app factory and the recording channel are the
ones plugin authors get from ``retention_plugin.testing`` (its pytest plugin
is loaded through the ``pytest11`` entry point); this file only runs every
test on both databases and adds what the product's own tests need.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import datetime

import pytest

from browser_support import browser, page, phone_page  # noqa: F401  (fixtures for tests/browser/)
from retention_plugin.testing import SHOP, SHOPIFY_SECRET, ZENDESK_SECRET, AppFactory, base_config
from retention_plugin.testing.pytest_plugin import fresh_database_url
from shared_dir import SHARED, shared_path  # noqa: F401  (tests import these from here)

__all__ = ["SHOP", "SHOPIFY_SECRET", "ZENDESK_SECRET", "base_config"]  # tests import these from here

PLUGIN = "retention_plugin.testing.pytest_plugin"


def pytest_configure(config):
    # An editable install made before pyproject.toml declared the pytest11 entry point does not load
    # the plugin by itself; load it by module then, so the suite runs without a reinstall.
    if not (config.pluginmanager.has_plugin("retention_plugin") or config.pluginmanager.has_plugin(PLUGIN)):
        config.pluginmanager.import_plugin(PLUGIN)
    _rewrite_only_the_fixtures(config)


def _rewrite_only_the_fixtures(config) -> None:
    """Keep pytest's assertion rewriting to our fixtures (``retention_plugin.testing``).

    For an editable install pytest 9 marks the whole package that owns a pytest11 entry point for
    rewriting, so every product module imported during a test is parsed with ``ast``; and CPython 3.11
    (3.11.7 here) fails with "AST constructor recursion depth mismatch" when two threads parse at once,
    which ``retention analyze evaluate``'s background import then does beside the command's own imports.
    The product's modules have no test assertions to rewrite.
    """
    marked = getattr(getattr(config.pluginmanager, "rewrite_hook", None), "_must_rewrite", None)
    if isinstance(marked, set) and "retention_plugin" in marked:
        marked.discard("retention_plugin")
        marked.add("retention_plugin.testing")


# --- databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(retention_sqlite_template):
    return retention_sqlite_template


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    return fresh_database_url(request, request.param, tmp_path)


@pytest.fixture
def sqlite_url(request, tmp_path):
    """For tests that are about the embedded default only."""
    return fresh_database_url(request, "sqlite", tmp_path)


# --- the app ------------------------------------------------------------------------------


@pytest.fixture
def clock(retention_clock):
    return retention_clock


@pytest.fixture
def channel(retention_channel):
    """A recording channel named "test": pass it in ``extra_plugins`` with ``default_channel = "test"``."""
    return retention_channel


@pytest.fixture
def make_app(db_url, clock, tmp_path):
    with AppFactory(db_url, clock, tmp_path) as make:
        yield make


@pytest.fixture
def app(make_app):
    return make_app()


# --- signing -----------------------------------------------------------------------------------


def shopify_sign(body: bytes, secret: str = SHOPIFY_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def zendesk_sign(body: bytes, timestamp: str, secret: str = ZENDESK_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


def shopify_headers(body: bytes, topic: str, webhook_id: str | None = None, *, shop: str = SHOP,
                    secret: str = SHOPIFY_SECRET) -> dict:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Api-Version": "2026-07",
        "X-Shopify-Hmac-Sha256": shopify_sign(body, secret),
    }


def zendesk_headers(body: bytes, when: datetime, invocation: str | None = None, *,
                    secret: str = ZENDESK_SECRET) -> dict:
    ts = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    h = {"Content-Type": "application/json", "X-Zendesk-Webhook-Signature-Timestamp": ts,
         "X-Zendesk-Webhook-Signature": zendesk_sign(body, ts, secret), "X-Zendesk-Webhook-Id": "01HWEBHOOK"}
    if invocation:
        h["X-Zendesk-Webhook-Invocation-Id"] = invocation
    return h


def dumps(payload) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request, tmp_path_factory):
    """One database for a whole module (tests that share a running server)."""
    return fresh_database_url(request, request.param, tmp_path_factory.mktemp("moddb"))


@pytest.fixture
def token_key(monkeypatch):
    """A fresh Fernet key in RETENTION_TOKEN_KEY: Shopify tokens are stored encrypted under it (shop_tokens.py)."""
    from cryptography.fernet import Fernet

    value = Fernet.generate_key().decode()
    monkeypatch.setenv("RETENTION_TOKEN_KEY", value)
    return value

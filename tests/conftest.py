"""Shared fixtures: real SQLite and real PostgreSQL, a controllable clock, signed requests.

Every test that takes ``db_url`` (directly or through ``app``) runs twice:
on SQLite and on PostgreSQL at $RETENTION_TEST_PG (default
127.0.0.1:5432, user postgres, database test). On a developer machine
without PostgreSQL those runs skip, saying why; under CI=true they fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from retention_plugin.app import Retention
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine, upgrade

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared").resolve()
PG_ADMIN_URL = os.environ.get("RETENTION_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHOP = "retention-test.myshopify.com"
SHOPIFY_SECRET = "shpss_test_secret"
ZENDESK_SECRET = "zendesk-signing-secret"


def shared_path(*parts) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent: ../shared (fixtures and data) is only beside the project checkout")
    return p


class Clock:
    """A clock tests move by hand; nothing sleeps."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> datetime:
        self.now += timedelta(**kw)
        return self.now


# --- databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_database():
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as e:  # any failure to connect
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is unreachable under CI: {e}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({type(e).__name__}); "
                    "these tests run on SQLite only here")
    name = f"retention_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_pg(url):
    engine = create_engine(url)
    names = ", ".join(f'"{tb.name}"' for tb in t.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "retention.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("_pg_database")
    _truncate_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path, _sqlite_template):
    """For tests that are about the embedded default only."""
    path = tmp_path / "retention.db"
    shutil.copy(_sqlite_template, path)
    return f"sqlite:///{path}"


# --- the app ------------------------------------------------------------------------------


def base_config(db_url: str, **sections) -> dict:
    cfg = {
        "database": {"url": db_url},
        "shopify": {"shop": SHOP, "access_token": "shpat_test", "api_version": "2026-07",
                    "webhook_secrets": [SHOPIFY_SECRET]},
        "zendesk": {"subdomain": "retention-test", "email": "agent@example.com", "api_token": "zd-token",
                    "webhook_secret": ZENDESK_SECRET, "max_clock_skew_seconds": 300},
        "actions": {"dry_run": True},
        "worker": {"backoff_base_seconds": 1, "lease_seconds": 60},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_app(db_url, clock, tmp_path):
    made = []

    def make(extra_plugins=(), **sections):
        app = Retention.from_dict(base_config(db_url, **sections), path=tmp_path / "retention.toml",
                                  extra_plugins=extra_plugins, entry_points=False, clock=clock)
        made.append(app)
        return app

    yield make
    for app in made:
        app.dispose()


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
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("moddb") / "retention.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("_pg_database")
    _truncate_pg(url)
    return url


@pytest.fixture
def token_key(monkeypatch):
    """A fresh Fernet key in RETENTION_TOKEN_KEY: Shopify tokens are stored encrypted under it (shop_tokens.py)."""
    from cryptography.fernet import Fernet

    value = Fernet.generate_key().decode()
    monkeypatch.setenv("RETENTION_TOKEN_KEY", value)
    return value

"""Fixtures for the messaging tests: a real database, customers, a plugin manager, SMTP servers."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from types import SimpleNamespace

import pluggy
import pytest
from sqlalchemy import insert

from retention_plugin import hookspecs
from retention_plugin.messaging import plugin as messaging_plugin
from retention_plugin.storage import tables
from retention_plugin.storage.db import make_engine

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_pm(*plugins) -> pluggy.PluginManager:
    """Hookspecs, the messaging plugin, and whatever inline plugins a test adds."""
    pm = pluggy.PluginManager("retention_plugin")
    pm.add_hookspecs(hookspecs)
    pm.register(messaging_plugin, name="messaging")
    for i, p in enumerate(plugins):
        pm.register(p, name=getattr(p, "__name__", None) or f"test_plugin_{i}")
    return pm


@pytest.fixture
def engine(db_url):
    """A real database made by the migrations: SQLite, and PostgreSQL (the root conftest's ``db_url``)."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def add_customer(engine):
    counter = iter(range(1, 10_000))

    def add(**kw) -> int:
        n = next(counter)
        values = {"email": f"customer{n}@example.com", "first_name": "Ona", "last_name": "Petraitė",
                  "locale": "lt", "country": "LT", "province": None, "marketing_consent": "subscribed",
                  "shopify_id": 7_000_000_000_000 + n, "tags": [], "created_at": T0, "updated_at": T0}
        values.update(kw)
        with engine.begin() as conn:
            return conn.execute(insert(tables.customers).values(**values)).inserted_primary_key[0]

    return add


#: [links] secret: it signs the {token} of unsubscribe links.
LINK_SECRET = "link-secret-for-messaging-tests"


@pytest.fixture
def settings():
    """Sections as the app would load them (the schemas fill in every default)."""
    return {
        "messages": {"shop_name": "Kavos Namai", "shop_url": "https://shop.example", "max_attempts": 3,
                     "backoff_base_seconds": 60.0},
        "email": {"from_address": "shop@shop.example", "from_name": "Kavos Namai",
                  "unsubscribe_url": "https://shop.example/unsubscribe?c={customer_id}&t={token}",
                  "unsubscribe_secret": "s3cret-unsub", "unsubscribe_mailto": "unsubscribe@shop.example"},
        "links": {"secret": LINK_SECRET},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_factory():
    """Start real SMTP servers on 127.0.0.1 (aiosmtpd); each is stopped after the test."""
    from aiosmtpd.controller import Controller

    started = []

    def start(handler=None, **kw):
        handler = handler or Inbox()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kw)
        controller.start()
        started.append(controller)
        return SimpleNamespace(host="127.0.0.1", port=controller.port, inbox=handler)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def smtp_server(smtp_factory):
    return smtp_factory()


@pytest.fixture
def unused_port():
    return free_port()


@pytest.fixture
def pm_factory():
    return make_pm

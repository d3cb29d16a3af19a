"""Answered 200 = on disk: SQLite syncs every commit unless the admin chose otherwise.

What a power cut does cannot be tested by pulling a plug; what decides it can:
SQLite's ``synchronous`` setting on the connection that commits. With FULL (2)
a WAL commit returns only after the WAL is synced; with NORMAL (1) the sync
waits for the next checkpoint, and answered deliveries can vanish.
"""

from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from conftest import base_config
from retention_plugin.app import Retention
from retention_plugin.config import ConfigError
from retention_plugin.web import Receiver

FULL, NORMAL = 2, 1


def receiver_synchronous(receiver: Receiver) -> int:
    inserter = receiver.inserter
    assert inserter.insert(platform="shopify", shop="retention-test.myshopify.com", delivery_id="durable-1",
                           topic="orders/paid", body=b'{"id": 1}', now=datetime.now(timezone.utc))
    return inserter.local.conn.execute("PRAGMA synchronous").fetchone()[0]


def engine_synchronous(app) -> int:
    with app.engine.connect() as conn:
        return conn.execute(text("PRAGMA synchronous")).scalar()


@pytest.fixture
def retention(sqlite_url, tmp_path):
    made = []

    def make(**database):
        app = Retention.from_dict(base_config(sqlite_url, database=database), path=tmp_path / "retention.toml",
                                  entry_points=False)
        made.append(app)
        return app

    yield make
    for app in made:
        app.dispose()


def test_receiver_and_worker_commits_are_synced_by_default(retention):
    app = retention()
    assert receiver_synchronous(Receiver(app)) == FULL
    assert engine_synchronous(app) == FULL


def test_normal_is_an_explicit_choice(retention):
    app = retention(sqlite_synchronous="normal")
    assert receiver_synchronous(Receiver(app)) == NORMAL
    assert engine_synchronous(app) == NORMAL


def test_a_wrong_value_names_the_key(sqlite_url, tmp_path):
    with pytest.raises(ConfigError) as e:
        Retention.from_dict(base_config(sqlite_url, database={"sqlite_synchronous": "off"}),
                            path=tmp_path / "retention.toml", entry_points=False)
    assert "[database].sqlite_synchronous" in str(e.value)

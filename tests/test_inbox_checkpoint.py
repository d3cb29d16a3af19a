"""The receiver's SQLite commits leave WAL checkpoints to a thread beside the requests."""

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest

from retention_plugin.inbox import FastInserter
from retention_plugin.storage.db import make_engine


@pytest.fixture
def engine(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def rows_in_database_file(path: str) -> int:
    """Rows that have reached the main file (immutable=1 reads it without the WAL)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
    finally:
        conn.close()


def store(inserter: FastInserter, n: int, prefix: str) -> None:
    now = datetime.now(timezone.utc)
    for i in range(n):
        assert inserter.insert(platform="shopify", shop="example.myshopify.com", delivery_id=f"{prefix}-{i}",
                               topic="orders/paid", body=b'{"id": 1}', now=now)


def test_receiver_commits_never_checkpoint_inline(engine, monkeypatch):
    monkeypatch.setattr(FastInserter, "CHECKPOINT_EVERY", 10**9)
    inserter = FastInserter(engine)
    # About three WAL pages per commit: well past SQLite's automatic checkpoint at 1,000 pages.
    store(inserter, 500, "a")
    assert rows_in_database_file(engine.url.database) == 0
    assert inserter.checkpointer is None


def test_the_checkpoint_thread_moves_deliveries_into_the_database_file(engine, monkeypatch):
    monkeypatch.setattr(FastInserter, "CHECKPOINT_EVERY", 40)
    inserter = FastInserter(engine)
    store(inserter, 39, "a")
    assert inserter.checkpointer is None
    store(inserter, 1, "b")
    assert inserter.checkpointed.wait(timeout=60), "the checkpoint thread never finished a round"
    assert inserter.checkpointer.daemon
    assert rows_in_database_file(engine.url.database) == 40
    # Every stored delivery is readable through the WAL at any time, checkpointed or not.
    store(inserter, 10, "c")
    with sqlite3.connect(engine.url.database) as conn:
        assert conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 50


def test_a_wal_past_its_limit_is_caught_up_inside_the_receivers_turn(engine, monkeypatch):
    # Passive checkpoints cannot restart a WAL that receivers keep appending to;
    # past the limit the checkpoint takes the turn so no receiver appends meanwhile.
    inserter = FastInserter(engine)
    store(inserter, 20, "a")
    turns = []
    real_turn = inserter._turn

    @contextmanager
    def recording_turn():
        with real_turn():
            turns.append("held")
            yield

    monkeypatch.setattr(inserter, "_turn", recording_turn)
    conn = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        inserter.checkpoint(conn)
        assert turns == []  # under the limit: no turn taken
        store(inserter, 20, "b")
        turns.clear()  # each insert takes the turn too
        monkeypatch.setattr(inserter, "WAL_LIMIT_PAGES", 0)
        inserter.checkpoint(conn)
    finally:
        conn.close()
    assert turns == ["held"]
    assert rows_in_database_file(engine.url.database) == 40

"""SQLite: every transaction takes the receivers' turn, so a receiver waiting for it goes next."""

import fcntl
import os
import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from retention_plugin.inbox import FastInserter
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine, read_only
from retention_plugin.storage.turns import lock_path


@pytest.fixture
def engine(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def turn_free(engine) -> bool:
    """Whether another process could take the turn right now."""
    fd = os.open(lock_path(engine.url.database), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing gives a lock we took back
    return True


def test_a_transaction_holds_the_turn_until_commit_or_rollback(engine):
    assert turn_free(engine)
    with engine.begin() as conn:
        conn.execute(select(func.count()).select_from(t.inbox))
        assert not turn_free(engine)
    assert turn_free(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(select(func.count()).select_from(t.inbox))
        assert not turn_free(engine)
        raise RuntimeError("rolled back")
    assert turn_free(engine)
    conn = engine.connect()
    conn.execute(select(func.count()).select_from(t.inbox))  # autobegun, then closed without an end
    assert not turn_free(engine)
    conn.close()
    assert turn_free(engine)


def test_a_connection_invalidated_mid_transaction_gives_the_turn_back(engine):
    conn = engine.connect()
    conn.execute(select(func.count()).select_from(t.inbox))
    assert not turn_free(engine)
    conn.invalidate()  # the database connection is closed with the transaction open
    assert turn_free(engine)


def test_a_second_connection_of_the_same_thread_does_not_wait_for_the_first(engine):
    """It would wait for itself: it goes to SQLite's busy handler, as before, and fails there."""
    with engine.begin() as first:
        first.execute(select(func.count()).select_from(t.inbox))
        second = engine.connect()
        second.connection.dbapi_connection.execute("PRAGMA busy_timeout=50")
        with pytest.raises(OperationalError, match="locked"):
            second.execute(text("SELECT 1"))
        second.close()
    assert turn_free(engine)


def test_a_receiver_gets_in_between_a_busy_writers_transactions(engine):
    """A writer that begins its next transaction as soon as it commits (a worker on a backlog)
    used to keep a receiver asleep in SQLite's busy handler until the writer stopped."""
    inserter = FastInserter(engine)
    total = 60
    done = []
    stop = threading.Event()
    holding = threading.Event()

    def writer():
        for i in range(total):
            with engine.begin() as conn:
                conn.execute(t.inbox.insert().values(
                    platform="shopify", shop="a.myshopify.com", delivery_id=f"w{i}", topic="orders/paid",
                    headers={}, body=b"{}", received_at=datetime.now(timezone.utc), status="done", attempts=1,
                    next_attempt_at=datetime.now(timezone.utc)))
                holding.set()
                # Work inside the transaction, as a worker's group does: the write lock is held meanwhile.
                sum(range(1_000_000))
            done.append(i)
            if stop.is_set():
                break

    w = threading.Thread(target=writer)
    w.start()
    holding.wait()  # the writer's first transaction holds the write lock and the turn
    stored = inserter.insert(platform="shopify", shop="a.myshopify.com", delivery_id="r1", topic="orders/paid",
                             body=b'{"id": 1}', now=datetime.now(timezone.utc))
    at_receiver = len(done)
    stop.set()
    w.join()
    assert stored is True
    # The receiver began waiting during the writer's first transaction: it goes right after it
    # (the writer may have committed its second meanwhile), not after a lucky gap many later.
    assert at_receiver <= 2, f"the receiver waited for {at_receiver} of the writer's {total} transactions"


def test_a_read_only_connection_reads_while_a_writer_holds_the_lock(engine):
    """The receiver's shop lookup and health check read through ``read_only``: they see the last
    commit at once instead of queueing behind a worker's group (with BEGIN IMMEDIATE they failed
    here, with no busy wait allowed, and waited for the whole group otherwise)."""
    with engine.begin() as writer:
        writer.execute(t.inbox.insert().values(
            platform="shopify", shop="a.myshopify.com", delivery_id="w1", topic="orders/paid", headers={},
            body=b"{}", received_at=datetime.now(timezone.utc), status="done", attempts=1,
            next_attempt_at=datetime.now(timezone.utc)))
        with read_only(engine) as reader:
            reader.connection.dbapi_connection.execute("PRAGMA busy_timeout=0")
            assert reader.execute(select(func.count()).select_from(t.inbox)).scalar() == 0  # the last commit
        assert not turn_free(engine)  # the writer's turn is untouched
        plain = engine.connect()
        plain.connection.dbapi_connection.execute("PRAGMA busy_timeout=0")
        with pytest.raises(OperationalError, match="locked"):
            plain.execute(select(func.count()).select_from(t.inbox))
        plain.close()
    with read_only(engine) as reader:
        assert reader.execute(select(func.count()).select_from(t.inbox)).scalar() == 1

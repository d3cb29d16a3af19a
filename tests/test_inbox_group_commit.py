"""SQLite group commit: the receiver's threads share one synced commit, and answer only after it."""

import fcntl
import os
import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from retention_plugin.inbox import FastInserter
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine


@pytest.fixture
def engine(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def insert(inserter, delivery_id, body=b'{"id": 1}'):
    return inserter.insert(platform="shopify", shop="example.myshopify.com", delivery_id=delivery_id,
                           topic="orders/paid", body=body, now=datetime.now(timezone.utc))


def rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.inbox)).scalar()


class HeldTurn:
    """Another receiver process holding the write turn: what makes deliveries queue up."""

    def __init__(self, engine):
        self.fd = os.open(f"{engine.url.database}-receiver.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def run_while_turn_held(engine, inserter, jobs):
    """Start every job in its own thread while the turn is held; release it once all of them wait."""
    results, errors = {}, {}

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as e:  # recorded for the assertions
            errors[name] = e

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    commits = []
    original = inserter._commit_group

    def counting():
        commits.append(1)
        original()

    inserter._commit_group = counting
    with HeldTurn(engine):
        for th in threads:
            th.start()
        while len(inserter.group) < len(jobs):  # state, not time: every delivery is waiting
            threading.Event().wait(0.005)
    for th in threads:
        th.join(30)
    return results, errors, len(commits)


def test_waiting_deliveries_share_one_commit(engine):
    inserter = FastInserter(engine)
    jobs = [(f"d{i}", lambda i=i: insert(inserter, f"d{i % 6}")) for i in range(8)]  # d0 and d1 twice
    results, errors, commits = run_while_turn_held(engine, inserter, jobs)
    assert not errors
    assert commits == 1  # eight deliveries, one transaction, one sync
    assert rows(engine) == 6
    # each delivery id reported stored exactly once, its repeat as a duplicate
    for did in range(6):
        answers = [results[f"d{i}"] for i in range(8) if i % 6 == did]
        assert sorted(answers) == ([False, True] if did < 2 else [True])
    assert insert(inserter, "d0") is False and insert(inserter, "fresh") is True


def test_a_failing_group_refuses_all_of_its_deliveries_and_stores_none(engine):
    inserter = FastInserter(engine)
    jobs = [(f"ok{i}", lambda i=i: insert(inserter, f"ok{i}")) for i in range(3)]
    jobs.append(("bad", lambda: insert(inserter, "bad", body={"not": "bytes"})))  # cannot be bound
    results, errors, commits = run_while_turn_held(engine, inserter, jobs)
    assert not results and set(errors) == {"ok0", "ok1", "ok2", "bad"}
    assert rows(engine) == 0  # all or nothing: each was answered 503, and each will be sent again
    assert insert(inserter, "ok0") is True  # the next delivery finds a working connection


def test_more_than_a_group_holds_commits_in_several(engine, monkeypatch):
    monkeypatch.setattr(FastInserter, "MAX_GROUP", 3)
    inserter = FastInserter(engine)
    jobs = [(f"m{i}", lambda i=i: insert(inserter, f"m{i}")) for i in range(7)]
    results, errors, commits = run_while_turn_held(engine, inserter, jobs)
    assert not errors and all(results.values()) and len(results) == 7
    assert commits == 3 and rows(engine) == 7

"""The metrics scrape reads while a worker's group holds the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from write_lock_support import writer_holding

from retention_plugin import metrics


def value(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def test_a_scrape_reads_the_last_commit_while_a_writer_holds_the_database(app, monkeypatch):
    """The storage gauges read through ``read_only``: a scrape during a worker's group used to wait for the
    group for the receivers' turn and SQLite's write lock (and, unable to, say the database was down).
    Here the writer never lets go, and the app may not wait for it."""
    with writer_holding(app, monkeypatch):
        body, _ = metrics.render(app)
    text = body.decode()
    assert value(text, "retention_database_up") == 1
    assert value(text, 'retention_inbox_depth{status="processing"}') == 0  # the writer's row is not committed

"""Periodic tasks plugins register (``register_tasks``), run by whichever worker gets there first."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, update

from .context import HookContext
from .storage import tables as t
from .storage.db import insert_ignore

log = logging.getLogger("retention_plugin.tasks")


def run_due(app) -> int:
    ran = 0
    for name, func, every_seconds in app.tasks:
        now = app.now()
        with app.engine.begin() as conn:
            insert_ignore(conn, t.task_runs, {"name": name}, ["name"])
            tr = t.task_runs
            # The conditional UPDATE is the lock: of several workers, one sees rowcount 1.
            got = conn.execute(update(tr).where(
                tr.c.name == name,
                or_(tr.c.last_started_at.is_(None), tr.c.last_started_at <= now - timedelta(seconds=every_seconds)),
                or_(tr.c.lease_until.is_(None), tr.c.lease_until < now),
            ).values(last_started_at=now, lease_until=now + timedelta(seconds=max(60, every_seconds)))).rowcount
        if not got:
            continue
        error = None
        try:
            # The transaction begins at the task's first statement, not here: a task that
            # first computes (reading through the engine) holds no lock meanwhile.
            with app.engine.connect() as conn:
                func(HookContext(app, conn, now=now, source="task"))
                conn.commit()
        except Exception as e:  # a failing task must not stop the worker; it runs again next period
            log.exception("task %s failed", name)
            error = f"{type(e).__name__}: {e}"[:4000]
        with app.engine.begin() as conn:
            conn.execute(update(t.task_runs).where(t.task_runs.c.name == name).values(
                last_finished_at=app.now(), lease_until=None, last_error=error))
        ran += 1
    return ran

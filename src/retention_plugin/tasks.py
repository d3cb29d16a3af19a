"""Periodic tasks plugins register (``register_tasks``), run by whichever worker gets there first.

With several shops in one install each task runs once per installed shop whose work is not stopped,
inside that shop's scope (:mod:`.shop_scope`): ``ctx.settings`` is the shop's merged view
(``[shops."<shop>".<section>]`` over ``[<section>]``), rows it writes are the shop's, and queries that
pick the rows to work on keep to the shop (:func:`.shop_scope.only`). Each shop has its own bookkeeping
row in ``task_runs``, so one shop's failing pass neither blocks nor delays another's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from datetime import timedelta

from sqlalchemy import or_, select, update

from . import shop_scope, shops
from .context import HookContext
from .storage import tables as t
from .storage.db import insert_ignore, read_only

log = logging.getLogger("retention_plugin.tasks")

_NAME_MAX = 128  # task_runs.name


def run_name(name: str, shop: str | None, default_shop: str) -> str:
    """The ``task_runs`` row of ``name``'s pass for ``shop``: the task's own name for the configured shop
    (a one-shop install's bookkeeping is as it always was), ``<name>@<shop>`` for another."""
    if not shop or shop == default_shop:
        return name
    full = f"{name}@{shop}"
    if len(full) <= _NAME_MAX:
        return full
    return f"{name}@sha256:{hashlib.sha256(shop.encode()).hexdigest()}"[:_NAME_MAX]


def passes(app) -> list[str | None]:
    """The shops a round of tasks runs for; ``[None]``: one pass outside any scope, as a one-shop install does.

    A shop that uninstalled the app (and has not installed it again) gets no pass.
    """
    with app.engine.connect() as conn:
        every = shops.installed(app, conn)
        active = [s for s in every if not shops.stopped(conn, s)]
    if not every:
        return [None]  # no shop at all (no Shopify configured): the one unscoped pass
    if active == every == [app.default_shop] and app.default_shop not in app.settings.per_shop:
        return [None]  # exactly as before shops were many: no scope, the global sections
    # Scoped even when one shop is left: an unscoped pass would work on a stopped shop's rows too.
    return active


def run_due(app) -> int:
    ran = 0
    runs = _last_runs(app)
    for shop in passes(app):
        for name, func, every_seconds in app.tasks:
            if _run_one(app, shop, name, func, every_seconds, runs):
                ran += 1
    return ran


_RUNS = select(t.task_runs.c.name, t.task_runs.c.last_started_at, t.task_runs.c.lease_until)


def _last_runs(app) -> dict[str, tuple]:
    """Every task's last start and lease, read once a round without taking the write lock.

    The worker asks after every batch, and most rounds find no task due: learning that with a
    write transaction per task (BEGIN, the INSERT, the conditional UPDATE, COMMIT; on SQLite under
    the write lock) cost four statements per task a round. A task the read shows due is still
    decided by the conditional UPDATE (the lock among workers); one it shows not due waits for
    the next round, as would one another process made due since the read.
    """
    with read_only(app.engine) as conn:
        return {r.name: (r.last_started_at, r.lease_until) for r in conn.execute(_RUNS)}


def _due(run: tuple, now, every_seconds: float) -> bool:
    """The conditional UPDATE's condition, on the row as read by :func:`_last_runs`."""
    started, lease = run
    return ((started is None or started <= now - timedelta(seconds=every_seconds))
            and (lease is None or lease < now))


def _run_one(app, shop: str | None, name: str, func, every_seconds: float, runs: dict | None = None) -> bool:
    key = run_name(name, shop, app.default_shop)
    now = app.now()
    run = None if runs is None else runs.get(key)
    if run is not None and not _due(run, now, every_seconds):
        return False
    tr = t.task_runs
    with app.engine.begin() as conn:
        insert_ignore(conn, tr, {"name": key}, ["name"])
        # The conditional UPDATE is the lock: of several workers, one sees rowcount 1.
        got = conn.execute(update(tr).where(
            tr.c.name == key,
            or_(tr.c.last_started_at.is_(None), tr.c.last_started_at <= now - timedelta(seconds=every_seconds)),
            or_(tr.c.lease_until.is_(None), tr.c.lease_until < now),
        ).values(last_started_at=now, lease_until=now + timedelta(seconds=max(60, every_seconds)))).rowcount
    if not got:
        return False
    error = None
    with shop_scope.scope(shop) if shop is not None else contextlib.nullcontext():
        try:
            # The transaction begins at the task's first statement, not here: a task that
            # first computes (reading through the engine) holds no lock meanwhile.
            with app.engine.connect() as conn:
                func(HookContext(app, conn, now=now, source="task"))
                conn.commit()
        except Exception as e:  # a failing task must not stop the worker; it runs again next period
            log.exception("task %s failed%s", name, f" for {shop}" if shop else "")
            error = f"{type(e).__name__}: {e}"[:4000]
    with app.engine.begin() as conn:
        conn.execute(update(tr).where(tr.c.name == key).values(
            last_finished_at=app.now(), lease_until=None, last_error=error))
    return True

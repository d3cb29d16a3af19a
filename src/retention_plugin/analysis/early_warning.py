"""The daily early-warning run: score everyone, find who crossed into at risk or lost.

The worker calls :func:`early_warning` once a day and fires the hooks
``customer_at_risk`` / ``customer_lost`` for the crossings it returns. Each
customer's latest segment is kept in ``customer_scores``, which is what
"crossed" is measured against, so a run repeated on the same day reports
nothing new.
"""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy.engine import Connection

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import delete, insert, select

from ..storage import tables as t
from .scoring import ScoreSettings, score_customers
from .store import load_store_history

__all__ = ["early_warning", "crossings"]

_RANK = {"active": 0, "at_risk": 1, "lost": 2}


def crossings(previous: dict, current: dict, *, report_unknown: bool = True) -> list[tuple]:
    """``(customer_id, new_segment)`` for each customer whose segment got worse.

    ``previous``/``current`` map customer id to segment. A customer with no
    previous segment counts as crossing when ``report_unknown``; a recovery
    (lost back to active) is not a crossing, but a later relapse is.
    """
    out = []
    for cid, seg in current.items():
        before = previous.get(cid)
        if seg == "active":
            continue
        if before is None:
            if report_unknown:
                out.append((cid, seg))
        elif _RANK[seg] > _RANK.get(before, 0):
            out.append((cid, seg))
    return out


@contextmanager
def _transaction(bind):
    if isinstance(bind, Connection):  # the caller's transaction (a worker task): commit with it
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


def early_warning(engine, as_of=None, settings: ScoreSettings = ScoreSettings(), *,
                  first_run_reports: bool = False, store_on=None) -> dict:
    """Score all customers as of ``as_of``, store their segments, and return the crossings.

    The reading and model fitting use ``engine``; the scores are written on
    ``store_on`` (the caller's connection, so they commit with whatever the
    caller does about the crossings) or in a transaction of their own. On
    SQLite that keeps the database's single write lock for the short write
    only, not for the fitting.

    On the very first run (no stored scores) nobody is reported unless
    ``first_run_reports``: otherwise every customer lost over the years
    would receive a win-back offer on the day the plugin is installed.

    Returns ``{"at_risk": [(customer_id, score)], "lost": [...], "scored": n, "lost_score": label}``.
    """
    history = load_store_history(engine, as_of)
    if len(history.orders.day) == 0:
        return {"at_risk": [], "lost": [], "scored": 0, "lost_score": None}
    scores = score_customers(history, settings)
    c = scores.columns
    ids = [int(i) for i in scores.customer_ids]
    current = dict(zip(ids, c["state"].tolist()))
    now = as_of if isinstance(as_of, datetime) else datetime.now(timezone.utc)
    cs = t.customer_scores
    with _transaction(store_on if store_on is not None else engine) as conn:
        previous = dict(conn.execute(select(cs.c.customer_id, cs.c.segment)).all())
        found = crossings(previous, current, report_unknown=bool(previous) or first_run_reports)
        conn.execute(delete(cs))
        rows = [{"customer_id": cid, "segment": seg, "p_alive": Decimal(f"{pa:.6f}"),
                 "expected_purchases": Decimal(f"{min(ep, 999999):.6f}"), "scored_at": now,
                 "next_purchase_at": now + timedelta(days=nd)}
                for cid, seg, pa, ep, nd in zip(ids, c["state"].tolist(), c["p_alive"].tolist(),
                                                c["expected_purchases_horizon"].tolist(),
                                                c["next_purchase_days"].tolist())]
        for start in range(0, len(rows), 1000):
            conn.execute(insert(cs), rows[start:start + 1000])
    score_of = dict(zip(ids, c["lost_score"].tolist()))
    return {
        "at_risk": [(cid, score_of[cid]) for cid, seg in found if seg == "at_risk"],
        "lost": [(cid, score_of[cid]) for cid, seg in found if seg == "lost"],
        "scored": len(ids),
        "lost_score": scores.choice["label"],
    }

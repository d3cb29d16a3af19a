"""The daily early-warning run: score everyone, find who crossed into at risk or lost.

The worker calls :func:`early_warning` once a day and fires the hooks
``customer_at_risk`` / ``customer_lost`` for the crossings it returns. Each
customer's latest segment is kept in ``customer_scores``, which is what
"crossed" is measured against, so a run repeated on the same day reports
nothing new.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

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

    Memory (a daily task, under 200 MB at 100,000 customers: docs/performance.md): only the
    orders' customer, day and value are read; the per-customer results stay numpy arrays, the
    stored segments are read into arrays, and the rows are written a chunk at a time.
    """
    history = load_store_history(engine, as_of, purchases_only=True)
    if len(history.orders.day) == 0:
        return {"at_risk": [], "lost": [], "scored": 0, "lost_score": None}
    scores = score_customers(history, settings)
    del history
    c = scores.columns
    ids, state, lost_score = scores.customer_ids, c["state"], c["lost_score"]
    now = as_of if isinstance(as_of, datetime) else datetime.now(timezone.utc)
    cs = t.customer_scores
    with _transaction(store_on if store_on is not None else engine) as conn:
        before_ids, before_rank = _stored_ranks(conn)
        found = _crossing_rows(ids, state, before_ids, before_rank,
                               report_unknown=len(before_ids) > 0 or first_run_reports)
        del before_ids, before_rank
        conn.execute(delete(cs))
        for start in range(0, len(ids), _WRITE_ROWS):
            part = slice(start, start + _WRITE_ROWS)
            conn.execute(insert(cs), [
                {"customer_id": cid, "segment": seg, "p_alive": Decimal(f"{pa:.6f}"),
                 "expected_purchases": Decimal(f"{min(ep, 999999):.6f}"), "scored_at": now,
                 "next_purchase_at": now + timedelta(days=nd)}
                for cid, seg, pa, ep, nd in zip(ids[part].tolist(), state[part].tolist(), c["p_alive"][part].tolist(),
                                                c["expected_purchases_horizon"][part].tolist(),
                                                c["next_purchase_days"][part].tolist())])
    found_ids, found_state, found_score = ids[found].tolist(), state[found].tolist(), lost_score[found].tolist()
    return {
        "at_risk": [(cid, sc) for cid, seg, sc in zip(found_ids, found_state, found_score) if seg == "at_risk"],
        "lost": [(cid, sc) for cid, seg, sc in zip(found_ids, found_state, found_score) if seg == "lost"],
        "scored": len(ids),
        "lost_score": scores.choice["label"],
    }


#: Score rows written per INSERT: a chunk's dicts, not every customer's, are held at once.
_WRITE_ROWS = 1000


def _stored_ranks(conn) -> tuple[np.ndarray, np.ndarray]:
    """The stored segments as (customer ids ascending, rank in :data:`_RANK`; unknown names rank 0)."""
    cs = t.customer_scores
    ids, ranks = [], []
    result = conn.execute(select(cs.c.customer_id, cs.c.segment).order_by(cs.c.customer_id)
                          .execution_options(yield_per=50_000))
    for rows in result.partitions():
        ids.append(np.array([r[0] for r in rows], np.int64))
        ranks.append(np.array([_RANK.get(r[1], 0) for r in rows], np.int8))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    return np.concatenate(ids), np.concatenate(ranks)


def _crossing_rows(ids: np.ndarray, state: np.ndarray, before_ids: np.ndarray, before_rank: np.ndarray, *,
                   report_unknown: bool) -> np.ndarray:
    """Positions in ``ids`` of the customers :func:`crossings` reports, in the same order, on arrays.

    ``before_ids`` ascending, one entry per customer (``customer_scores``' key).
    """
    if len(before_ids) == 0:
        return np.flatnonzero(state != "active") if report_unknown else np.zeros(0, np.int64)
    rank = np.select([state == "lost", state == "at_risk"], [2, 1], 0)
    at = np.minimum(np.searchsorted(before_ids, ids), len(before_ids) - 1)
    worse = np.where(before_ids[at] == ids, rank > before_rank[at], report_unknown)
    return np.flatnonzero((state != "active") & worse)

"""Tiers: who is gold, evaluated from spend or points earned in a rolling window.

Tiers are listed lowest first in ``[[loyalty.tiers]]``; a customer holds the
last (highest) one whose threshold they meet: ``min_spend`` (net merchandise
spend in shop money: paid, not cancelled, minus refunds, by ``paid_at``) or
``min_points`` (points earned from orders, net of reversals, by the ledger
entry's time), each within the tier's ``window_days``. Evaluated after every
order event of the customer and by the daily task, so customers are promoted
and demoted without anyone looking.

A change is stored in ``customer_tiers`` and told to Shopify through the
actions outbox by :func:`.sync.announce_tier_change`: the tag ``<tag_prefix><tier>``
added and the old one removed (``tagsAdd`` / ``tagsRemove``); the metafields
``<namespace>.points`` and ``<namespace>.tier`` follow.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Mapping

from sqlalchemy import Select, bindparam, func, select, update

from ...storage import tables as t
from .ledger import EARN, REVERSE
from .settings import tier_config

CT = t.customer_tiers
O = t.orders
L = t.ledger


_TIER = select(CT).where(CT.c.customer_id == bindparam("cid"))


def tier_row(conn, customer_id: int, *, ctx=None):
    """The customer's stored tier row (or None); read once per ``ctx`` (of ``conn``) until it is written."""
    def load():
        return conn.execute(_TIER, {"cid": customer_id}).mappings().first()

    if ctx is not None and getattr(ctx, "conn", None) is conn:
        return ctx.cached(_cache_key(customer_id), (CT,), load)
    return load()


def _cache_key(customer_id: int) -> tuple:
    return ("loyalty.tier", customer_id)


def _of_customer(column):
    return select(column).where(CT.c.customer_id == bindparam("cid")).scalar_subquery()


#: The stored tier row of the customer ``:cid`` as columns another statement can carry (an order's
#: earn reads them with the balance): whether there is one, then its tier, since and evaluated_at.
ROW_COLUMNS = (select(CT.c.customer_id).where(CT.c.customer_id == bindparam("cid")).exists(),
               _of_customer(CT.c.tier), _of_customer(CT.c.since), _of_customer(CT.c.evaluated_at))
#: The stored tier of the customer ``:cid`` (NULL when none) as a column another statement can carry.
TIER_COLUMN = ROW_COLUMNS[1]


def keep_tier_row(ctx, customer_id: int, columns) -> Mapping | None:
    """The tier row from :data:`ROW_COLUMNS`' values, kept as :func:`tier_row`'s read for ``ctx``."""
    found, tier, since, evaluated_at = columns
    row = MappingProxyType({"customer_id": customer_id, "tier": tier, "since": since,
                            "evaluated_at": evaluated_at}) if found else None
    ctx._keep(_cache_key(customer_id), (CT,), row)
    return row


def current_tier(conn, customer_id: int, *, ctx=None) -> str | None:
    row = tier_row(conn, customer_id, ctx=ctx)
    return row["tier"] if row else None


def perks(settings: dict, tier: str | None) -> dict:
    cfg = tier_config(settings, tier)
    return dict(cfg["perks"]) if cfg else {}


def _customers(q, column, scope: str | None):
    """``q`` for everyone (``scope`` None), one customer (``:cid``) or some (``:ids``, expanded at each run).

    One customer is what every order event asks: ``= :cid`` spares the statement the expansion of
    ``IN (:ids)`` that each run of it otherwise costs.
    """
    if scope == "one":
        return q.where(column == bindparam("cid"))
    return q.where(column.in_(bindparam("ids", expanding=True))) if scope == "some" else q


def _spend_stmt(include_test: bool, scope: str | None):
    q = select(O.c.customer_id, func.sum(O.c.subtotal - O.c.refunded)).where(
        O.c.customer_id.is_not(None), O.c.paid_at.is_not(None), O.c.cancelled_at.is_(None),
        O.c.paid_at >= bindparam("since")).group_by(O.c.customer_id)
    if not include_test:
        q = q.where(O.c.test.is_(False))
    return _customers(q, O.c.customer_id, scope)


def _points_stmt(scope: str | None):
    q = select(L.c.customer_id, func.sum(L.c.points)).where(
        L.c.kind.in_((EARN, REVERSE)), L.c.created_at >= bindparam("since")).group_by(L.c.customer_id)
    return _customers(q, L.c.customer_id, scope)


SCOPES = (None, "one", "some")
# Built once (every order event evaluates its customer's tier): by (include test orders, scope).
_SPEND = {(test, scope): _spend_stmt(test, scope) for test in (False, True) for scope in SCOPES}
_POINTS = {scope: _points_stmt(scope) for scope in SCOPES}


def spend_windows(settings: dict) -> list[int]:
    """The windows (days) the ``min_spend`` tiers look back over, ascending, each once."""
    return sorted({tr["window_days"] for tr in settings["tiers"] if tr["min_spend"] is not None})


def _spend_column(include_test: bool, n: int):
    q = select(func.sum(O.c.subtotal - O.c.refunded)).where(
        O.c.customer_id == bindparam("cid"), O.c.paid_at.is_not(None), O.c.cancelled_at.is_(None),
        O.c.paid_at >= bindparam(f"since_{n}"))
    if not include_test:
        q = q.where(O.c.test.is_(False))
    return q.scalar_subquery()


def spend_shape(settings: dict) -> tuple[bool, int]:
    """What :func:`spend_columns` depends on: whether test orders count, and how many windows there are."""
    return bool(settings["include_test_orders"]), len(spend_windows(settings))


@functools.cache
def spend_columns(shape: tuple[bool, int]) -> tuple:
    """The customer ``:cid``'s spend in each of :func:`spend_windows` as columns another statement can
    carry (parameters from :func:`spend_params`), so an order event's tier costs no statement of its own.

    Built once per :func:`spend_shape` (include test orders, number of windows): bound ``since_<n>``
    parameters, not the windows themselves, so a configuration change needs no new statement.
    """
    include_test, windows = shape
    return tuple(_spend_column(include_test, n) for n in range(windows))


def spend_params(settings: dict, now: datetime) -> dict:
    return {f"since_{n}": now - timedelta(days=w) for n, w in enumerate(spend_windows(settings))}


def _spend_key(settings: dict, customer_id: int, since: datetime) -> tuple:
    return ("loyalty.tier_spend", customer_id, bool(settings["include_test_orders"]), since)


@functools.cache
def _tier_read(shape: tuple[bool, int]) -> Select:
    return select(*ROW_COLUMNS, *spend_columns(shape))


def read_tier_and_spend(ctx, settings: dict, customer_id: int, now: datetime) -> Mapping | None:
    """The stored tier row, and the spend :func:`evaluate` will ask for, in one statement; both kept for ``ctx``."""
    row = ctx.conn.execute(_tier_read(spend_shape(settings)), {"cid": customer_id, **spend_params(settings, now)}).one()
    keep_spend(ctx, settings, customer_id, now, row[len(ROW_COLUMNS):])
    return keep_tier_row(ctx, customer_id, row[:len(ROW_COLUMNS)])


def keep_spend(ctx, settings: dict, customer_id: int, now: datetime, values) -> None:
    """:func:`spend_columns`' values, kept as :func:`evaluate`'s reads for ``ctx`` while ``orders`` is unwritten.

    On PostgreSQL an order another worker commits between this read and the evaluation is not seen
    by it, as if the evaluation had run a moment earlier; its own event evaluates the tier again.
    """
    for w, v in zip(spend_windows(settings), values):
        ctx._keep(_spend_key(settings, customer_id, now - timedelta(days=w)), (O,),
                  {customer_id: Decimal(v or 0)})


def evaluate(conn, settings: dict, now: datetime, customer_ids=None, *, ctx=None) -> dict[int, str | None]:
    """The tier each customer qualifies for now; ``customer_ids=None`` means everyone with activity.

    With one customer and ``ctx`` (of ``conn``), a spend :func:`keep_spend` kept is not read again.
    """
    tiers = settings["tiers"]
    if not tiers:
        return {}
    ids = list(customer_ids) if customer_ids is not None else None
    spend: dict[int, Mapping[int, Decimal]] = {}
    points: dict[int, dict[int, int]] = {}
    scope = None if ids is None else ("one" if len(ids) == 1 else "some")
    params = {"ids": ids, "cid": ids[0] if scope == "one" else None}
    q = _SPEND[(bool(settings["include_test_orders"]), scope)]
    cache = scope == "one" and ctx is not None and getattr(ctx, "conn", None) is conn
    for w in spend_windows(settings):
        since = now - timedelta(days=w)

        def load(since=since):
            return {cid: Decimal(v or 0) for cid, v in conn.execute(q, {**params, "since": since})}

        spend[w] = ctx.cached(_spend_key(settings, params["cid"], since), (O,), load) if cache else load()
    for w in sorted({tr["window_days"] for tr in tiers if tr["min_points"] is not None}):
        q = _POINTS[scope]
        points[w] = {cid: int(v or 0) for cid, v in conn.execute(q, {**params, "since": now - timedelta(days=w)})}
    if ids is None:
        found: set[int] = set()
        for d in list(spend.values()) + list(points.values()):
            found.update(d)
        found.update(cid for (cid,) in conn.execute(select(CT.c.customer_id).where(CT.c.tier.is_not(None))))
        ids = sorted(found)
    result = {}
    for cid in ids:
        best = None
        for tr in tiers:
            w = tr["window_days"]
            if tr["min_spend"] is not None:
                ok = spend[w].get(cid, Decimal(0)) >= tr["min_spend"]
            else:
                ok = points[w].get(cid, 0) >= tr["min_points"]
            if ok:
                best = tr["name"]
        result[cid] = best
    return result


# Built once: every order event stores its customer's evaluation.
_INSERT_TIER = CT.insert().values(customer_id=bindparam("t_cid"), tier=bindparam("t_tier"),
                                  since=bindparam("t_now"), evaluated_at=bindparam("t_now"))
_EVALUATED = update(CT).where(CT.c.customer_id == bindparam("t_cid")).values(evaluated_at=bindparam("t_now"))
_CHANGED = update(CT).where(CT.c.customer_id == bindparam("t_cid")).values(
    tier=bindparam("t_tier"), since=bindparam("t_now"), evaluated_at=bindparam("t_now"))


def store_tier(conn, customer_id: int, tier: str | None, now: datetime, *, ctx=None) -> tuple[str | None, bool]:
    """Record the evaluation; returns ``(previous tier, changed)``."""
    row = tier_row(conn, customer_id, ctx=ctx)
    params = {"t_cid": customer_id, "t_tier": tier, "t_now": now}
    if row is None:
        if tier is None:
            return None, False
        conn.execute(_INSERT_TIER, params)
        return None, True
    if row["tier"] == tier:
        conn.execute(_EVALUATED, params)
        return tier, False
    conn.execute(_CHANGED, params)
    return row["tier"], True


def tag_for(settings: dict, tier: str) -> str:
    return f"{settings['tag_prefix']}{tier}"

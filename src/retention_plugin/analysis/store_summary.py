"""The per-customer summary of stored orders, computed by the database.

:func:`summarize_store` gives the same :class:`~.summary.Summary` as loading
the orders (:func:`.store.load_store_history`) and summarising them
(:func:`.summary.summarize`), but the database does the work in one query:
each order becomes (customer, UTC day, value) under the loader's rules, a
window marks each customer's first day, and one ``GROUP BY customer`` counts
distinct purchase days and adds up the values. Only one row per customer
crosses the wire, read in batches, so ten million stored orders need no more
memory in Python than the customers' summaries themselves (figures in
docs/performance.md).

The loader's rules, restated in SQL: an order counts if it has a customer,
was created before the end of the as-of day, is not a test order and was not
cancelled by then; a customer merged into another counts as that other one
(merge chains are followed; a chain that loops, which the merge code never
writes, leaves its customers as they are); an order's value is its subtotal
less what was refunded, never below zero. Two orders on one day are one
purchase day; a zero-value order still makes its day a purchase day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import numpy as np
from sqlalchemy import BigInteger, Date, Float, case, cast, func, literal, or_, select, type_coerce

from ..shop_scope import current
from ..storage import tables as t
from .dates import TIME_UNITS, day_to_iso
from .store import connection
from .summary import DataError, Summary

__all__ = ["summarize_store", "summary_query"]

#: Longest merge chain followed (a guard against loops, far beyond any real chain).
MAX_MERGE_DEPTH = 32
#: Customers fetched per round trip.
BATCH = 50_000


def _end_of(day: int) -> datetime:
    return datetime.combine(date(1970, 1, 1) + timedelta(days=day + 1), time(0), tzinfo=timezone.utc)


def _utc_day(column, dialect: str):
    """Whole UTC days since 1970-01-01 of a stored time, as an integer expression."""
    if dialect == "sqlite":
        # Times are stored as UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'; 2440587.5 is the Julian day of 1970-01-01.
        return cast(func.julianday(func.date(column)) - 2440587.5, BigInteger)
    # PostgreSQL: the UTC date, whatever the session's time zone, less 1970-01-01 is an integer (and
    # integer date arithmetic is several times faster than the numeric that EXTRACT(epoch) returns).
    return type_coerce(cast(func.timezone("UTC", column), Date) - cast(literal("1970-01-01"), Date), BigInteger)


def _merge_roots():
    """(id, root) for every merged customer whose chain ends at a customer merged into nobody."""
    c = t.customers
    chain = (select(c.c.id.label("id"), c.c.merged_into.label("root"), literal(1).label("depth"))
             .where(c.c.merged_into.is_not(None))
             .cte("merge_chain", recursive=True))
    step = c.alias("step")
    chain = chain.union_all(
        select(chain.c.id, step.c.merged_into, chain.c.depth + 1)
        .join(step, step.c.id == chain.c.root)
        .where(step.c.merged_into.is_not(None), chain.c.depth < MAX_MERGE_DEPTH))
    end = c.alias("chain_end")
    return (select(chain.c.id, chain.c.root)
            .join(end, end.c.id == chain.c.root)
            .where(end.c.merged_into.is_(None))
            .subquery("merge_roots"))


def summary_query(dialect: str, calibration_end: int, as_of: int, shop: str | None = None):
    """The SELECT: one row per customer whose first counted order is on or before ``calibration_end``.

    Columns: customer, purchase_days (distinct days to the cut-off), first_day,
    last_day, total (value to the cut-off), first_value (value of the first
    day), holdout_days and holdout_value (after the cut-off, to ``as_of``).
    """
    o = t.orders
    roots = _merge_roots()
    end = _end_of(as_of)
    # In floating point, as the loader computes it: float(subtotal) - float(refunded), at least 0.
    net = cast(o.c.subtotal, Float) - cast(func.coalesce(o.c.refunded, 0), Float)
    orders = (
        select(func.coalesce(roots.c.root, o.c.customer_id).label("customer"),
               _utc_day(o.c.created_at, dialect).label("day"),
               case((net > 0, net), else_=literal(0.0, Float)).label("value"))
        .select_from(o.outerjoin(roots, roots.c.id == o.c.customer_id))
        .where(o.c.customer_id.is_not(None), o.c.created_at < end, o.c.test.is_(False),
               or_(o.c.cancelled_at.is_(None), o.c.cancelled_at >= end),
               *([] if shop is None else [o.c.shop == shop]))
        .subquery("counted"))
    marked = select(orders, func.min(orders.c.day).over(partition_by=orders.c.customer).label("first")).subquery("m")
    day, value = marked.c.day, marked.c.value
    in_cal = day <= calibration_end
    zero = literal(0.0, Float)
    return (
        select(marked.c.customer,
               func.count(func.distinct(case((in_cal, day)))).label("purchase_days"),
               func.min(day).label("first_day"),
               func.max(case((in_cal, day))).label("last_day"),
               func.sum(case((in_cal, value), else_=zero)).label("total"),
               func.sum(case((day == marked.c.first, value), else_=zero)).label("first_value"),
               func.count(func.distinct(case((~in_cal, day)))).label("holdout_days"),
               func.sum(case((~in_cal, value), else_=zero)).label("holdout_value"))
        .group_by(marked.c.customer)
        .having(func.min(day) <= calibration_end)
        .order_by(marked.c.customer))


def summarize_store(bind, *, calibration_end: int, holdout_end: int | None = None,
                    time_unit: str = "weeks") -> Summary:
    """The summary of the stored orders known by the end of ``holdout_end`` (else ``calibration_end``).

    Equal to ``summarize(h.orders.customer, h.orders.day, h.orders.amount, ...)`` for
    ``h = load_store_history(bind, holdout_end or calibration_end)``: the same customers in the
    same order, the same counts and days, and values equal to rounding (the database adds them).
    """
    if time_unit not in TIME_UNITS:
        raise DataError(f"time unit must be one of {sorted(TIME_UNITS)}, not {time_unit!r}")
    cal_end = int(calibration_end)
    if holdout_end is not None and int(holdout_end) <= cal_end:
        raise DataError("the holdout must end after the calibration period")
    as_of = cal_end if holdout_end is None else int(holdout_end)
    parts = []
    with connection(bind) as conn:
        query = summary_query(conn.dialect.name, cal_end, as_of, current(conn))
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for rows in result.partitions():
            parts.append(np.array([tuple(r) for r in rows], dtype=_ROW))
    rows = np.concatenate(parts) if parts else np.zeros(0, _ROW)
    if len(rows) == 0:
        raise DataError(f"no order on or before {day_to_iso(cal_end)}")
    unit = TIME_UNITS[time_unit]
    x = rows["purchase_days"].astype(np.float64) - 1
    first, last = rows["first_day"], rows["last_day"]
    return Summary(
        customer_ids=rows["customer"],
        x=x,
        t_x=(last - first) / unit,
        T=(cal_end - first) / unit,
        monetary=np.where(x > 0, (rows["total"] - rows["first_value"]) / np.maximum(x, 1), 0.0),
        first_day=first,
        last_day=last,
        total_spend=rows["total"],
        calibration_end=cal_end,
        time_unit=time_unit,
        holdout_end=None if holdout_end is None else as_of,
        holdout_x=None if holdout_end is None else rows["holdout_days"].astype(np.float64),
        holdout_spend=None if holdout_end is None else rows["holdout_value"],
    )


_ROW = np.dtype([("customer", np.int64), ("purchase_days", np.int64), ("first_day", np.int64),
                 ("last_day", np.int64), ("total", np.float64), ("first_value", np.float64),
                 ("holdout_days", np.int64), ("holdout_value", np.float64)])

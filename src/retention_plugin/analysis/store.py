"""Read the store's history out of the database for the analysis.

One pass per table with SQLAlchemy Core; the rows become numpy arrays
(:class:`~retention_plugin.analysis.history.History`). Test orders and
cancelled orders are not purchases; customers merged into another count as
that other customer; an order's value is its subtotal (after discounts,
before shipping and tax) less what was refunded.
"""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy.engine import Connection

from array import array
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
from sqlalchemy import and_, or_, select

from ..shop_scope import current
from ..storage import tables as t
from .dates import to_days
from .history import History, Orders, Ratings, Refunds, Tickets

__all__ = ["load_store_history", "as_of_day"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def as_of_day(as_of) -> int:
    """Day number of an as-of date (date, datetime, ISO string); None means today (UTC)."""
    if as_of is None:
        as_of = datetime.now(timezone.utc).date()
    if isinstance(as_of, datetime):
        as_of = as_of.astimezone(timezone.utc).date() if as_of.tzinfo else as_of.date()
    return int(to_days([as_of])[0])


def _secs(dt: datetime | None) -> float:
    return np.nan if dt is None else (dt - _EPOCH).total_seconds()


@contextmanager
def connection(bind):
    """A connection from an engine, or the caller's own (inside its transaction, e.g. a worker task)."""
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


#: Stored statuses that say some items are still to be fulfilled (Shopify's order display statuses).
_WAITING = {"unfulfilled", "partial", "partially_fulfilled", "open", "in_progress", "on_hold", "scheduled",
            "pending_fulfillment"}


def fulfilment_known(fulfilled_at, status, source) -> bool:
    """Whether an order's fulfilment state is known: a fulfilment time, or a status saying it waits.

    Shopify's REST order sends ``fulfillment_status: null`` while nothing is fulfilled,
    so a webhook order without a status is waiting; an import without a status (or
    "fulfilled" without a time) says nothing about when, and is unknown.
    """
    if fulfilled_at is not None:
        return True
    status = (status or "").lower()
    return status in _WAITING or (not status and source == "webhook")


#: Rows fetched per round trip when reading orders and lines for the analysis.
CHUNK_ROWS = 10_000
_EPOCH_DAY = date(1970, 1, 1)


def _streamed(conn, stmt):
    """Rows of ``stmt`` a chunk at a time (a server-side cursor on PostgreSQL), never all at once."""
    return conn.execute(stmt.execution_options(yield_per=CHUNK_ROWS))


def load_store_history(engine, as_of=None, *, purchases_only: bool = False) -> History:
    """Everything known by the end of ``as_of`` (a UTC day).

    ``purchases_only``: only what scoring reads (:func:`.scoring.score_customers`), each
    order's customer, day and value, under the same rules; the orders' other columns keep
    :meth:`Orders.build`'s defaults (no category, discount or fulfilment) and there are no
    tickets, ratings or refunds. The daily early warning reads this, which spares it the
    order lines and about a third of the orders' memory.
    """
    day = as_of_day(as_of)
    end = datetime.combine(date(1970, 1, 1) + timedelta(days=day + 1), time(0), tzinfo=timezone.utc)
    with connection(engine) as conn:
        shop = current(conn)  # one shop's history: the shop in scope, else the configured one
        merged = dict(conn.execute(select(t.customers.c.id, t.customers.c.merged_into)
                                   .where(t.customers.c.merged_into.is_not(None))).all())

        def who(cid):
            seen = set()
            while cid in merged and cid not in seen:  # follow merge chains, guarding against loops
                seen.add(cid)
                cid = merged[cid]
            return cid

        o = t.orders
        # The category of an order is that of its largest line. Lines and orders are read in
        # chunks straight into compact columns: holding every row object at once cost about
        # 300 MB at 250,000 orders (docs/performance.md, "Worker").
        best: dict[int, tuple[float, str]] = {}
        for ln in () if purchases_only else _streamed(conn,
                select(t.order_lines.c.order_id, t.order_lines.c.product_type, t.order_lines.c.price,
                       t.order_lines.c.quantity)
                .join(o, o.c.id == t.order_lines.c.order_id)
                .where(o.c.shop == shop, o.c.customer_id.is_not(None), o.c.created_at < end,
                       t.order_lines.c.product_type.is_not(None), t.order_lines.c.product_type != "")):
            amount = float(ln.price or 0) * (ln.quantity or 0)
            if ln.order_id not in best or amount > best[ln.order_id][0]:
                best[ln.order_id] = (amount, ln.product_type)

        currencies: Counter = Counter()
        customer, day_of, amount_of = array("q"), array("q"), array("d")
        discounted, fulfil_days, fulfil_known = array("b"), array("d"), array("b")
        category: list[str] = []
        counted = (o.c.shop == shop, o.c.customer_id.is_not(None), o.c.created_at < end, o.c.test.is_(False),
                   or_(o.c.cancelled_at.is_(None), o.c.cancelled_at >= end))
        if purchases_only:
            for r in _streamed(conn, select(o.c.customer_id, o.c.created_at, o.c.subtotal, o.c.refunded,
                                            o.c.currency).where(*counted).order_by(o.c.id)):
                currencies[r.currency] += 1
                customer.append(who(r.customer_id))
                day_of.append((r.created_at.date() - _EPOCH_DAY).days)
                amount_of.append(max(float(r.subtotal) - float(r.refunded or 0), 0.0))
            return History(as_of=day, orders=Orders.build(customer=customer, day=day_of, amount=amount_of),
                           currency=currencies.most_common(1)[0][0] if currencies else None,
                           notes=_currency_notes(currencies))
        for r in _streamed(conn,
                select(o.c.id, o.c.customer_id, o.c.created_at, o.c.subtotal, o.c.refunded, o.c.total_discounts,
                       o.c.discount_codes, o.c.fulfilled_at, o.c.currency, o.c.fulfillment_status, o.c.source)
                .where(*counted)
                .order_by(o.c.id)):
            currencies[r.currency] += 1
            customer.append(who(r.customer_id))
            day_of.append((r.created_at.date() - _EPOCH_DAY).days)
            amount_of.append(max(float(r.subtotal) - float(r.refunded or 0), 0.0))
            discounted.append(bool(r.total_discounts and r.total_discounts > 0) or bool(r.discount_codes))
            fulfil_days.append(np.nan if r.fulfilled_at is None
                               else (r.fulfilled_at - r.created_at).total_seconds() / 86400)
            category.append(best.get(r.id, (0, ""))[1])
            fulfil_known.append(fulfilment_known(r.fulfilled_at, r.fulfillment_status, r.source))
        del best
        refunds = conn.execute(
            select(o.c.customer_id, t.refunds.c.created_at, t.refunds.c.merchandise,
                   o.c.created_at.label("order_created_at"))
            .join(o, o.c.id == t.refunds.c.order_id)
            .where(o.c.shop == shop, o.c.customer_id.is_not(None), t.refunds.c.created_at < end)).all()
        tk = t.tickets
        tickets = conn.execute(
            select(tk.c.customer_id, tk.c.created_at, tk.c.first_public_reply_at, tk.c.solved_at, tk.c.status,
                   tk.c.complaint)
            .where(tk.c.shop == shop, tk.c.customer_id.is_not(None), tk.c.created_at.is_not(None),
                   tk.c.created_at < end)).all()
        rt = t.ratings
        ratings = conn.execute(
            select(rt.c.customer_id, rt.c.created_at, rt.c.value)
            .where(and_(rt.c.shop == shop, rt.c.customer_id.is_not(None), rt.c.value.is_not(None),
                        rt.c.created_at < end))).all()

    notes = _currency_notes(currencies)
    orders = Orders.build(
        customer=customer,
        day=day_of,
        amount=amount_of,
        discounted=np.frombuffer(discounted, dtype=np.int8).astype(bool),
        fulfil_days=fulfil_days,
        category=category,
        fulfil_known=np.frombuffer(fulfil_known, dtype=np.int8).astype(bool),
    )
    closed = {"solved", "closed"}
    return History(
        as_of=day,
        orders=orders,
        tickets=Tickets.build(
            customer=[who(r.customer_id) for r in tickets],
            created=[_secs(r.created_at) for r in tickets],
            first_reply=[_secs(r.first_public_reply_at) for r in tickets],
            # A ticket marked solved without a timestamp still counts as solved (at creation, conservatively).
            solved=[_secs(r.solved_at) if r.solved_at is not None
                    else (_secs(r.created_at) if (r.status or "").lower() in closed else np.nan) for r in tickets],
            complaint=[bool(r.complaint) for r in tickets],
        ),
        ratings=Ratings.build([who(r.customer_id) for r in ratings], [_secs(r.created_at) for r in ratings],
                              [float(r.value) for r in ratings]),
        refunds=Refunds.build([who(r.customer_id) for r in refunds], [_secs(r.created_at) for r in refunds],
                              [float(r.merchandise) for r in refunds],
                              [(r.order_created_at.date() - date(1970, 1, 1)).days for r in refunds]),
        currency=currencies.most_common(1)[0][0] if currencies else None,
        notes=notes,
    )


def _currency_notes(currencies: Counter) -> list[str]:
    if len(currencies) > 1:
        return ["orders in several shop currencies (" + ", ".join(sorted(currencies)) +
                "): values are added as they are, without conversion"]
    return []

"""What the analysis knows about the store, as numpy arrays.

Filled from storage by :func:`retention_plugin.analysis.store.load_store_history`
or built directly (tests, simulations, other sources). Order dates are whole
days (int64 day numbers since 1970-01-01); support events keep seconds since
the epoch (float, NaN when absent) because reply times are counted in hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["History", "Orders", "Tickets", "Ratings", "Refunds"]


def _f(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _i(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


@dataclass
class Orders:
    customer: np.ndarray  # int64 customer ids
    day: np.ndarray  # int64 day numbers
    amount: np.ndarray  # float, shop currency, net of refunds
    discounted: np.ndarray  # bool: bought with a discount
    fulfil_days: np.ndarray  # float days from order to fulfilment; NaN if not fulfilled
    category: np.ndarray  # object array of str ("" when unknown)
    # bool: whether the fulfilment state is known (NaN fulfil_days then means "not fulfilled yet",
    # not "no data": an imported order without fulfilment columns is unknown, never late)
    fulfil_known: np.ndarray | None = None

    @classmethod
    def build(cls, customer, day, amount, discounted=None, fulfil_days=None, category=None,
              fulfil_known=None) -> "Orders":
        n = len(customer)
        fd = np.full(n, np.nan) if fulfil_days is None else _f(fulfil_days)
        return cls(
            _i(customer), _i(day), _f(amount),
            np.zeros(n, bool) if discounted is None else np.asarray(discounted, bool),
            fd,
            np.full(n, "", dtype=object) if category is None else np.asarray(category, dtype=object),
            np.isfinite(fd) if fulfil_known is None else np.asarray(fulfil_known, bool),
        )


@dataclass
class Tickets:
    customer: np.ndarray
    created: np.ndarray  # epoch seconds
    first_reply: np.ndarray  # epoch seconds of the first public reply; NaN if none
    solved: np.ndarray  # epoch seconds; NaN if not solved
    complaint: np.ndarray  # bool

    @classmethod
    def build(cls, customer=(), created=(), first_reply=None, solved=None, complaint=None) -> "Tickets":
        n = len(customer)
        return cls(_i(customer), _f(created),
                   np.full(n, np.nan) if first_reply is None else _f(first_reply),
                   np.full(n, np.nan) if solved is None else _f(solved),
                   np.zeros(n, bool) if complaint is None else np.asarray(complaint, bool))


@dataclass
class Ratings:
    customer: np.ndarray
    time: np.ndarray  # epoch seconds
    value: np.ndarray  # 0 = worst, 1 = best

    @classmethod
    def build(cls, customer=(), time=(), value=()) -> "Ratings":
        return cls(_i(customer), _f(time), _f(value))


@dataclass
class Refunds:
    customer: np.ndarray
    time: np.ndarray  # epoch seconds
    amount: np.ndarray
    order_day: np.ndarray | None = None  # int64 day of the refunded order; -1 when unknown

    @classmethod
    def build(cls, customer=(), time=(), amount=None, order_day=None) -> "Refunds":
        n = len(customer)
        return cls(_i(customer), _f(time), np.zeros(n) if amount is None else _f(amount),
                   np.full(n, -1, np.int64) if order_day is None else _i(order_day))


@dataclass
class History:
    as_of: int  # day number; everything up to the end of this day is known
    orders: Orders
    tickets: Tickets = field(default_factory=Tickets.build)
    ratings: Ratings = field(default_factory=Ratings.build)
    refunds: Refunds = field(default_factory=Refunds.build)
    currency: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def customers(self) -> np.ndarray:
        return np.unique(self.orders.customer)

"""A simulated store with a known cause of leaving, for testing the reasons analysis.

New customers arrive throughout the 18 months before the cut-off and buy at
their own Poisson rate (once a fortnight on average) until they leave. Leaving
is a daily hazard (about 20% a year on average, varying between customers) that triples from the moment one
of the customer's complaints has waited more than 48 hours for a first reply,
and is raised by half after a bad rating and for deal-seekers. Refunds, late
deliveries and product categories have no effect at all.
"""

from __future__ import annotations

import numpy as np

from retention_plugin.analysis.history import History, Orders, Ratings, Refunds, Tickets

DAY = 86400.0
AS_OF = 20000  # a day number (2024-10-04); only differences matter
CUT = AS_OF - 90  # the outcome window is the last 90 days


def purchases(first, rate, leaves, as_of: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(customer index, day) of every purchase: the first on ``first``, then Poisson at ``rate``
    per day until the customer leaves (``leaves``, a fractional day) or ``as_of``."""
    cust, day = [np.arange(len(first))], [first]
    t = first.astype(float)
    alive = np.ones(len(first), bool)
    while alive.any():
        t = t + rng.exponential(1 / rate)
        alive &= (t < leaves) & (t <= as_of)
        cust.append(np.flatnonzero(alive))
        day.append(np.floor(t[alive]).astype(np.int64))
    return np.concatenate(cust), np.concatenate(day)


def simulate_store(n: int = 6000, seed: int = 7, *, slow_reply_effect: float = 3.0, annual_leave: float = 0.2):
    rng = np.random.default_rng(seed)
    start = AS_OF - 540
    first = start + rng.integers(0, CUT - start, n)
    rate = rng.gamma(3.0, 1 / (3.0 * 14.0), n)  # purchases per day; mean one every 14 days
    deal_seeker = rng.random(n) < 0.2
    category = rng.choice(np.array(["coffee", "tea", "equipment"], dtype=object), n, p=[0.5, 0.3, 0.2])

    # Support history: a ticket somewhere between the first order and the cut-off.
    has_ticket = rng.random(n) < 0.35
    tk_time = (first + rng.random(n) * (CUT - first)) * DAY
    tk_complaint = has_ticket & (rng.random(n) < 0.8)
    reply_hours = rng.lognormal(np.log(24), 0.8, n)  # median a day; a quarter wait over 48 hours
    tk_reply = tk_time + reply_hours * 3600
    tk_solved = np.where(rng.random(n) < 0.9, tk_reply + rng.exponential(24, n) * 3600, np.nan)
    slow_complaint = tk_complaint & (reply_hours > 48)

    rated = rng.random(n) < 0.3
    rt_time = (first + rng.random(n) * (CUT - first)) * DAY
    rt_value = np.where(rng.random(n) < 0.2, 0.0, 1.0)
    bad = rated & (rt_value < 0.5)

    # Leaving: walk the days, accumulating each customer's hazard until an
    # exponential budget is spent; the hazard changes when its causes happen.
    # Customers differ in how easily they leave (a gamma factor with mean 1), as real ones do.
    base = -np.log(1 - annual_leave) / 365 * np.where(deal_seeker, 1.5, 1.0) * rng.gamma(2.0, 0.5, n)
    budget = rng.exponential(1.0, n)
    active_until = np.full(n, AS_OF + 1.0)
    spent = np.zeros(n)
    slow_from = np.where(slow_complaint, tk_reply / DAY, np.inf)
    bad_from = np.where(bad, rt_time / DAY, np.inf)
    for d in range(int(first.min()), AS_OF + 1):
        hazard = base * np.where(d >= slow_from, slow_reply_effect, 1.0) * np.where(d >= bad_from, 1.5, 1.0)
        spent += np.where(d >= first, hazard, 0.0)
        gone = (spent >= budget) & (active_until > AS_OF)
        active_until[gone] = d + rng.random(int(gone.sum()))
    leaves = active_until <= AS_OF

    oc, od = purchases(first, rate, active_until, AS_OF, rng)
    m = len(oc)
    amount = rng.gamma(4, 10, m)
    discounted = deal_seeker[oc] | (rng.random(m) < 0.1)
    fulfil = np.where(rng.random(m) < 0.08, rng.uniform(6, 15, m), rng.uniform(0.5, 3, m))
    refund_orders = rng.random(m) < 0.03

    history = History(
        as_of=AS_OF,
        orders=Orders.build(oc + 1, od, amount, discounted, fulfil, category[oc]),
        tickets=Tickets.build(np.flatnonzero(has_ticket) + 1, tk_time[has_ticket], tk_reply[has_ticket],
                              tk_solved[has_ticket], tk_complaint[has_ticket]),
        ratings=Ratings.build(np.flatnonzero(rated) + 1, rt_time[rated], rt_value[rated]),
        refunds=Refunds.build(oc[refund_orders] + 1, (od[refund_orders] + 3) * DAY, amount[refund_orders]),
        currency="EUR",
    )
    truth = {"leaves": leaves, "slow_complaint": slow_complaint}
    return history, truth

"""A store where complaints raise the rate of leaving by a known factor, for the hazard model's coverage test.

Customers arrive over two years and buy at their own Poisson rate (about
every three days: frequent enough that their last purchase dates their
leaving to within days, which is all the data can show). Each leaves at a
constant daily rate; from the moment of their first complaint, that rate is
multiplied by ``rate_ratio``. Complaints arrive at random while a customer is
still active. Nothing else matters, so the adjusted model's rate ratio for
``complaint`` should cover ``rate_ratio`` in 95% of simulated stores.
"""

from __future__ import annotations

import numpy as np

from retention_plugin.analysis.history import History, Orders, Tickets

try:
    from .analysis_simstore import purchases
except ImportError:  # loaded as a top-level module (bench/analysis_coverage.py puts its folder on the path)
    from analysis_simstore import purchases

DAY = 86400.0
AS_OF = 20000


def simulate_complaints(n: int = 3000, seed: int = 0, *, rate_ratio: float = 2.0, annual_leave: float = 0.5,
                        complaints_per_year: float = 0.8, purchase_every_days: float = 3.0, years: float = 2.0):
    rng = np.random.default_rng(seed)
    days = int(365 * years)
    start = AS_OF - days
    first = start + rng.integers(0, days - 120, n)
    rate = rng.gamma(10.0, 1 / (10.0 * purchase_every_days), n)
    h0 = -np.log1p(-annual_leave) / 365
    complaint_at = first + rng.exponential(365 / complaints_per_year, n)
    before = first + rng.exponential(1 / h0, n)
    # Memoryless leaving: if the customer has not left by the complaint, the rest of their
    # time is exponential with the raised rate.
    leaves = np.where(before < complaint_at, before, complaint_at + rng.exponential(1 / (h0 * rate_ratio), n))
    complained = (complaint_at < leaves) & (complaint_at <= AS_OF)

    oc, od = purchases(first, rate, leaves, AS_OF, rng)
    who = np.flatnonzero(complained)
    created = complaint_at[who] * DAY
    history = History(
        as_of=AS_OF,
        orders=Orders.build(oc + 1, od, rng.gamma(4, 10, len(oc))),
        tickets=Tickets.build(who + 1, created, created + 3600, created + 7200, np.ones(len(who), bool)),
        currency="EUR",
    )
    return history, {"complained": complained, "leaves": leaves}

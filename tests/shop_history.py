"""A year of a small shop's orders, imported the way an admin would (``retention import transactions``).

Enough for every model of the full report: a few hundred customers arrive over
the year, buy again at their own Poisson rate (about monthly on average), and
some stop at a random moment, so the last 90 days hold both returners and
customers who went quiet.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np

from retention_plugin.importers.transactions_csv import TransactionColumns, import_transactions


def purchase_log(path, now, *, customers: int = 400, seed: int = 16) -> int:
    """Write the CSV (customer, date, amount) up to yesterday; returns the number of purchases."""
    rng = np.random.default_rng(seed)
    end = now.date() - timedelta(days=1)
    rows = []
    for c in range(customers):
        first = rng.integers(0, 330)  # days before ``end``: arrivals over most of the year
        rate = rng.gamma(2.0, 1 / (2.0 * 30.0))  # purchases per day, mean one a month
        leaves = rng.exponential(240.0)  # days after arriving; about half leave within the year
        spend = rng.lognormal(np.log(45.0), 0.4)
        day = 0.0
        while day <= min(first, leaves):
            when = end - timedelta(days=int(first - day))
            rows.append((f"c{c:04d}@example.com", when.isoformat(), f"{spend * rng.lognormal(0, 0.2):.2f}"))
            day += rng.exponential(1 / rate)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["customer", "date", "amount"])
        w.writerows(rows)
    return len(rows)


def import_history(app, tmp_path, **kw) -> int:
    """Import :func:`purchase_log` into ``app``'s database; returns the number of orders."""
    path = tmp_path / "purchases.csv"
    n = purchase_log(path, app.now(), **kw)
    report = import_transactions(app.engine, path, columns=TransactionColumns(customer="customer", date="date",
                                                                             amount="amount"),
                                 now=app.now(), currency="EUR", tz=ZoneInfo("UTC"), parallel=False, app=app)
    assert report.summary().startswith(f"imported {n} orders"), report.summary()
    return n

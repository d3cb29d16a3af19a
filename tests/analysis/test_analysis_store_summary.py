"""The database's GROUP BY summary equals loading the orders and summarising them in numpy, on both databases."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import insert

from retention_plugin.analysis.store import load_store_history
from retention_plugin.analysis.store_summary import summarize_store
from retention_plugin.analysis.summary import DataError, summarize
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIELDS = ("x", "t_x", "T", "first_day", "last_day", "holdout_x")
MONEY = ("monetary", "total_spend", "holdout_spend")


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def at(day, hours=12.0):
    return EPOCH + timedelta(days=int(day), hours=float(hours))


def order(oid, customer, created, subtotal="1", **kw):
    row = {"id": oid, "customer_id": customer, "currency": "EUR", "subtotal": Decimal(str(subtotal)),
           "total": Decimal(str(subtotal)), "created_at": created, "tags": [], "discount_codes": [], "test": False,
           "source": "import", "refunded": Decimal("0"), "cancelled_at": None}
    row.update(kw)
    return row


def python_path(engine, cal, hold=None, time_unit="weeks"):
    h = load_store_history(engine, EPOCH.date() + timedelta(days=hold if hold is not None else cal))
    o = h.orders
    return summarize(o.customer, o.day, o.amount, calibration_end=cal, holdout_end=hold, time_unit=time_unit)


def assert_same(db, py):
    assert db.customer_ids.tolist() == py.customer_ids.tolist()
    for f in FIELDS:
        a, b = getattr(db, f), getattr(py, f)
        if b is None:
            assert a is None, f
        else:
            np.testing.assert_array_equal(a, b, err_msg=f)
    for f in MONEY:
        a, b = getattr(db, f), getattr(py, f)
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=f)
    assert (db.calibration_end, db.holdout_end, db.time_unit) == (py.calibration_end, py.holdout_end, py.time_unit)


def test_edge_cases_match_the_python_path(engine):
    now = at(20000)
    with engine.begin() as conn:
        conn.execute(insert(t.customers), [{"id": i, "tags": [], "created_at": now, "updated_at": now}
                                           for i in range(1, 12)])
        # 9 merged into 8, 8 merged into 7: their orders count for 7.
        conn.execute(t.customers.update().where(t.customers.c.id == 8).values(merged_into=7))
        conn.execute(t.customers.update().where(t.customers.c.id == 9).values(merged_into=8))
        rows = [
            order(1, 1, at(19000, 1), "10.00"),
            order(2, 1, at(19000, 23.99), "5.50"),  # same day: one purchase day, both values count
            order(3, 1, at(19010), "20"),
            order(4, 1, at(19020), "30", refunded=Decimal("30")),  # refunded in full: a purchase day worth 0
            order(5, 1, at(19030), "40", cancelled_at=at(19031)),  # cancelled before the as-of day: not a purchase
            order(6, 2, at(19001), "0"),  # zero-value first order
            order(7, 2, at(19005), "12.3456", refunded=Decimal("20")),  # refunded above the subtotal: worth 0
            order(8, 2, at(19100), "9", cancelled_at=at(21000)),  # cancelled after the as-of day: still counts
            order(9, 3, at(19050), "99", test=True),  # test orders never count
            order(10, 3, at(19060), "15"),
            order(11, 3, at(19150), "16"),  # holdout purchase
            order(12, 3, at(19150, 2), "4"),  # ... twice on one day: one holdout purchase day
            order(13, 4, at(19120), "50"),  # first purchase after the cut-off: not in the population
            order(14, None, at(19010), "70"),  # no customer
            order(15, 7, at(19002), "11"),
            order(16, 8, at(19004), "12"),
            order(17, 9, at(19004, 3), "13"),  # same day as the order of 8, both now 7's
            order(18, 9, at(19009), "14"),
            order(19, 5, at(19099, 23.999)),  # the last moment of the cut-off day
            order(20, 6, at(19100, 0)),  # the first moment after it
            order(21, 10, at(19200, 0)),  # after the holdout: unseen
            order(22, 1, at(19140), "8", cancelled_at=at(19145)),
        ]
        conn.execute(insert(t.orders), rows)
    for cal, hold in [(19099, 19160), (19099, None), (19015, 19099), (19001, 19200)]:
        db = summarize_store(engine, calibration_end=cal, holdout_end=hold)
        py = python_path(engine, cal, hold)
        assert_same(db, py)
    db = summarize_store(engine, calibration_end=19099, holdout_end=19160, time_unit="days")
    assert_same(db, python_path(engine, 19099, 19160, time_unit="days"))
    # The figures themselves, for customer 1 at the 19099 cut-off: days 19000, 19010, 19020.
    one = list(db.customer_ids).index(1)
    assert (db.x[one], db.t_x[one], db.T[one]) == (2, 20, 99)
    assert db.total_spend[one] == pytest.approx(35.5) and db.monetary[one] == pytest.approx(10.0)
    assert db.holdout_x[list(db.customer_ids).index(3)] == 1
    assert 4 not in db.customer_ids and 8 not in db.customer_ids and 9 not in db.customer_ids
    seven = list(db.customer_ids).index(7)
    assert db.x[seven] == 2 and db.total_spend[seven] == pytest.approx(11 + 12 + 13 + 14)


def test_simulated_store_matches_the_python_path(engine):
    rng = np.random.default_rng(7)
    n_orders, start = 4000, 19000
    now = at(20000)
    customers = rng.integers(1, 400, n_orders)
    days = start + rng.integers(0, 300, n_orders)
    hours = rng.choice([0.0, 0.5, 12, 23.99], n_orders)
    subtotal = np.round(rng.gamma(2, 30, n_orders), 2) * (rng.random(n_orders) > 0.05)
    refunded = np.where(rng.random(n_orders) < 0.1, np.round(subtotal * rng.choice([0.5, 1, 1.5], n_orders), 2), 0)
    cancelled = rng.random(n_orders) < 0.05
    test = rng.random(n_orders) < 0.02
    with engine.begin() as conn:
        conn.execute(insert(t.customers), [{"id": i, "tags": [], "created_at": now, "updated_at": now}
                                           for i in range(1, 400)])
        conn.execute(insert(t.orders), [
            order(k + 1, int(c), at(d, h), f"{s:.2f}", refunded=Decimal(f"{r:.2f}"), test=bool(te),
                  cancelled_at=at(d + 3) if ca else None)
            for k, (c, d, h, s, r, ca, te) in enumerate(zip(customers, days, hours, subtotal, refunded, cancelled,
                                                             test))])
    for cal, hold in [(19200, 19299), (19150, None), (19000, 19100)]:
        assert_same(summarize_store(engine, calibration_end=cal, holdout_end=hold), python_path(engine, cal, hold))


def test_empty_store_and_bad_periods_are_clear_errors(engine):
    with pytest.raises(DataError, match="no order on or before 2022-01-01"):
        summarize_store(engine, calibration_end=18993)
    with pytest.raises(DataError, match="holdout must end after"):
        summarize_store(engine, calibration_end=19000, holdout_end=19000)

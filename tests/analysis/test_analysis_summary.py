import numpy as np
import pytest

from retention_plugin.analysis.dates import DateError, parse_day, to_days
from retention_plugin.analysis.summary import DataError, read_transactions_csv, summarize


def test_same_day_purchases_collapse_and_repeat_spend_excludes_first():
    ids = [1, 1, 1, 1, 2, 3, 3]
    dates = ["2024-01-01", "2024-01-01", "2024-01-08", "2024-01-22", "2024-01-15", "2024-01-20", "2024-01-29"]
    amounts = [10, 5, 20, 40, 7, 3, 100]
    s = summarize(ids, dates, amounts, calibration_end="2024-01-29", time_unit="days")
    assert s.customer_ids.tolist() == [1, 2, 3]
    assert s.x.tolist() == [2, 0, 1]  # customer 1: three distinct days, two repeats
    assert s.t_x.tolist() == [21, 0, 9]
    assert s.T.tolist() == [28, 14, 9]
    assert s.monetary.tolist() == [30, 0, 100]  # (20 + 40) / 2; the 15 of day one is not a repeat
    assert s.total_spend.tolist() == [75, 7, 103]


def test_weeks_and_cutoff_and_holdout():
    ids = [1, 1, 1, 2, 2, 4]
    dates = ["20240101", "20240115", "20240301", "20240108", "20240108", "20240201"]
    s = summarize(ids, dates, None, calibration_end="2024-01-29", holdout_end="2024-03-31")
    # Customer 4's first purchase is after the cut-off: not in the calibration population.
    assert s.customer_ids.tolist() == [1, 2]
    assert s.x.tolist() == [1, 0]
    np.testing.assert_allclose(s.t_x, [2, 0])
    np.testing.assert_allclose(s.T, [4, 3])
    assert s.holdout_x.tolist() == [1, 0]
    assert s.holdout_length == pytest.approx(62 / 7)


def test_summary_reproduces_the_published_cdnow_summary(cdnow_summary, cdnow_published_summary):
    s, ref = cdnow_summary, cdnow_published_summary
    assert len(s) == 2357
    assert (s.customer_ids == ref["ID"]).all()
    np.testing.assert_array_equal(s.x, ref["x"])
    np.testing.assert_allclose(s.t_x, ref["t_x"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(s.T, ref["T"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(s.monetary, ref["zbar"], atol=0.005 + 1e-9)


def test_string_and_integer_ids_give_the_same_summary():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 300, 3000)
    days = rng.integers(19000, 19400, 3000)
    amt = rng.gamma(2, 10, 3000)
    a = summarize(ids, days, amt, calibration_end=19300, holdout_end=19399)
    b = summarize(ids.astype(str), days, amt, calibration_end=19300, holdout_end=19399)
    order = np.argsort(b.customer_ids.astype(int))
    assert (a.customer_ids == b.customer_ids.astype(int)[order]).all()
    for f in ("x", "t_x", "T", "monetary", "holdout_x"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f)[order])


def test_dates_in_every_accepted_form():
    assert to_days(["1970-01-02", "19700102", "1970-01-02T23:59:00+02:00", "1970-01-02 10:00"]).tolist() == [1] * 4
    assert parse_day("2024-02-29") - parse_day("2024-02-28") == 1
    for bad in ["2024-02-30", "20241301", "02/01/2024", "yesterday", ""]:
        with pytest.raises(DateError):
            to_days([bad])


def _write(tmp_path, text):
    p = tmp_path / "tx.csv"
    p.write_text(text)
    return p


def test_csv_errors_name_the_column_and_line(tmp_path):
    p = _write(tmp_path, "cust,when,value\n1,2024-01-01,10\n2,2024-01-40,5\n")
    with pytest.raises(DataError, match="'when'.*line 3") as e:
        read_transactions_csv(p, customer_col="cust", date_col="when", amount_col="value")
    assert e.value.column == "when"
    with pytest.raises(DataError, match="column 'customer_id' not found.*cust, when, value"):
        read_transactions_csv(p)
    p = _write(tmp_path, "cust,when,value\n1,2024-01-01,ten\n")
    with pytest.raises(DataError, match="'value' on line 2.*'ten'"):
        read_transactions_csv(p, customer_col="cust", date_col="when", amount_col="value")


def test_csv_keeps_leading_zero_ids_distinct(tmp_path):
    p = _write(tmp_path, "customer_id,date\n007,2024-01-01\n7,2024-01-02\n")
    tx = read_transactions_csv(p)
    assert sorted(tx.customer_ids.tolist()) == ["007", "7"]
    assert tx.amounts.tolist() == [0, 0]


def test_a_summary_without_spend_has_the_same_counts_and_no_spend(tmp_path):
    from retention_plugin.analysis.summary import read_transactions_csv, summarize_transactions

    rng = np.random.default_rng(9)
    p = tmp_path / "tx.csv"
    p.write_text("customer_id,date,amount\n" + "".join(
        f"{rng.integers(1, 300)},{np.datetime64('2024-01-01') + int(rng.integers(0, 200))},{rng.gamma(2, 9):.2f}\n"
        for _ in range(3000)))
    tx = read_transactions_csv(p)
    full = summarize_transactions(tx, calibration_end=19800, holdout_end=19900, time_unit="days")
    lean = summarize_transactions(tx, calibration_end=19800, holdout_end=19900, time_unit="days", spend=False)
    for f in ("customer_ids", "x", "t_x", "T", "first_day", "last_day", "holdout_x"):
        np.testing.assert_array_equal(getattr(lean, f), getattr(full, f))
    assert lean.monetary is None and lean.total_spend is None and lean.holdout_spend is None
    assert full.monetary is not None and len(lean.select(lean.x > 0)) == int((full.x > 0).sum())

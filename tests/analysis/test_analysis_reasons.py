import numpy as np
import pytest

from .analysis_hazardsim import simulate_complaints
from .analysis_simstore import simulate_store
from retention_plugin.analysis.hazard import HazardSettings, adjusted_model, person_periods
from retention_plugin.analysis.history import History, Orders, Refunds
from retention_plugin.analysis.reasons import reasons_table, why_they_left
from retention_plugin.analysis.signals import amounts_known_at, compute_signals
from retention_plugin.analysis.stats import relative_risk

DAY = 86400.0


@pytest.fixture(scope="module")
def slow_reply_store():
    history, _ = simulate_store(n=20000, seed=7, slow_reply_effect=3.0, annual_leave=0.3)
    return history, why_they_left(history, window_days=90)


def test_simulated_slow_replies_rank_first_with_an_interval_above_one(slow_reply_store):
    history, res = slow_reply_store
    first = res["rows"][0]
    assert first["signal"] == "slow_first_reply"
    assert first["ci_low"] > 1 and first["significant"] and first["q_value"] < 0.001
    assert first["customers_with"] >= 100 and first["customers_with"] + first["customers_without"] == res["customers"]
    # Signals with no effect in the simulation are not claimed: categories.
    cat_rows = [r for r in res["rows"] if r["signal"].startswith("last_category:")]
    assert cat_rows and all(r["ci_low"] < 1.25 and not r["significant"] for r in cat_rows)
    adj = res["adjusted"]
    assert adj["fitted"]
    slow = next(c for c in adj["signals"] if c["signal"] == "slow_first_reply")
    assert slow["ci_low"] > 1 and slow["significant"]


def test_adjustment_undoes_the_frequency_confound_of_refunds_and_late_deliveries(slow_reply_store):
    """Refunds and late deliveries have no effect in the simulation, but they happen at orders, so
    frequent buyers (rarely lost) have more of them: raw, they look protective; adjusted for
    frequency and the rest, the interval covers 1 and nothing is claimed."""
    _, res = slow_reply_store
    raw = {r["signal"]: r for r in res["rows"]}
    adj = {r["signal"]: r for r in res["adjusted"]["signals"]}
    for name in ("refund", "late_fulfilment"):
        assert raw[name]["ci_high"] < 1 and raw[name]["significant"]
        assert adj[name]["ci_low"] < 1 < adj[name]["ci_high"] and not adj[name]["significant"]
    assert {c["name"] for c in res["adjusted"]["controls"]} >= {"recency", "frequency", "tenure", "spend"}
    assert "not causes" in res["adjusted"]["wording"] and "not causes" in res["wording"]


def test_without_the_effect_slow_replies_are_not_singled_out():
    history, _ = simulate_store(n=20000, seed=7, slow_reply_effect=1.0, annual_leave=0.3)
    res = why_they_left(history, window_days=90)
    slow = next(r for r in res["rows"] if r["signal"] == "slow_first_reply")
    assert slow["ci_low"] < 1.2 and slow["rank"] != 1
    adj = next(r for r in res["adjusted"]["signals"] if r["signal"] == "slow_first_reply")
    assert not adj["significant"]


def test_relative_risk_log_interval_and_haldane():
    r = relative_risk(30, 100, 10, 100)
    assert r["rr"] == pytest.approx(3.0)
    se = np.sqrt(1 / 30 - 1 / 100 + 1 / 10 - 1 / 100)
    assert r["ci_low"] == pytest.approx(3 * np.exp(-1.959964 * se), rel=1e-5)
    assert r["p_value"] == pytest.approx(2 * (1 - __import__("scipy").stats.norm.cdf(np.log(3) / se)), rel=1e-6)
    assert not r["corrected"]
    z = relative_risk(0, 20, 10, 100)
    assert z["corrected"] and z["rr"] == pytest.approx((0.5 / 21) / (10.5 / 101))
    assert np.isfinite(z["ci_high"])


def test_small_signals_are_shown_but_not_ranked_and_q_values_control_the_false_discovery_rate():
    lost = np.array([True] * 30 + [False] * 70)
    signals = {"rare": np.arange(100) < 3, "common": np.arange(100) < 50, "none": np.arange(100) % 2 == 0}
    rows = reasons_table(lost, signals)
    assert [r["signal"] for r in rows][-1] == "rare"
    assert rows[-1]["rank"] is None and rows[-1]["q_value"] is None and rows[0]["rank"] == 1
    ranked = sorted((r for r in rows if r["ranked"]), key=lambda r: r["p_value"])
    qs = [r["q_value"] for r in ranked]
    assert all(q >= r["p_value"] for q, r in zip(qs, ranked)) and qs == sorted(qs)


def test_plugin_signals_join_the_table_and_say_their_timing_is_unchecked():
    history, _ = simulate_store(n=3000, seed=1)
    res = why_they_left(history, extra_signals={"vip": {1, 2, 3, 4, 5}})
    row = next(r for r in res["rows"] if r["signal"] == "hook:vip")
    assert row["customers_with"] <= 5 and "from a plugin" in row["label"] and "not checked" in row["timing"]


# --- no leakage ----------------------------------------------------------------------------------


def _one_order_history(fulfil_days=None, fulfil_known=None, refunds=None):
    orders = Orders.build(customer=[1, 2], day=[100, 100], amount=[50.0, 50.0],
                          fulfil_days=fulfil_days, fulfil_known=fulfil_known)
    return History(as_of=200, orders=orders, refunds=refunds or Refunds.build())


def test_late_fulfilment_uses_only_fulfilments_known_by_the_cut_off():
    h = _one_order_history(fulfil_days=[10.0, 1.0])  # customer 1's order shipped on day 110
    ids = np.array([1, 2])
    # On day 103 the order had waited 3 days: not late yet, whatever happened later.
    assert compute_signals(h, ids, 103)["late_fulfilment"].tolist() == [0.0, 0.0]
    # On day 107 it had waited 7 days (still unshipped): late, known then.
    assert compute_signals(h, ids, 107)["late_fulfilment"].tolist() == [1.0, 0.0]
    assert compute_signals(h, ids, 150)["late_fulfilment"].tolist() == [1.0, 0.0]


def test_orders_without_fulfilment_data_are_unknown_not_late():
    h = _one_order_history(fulfil_days=[np.nan, np.nan], fulfil_known=[False, True])
    got = compute_signals(h, np.array([1, 2]), 150)["late_fulfilment"]
    # Customer 1: no fulfilment data at all (an import): unknown. Customer 2: known to be unshipped for 50 days.
    assert np.isnan(got[0]) and got[1] == 1.0
    rows = reasons_table(np.array([True, False]), {"late_fulfilment": got}, min_count=1)
    assert rows[0]["customers_unknown"] == 1 and rows[0]["customers_with"] == 1 and rows[0]["customers_without"] == 0
    # Building Orders without fulfilment data at all: every customer unknown, none late.
    bare = History(as_of=200, orders=Orders.build([1, 2], [100, 101], [5.0, 5.0]))
    assert np.isnan(compute_signals(bare, np.array([1, 2]), 150)["late_fulfilment"]).all()


def test_fulfilment_is_known_from_a_time_or_a_waiting_status_only():
    from datetime import datetime, timezone

    from retention_plugin.analysis.store import fulfilment_known

    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert fulfilment_known(now, "fulfilled", "import")
    assert not fulfilment_known(None, None, "import")  # an import without fulfilment columns
    assert not fulfilment_known(None, "fulfilled", "import")  # fulfilled, but when is not known
    assert fulfilment_known(None, "unfulfilled", "import") and fulfilment_known(None, None, "webhook")


def test_refunds_are_counted_when_they_happened():
    refund = Refunds.build(customer=[1], time=[150 * DAY], amount=[20.0], order_day=[100])
    h = _one_order_history(refunds=refund)
    h.orders.amount[:] = [30.0, 50.0]  # as stored: net of the refund made on day 150
    assert amounts_known_at(h, 120).tolist() == [50.0, 50.0]  # on day 120 nobody knew of it
    assert amounts_known_at(h, 160).tolist() == [30.0, 50.0]
    assert compute_signals(h, np.array([1, 2]), 120)["refund"].tolist() == [False, False]
    assert compute_signals(h, np.array([1, 2]), 160)["refund"].tolist() == [True, False]


def test_the_adjusted_model_sees_spend_and_signals_as_they_were_at_each_period_start():
    st = HazardSettings(period_days=7, max_periods=26)
    history, _ = simulate_complaints(n=600, seed=2)
    before = person_periods(history, st)
    # The same store, but customer 1's first order was refunded in full the day before as_of:
    # stored net of the refund, with the refund on record. No period started after it.
    o = history.orders
    first = int(np.flatnonzero(o.customer == 1)[0])
    history.refunds = Refunds.build([1], [(history.as_of - 1) * DAY], [o.amount[first]], [o.day[first]])
    o.amount[first] = 0.0
    after = person_periods(history, st)
    spend = before.names.index("spend")
    np.testing.assert_array_equal(before.X[:, spend], after.X[:, spend])
    np.testing.assert_array_equal(before.X[:, before.names.index("refund")] if "refund" in before.names else 0,
                                  after.X[:, after.names.index("refund")] if "refund" in after.names else 0)
    # A complaint counts only from the first period that starts after it was made.
    comp = after.X[:, after.names.index("complaint")]
    start_day = after.start
    t = history.tickets
    made = dict(zip(t.customer.tolist(), t.created.tolist()))
    uids = np.unique(o.customer)
    complained_by = np.array([made.get(int(uids[c]), np.inf) for c in after.customer]) < (start_day + 1) * DAY
    assert comp.any() and np.array_equal(comp > 0, complained_by)


# --- the planted cause ---------------------------------------------------------------------------


def _coverage(runs: int, n: int) -> tuple[int, list]:
    covered, estimates = 0, []
    for seed in range(runs):
        history, _ = simulate_complaints(n=n, seed=seed, rate_ratio=2.0)
        res = adjusted_model(history)
        assert res["fitted"], res.get("reason")
        c = next(r for r in res["signals"] if r["signal"] == "complaint")
        covered += c["ci_low"] <= 2.0 <= c["ci_high"]
        estimates.append(c["rate_ratio"])
    return covered, estimates


def test_planted_complaint_effect_is_recovered():
    """Fast version of the coverage run: a few simulated stores, each with its own draw."""
    covered, estimates = _coverage(5, 1500)
    assert covered >= 4
    assert np.exp(np.mean(np.log(estimates))) == pytest.approx(2.0, rel=0.15)


@pytest.mark.slow
def test_planted_complaint_effect_interval_covers_the_truth_in_90_of_100_runs(slow_run):
    covered, estimates = _coverage(100, 2000)
    assert covered >= 90, (covered, np.round(estimates, 2))

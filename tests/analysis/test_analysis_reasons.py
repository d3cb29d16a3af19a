import numpy as np
import pytest

from .analysis_simstore import simulate_store
from retention_plugin.analysis.reasons import multivariate, reasons_table, why_they_left
from retention_plugin.analysis.stats import relative_risk


def test_simulated_slow_replies_rank_first_with_an_interval_above_one():
    history, truth = simulate_store(n=20000, seed=7, slow_reply_effect=3.0, annual_leave=0.3)
    res = why_they_left(history, window_days=90)
    first = res["rows"][0]
    assert first["signal"] == "slow_first_reply"
    assert first["ci_low"] > 1
    assert first["customers_with"] >= 100 and first["customers_with"] + first["customers_without"] == res["customers"]
    # Signals with no effect in the simulation are not claimed: refunds and categories.
    cat_rows = [r for r in res["rows"] if r["signal"].startswith("last_category:")]
    assert cat_rows and all(r["ci_low"] < 1.25 for r in cat_rows)
    mv = res["multivariate"]
    assert mv["fitted"]
    slow = next(c for c in mv["coefficients"] if c["signal"] == "slow_first_reply")
    assert slow["ci_low"] > 1


def test_without_the_effect_slow_replies_are_not_singled_out():
    history, _ = simulate_store(n=20000, seed=7, slow_reply_effect=1.0, annual_leave=0.3)
    res = why_they_left(history, window_days=90)
    slow = next(r for r in res["rows"] if r["signal"] == "slow_first_reply")
    assert slow["ci_low"] < 1.2 and slow["rank"] != 1


def test_relative_risk_log_interval_and_haldane():
    r = relative_risk(30, 100, 10, 100)
    assert r["rr"] == pytest.approx(3.0)
    se = np.sqrt(1 / 30 - 1 / 100 + 1 / 10 - 1 / 100)
    assert r["ci_low"] == pytest.approx(3 * np.exp(-1.959964 * se), rel=1e-5)
    assert not r["corrected"]
    z = relative_risk(0, 20, 10, 100)
    assert z["corrected"] and z["rr"] == pytest.approx((0.5 / 21) / (10.5 / 101))
    assert np.isfinite(z["ci_high"])


def test_small_signals_are_shown_but_not_ranked_and_hook_signals_count():
    lost = np.array([True] * 30 + [False] * 70)
    signals = {"rare": np.arange(100) < 3, "common": np.arange(100) < 50}
    rows = reasons_table(lost, signals)
    assert [r["signal"] for r in rows] == ["common", "rare"]
    assert rows[1]["rank"] is None and rows[0]["rank"] == 1
    assert multivariate(lost, signals)["fitted"] is False


def test_plugin_signals_join_the_table():
    history, _ = simulate_store(n=3000, seed=1)
    res = why_they_left(history, extra_signals={"vip": {1, 2, 3, 4, 5}})
    row = next(r for r in res["rows"] if r["signal"] == "hook:vip")
    assert row["customers_with"] <= 5 and "from a plugin" in row["label"]

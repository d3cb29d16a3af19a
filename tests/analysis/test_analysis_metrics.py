import itertools

import numpy as np
import pytest

from retention_plugin.analysis.evaluate import BASELINE, evaluate
from retention_plugin.analysis.dates import parse_day
from retention_plugin.analysis.metrics import (auc, brier, compare_auc, correlation, decile_table, delong,
                                               isotonic_fit, reliability)
from retention_plugin.analysis.summary import summarize


def brute_auc(score, y):
    pos, neg = score[y], score[~y]
    pairs = [(1.0 if p > q else 0.5 if p == q else 0.0) for p, q in itertools.product(pos, neg)]
    return float(np.mean(pairs))


def test_auc_known_answers():
    y = np.array([0, 0, 1, 1], bool)
    assert auc([0.1, 0.2, 0.8, 0.9], y) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], y) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], y) == 0.5
    # One discordant pair out of four.
    assert auc([0.1, 0.85, 0.8, 0.9], y) == 0.75


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    score = rng.integers(0, 6, 120).astype(float)
    y = rng.random(120) < 0.3 + 0.08 * score
    assert auc(score, y) == pytest.approx(brute_auc(score, y), abs=1e-12)


def test_delong_variance_matches_the_spread_of_resampled_aucs():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.random(n) < 0.4
    score = y + rng.normal(0, 1.2, n)
    aucs, cov = delong([score], y)
    boot = []
    for _ in range(400):
        i = rng.integers(0, n, n)
        boot.append(auc(score[i], y[i]))
    assert np.sqrt(cov[0, 0]) == pytest.approx(np.std(boot), rel=0.2)


def test_compare_auc_detects_a_better_score_and_not_a_copy():
    rng = np.random.default_rng(2)
    n = 3000
    y = rng.random(n) < 0.5
    good = y + rng.normal(0, 0.8, n)
    weak = y + rng.normal(0, 2.0, n)
    c = compare_auc(good, weak, y)
    assert c["difference"] > 0 and c["ci_low"] > 0
    same = compare_auc(good, good * 2 + 1, y)  # a monotone transform ranks identically
    assert same["difference"] == 0 and same["p_value"] == 1.0


def test_decile_table_and_isotonic():
    rng = np.random.default_rng(3)
    p = rng.random(5000)
    y = rng.random(5000) < p
    rows = decile_table(p, y, predicted=p)
    assert len(rows) == 10 and sum(r["n"] for r in rows) == 5000
    for r in rows:
        assert r["observed"] == pytest.approx(r["predicted"], abs=0.06)
    knots, fitted = isotonic_fit(p, y)
    assert (np.diff(fitted) >= 0).all()
    assert np.interp(0.1, knots, fitted) < np.interp(0.9, knots, fitted)


def _paced_store(rng, n, start, first_id):
    """Weekly and four-monthly buyers, all silent for the same ~30 days at the cut-off; 30% then leave."""
    ids, days = [], []
    cal_end, hold_end = start + 364, start + 364 + 91
    for c in range(n):
        gap = 7 if c % 2 else 120
        first = start + int(rng.integers(0, 60))
        k = np.arange(first, cal_end - 30, gap)  # everyone last bought ~30 days before the cut-off
        k = np.append(k, cal_end - 30 - int(rng.integers(0, 3)))
        if rng.random() >= 0.3:
            k = np.append(k, np.arange(cal_end - 30, hold_end, gap)[1:] + int(rng.integers(0, 3)))
        ids += [first_id + c] * len(k)
        days += k.tolist()
    return ids, days, cal_end, hold_end


def test_evaluate_prefers_a_model_when_recency_hides_frequency():
    """Customers silent equally long but with very different habits: only a model can tell them apart.

    The choice is made on an earlier cohort (its window ends before the later one starts) and
    judged on the later cohort, which played no part in it.
    """
    rng = np.random.default_rng(4)
    i1, d1, cal1, hold1 = _paced_store(rng, 2000, 19000, 0)
    i2, d2, cal2, hold2 = _paced_store(rng, 2000, hold1 + 1, 100000)
    ids, days = np.array(i1 + i2), np.array(d1 + d2)
    early = summarize(ids, days, None, calibration_end=cal1, holdout_end=hold1, time_unit="days")
    late = summarize(ids, days, None, calibration_end=cal2, holdout_end=hold2, time_unit="days")
    early, late = early.select(early.customer_ids < 100000), late.select(late.customer_ids >= 100000)
    res = evaluate(late, model_names=("pnbd",), selection=[early])
    assert res["chosen"]["on_evidence"] and res["chosen"]["score"] != BASELINE
    assert res["chosen"]["beats_baseline"] and res["chosen"]["ci_low"] > 0
    assert "it beats the days-since-last-purchase baseline" in res["chosen"]["verdict"]
    assert "played no part in the choice" in res["chosen"]["verdict"]


def test_cdnow_evaluation_chooses_on_earlier_cut_offs_and_reports_on_the_paper_split(cdnow_transactions):
    """The paper's split (calibration to week 39, holdout weeks 40-78); the choice is made on
    windows ending at week 39, so the holdout judges a choice it did not make."""
    from retention_plugin.analysis.evaluate import rolling_evaluation

    ids, dates, amounts = cdnow_transactions
    cal, hold = parse_day("1997-09-30"), parse_day("1998-06-30")
    seen = []

    def at(c, e):
        seen.append((c, e))
        return summarize(ids, dates, amounts, calibration_end=c, holdout_end=e, time_unit="weeks")

    ev = rolling_evaluation(at, cal, hold, origins=3, step_days=91)
    res = ev.result
    assert all(e <= cal for c, e in seen[:-1]) and seen[-1] == (cal, hold)
    assert [w["calibration_end"] for w in res["selection"]] == ["1997-07-01", "1997-04-01"]
    assert res["skipped_origins"][0]["calibration_end"] == "1996-12-31"  # before the first purchase
    ch = res["chosen"]
    # The choice is the best mean AUC over the earlier windows, whatever the holdout says.
    means = {c["score"]: c["selection_auc"] for c in res["candidates"]}
    assert ch["score"] == max(means, key=means.get) and ch["on_evidence"]
    # Pareto/NBD expected purchases is a candidate, and on the paper's split scores 0.779.
    pe = next(c for c in res["candidates"] if c["score"] == "pnbd.expected_purchases")
    assert round(pe["auc"], 3) == 0.779
    assert ch["auc"] == pytest.approx(next(c["auc"] for c in res["candidates"] if c["score"] == ch["score"]))
    assert (ch["beats_baseline"] is True) == (ch["difference"] > 0)
    # The paper's correlation of predicted and actual holdout purchases (Fader, Hardie & Lee 2005).
    assert round(res["models"]["bgnbd"]["correlation"], 3) == 0.626
    assert round(res["models"]["pnbd"]["correlation"], 3) == 0.630
    # BG/NBD's P(alive) is 1 for every one-time buyer, so as a lost score it ranks them as the safest.
    assert res["models"]["bgnbd"]["auc"]["p_dead"] < res["models"]["pnbd"]["auc"]["p_dead"]
    assert len(res["calibration"]["pnbd"]) == 10
    for name in ("bgnbd", "pnbd"):
        b = res["models"][name]["brier"]
        assert 0 < b["brier"] < b["reference"] and b["skill"] > 0
        assert sum(r["n"] for r in res["reliability"][name]) == res["customers"]


def test_a_selection_window_reaching_into_the_holdout_is_refused(cdnow_summary):
    from retention_plugin.analysis.evaluate import rolling_evaluation

    s = cdnow_summary
    with pytest.raises(ValueError, match="must end by the final calibration cut-off"):
        rolling_evaluation(lambda c, e: s, s.calibration_end, s.holdout_end,
                           origins=[(s.calibration_end - 10, s.calibration_end + 1)])


def test_brier_and_reliability_known_answers():
    y = np.array([1, 0, 1, 0], bool)
    b = brier([1.0, 0.0, 0.5, 0.5], y)
    assert b["brier"] == pytest.approx(0.125) and b["reference"] == pytest.approx(0.25) and b["skill"] == 0.5
    rows = reliability([0.05, 0.05, 0.95, 0.95, 0.95], np.array([0, 0, 1, 1, 0], bool))
    assert [(r["n"], r["observed"]) for r in rows] == [(2, 0.0), (3, pytest.approx(2 / 3))]
    assert rows[0]["observed_low"] == 0 and 0 < rows[0]["observed_high"] < 1
    assert correlation([1, 1, 1], [1, 2, 3]) is None
    # Every customer in one bin with the same outcome: the curve still draws (Wilson's bound at the rate itself).
    from retention_plugin.analysis.charts import reliability_plot

    for y in (np.ones(7, bool), np.zeros(7, bool), np.arange(30) % 3 == 0):
        assert reliability_plot({"m": reliability(np.full(len(y), 0.43), y)})


def test_auc_comparison_on_tiny_data_is_not_enough_data_never_nan_or_wider_than_possible():
    y = np.array([True, True, False, False, False])
    c = compare_auc([0.9, 0.8, 0.1, 0.2, 0.3], [0.1, 0.2, 0.9, 0.8, 0.7], y)
    assert c["difference"] is None and c["ci_low"] is None and "not enough data" in c["reason"]
    rng = np.random.default_rng(9)
    for n in (20, 25, 30):  # just enough cases: the interval may be wide but stays within [-1, 1]
        y = np.arange(n) % 2 == 0
        c = compare_auc(rng.random(n), rng.random(n), y)
        assert -1 <= c["ci_low"] <= c["difference"] <= c["ci_high"] <= 1

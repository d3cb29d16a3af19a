import itertools

import numpy as np
import pytest

from retention_plugin.analysis.evaluate import BASELINE, evaluate
from retention_plugin.analysis.metrics import auc, compare_auc, decile_table, delong, isotonic_fit
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


def test_evaluate_prefers_a_model_when_recency_hides_frequency():
    """Customers silent equally long but with very different habits: only a model can tell them apart."""
    rng = np.random.default_rng(4)
    n = 4000
    start = 19000
    ids, days = [], []
    cal_end, hold_end = start + 364, start + 364 + 91
    for c in range(n):
        gap = 7 if c % 2 else 120  # weekly buyers and rare buyers
        first = start + int(rng.integers(0, 60))
        k = np.arange(first, cal_end - 30, gap)  # everyone last bought ~30 days before the cut-off
        k = np.append(k, cal_end - 30 - int(rng.integers(0, 3)))
        leaves = rng.random() < 0.3
        if not leaves:
            k = np.append(k, np.arange(cal_end - 30, hold_end, gap)[1:] + int(rng.integers(0, 3)))
        ids += [c] * len(k)
        days += k.tolist()
    s = summarize(np.array(ids), np.array(days), None, calibration_end=cal_end, holdout_end=hold_end, time_unit="days")
    res = evaluate(s, model_names=("pnbd",))
    assert res["chosen"]["score"] != BASELINE
    assert res["chosen"]["beats_baseline"] and res["chosen"]["ci_low"] > 0
    assert "beats the days-since-last-purchase baseline" in res["chosen"]["verdict"]


def test_cdnow_evaluation_states_plainly_whether_the_lost_score_beats_the_baseline(cdnow_summary):
    res = evaluate(cdnow_summary)
    ch = res["chosen"]
    base = res["baseline"]["auc"]
    best_model = max(v for c in res["candidates"] if c["score"] != BASELINE for v in [c["auc"]])
    assert res["candidates"][0]["auc"] == max(best_model, base)
    if ch["score"] == BASELINE:
        assert not ch["beats_baseline"] and ch["verdict"].startswith("No model beats")
    else:
        assert ch["beats_baseline"] and ch["auc"] > base
    # BG/NBD's P(alive) is 1 for every one-time buyer, so as a lost score it ranks them as the safest.
    assert res["models"]["bgnbd"]["auc"]["p_dead"] < res["models"]["pnbd"]["auc"]["p_dead"]
    assert len(res["calibration"]["pnbd"]) == 10

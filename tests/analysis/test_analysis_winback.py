import pytest

from retention_plugin.analysis.stats import newcombe_difference, wilson
from retention_plugin.analysis.winback import assign_group, lift


def test_assignment_is_deterministic_and_holds_out_about_ten_percent():
    groups = [assign_group(i) for i in range(20000)]
    assert groups == [assign_group(i) for i in range(20000)]
    share = groups.count("holdout") / len(groups)
    assert 0.09 < share < 0.11
    assert [assign_group(i, seed="other") for i in range(200)] != groups[:200]


def test_newcombe_and_wilson_match_published_examples():
    # Newcombe (1998), Table II, example (a): 56/70 vs 48/80.
    d = newcombe_difference(56, 70, 48, 80)
    assert (round(d["ci_low"], 4), round(d["ci_high"], 4)) == (0.0524, 0.3339)
    lo, hi = wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)


def test_lift_verdicts():
    up = lift(300, 900, 15, 100)
    assert up["offer"]["rate"] == pytest.approx(1 / 3) and up["lift"]["ci_low"] > 0
    assert "raised" in up["verdict"]
    flat = lift(90, 900, 10, 100)
    assert flat["lift"]["ci_low"] < 0 < flat["lift"]["ci_high"] and "No lift" in flat["verdict"]
    assert lift(5, 10, 0, 0)["lift"] is None

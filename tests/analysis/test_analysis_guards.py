"""Guards against silent nonsense: each refuses or flags what it cannot honestly compute."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from retention_plugin.analysis.commands import analyze
from retention_plugin.analysis.models import BGNBD, MBGNBD, GammaGamma, InsufficientData, ParetoNBD


def write_csv(path, rows, header="customer_id,date,amount"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def run(*args):
    res = CliRunner().invoke(analyze, [str(a) for a in args])
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
    return res


@pytest.fixture(scope="module")
def loyal_store(tmp_path_factory):
    """Customers who buy at a steady Poisson rate and never leave: nothing identifies a drop-out process."""
    rng = np.random.default_rng(3)
    rows = []
    start = np.datetime64("2022-01-01")
    for c in range(1500):
        first = int(rng.integers(0, 120))
        n = rng.poisson(rng.gamma(2, 1 / 4) * 60)
        days = np.unique(np.concatenate([[first], rng.integers(first, 480, n)]))
        rows += [(c, start + int(d), f"{rng.gamma(4, 10):.2f}") for d in days]
    return write_csv(tmp_path_factory.mktemp("loyal") / "orders.csv", rows)


# --- parameters at a bound, or not identified -----------------------------------------------------


def test_parameters_the_data_cannot_identify_are_not_converged_with_the_reason():
    rng = np.random.default_rng(3)
    T = rng.uniform(20, 52, 2000)
    lam = rng.gamma(2, 1 / 4, 2000)
    x = rng.poisson(lam * T).astype(float)
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), 1), 0)
    for cls in (BGNBD, MBGNBD, ParetoNBD):
        m = cls.fit(x, t_x, T)
        d = m.to_dict()
        assert d["converged"] is False, cls.name
        assert "do not identify" in d["reason"]
        # Only the identified parameters keep an interval; no infinities leak into the JSON.
        assert d["standard_errors"]["r"] is None or np.isfinite(d["standard_errors"]["r"])
        json.dumps(d, allow_nan=False)


def test_a_parameter_on_the_optimiser_bound_is_not_converged():
    # Three identical repeat buyers: the likelihood grows without end as the heterogeneity vanishes.
    m = BGNBD.fit([2, 2, 2], [10, 10, 10], [20, 20, 20], min_repeat_buyers=1)
    assert not m.fit_result.converged
    assert "bound" in m.fit_result.message and "do not identify" in m.fit_result.message


def test_fit_command_reports_not_converged_with_the_reason(loyal_store):
    res = run("fit", "--transactions", loyal_store, "--calibration-end", "2023-03-31", "--model", "pnbd", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["converged"] is False and "do not identify" in out["reason"]
    res = run("fit", "--transactions", loyal_store, "--calibration-end", "2023-03-31", "--model", "pnbd")
    assert "not converged" in res.output and "do not identify" in res.output


# --- too little data ----------------------------------------------------------------------------


def test_too_few_repeat_buyers_is_a_clear_error():
    with pytest.raises(InsufficientData, match="only 0 repeat buyers"):
        BGNBD.fit([0, 0, 0], [0, 0, 0], [3, 4, 5])
    with pytest.raises(InsufficientData, match="only 2 repeat buyers"):
        ParetoNBD.fit([0, 1, 2], [0, 1, 2], [3, 4, 5])
    with pytest.raises(InsufficientData, match="at least 5"):
        GammaGamma.fit([1, 2, 3], [10.0, 20.0, 30.0], min_repeat_buyers=5)


def test_too_few_repeat_buyers_through_the_command_line_and_the_minimum_is_configurable(tmp_path):
    p = write_csv(tmp_path / "o.csv", [(1, "2024-01-01", 10), (1, "2024-02-01", 12), (2, "2024-01-05", 9),
                                       (3, "2024-01-07", 9), (3, "2024-03-01", 9), (3, "2024-04-01", 9)])
    res = run("fit", "--transactions", p, "--calibration-end", "2024-04-01", "--model", "bgnbd")
    assert res.exit_code == 2
    assert "only 2 repeat buyers" in res.output and "--min-repeat-buyers" in res.output
    res = run("fit", "--transactions", p, "--calibration-end", "2024-04-01", "--model", "bgnbd",
              "--min-repeat-buyers", "2", "--json")
    assert res.exit_code == 0, res.output
    # Three customers do fit when asked, but the result says it cannot be trusted.
    assert json.loads(res.output)["converged"] is False


# --- amounts of zero or less ----------------------------------------------------------------------


def test_non_positive_amounts_are_excluded_from_the_spend_model_and_counted(tmp_path):
    rng = np.random.default_rng(5)
    rows, clean = [], []
    for c in range(300):
        days = np.sort(rng.choice(np.arange(200), size=int(rng.integers(1, 6)), replace=False))
        for d in days:
            r = (c, str(np.datetime64("2024-01-01") + int(d)), f"{rng.gamma(5, 8):.2f}")
            rows.append(r)
            clean.append(r)
        if c % 10 == 0:  # a free order, and a return written as a negative row, on days of their own
            rows.append((c, str(np.datetime64("2024-01-01") + 201), "0.00"))
            rows.append((c, str(np.datetime64("2024-01-01") + 202), "-25.00"))
    for r in (rows, clean):  # one last order on the cut-off day in both files
        r.append((999, "2024-07-31", "10.00"))
    dirty, ok = write_csv(tmp_path / "dirty.csv", rows), write_csv(tmp_path / "clean.csv", clean)
    args = ("--calibration-end", "2024-07-31", "--model", "gg", "--json", "--min-repeat-buyers", "5")
    d = json.loads(run("fit", "--transactions", dirty, *args).output)
    c = json.loads(run("fit", "--transactions", ok, *args).output)
    assert d["negative_amount_transactions"] == 30 and d["zero_amount_transactions"] == 30
    assert d["excluded_non_positive_transactions"] == 30  # the zeros; the negatives are not purchases at all
    assert d["params"] == pytest.approx(c["params"], rel=1e-9)
    # Count models: the free order is a visit, the negative row is not a purchase.
    b = json.loads(run("fit", "--transactions", dirty, "--calibration-end", "2024-07-31", "--model", "bgnbd",
                       "--json").output)
    assert b["repeat_purchases"] == len(clean) - 301 + 30


# --- cut-offs outside the data ---------------------------------------------------------------------


def test_cut_offs_past_the_data_are_errors_naming_the_last_date(tmp_path):
    p = write_csv(tmp_path / "o.csv", [(c, f"2024-0{1 + c % 3}-1{c % 10}", 10) for c in range(60)])
    res = run("fit", "--transactions", p, "--calibration-end", "2024-06-30", "--model", "bgnbd")
    assert res.exit_code == 2 and "--calibration-end" in res.output and "2024-03-19" in res.output
    res = run("evaluate", "--transactions", p, "--calibration-end", "2024-02-15", "--holdout-end", "2024-12-31")
    assert res.exit_code == 2 and "--holdout-end" in res.output and "2024-03-19" in res.output


# --- tiny holdouts ----------------------------------------------------------------------------------


def test_a_tiny_holdout_says_not_enough_data_instead_of_nan(tmp_path):
    rows = []
    for c in range(40):  # enough repeat buyers to fit, too few customers to judge a score
        rows += [(c, "2024-01-0%d" % (1 + c % 5), 10), (c, "2024-02-1%d" % (c % 10), 12)]
    rows += [(0, "2024-03-20", 10), (1, "2024-03-21", 10)]
    p = write_csv(tmp_path / "o.csv", rows)
    res = run("evaluate", "--transactions", p, "--calibration-end", "2024-03-01", "--holdout-end", "2024-03-21")
    assert res.exit_code == 0, res.output
    assert "not enough data" in res.output
    assert "nan" not in res.output.lower()
    res = run("evaluate", "--transactions", p, "--calibration-end", "2024-03-01", "--holdout-end", "2024-03-21",
              "--json")
    out = json.loads(res.output)
    assert out["enough_data"] is False and out["chosen"]["auc"] is None
    assert all(c["auc"] is None for c in out["candidates"])
    assert "cannot be judged" in out["chosen"]["verdict"]

"""BG/NBD without scipy: rising-factorial sums, the analytic Hessian, Newton's method, and the
command's path from a CSV that never imports scipy. Every number is checked against the
scipy path it replaces."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import digamma, gammaln, polygamma

from retention_plugin.analysis.models import BGNBD
from retention_plugin.analysis.models._fit import aggregate, maximise, newton, observed_information
from retention_plugin.analysis.models.rising import rising
from retention_plugin.analysis.models.simulate import simulate_bgnbd
from retention_plugin.analysis.summary import summarize


@pytest.mark.parametrize("c", [1e-3, 0.24, 1.0, 7.5, 3e4])
def test_rising_sums_are_the_log_gamma_differences(c):
    counts = np.array([0, 1, 2, 3, 10, 57, 400, 2500], dtype=float)
    lg, dg, tg = rising(c, counts)
    np.testing.assert_allclose(lg, gammaln(c + counts) - gammaln(c), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dg, digamma(c + counts) - digamma(c), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(tg, polygamma(1, c + counts) - polygamma(1, c), rtol=1e-11, atol=1e-12)
    # Counts that are not whole go to the special functions themselves.
    frac = np.array([0.5, 2.25])
    np.testing.assert_array_equal(rising(c, frac, 0)[0], gammaln(c + frac) - gammaln(c))


def simulated(seed=1, n=3000):
    rng = np.random.default_rng(seed)
    T = rng.integers(10 * 7, 60 * 7, n) / 7
    x, t_x = simulate_bgnbd({"r": 0.5, "alpha": 5, "a": 0.8, "b": 3}, T, rng, resolution=1 / 7)
    return x, t_x, T


@pytest.mark.parametrize("params", [[0.4, 6.0, 0.6, 2.5], [0.4, 6.0, 3.0, 0.5], [2.0, 0.5, 0.1, 0.2],
                                    [0.05, 80.0, 20.0, 90.0]])
def test_bgnbd_hessian_is_the_derivative_of_its_gradient(params):
    x, t_x, T = simulated()
    (x, t_x, T), w = aggregate([x, t_x, T])
    data = BGNBD._prepare(x, t_x, T, w)
    z = np.log(params)
    f, g, H = BGNBD._negloglik_derivatives(z, data, 2)
    assert f == BGNBD._negloglik_derivatives(z, data, 0) == BGNBD._negloglik(z, data)[0]
    np.testing.assert_array_equal(g, BGNBD._negloglik(z, data)[1])
    assert f == pytest.approx(-np.dot(w, BGNBD._loglik_each(dict(zip(BGNBD.param_names, params)), data)) / w.sum(),
                              rel=1e-13)
    eps = 1e-6
    num = np.array([(BGNBD._negloglik(z + e, data)[1] - BGNBD._negloglik(z - e, data)[1]) / (2 * eps)
                    for e in np.eye(4) * eps])
    np.testing.assert_allclose(H, num, rtol=1e-6, atol=1e-8 * np.abs(H).max())


def lbfgsb_fit(x, t_x, T):
    """The fit as it was before Newton's method: L-BFGS-B, and a Hessian by differences of the gradient."""
    (x, t_x, T), w = aggregate([x, t_x, T])
    data = BGNBD._prepare(x, t_x, T, w)
    objective = lambda z: BGNBD._negloglik(z, data)  # noqa: E731
    res = maximise(objective, BGNBD._x0(data), jac=True)
    assert res.success
    cov = np.linalg.inv(observed_information(objective, res.x, w.sum(), jac=True))
    return dict(zip(BGNBD.param_names, np.exp(res.x))), -res.fun * w.sum(), cov


@pytest.mark.parametrize("which", ["cdnow", "simulated"])
def test_newton_finds_the_optimum_lbfgsb_finds(which, cdnow_summary):
    if which == "cdnow":
        s = cdnow_summary
        x, t_x, T = s.x, s.t_x, s.T
    else:
        x, t_x, T = simulated(2, 60_000)  # past the size where the fit starts from a sample
    new = BGNBD.fit(x, t_x, T)
    params, loglik, cov = lbfgsb_fit(x, t_x, T)
    assert new.fit_result.converged and new.fit_result.message.startswith("Newton")
    assert new.loglik >= loglik - 1e-9 * abs(loglik)
    for k in BGNBD.param_names:
        assert new.params[k] == pytest.approx(params[k], rel=2e-5), k
    # Standard errors: the analytic Hessian against differences of the gradient.
    np.testing.assert_allclose(np.sqrt(np.diag(new.covariance)), np.sqrt(np.diag(cov)), rtol=1e-4)


def test_newton_leaves_a_runaway_parameter_to_the_bounded_optimiser():
    # Three identical repeat buyers: the likelihood rises without end as the heterogeneity vanishes.
    (x, t_x, T), w = aggregate([np.array([2.0] * 3), np.array([10.0] * 3), np.array([20.0] * 3)])
    data = BGNBD._prepare(x, t_x, T, w)
    assert newton(lambda z, order: BGNBD._negloglik_derivatives(z, data, order), BGNBD._x0(data)) is None
    m = BGNBD.fit([2, 2, 2], [10, 10, 10], [20, 20, 20], min_repeat_buyers=1)
    assert not m.fit_result.converged and "bound" in m.fit_result.message


def test_newton_minimises_a_quadratic_in_one_step():
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    centre = np.array([0.5, -0.25])
    calls = []

    def f(z, order):
        calls.append(order)
        d = z - centre
        return (0.5 * d @ A @ d, A @ d, A)[:order + 1] if order else 0.5 * d @ A @ d

    res = newton(f, np.zeros(2))
    np.testing.assert_allclose(res.x, centre, atol=1e-15)
    assert res.nit == 1 and calls == [2, 2]


def test_distinct_rows_are_the_aggregated_rows():
    rng = np.random.default_rng(4)
    n = 4000
    ids = rng.integers(0, 600, n)
    days = rng.integers(19000, 19500, n)
    s = summarize(ids, days, calibration_end=19400)
    x, t_x, T, w = s.distinct_rows()
    (ax, at, aT), aw = aggregate([s.x, s.t_x, s.T])
    for a, b in ((x, ax), (t_x, at), (T, aT), (w, aw)):
        np.testing.assert_array_equal(a, b)
    assert w.sum() == len(s)
    fit_all = BGNBD.fit(s.x, s.t_x, s.T)
    fit_rows = BGNBD.fit(x, t_x, T, w, aggregate_rows=False)
    assert fit_rows.params == fit_all.params and fit_rows.loglik == fit_all.loglik


def test_observed_information_by_differences_is_still_what_the_analytic_one_says(cdnow_summary):
    s = cdnow_summary
    m = BGNBD.fit(s.x, s.t_x, s.T)
    (x, t_x, T), w = aggregate([s.x, s.t_x, s.T])
    data = BGNBD._prepare(x, t_x, T, w)
    z = np.log(list(m.params.values()))
    by_differences = observed_information(lambda v: BGNBD._negloglik(v, data), z, w.sum(), jac=True)
    np.testing.assert_allclose(np.linalg.inv(by_differences), m.covariance, rtol=1e-4)


def test_fitting_bgnbd_from_the_command_line_never_imports_scipy(tmp_path):
    """scipy.special and scipy.optimize cost more CPU to import than the whole BG/NBD fit of
    200,000 customers (docs/performance.md); the command's BG/NBD path needs neither."""
    rng = np.random.default_rng(7)
    birth = rng.integers(0, 60, 600)
    x, t_x = simulate_bgnbd({"r": 0.5, "alpha": 5, "a": 0.8, "b": 3}, (200 - birth) / 7, rng, resolution=1 / 7)
    rows = []
    for c, (b, n, t) in enumerate(zip(birth, x.astype(int), np.rint(t_x * 7).astype(int))):
        between = rng.choice(np.arange(1, t), min(n - 1, t - 1), replace=False) if n > 1 else []
        days = [b] + ([b + t] if n else []) + [b + d for d in between]
        rows += [f"{c + 1},{np.datetime64('2024-01-01') + int(d)},{rng.gamma(2, 20):.2f}" for d in days]
    rows.append(f"1,{np.datetime64('2024-01-01') + 200},5.00")  # the file runs to the cut-off
    p = tmp_path / "tx.csv"
    p.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n")
    code = (
        "import sys\n"
        "from retention_plugin.launch import main\n"
        "try:\n"
        f"    main(['analyze', 'fit', '--transactions', {str(p)!r}, '--calibration-end', '2024-07-19',"
        " '--model', sys.argv[1], '--json'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))\n")
    outputs = {}
    for model in ("bgnbd", "mbgnbd"):
        res = subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        text, loaded = res.stdout.rsplit("\n", 2)[0], res.stdout.strip().splitlines()[-1]
        outputs[model] = (json.loads(text), loaded)
    out, loaded = outputs["bgnbd"]
    assert loaded == "[]"
    assert out["converged"] and out["customers"] == 600 and all(out["standard_errors"].values())
    assert "'scipy.special'" in outputs["mbgnbd"][1]  # the other models still use it, and still run


def test_the_normal_quantile_is_scipys(monkeypatch):
    from scipy.special import ndtri

    from retention_plugin.analysis.models.uncertainty import z_of

    for level in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999):
        assert z_of(level) == pytest.approx(float(ndtri(0.5 + level / 2)), abs=1e-14)


def test_the_fit_module_no_longer_imports_scipy_optimize_at_import():
    code = ("import sys\nimport retention_plugin.analysis.models._fit, retention_plugin.analysis.models.bgnbd\n"
            "print('scipy' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr


@pytest.mark.parametrize("preset, expected", [(None, "1"), ("2", "2")])
def test_the_standalone_commands_start_numpy_without_blas_threads(tmp_path, preset, expected):
    """OpenBLAS starts a thread per core when numpy is imported, about 0.1 s of CPU that the fit's
    2x2 to 4x4 matrices never repay: the fast path asks for one thread, unless the user chose."""
    p = tmp_path / "tx.csv"
    p.write_text("customer_id,date,amount\n1,2024-01-01,5\n1,2024-02-01,5\n2,2024-01-05,5\n")
    code = (
        "import os, sys\n"
        "from retention_plugin.launch import main\n"
        "try:\n"
        f"    main(['analyze', 'fit', '--transactions', {str(p)!r}, '--model', 'bgnbd', '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('numpy' in sys.modules, os.environ.get('OPENBLAS_NUM_THREADS'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.stdout.strip().splitlines()[-1] == f"True {expected}", res.stderr


def test_the_fit_reports_the_log_likelihood_of_its_parameters():
    """The log-likelihood the fit reports (taken from Newton's last evaluation) is the sum of
    every customer's log-likelihood at the fitted parameters."""
    x, t_x, T = simulated(seed=4, n=5000)
    m = BGNBD.fit(x, t_x, T)
    assert m.fit_result.message.startswith("Newton")
    assert m.loglik == pytest.approx(float(m.loglik_each(x, t_x, T).sum()), rel=1e-12)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_an_evaluation_in_two_halves_is_the_evaluation_in_one(monkeypatch, order):
    """Value, gradient and Hessian summed over two halves of the rows on two threads (as for
    a large file) equal the one-pass sums to rounding, at and away from the optimum."""
    from retention_plugin.analysis.models import bgnbd

    x, t_x, T = simulated(seed=9, n=4000)
    (x, t_x, T), w = aggregate([x, t_x, T])
    data = BGNBD._prepare(x, t_x, T, w)
    for z in (np.log([0.5, 5.0, 0.8, 3.0]), np.log([2.0, 0.7, 0.2, 9.0])):
        monkeypatch.setattr(bgnbd, "_TWO_THREADS", 1 << 30)
        one = BGNBD._negloglik_derivatives(z, data, order)
        monkeypatch.setattr(bgnbd, "_TWO_THREADS", 2)
        two = BGNBD._negloglik_derivatives(z, data, order)
        for a, b in zip(*(v if isinstance(v, tuple) else (v,) for v in (one, two))):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)

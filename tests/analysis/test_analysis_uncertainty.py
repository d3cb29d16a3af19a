"""Standard errors from the observed information, and per-customer delta-method intervals."""

import numpy as np
import pytest

from retention_plugin.analysis.models import BGNBD, MBGNBD, GammaGamma, ParetoNBD
from retention_plugin.analysis.models._fit import aggregate
from retention_plugin.analysis.models.simulate import simulate_pnbd

# Standard errors that `lifetimes` 0.11.3 reports on the same CDNOW summary (calibration to
# 1997-09-30, weeks; Gamma-Gamma on the 946 repeat buyers). Produced once with
#   python -m venv /tmp/lt && /tmp/lt/bin/pip install lifetimes
#   f = BetaGeoFitter().fit(x, t_x, T); f.summary["se(coef)"]   (likewise ModifiedBetaGeoFitter,
#   GammaGammaFitter on x > 0), with x, t_x, T, monetary from retention_plugin's summarize().
# lifetimes computes them from autograd's exact Hessian in log-parameters; it has none for Pareto/NBD.
LIFETIMES_SE = {
    BGNBD: {"r": 0.012557, "alpha": 0.378224, "a": 0.185734, "b": 0.705414},
    MBGNBD: {"r": 0.083268, "alpha": 0.695620, "a": 0.154790, "b": 0.537495},
    GammaGamma: {"p": 1.190055, "q": 0.290133, "gamma": 4.159423},
}


@pytest.mark.parametrize("cls", [BGNBD, MBGNBD, GammaGamma])
def test_standard_errors_match_lifetimes_on_cdnow(cdnow_summary, cls):
    s = cdnow_summary
    m = cls.fit(s.x, s.monetary) if cls is GammaGamma else cls.fit(s.x, s.t_x, s.T)
    d = m.to_dict()
    assert d["converged"]
    for k, ref in LIFETIMES_SE[cls].items():
        assert d["standard_errors"][k] == pytest.approx(ref, rel=0.05), k
        lo, hi = d["intervals"][k]
        assert lo < m.params[k] < hi and lo > 0
        # The interval is symmetric on the log scale, with the standard error's width.
        sd = d["standard_errors"][k] / m.params[k]
        assert np.log(hi / lo) == pytest.approx(2 * 1.959964 * sd, rel=1e-6)


@pytest.mark.parametrize("cls", [BGNBD, ParetoNBD])
def test_hessian_agrees_with_scipy_differentiate(cdnow_summary, cls):
    """The fixed-step central differences against scipy's adaptive (and far costlier) Hessian."""
    from scipy.differentiate import hessian

    s = cdnow_summary
    m = cls.fit(s.x, s.t_x, s.T)
    (x, t_x, T), w = aggregate([s.x, s.t_x, s.T])
    data = cls._prepare(x, t_x, T, w)

    def f(z):
        z = np.asarray(z)
        out = np.empty(z.shape[1:])
        for idx in np.ndindex(z.shape[1:]):
            v = cls._negloglik(z[(slice(None),) + idx], data)
            out[idx] = v[0] if isinstance(v, tuple) else v
        return out

    ref = hessian(f, np.log(list(m.params.values())), initial_step=1e-2, order=4, maxiter=3).ddf * w.sum()
    np.testing.assert_allclose(np.linalg.inv(ref), m.covariance, rtol=2e-3, atol=1e-10)


@pytest.mark.slow
def test_pareto_nbd_standard_errors_match_the_spread_of_refits(slow_run):
    """lifetimes has no Pareto/NBD standard errors, so the check is the sampling spread itself:
    refit on data sets simulated from the fit; the spread of the estimates matches the Hessian's."""
    rng = np.random.default_rng(3)
    truth = {"r": 0.8, "alpha": 6.0, "s": 0.6, "beta": 10.0}
    T = rng.uniform(30, 52, 3000)
    x, t_x = simulate_pnbd(truth, T, rng)
    sd = np.sqrt(np.diag(ParetoNBD.fit(x, t_x, T).covariance))
    logs = []
    for _ in range(100):
        xs, ts = simulate_pnbd(truth, T, rng)
        logs.append(np.log(list(ParetoNBD.fit(xs, ts, T).params.values())))
    spread = np.std(logs, axis=0, ddof=1)
    np.testing.assert_allclose(sd, spread, rtol=0.25)


def test_customer_intervals_contain_the_estimate_and_stay_in_range(cdnow_summary):
    s = cdnow_summary
    for cls in (BGNBD, MBGNBD, ParetoNBD):
        m = cls.fit(s.x, s.t_x, s.T)
        pi = m.prediction_intervals(39, s.x, s.t_x, s.T)
        np.testing.assert_allclose(pi["p_alive"], m.p_alive(s.x, s.t_x, s.T))
        np.testing.assert_allclose(pi["expected_purchases"], m.expected_purchases(39, s.x, s.t_x, s.T))
        for k in ("p_alive", "expected_purchases"):
            lo, est, hi = pi[k + "_low"], pi[k], pi[k + "_high"]
            assert np.all(np.isfinite(lo)) and np.all(lo <= est) and np.all(est <= hi)
        assert np.all(pi["p_alive_low"] >= 0) and np.all(pi["p_alive_high"] <= 1)
        assert np.all(pi["expected_purchases_low"] > 0)
    # BG/NBD's P(alive) is 1 for one-time buyers whatever the parameters: a point, not an interval.
    pi = BGNBD.fit(s.x, s.t_x, s.T).prediction_intervals(39, [0.0], [0.0], [30.0])
    assert pi["p_alive_low"][0] == pi["p_alive_high"][0] == 1.0


def test_delta_method_matches_a_parametric_bootstrap(cdnow_summary):
    """The delta-method spread of P(alive) against draws of the parameters from their estimated distribution."""
    s = cdnow_summary
    m = ParetoNBD.fit(s.x, s.t_x, s.T)
    x, t_x, T = np.array([0.0, 1, 3, 8]), np.array([0.0, 5, 30, 35]), np.array([38.0, 38, 38, 38])
    pi = m.prediction_intervals(39, x, t_x, T)
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal(m._log_params(), m.covariance, 2000)
    draws = np.array([m._with_log_params(zz).p_alive(x, t_x, T) for zz in z])
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(pi["p_alive_low"], lo, atol=0.02)
    np.testing.assert_allclose(pi["p_alive_high"], hi, atol=0.02)


def test_unconditional_expectation_matches_simulated_new_customers():
    from retention_plugin.analysis.models.simulate import simulate_bgnbd

    rng = np.random.default_rng(8)
    n, t = 200000, 30.0
    bg = {"r": 0.8, "alpha": 5.0, "a": 0.9, "b": 2.0}
    x, _ = simulate_bgnbd(bg, np.full(n, t), rng)
    assert BGNBD(bg).expected_purchases_new(t) == pytest.approx(x.mean(), rel=0.02)
    pn = {"r": 0.8, "alpha": 5.0, "s": 0.7, "beta": 9.0}
    x, _ = simulate_pnbd(pn, np.full(n, t), rng)
    assert ParetoNBD(pn).expected_purchases_new(t) == pytest.approx(x.mean(), rel=0.02)
    # MBG/NBD: a customer may also leave at the first purchase (with the same chance p).
    lam, p = rng.gamma(bg["r"], 1 / bg["alpha"], n), rng.beta(bg["a"], bg["b"], n)
    x = np.minimum(rng.poisson(lam * t), rng.geometric(p) - 1)
    assert MBGNBD(bg).expected_purchases_new(t) == pytest.approx(x.mean(), rel=0.02)

"""The models: CDNOW reproduction, gradients, and predictions checked against simulation."""

import numpy as np
import pytest

from retention_plugin.analysis.models import BGNBD, MBGNBD, GammaGamma, ParetoNBD
from retention_plugin.analysis.models.simulate import simulate_bgnbd, simulate_pnbd


def sig3(v):
    return float(f"{v:.3g}")


# --- published CDNOW estimates (Fader, Hardie & Lee 2005) ---------------------


def test_bgnbd_reproduces_cdnow(cdnow_summary):
    s = cdnow_summary
    m = BGNBD.fit(s.x, s.t_x, s.T)
    p = m.params
    assert [sig3(p[k]) for k in ("r", "alpha", "a", "b")] == [0.243, 4.41, 0.793, 2.43]
    assert round(p["alpha"], 3) == pytest.approx(4.414, abs=1e-3)
    assert m.loglik == pytest.approx(-9582.4, abs=0.1)


def test_pareto_nbd_reproduces_cdnow(cdnow_summary):
    s = cdnow_summary
    m = ParetoNBD.fit(s.x, s.t_x, s.T)
    p = m.params
    assert [sig3(p[k]) for k in ("r", "alpha", "s", "beta")] == [0.553, 10.6, 0.606, 11.7]
    assert m.loglik == pytest.approx(-9595.0, abs=0.1)


def test_gamma_gamma_reproduces_cdnow(cdnow_summary):
    s = cdnow_summary
    m = GammaGamma.fit(s.x, s.monetary)
    assert m.fit_result.n == 946  # the repeat buyers
    assert [sig3(m.params[k]) for k in ("p", "q", "gamma")] == [6.25, 3.74, 15.4]
    assert m.loglik == pytest.approx(-4055.9, abs=0.1)


def test_mbgnbd_fits_cdnow_at_least_as_well_as_bgnbd(cdnow_summary):
    s = cdnow_summary
    m = MBGNBD.fit(s.x, s.t_x, s.T)
    assert m.fit_result.converged
    assert m.loglik >= BGNBD.fit(s.x, s.t_x, s.T).loglik - 1.0
    # Unlike BG/NBD it can call a one-time buyer lost, and more so the longer they are silent.
    pa = m.p_alive([0, 0], [0, 0], [5, 38])
    assert pa[0] > pa[1] and pa[1] < 1


def test_fits_are_local_maxima(cdnow_summary):
    s = cdnow_summary
    for cls in (BGNBD, MBGNBD, ParetoNBD):
        m = cls.fit(s.x, s.t_x, s.T)
        for k in m.params:
            for f in (0.99, 1.01):
                other = cls({**m.params, k: m.params[k] * f})
                assert other.loglik_each(s.x, s.t_x, s.T).sum() < m.loglik, (cls.name, k, f)


# --- gradients ------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BGNBD, MBGNBD])
def test_analytic_gradient_matches_finite_differences(cls):
    rng = np.random.default_rng(1)
    T = rng.uniform(10, 50, 400)
    x, t_x = simulate_bgnbd({"r": 0.5, "alpha": 5, "a": 0.8, "b": 3}, T, rng)
    data = cls._prepare(x, t_x, T, np.ones(len(x)))
    z = np.log([0.4, 6.0, 0.6, 2.5])
    _, g = cls._negloglik(z, data)
    eps = 1e-6
    num = [(cls._negloglik(z + e, data)[0] - cls._negloglik(z - e, data)[0]) / (2 * eps) for e in np.eye(4) * eps]
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-9)


def test_gamma_gamma_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    x = rng.integers(1, 20, 300).astype(float)
    m = rng.gamma(5, 8, 300)
    data = {"x": x, "m": m, "w": np.ones(300), "wsum": 300.0, "log_x": np.log(x), "log_m": np.log(m)}
    z = np.log([4.0, 3.0, 20.0])
    _, g = GammaGamma._negloglik(z, data)
    eps = 1e-6
    num = [(GammaGamma._negloglik(z + e, data)[0] - GammaGamma._negloglik(z - e, data)[0]) / (2 * eps)
           for e in np.eye(3) * eps]
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-9)


# --- recovery and stability ---------------------------------------------------------


def test_parameters_are_recovered_from_simulated_customers():
    rng = np.random.default_rng(5)
    T = rng.integers(26 * 7, 52 * 7, 30000) / 7
    truth = {"r": 0.8, "alpha": 6.0, "s": 0.5, "beta": 12.0}
    x, t_x = simulate_pnbd(truth, T, rng, resolution=1 / 7)
    m = ParetoNBD.fit(x, t_x, T)
    for k, v in truth.items():
        assert m.params[k] == pytest.approx(v, rel=0.25), k
    truth = {"r": 0.8, "alpha": 6.0, "a": 0.6, "b": 2.5}
    x, t_x = simulate_bgnbd(truth, T, rng, resolution=1 / 7)
    m = BGNBD.fit(x, t_x, T)
    for k, v in truth.items():
        assert m.params[k] == pytest.approx(v, rel=0.25), k


def test_aggregation_does_not_change_the_fit(cdnow_summary):
    s = cdnow_summary
    a = ParetoNBD.fit(s.x, s.t_x, s.T)
    b = ParetoNBD.fit(s.x, s.t_x, s.T, aggregate_rows=False)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-6)
    for k in a.params:
        assert a.params[k] == pytest.approx(b.params[k], rel=1e-3)


@pytest.mark.parametrize("cls,params", [
    (BGNBD, {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}),
    (MBGNBD, {"r": 0.52, "alpha": 6.2, "a": 0.89, "b": 1.6}),
    (ParetoNBD, {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7}),
    (ParetoNBD, {"r": 0.55, "alpha": 20.0, "s": 0.61, "beta": 4.0}),  # the alpha >= beta branch
])
def test_large_frequencies_stay_finite(cls, params):
    m = cls(params)
    x = np.array([0, 1, 50, 500, 5000.0])
    t_x = np.array([0, 10, 39, 39, 39.0])  # frequent buyers seen on the last day: surely alive
    T = np.full(5, 39.0)
    assert np.isfinite(m.loglik_each(x, t_x, T)).all()
    for pred in (m.p_alive(x, t_x, T), m.p_no_purchase(20, x, t_x, T)):
        assert np.isfinite(pred).all() and (pred >= 0).all() and (pred <= 1).all()
    e = m.expected_purchases(20, x, t_x, T)
    assert np.isfinite(e).all() and (np.diff(e[1:]) > 0).all()


# --- predictions against simulated futures --------------------------------------------


def _simulate_future(kind, params, T, h, rng):
    """Calibration (x, t_x) and holdout purchase counts, by walking each customer's purchases."""
    n = len(T)
    lam = rng.gamma(params["r"], 1 / params["alpha"], n)
    if kind == "pnbd":
        death = rng.exponential(1 / rng.gamma(params["s"], 1 / params["beta"], n))
    else:
        p = rng.beta(params["a"], params["b"], n)
        death = np.full(n, np.inf)
    t = np.zeros(n)
    x, t_x, hold = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, bool)
    while alive.any():
        t = t + rng.exponential(1 / lam)
        alive &= (t < death) & (t <= T + h)
        in_cal = alive & (t <= T)
        x += in_cal
        t_x = np.where(in_cal, t, t_x)
        hold += alive & (t > T)
        if kind == "bgnbd":
            dies = alive & (rng.random(n) < p)
            death = np.where(dies, t, death)
            alive &= ~dies
    return x, t_x, hold


@pytest.mark.parametrize("kind,cls,params", [
    ("pnbd", ParetoNBD, {"r": 0.9, "alpha": 8.0, "s": 0.7, "beta": 10.0}),
    ("bgnbd", BGNBD, {"r": 0.9, "alpha": 8.0, "a": 0.8, "b": 2.5}),
])
def test_predictions_match_simulated_holdout(kind, cls, params):
    rng = np.random.default_rng(11)
    n, h = 40000, 26.0
    T = rng.uniform(10, 52, n)
    x, t_x, hold = _simulate_future(kind, params, T, h, rng)
    m = cls(params)
    p0 = m.p_no_purchase(h, x, t_x, T)
    assert p0.mean() == pytest.approx((hold == 0).mean(), abs=0.01)
    # Calibrated within each decile of the prediction, not just on average.
    for idx in np.array_split(np.argsort(p0), 10):
        assert p0[idx].mean() == pytest.approx((hold[idx] == 0).mean(), abs=0.03)
    e = m.expected_purchases(h, x, t_x, T)
    assert e.sum() == pytest.approx(hold.sum(), rel=0.04)
    for xv in (0, 1, 3):
        sel = x == xv
        assert e[sel].mean() == pytest.approx(hold[sel].mean(), rel=0.1, abs=0.02)


@pytest.mark.parametrize("cls", [BGNBD, MBGNBD])
def test_near_degenerate_beta_falls_back_smoothly(cls):
    """With a and b in the millions 2F1 overflows; the fallback must agree with the exact value nearby."""
    x, t_x, T = np.array([0, 1, 5, 20.0]), np.array([0, 3, 20, 30.0]), np.array([1, 10, 30, 31.0])
    huge = cls({"r": 2.4, "alpha": 4.8, "a": 1.9e5, "b": 8.2e6}).expected_purchases(13, x, t_x, T)
    large = cls({"r": 2.4, "alpha": 4.8, "a": 190.0, "b": 8200.0}).expected_purchases(13, x, t_x, T)
    assert np.isfinite(huge).all()
    np.testing.assert_allclose(huge, large, rtol=2e-3)

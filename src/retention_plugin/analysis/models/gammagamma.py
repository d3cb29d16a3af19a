"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV").

Each purchase's value is Gamma(p, nu) with a customer-specific nu ~ Gamma(q,
gamma); the model sees a customer's mean repeat-purchase value ``zbar`` over
``x`` repeat purchases. It assumes spend is independent of purchase frequency:
check that on your data before trusting predicted values (``spend_frequency_corr``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from ._fit import (MIN_REPEAT_BUYERS, FitResult, aggregate, as_float_arrays, check_repeat_buyers, judge_fit,
                   maximise, observed_information, wsum)
from .uncertainty import parameter_summary

__all__ = ["GammaGamma"]


class GammaGamma:
    name = "gg"
    title = "Gamma-Gamma"
    param_names = ("p", "q", "gamma")

    def __init__(self, params: dict[str, float], loglik: float | None = None, fit: FitResult | None = None):
        self.params = {k: float(params[k]) for k in self.param_names}
        self.loglik = loglik
        self.fit_result = fit

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"<GammaGamma {ps} loglik={self.loglik}>"

    @classmethod
    def fit(cls, x, monetary, weights=None, *, min_repeat_buyers: int = MIN_REPEAT_BUYERS):
        """Fit on customers with at least one repeat purchase and positive mean spend.

        ``x`` and ``monetary`` should count only purchases of positive value
        (:func:`retention_plugin.analysis.spend.spend_inputs`): a zero or
        negative amount is not a draw from a Gamma distribution.
        """
        x, m = as_float_arrays(x, monetary)
        use = (x > 0) & (m > 0)
        w = None if weights is None else np.asarray(weights, dtype=np.float64)[use]
        check_repeat_buyers(float(use.sum() if w is None else w.sum()), max(min_repeat_buyers, 2),
                            "repeat buyers with purchases of positive value")
        (x, m), w = aggregate([x[use], m[use]], w)
        data = {"x": x, "m": m, "w": w, "wsum": w.sum(), "log_x": np.log(x), "log_m": np.log(m)}
        mean = np.average(m, weights=w)
        objective = lambda z: cls._negloglik(z, data)  # noqa: E731
        res = maximise(objective, np.array([0.0, 0.0, np.log(mean)]), jac=True)
        params = {k: float(v) for k, v in zip(cls.param_names, np.exp(res.x))}
        loglik = float(np.dot(w, cls._loglik_each(params, data)))
        corr = float(np.corrcoef(x, m)[0, 1]) if len(x) > 2 and np.ptp(x) > 0 and np.ptp(m) > 0 else None
        converged, reason, cov = judge_fit(cls.param_names, res.x, res,
                                           observed_information(objective, res.x, float(w.sum()), jac=True))
        result = FitResult(params, loglik, float(w.sum()), converged, int(res.nit), reason or str(res.message),
                           {"spend_frequency_corr": corr}, covariance=cov)
        return cls(params, loglik, result)

    @property
    def covariance(self) -> np.ndarray | None:
        return None if self.fit_result is None else self.fit_result.covariance

    def parameter_uncertainty(self, level: float = 0.95) -> dict:
        return parameter_summary(self.param_names, self.params, self.covariance, level)

    @staticmethod
    def _loglik_each(p, data):
        pp, q, g = p["p"], p["q"], p["gamma"]
        x, m = data["x"], data["m"]
        px = pp * x
        return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
                + (px - 1) * data["log_m"] + px * data["log_x"] - (px + q) * np.log(g + x * m))

    @classmethod
    def _negloglik(cls, logp, data):
        pp, q, g = np.exp(logp)
        x, w = data["x"], data["w"]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ll = cls._loglik_each({"p": pp, "q": q, "gamma": g}, data)
            gxm = g + x * data["m"]
            lg = np.log(gxm)
            dpq = digamma(pp * x + q)
            dp = x * (dpq - digamma(pp * x) + data["log_m"] + data["log_x"] - lg)
            dq = dpq - digamma(q) + np.log(g) - lg
            dg = q / g - (pp * x + q) / gxm
        value = -wsum(w, ll) / data["wsum"]
        if not np.isfinite(value):
            return 1e10, np.zeros(3)
        grad = -wsum(w, np.array([dp, dq, dg])) * np.array([pp, q, g]) / data["wsum"]
        return value, grad

    def expected_spend(self, x, monetary) -> np.ndarray:
        """Expected mean value of a customer's future purchases.

        Customers with no repeat purchase get the population mean p*gamma/(q-1):
        their first order is not evidence about repeat spend in this model.
        """
        x, m = as_float_arrays(x, monetary)
        pp, q, g = self.params["p"], self.params["q"], self.params["gamma"]
        population = pp * g / (q - 1) if q > 1 else np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            conditional = pp * (g + x * m) / (pp * x + q - 1)
        return np.where(x > 0, conditional, population)

    def to_dict(self) -> dict:
        out = {"model": self.name, "params": dict(self.params), "loglik": self.loglik}
        if self.fit_result is not None:
            out.update(customers=int(round(self.fit_result.n)), converged=self.fit_result.converged,
                       iterations=self.fit_result.iterations, **self.fit_result.extra, **self.parameter_uncertainty())
            if not self.fit_result.converged:
                out["reason"] = self.fit_result.message
        return out

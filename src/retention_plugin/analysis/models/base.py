"""The interface every purchase-count model offers, and the shared fitting loop."""

from __future__ import annotations

import numpy as np

from ._fit import (MIN_REPEAT_BUYERS, FitResult, Optimum, aggregate, as_float_arrays, check_repeat_buyers, judge_fit,
                   maximise, newton, observed_information, wsum)
from .uncertainty import delta_interval, parameter_summary

__all__ = ["CountModel"]

#: Distinct rows in the sample a Newton fit starts from (see CountModel._newton).
_WARM_ROWS = 16_000


class CountModel:
    """A fitted buy-till-you-die model of purchase counts.

    Subclasses define ``name``, ``param_names``, ``_x0`` (log-parameter start),
    ``_negloglik(logp, data)`` returning the weighted mean negative
    log-likelihood (and its gradient when ``analytic_gradient``), and the
    per-customer predictions. Times are in the unit the model was fitted in.
    A model that also defines ``_negloglik_derivatives(logp, data, order)``
    (value; with the gradient at order 1; and the Hessian at order 2) is fitted
    by Newton's method on it first, and its standard errors use that Hessian.
    """

    name = ""
    title = ""
    param_names: tuple[str, ...] = ()
    analytic_gradient = True

    def __init__(self, params: dict[str, float], loglik: float | None = None, fit: FitResult | None = None):
        missing = set(self.param_names) - set(params)
        if missing:
            raise ValueError(f"{self.name}: missing parameters {sorted(missing)}")
        self.params = {k: float(params[k]) for k in self.param_names}
        self.loglik = loglik
        self.fit_result = fit

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"<{type(self).__name__} {ps} loglik={self.loglik}>"

    # --- fitting -------------------------------------------------------------

    @classmethod
    def fit(cls, x, t_x, T, weights=None, *, aggregate_rows: bool = True,
            min_repeat_buyers: int = MIN_REPEAT_BUYERS):
        """Maximum-likelihood fit on per-customer ``x``, ``t_x``, ``T``.

        Raises :class:`InsufficientData` with fewer than ``min_repeat_buyers``
        customers with a repeat purchase. The result carries the covariance of
        the log-parameters; ``converged`` is False, with the reason in
        ``fit_result.message``, when the optimiser failed, a parameter ran to
        the search bound, or the information matrix is singular.
        """
        x, t_x, T = as_float_arrays(x, t_x, T)
        cls._check(x, t_x, T)
        w_in = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
        check_repeat_buyers(float(w_in[x > 0].sum()), min_repeat_buyers)
        if aggregate_rows:
            (x, t_x, T), w = aggregate([x, t_x, T], w_in)
        else:
            w = w_in
        data = cls._prepare(x, t_x, T, w)
        objective = lambda z: cls._negloglik(z, data)  # noqa: E731
        derivatives = getattr(cls, "_negloglik_derivatives", None)
        res = None if derivatives is None else cls._newton(x, t_x, T, w, data)
        if res is None:
            res = maximise(objective, cls._x0(data), jac=cls.analytic_gradient)
        params = {k: float(v) for k, v in zip(cls.param_names, np.exp(res.x))}
        if isinstance(res, Optimum):
            # Newton's last evaluation was at res.x: the same sum, not computed a second time
            # (a tenth of the BG/NBD fit of 200,000 customers).
            loglik = -float(res.fun) * float(w.sum())
        else:
            loglik = float(wsum(w, cls._loglik_each(params, data)))
        if derivatives is not None:
            info = (res.hessian if getattr(res, "hessian", None) is not None else derivatives(res.x, data, 2)[2])
            info = info * float(w.sum())
        else:
            info = observed_information(objective, res.x, float(w.sum()), jac=cls.analytic_gradient)
        converged, reason, cov = judge_fit(cls.param_names, res.x, res, info)
        result = FitResult(params, loglik, float(w.sum()), converged, int(res.nit), reason or str(res.message),
                           covariance=cov)
        return cls(params, loglik, result)

    @classmethod
    def _newton(cls, x, t_x, T, w, data):
        """Newton's method on the model's own derivatives, or None where it cannot vouch for the result.

        On many distinct rows it starts from a fit to every k-th of them (about
        ``_WARM_ROWS``): that fit costs a tenth of a full evaluation per step and
        lands close enough for the full data to need three or four Newton steps
        instead of eight or nine (docs/performance.md). The answer is the full
        data's optimum either way; the warm start only shortens the way there.
        """
        def on(d):
            return lambda z, order: cls._negloglik_derivatives(z, d, order)

        x0, warm_steps = cls._x0(data), 0
        if len(x) >= 4 * _WARM_ROWS:
            part = slice(None, None, len(x) // _WARM_ROWS)
            warm = newton(on(cls._prepare(x[part], t_x[part], T[part], w[part])), x0)
            if warm is not None:
                x0, warm_steps = warm.x, warm.nit
        res = newton(on(data), x0)
        if res is not None:
            res.nit += warm_steps
        return res

    @staticmethod
    def _check(x, t_x, T):
        if len(x) == 0:
            raise ValueError("no customers to fit")
        if (x < 0).any() or (t_x < 0).any() or (T < t_x).any():
            raise ValueError("inconsistent summary: need x >= 0 and 0 <= t_x <= T")
        if not (T > 0).any():
            raise ValueError("every customer's age T is zero: the cut-off must be after the first purchases")

    @classmethod
    def _prepare(cls, x, t_x, T, w) -> dict:
        data = {"x": x, "t_x": t_x, "T": T, "w": w, "wsum": w.sum()}
        # Special functions and logs are computed on the few distinct values of
        # each column and gathered: far cheaper than once per row.
        for name, col in (("x", x), ("t_x", t_x), ("T", T)):
            u, inv = np.unique(col, return_inverse=True)
            data["u_" + name], data["i_" + name] = u, inv.ravel()
        return data

    @classmethod
    def _x0(cls, data) -> np.ndarray:
        return np.zeros(len(cls.param_names))

    def loglik_each(self, x, t_x, T) -> np.ndarray:
        """Log-likelihood of each customer's (x, t_x, T)."""
        x, t_x, T = as_float_arrays(x, t_x, T)
        return self._loglik_each(self.params, self._prepare(x, t_x, T, np.ones(len(x))))

    # --- uncertainty ------------------------------------------------------------

    @property
    def covariance(self) -> np.ndarray | None:
        """Covariance of the log-parameters (inverse observed information), when fitted."""
        return None if self.fit_result is None else self.fit_result.covariance

    def _log_params(self) -> np.ndarray:
        return np.log([self.params[k] for k in self.param_names])

    def _with_log_params(self, z) -> "CountModel":
        return type(self)(dict(zip(self.param_names, np.exp(z))))

    def parameter_uncertainty(self, level: float = 0.95) -> dict:
        return parameter_summary(self.param_names, self.params, self.covariance, level)

    def prediction_intervals(self, t, x, t_x, T, level: float = 0.95) -> dict[str, np.ndarray]:
        """P(alive) and expected purchases in the next ``t`` with delta-method intervals.

        Keys: ``p_alive``, ``p_alive_low``, ``p_alive_high``, ``expected_purchases``,
        ``expected_purchases_low``, ``expected_purchases_high``. The intervals
        reflect the uncertainty of the parameters (see :mod:`.uncertainty`);
        bounds are NaN when the fit gave no covariance.
        """
        x, t_x, T = as_float_arrays(x, t_x, T)
        z, cov = self._log_params(), self.covariance
        out = {}
        for key, fn, scale in (("p_alive", lambda m: m.p_alive(x, t_x, T), "logit"),
                               ("expected_purchases", lambda m: m.expected_purchases(t, x, t_x, T), "log")):
            est, lo, hi = delta_interval(self._with_log_params, z, cov, fn, scale=scale, level=level)
            out[key], out[key + "_low"], out[key + "_high"] = est, lo, hi
        return out

    # --- predictions ------------------------------------------------------------

    def p_alive(self, x, t_x, T) -> np.ndarray:
        raise NotImplementedError

    def expected_purchases_new(self, t) -> np.ndarray:
        """Expected repeat purchases in (0, t] of a customer whose first purchase was at 0.

        A history of (x, t_x, T) = (0, 0, 0) carries no information, so the
        conditional expectation there is the unconditional one (the tests
        check it against simulated customers for every model).
        """
        t = np.asarray(t, dtype=np.float64)
        zero = np.zeros(t.shape)
        return self.expected_purchases(t, zero, zero, zero)

    def expected_purchases(self, t, x, t_x, T) -> np.ndarray:
        """Expected purchases in (T, T + t] given the customer's history."""
        raise NotImplementedError

    def p_no_purchase(self, t, x, t_x, T) -> np.ndarray:
        """Probability of no purchase at all in (T, T + t]."""
        raise NotImplementedError

    def rate_if_alive(self, x, T) -> np.ndarray:
        """Posterior mean purchase rate of a customer who is still active."""
        p = self.params
        x, T = as_float_arrays(x, T)
        return (p["r"] + x) / (p["alpha"] + T)

    def to_dict(self) -> dict:
        out = {"model": self.name, "params": dict(self.params), "loglik": self.loglik}
        if self.fit_result is not None:
            out.update(customers=int(round(self.fit_result.n)), converged=self.fit_result.converged,
                       iterations=self.fit_result.iterations, **self.parameter_uncertainty())
            if not self.fit_result.converged:
                out["reason"] = self.fit_result.message
        return out

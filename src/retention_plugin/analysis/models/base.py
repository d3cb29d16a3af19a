"""The interface every purchase-count model offers, and the shared fitting loop."""

from __future__ import annotations

import numpy as np

from ._fit import FitResult, aggregate, as_float_arrays, maximise

__all__ = ["CountModel"]


class CountModel:
    """A fitted buy-till-you-die model of purchase counts.

    Subclasses define ``name``, ``param_names``, ``_x0`` (log-parameter start),
    ``_negloglik(logp, data)`` returning the weighted mean negative
    log-likelihood (and its gradient when ``analytic_gradient``), and the
    per-customer predictions. Times are in the unit the model was fitted in.
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
    def fit(cls, x, t_x, T, weights=None, *, aggregate_rows: bool = True):
        """Maximum-likelihood fit on per-customer ``x``, ``t_x``, ``T``."""
        x, t_x, T = as_float_arrays(x, t_x, T)
        cls._check(x, t_x, T)
        if aggregate_rows:
            (x, t_x, T), w = aggregate([x, t_x, T], weights)
        else:
            w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
        data = cls._prepare(x, t_x, T, w)
        res = maximise(lambda z: cls._negloglik(z, data), cls._x0(data), jac=cls.analytic_gradient)
        params = {k: float(v) for k, v in zip(cls.param_names, np.exp(res.x))}
        loglik = float(np.dot(w, cls._loglik_each(params, data)))
        result = FitResult(params, loglik, float(w.sum()), bool(res.success), int(res.nit), str(res.message))
        return cls(params, loglik, result)

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

    # --- predictions ------------------------------------------------------------

    def p_alive(self, x, t_x, T) -> np.ndarray:
        raise NotImplementedError

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
                       iterations=self.fit_result.iterations)
        return out

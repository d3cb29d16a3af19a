"""Uncertainty of fitted models: parameter standard errors and per-customer intervals.

Parameters. The covariance of the log-parameters is the inverse of the
observed information (the Hessian of the negative log-likelihood at the
optimum, in log space, where the fit happens). A parameter's standard error
is then ``p * sd(log p)`` (the delta method; ``lifetimes`` reports the same
number), and its 95% interval is ``exp(log p ± 1.96 sd(log p))``: a Wald
interval on the log scale, which stays positive and is asymmetric the way the
likelihood is.

Predictions. Intervals for a customer's P(alive) and expected purchases use
the delta method: the prediction's gradient with respect to the
log-parameters (central differences, 2k evaluations over all customers at
once) gives its variance ``g' Σ g``; the interval is built on the logit
scale for probabilities and the log scale for counts, then mapped back, so
it stays inside [0, 1] and above 0. These intervals describe the
uncertainty of the *estimated* probability or expectation that comes from
estimating the parameters; they are not prediction intervals for the number
of purchases a customer will actually make, which is a random count around
that expectation.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

__all__ = ["parameter_summary", "delta_interval", "z_of"]


def z_of(level: float) -> float:
    # The standard library's normal quantile (within 1e-15 of scipy.special.ndtri), so that
    # a fit's intervals do not import scipy.special (docs/performance.md).
    return NormalDist().inv_cdf(0.5 + level / 2)


def parameter_summary(names, params: dict, cov: np.ndarray | None, level: float = 0.95) -> dict:
    """``{"standard_errors": {...}, "intervals": {name: [low, high]}}``; None values when singular."""
    if cov is None:
        return {"standard_errors": {k: None for k in names}, "intervals": {k: None for k in names}}
    z = z_of(level)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    se, iv = {}, {}
    for k, s in zip(names, sd):
        p = params[k]
        with np.errstate(over="ignore"):
            lo, hi, e = p * np.exp(-z * s), p * np.exp(z * s), p * s
        # An unidentified parameter's interval runs to infinity: say "none" rather than write Infinity.
        finite = bool(np.isfinite([lo, hi, e]).all())
        se[k] = float(e) if finite else None
        iv[k] = [float(lo), float(hi)] if finite else None
    return {"standard_errors": se, "intervals": iv}


def _scales(scale: str):
    """(to the scale, back) for ``scale``."""
    if scale == "log":
        return (lambda v: np.log(np.clip(v, 1e-300, None))), np.exp
    from scipy.special import expit, logit

    return (lambda v: logit(np.clip(v, 1e-15, 1 - 1e-15))), expit


def delta_interval(make, log_params: np.ndarray, cov: np.ndarray | None, predict, *, scale: str,
                   level: float = 0.95, step: float = 1e-4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, low, high) of ``predict(model)`` by the delta method on ``scale``.

    ``make(log_params)`` builds a model with the given log-parameters; ``predict``
    maps a model to an array of per-customer values. With no covariance the
    bounds are NaN (the fit did not give standard errors).
    """
    fwd, back = _scales(scale)
    est = np.asarray(predict(make(log_params)), dtype=np.float64)
    if cov is None:
        nan = np.full(est.shape, np.nan)
        return est, nan, nan
    k = len(log_params)
    grads = np.empty((k,) + est.shape)
    for i in range(k):
        e = np.zeros(k)
        e[i] = step
        with np.errstate(all="ignore"):
            grads[i] = (fwd(np.asarray(predict(make(log_params + e)))) -
                        fwd(np.asarray(predict(make(log_params - e))))) / (2 * step)
    var = np.einsum("i...,ij,j...->...", grads, cov, grads)
    sd = np.sqrt(np.clip(var, 0.0, None))
    centre = fwd(est)
    z = z_of(level)
    with np.errstate(all="ignore"):
        lo, hi = back(centre - z * sd), back(centre + z * sd)
    # Exact 0 or 1 (BG/NBD's P(alive) of a one-time buyer is 1 whatever the
    # parameters) stays a point, not an interval around a clipped value.
    exact = (sd == 0) | ~np.isfinite(sd)
    lo = np.where(exact, est, np.minimum(lo, est))
    hi = np.where(exact, est, np.maximum(hi, est))
    return est, lo, hi

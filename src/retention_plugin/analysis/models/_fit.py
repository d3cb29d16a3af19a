"""Shared machinery: aggregation of identical customers and the optimiser.

Every model is fitted by maximum likelihood over the *logarithms* of its
parameters, which keeps them positive without constraints and makes the
problem far better conditioned than the raw scale (alpha is often 100x r).
The objective is the mean log-likelihood, so optimiser tolerances mean the
same thing for 2,000 customers and for 2,000,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

__all__ = ["FitResult", "aggregate", "unique_rows", "wsum", "maximise", "as_float_arrays"]


@dataclass(frozen=True)
class FitResult:
    params: dict[str, float]
    loglik: float
    n: float  # customers (sum of weights)
    converged: bool
    iterations: int
    message: str = ""
    extra: dict = field(default_factory=dict)


def as_float_arrays(*arrays) -> list[np.ndarray]:
    out = [np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in arrays]
    shape = np.broadcast_shapes(*(a.shape for a in out))
    return [np.broadcast_to(a, shape) for a in out]


def wsum(w: np.ndarray, v: np.ndarray) -> float | np.ndarray:
    """Weighted sum over the last axis, without BLAS.

    A multi-threaded BLAS wakes its threads for every dot product of this
    size; inside an optimiser loop on a busy machine that costs more than the
    sum itself (it doubled BG/NBD's fit time), so multiply and add instead.
    """
    return np.add.reduce(v * w, axis=-1)


def unique_rows(columns: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the given columns (sorted) and each input row's index among them."""
    cols = [np.ascontiguousarray(c, dtype=np.float64) for c in columns]
    n = len(cols[0])
    if n == 0:
        return cols, np.zeros(0, np.int64)
    order = np.lexsort(cols[::-1])
    sorted_cols = [c[order] for c in cols]
    new = np.zeros(n, bool)
    new[0] = True
    for c in sorted_cols:
        new[1:] |= c[1:] != c[:-1]
    inverse = np.empty(n, np.int64)
    inverse[order] = np.cumsum(new) - 1
    return [c[new] for c in sorted_cols], inverse


def aggregate(columns: list[np.ndarray], weights=None) -> tuple[list[np.ndarray], np.ndarray]:
    """Collapse identical rows into one row with a weight (the count).

    Summaries are measured in whole days, so a million customers usually hold
    only tens of thousands of distinct (x, t_x, T) rows: the likelihood is then
    evaluated once per distinct row.
    """
    w = np.ones(len(columns[0])) if weights is None else np.asarray(weights, dtype=np.float64)
    uniq, inverse = unique_rows(columns)
    return uniq, np.bincount(inverse, weights=w, minlength=len(uniq[0]))


def maximise(objective, x0: np.ndarray, *, jac: bool, bound: float = 18.0, tol: float = 1e-12):
    """Minimise ``objective`` (a mean negative log-likelihood) over log-parameters.

    L-BFGS-B with analytic gradients converges in a few dozen evaluations; a
    Nelder-Mead polish runs only when it reports failure (usually a flat
    ridge), so a hard data set still ends at a real optimum.
    """
    bounds = [(-bound, bound)] * len(x0)
    opts = {"maxiter": 2000, "ftol": tol, "gtol": 1e-10, "maxcor": 20}
    res = minimize(objective, x0, jac=jac, method="L-BFGS-B", bounds=bounds, options=opts)
    if not res.success or not np.isfinite(res.fun):
        f = (lambda z: objective(z)[0]) if jac else objective
        # Capped: on a flat ridge (Pareto/NBD with s and beta running off to
        # infinity together) an uncapped simplex walks for many minutes.
        polish = minimize(f, res.x if np.isfinite(res.fun) else x0, method="Nelder-Mead",
                          options={"maxfev": 400, "xatol": 1e-10, "fatol": 1e-14, "adaptive": True})
        if np.isfinite(polish.fun) and (not np.isfinite(res.fun) or polish.fun <= res.fun):
            polish.nit = int(res.nit) + int(polish.nit)
            return polish
    return res

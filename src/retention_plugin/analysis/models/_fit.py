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

__all__ = ["FitResult", "InsufficientData", "aggregate", "unique_rows", "wsum", "maximise", "as_float_arrays",
           "BOUND", "MIN_REPEAT_BUYERS", "check_repeat_buyers", "judge_fit"]

#: The optimiser searches log-parameters in [-BOUND, BOUND] (e^18 is about 6.6e7).
BOUND = 18.0
#: Fewer customers with a repeat purchase than this: the models refuse to fit (the parameters
#: of the drop-out process rest on repeat buyers alone; a handful cannot identify them).
MIN_REPEAT_BUYERS = 10
#: A log-parameter whose standard error exceeds this is not identified: its 95% interval
#: spans a factor of e^39 (a parameter running off to 0 or infinity along a flat ridge).
MAX_LOG_SD = 10.0


class InsufficientData(ValueError):
    """Too little data to fit a model; the message says what is missing and how much."""


@dataclass(frozen=True)
class FitResult:
    params: dict[str, float]
    loglik: float
    n: float  # customers (sum of weights)
    converged: bool
    iterations: int
    message: str = ""
    extra: dict = field(default_factory=dict)
    #: covariance of the log-parameters (inverse observed information), or None when singular
    covariance: np.ndarray | None = None


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


def check_repeat_buyers(n_repeat: float, minimum: int, what: str = "repeat buyers") -> None:
    if n_repeat < minimum:
        raise InsufficientData(
            f"only {int(n_repeat)} {what} (customers with purchases on at least two days); at least "
            f"{minimum} are needed to fit the model (lower the minimum with --min-repeat-buyers at your own risk)")


def judge_fit(names, z: np.ndarray, res, hessian_total: np.ndarray) -> tuple[bool, str, np.ndarray | None]:
    """Whether an optimum can be trusted, why not, and the log-parameter covariance.

    An optimiser that reports success can still have stopped at the edge of the
    search box (a parameter running off to 0 or infinity: the data do not
    identify it) or at a point whose information matrix is not positive
    definite (a ridge, not a peak). Both are reported as not converged.
    """
    reasons = []
    if not res.success:
        reasons.append(f"the optimiser did not converge ({res.message})")
    # Within a factor e of the bound counts: on a flat ridge the optimiser stops short of the
    # bound itself, and a parameter of 10^7 (or 10^-7) means the same there as at the bound.
    edge = [n for n, v in zip(names, z) if abs(v) >= BOUND - 1.0]
    if edge:
        reasons.append(f"{', '.join(edge)} ran to the optimiser's bound (e^±{BOUND:g}): the data do not identify "
                       f"{'it' if len(edge) == 1 else 'them'}")
    cov = None
    if np.all(np.isfinite(hessian_total)):
        sym = (hessian_total + hessian_total.T) / 2
        try:
            np.linalg.cholesky(sym)
            cov = np.linalg.inv(sym)
        except np.linalg.LinAlgError:
            cov = None
    if cov is None:
        reasons.append("the information matrix is not positive definite at the optimum (a ridge, not a peak: "
                       "the data do not identify every parameter); no standard errors")
    else:
        flat = [n for n, v in zip(names, np.diag(cov)) if not edge.count(n) and v > MAX_LOG_SD ** 2]
        if flat:
            reasons.append(f"the likelihood is flat in {', '.join(flat)} (standard error on the log scale above "
                           f"{MAX_LOG_SD:g}): the data do not identify {'it' if len(flat) == 1 else 'them'}")
    return not reasons, "; ".join(reasons), cov


def observed_information(objective, z: np.ndarray, total_weight: float, *, jac: bool) -> np.ndarray:
    """Hessian of the total negative log-likelihood in log-parameter space, by finite differences.

    ``objective`` is the mean negative log-likelihood (returning ``(value, gradient)`` when
    ``jac``). With a gradient, each row is a forward difference of gradients (k + 1
    evaluations; the error, of the order of the 1e-6 step, is far below what a standard error
    needs). Without, central second differences of the value (2k² + 1 evaluations): forward
    ones would halve that, but their larger error turns a flat yet genuine peak (Pareto/NBD's
    s and beta often lie on a long ridge) into a spurious saddle. ``scipy.differentiate.hessian``
    gives the same numbers (the tests check) but its adaptive steps take about a thousand
    evaluations, more than the fit itself.
    """
    k = len(z)
    H = np.empty((k, k))
    E = np.eye(k)
    if jac:
        h = 1e-6
        g0 = objective(z)[1]
        for i in range(k):
            H[i] = (objective(z + h * E[i])[1] - g0) / h
        H = (H + H.T) / 2
    else:
        h = 1e-3
        f0 = objective(z)
        f = lambda d: objective(z + h * d)  # noqa: E731
        for i in range(k):
            H[i, i] = (f(E[i]) - 2 * f0 + f(-E[i])) / h ** 2
            for j in range(i):
                H[i, j] = H[j, i] = (f(E[i] + E[j]) - f(E[i] - E[j]) - f(E[j] - E[i]) + f(-E[i] - E[j])) / (4 * h * h)
    return H * total_weight


def maximise(objective, x0: np.ndarray, *, jac: bool, bound: float = BOUND, tol: float = 1e-12):
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
        polish = minimize(f, res.x if np.isfinite(res.fun) else x0, method="Nelder-Mead", bounds=bounds,
                          options={"maxfev": 400, "xatol": 1e-10, "fatol": 1e-14, "adaptive": True})
        if np.isfinite(polish.fun) and (not np.isfinite(res.fun) or polish.fun <= res.fun):
            polish.nit = int(res.nit) + int(polish.nit)
            return polish
    return res

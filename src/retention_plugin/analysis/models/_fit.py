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

__all__ = ["FitResult", "InsufficientData", "Optimum", "aggregate", "unique_rows", "wsum", "maximise", "newton",
           "as_float_arrays", "BOUND", "MIN_REPEAT_BUYERS", "check_repeat_buyers", "judge_fit"]

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
    Nelder-Mead polish runs only when it reports failure inside the box
    (usually a flat ridge), so a hard data set still ends at a real optimum.
    """
    from scipy.optimize import minimize

    bounds = [(-bound, bound)] * len(x0)
    opts = {"maxiter": 2000, "ftol": tol, "gtol": 1e-10, "maxcor": 20}
    res = minimize(objective, x0, jac=jac, method="L-BFGS-B", bounds=bounds, options=opts)
    # Stopped against the box: the likelihood still rises towards a parameter of 0 or infinity,
    # which judge_fit reports; a simplex inside the box would only wander along that ridge.
    at_edge = np.isfinite(res.fun) and np.abs(res.x).max() >= bound - 1.0
    if (not res.success or not np.isfinite(res.fun)) and not at_edge:
        f = (lambda z: objective(z)[0]) if jac else objective
        # Capped: on a flat ridge (Pareto/NBD with s and beta running off to
        # infinity together) an uncapped simplex walks for many minutes.
        polish = minimize(f, res.x if np.isfinite(res.fun) else x0, method="Nelder-Mead", bounds=bounds,
                          options={"maxfev": 400, "xatol": 1e-10, "fatol": 1e-14, "adaptive": True})
        if np.isfinite(polish.fun) and (not np.isfinite(res.fun) or polish.fun <= res.fun):
            polish.nit = int(res.nit) + int(polish.nit)
            return polish
    return res


@dataclass
class Optimum:
    """Where :func:`newton` stopped (the fields :func:`judge_fit` reads from scipy's results too)."""

    x: np.ndarray
    fun: float
    nit: int
    hessian: np.ndarray  # of the objective (the mean), at x
    success: bool = True
    message: str = "Newton's method: converged"


def newton(objective, x0: np.ndarray, *, bound: float = BOUND, max_iter: int = 50) -> Optimum | None:
    """Minimise ``objective(z, order)`` by Newton's method on its analytic Hessian, or return None.

    ``objective(z, 0)`` is the value; ``objective(z, 1)`` adds the gradient and
    ``objective(z, 2)`` the Hessian. Why an optimiser of our own beside scipy's: a model
    that writes down its Hessian (BG/NBD) needs it at the optimum for the standard errors
    anyway, and with it Newton's method converges in 8 or 9 evaluations (3 or 4 from a
    warm start) where L-BFGS-B takes about 20, plus 5 more for a Hessian by differences;
    and importing ``scipy.optimize`` (with ``scipy.linalg``) costs 0.15-0.25 s of CPU, three
    to five times the whole BG/NBD fit of 200,000 customers that ``retention analyze fit``
    now does in 0.05 s (docs/performance.md). It is deliberately narrow: a damped Newton step (the Hessian
    shifted until positive definite when it is not), halved until the value drops, and
    a stop only when the predicted decrease is at the level of rounding. Whatever it
    cannot settle that way (a parameter running towards the bound, no convergence, a
    value it cannot compute) returns None, and the caller runs :func:`maximise`.
    """
    z = np.array(x0, dtype=np.float64)
    f, g, H = objective(z, 2)
    for it in range(max_iter):
        if not (np.isfinite(f) and np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            return None
        step, positive = _newton_step(g, H)
        decrease = -float(g @ step)  # what the quadratic model promises, > 0
        if positive and decrease < 1e-20:
            if np.abs(z).max() >= bound - 1.0:  # judge_fit's edge: let the bounded optimiser decide
                return None
            return Optimum(z, f, it, H)
        # No more than a factor e^2 on any parameter per step: far from the optimum the
        # quadratic model says little about how far to go.
        t = min(1.0, 2.0 / np.abs(step).max())
        full = None  # the first trial is evaluated with its derivatives: it is usually taken
        while True:
            trial = z + t * step
            if np.abs(trial).max() > bound:
                return None
            if full is None:
                full = objective(trial, 2)
                f_trial = full[0]
            else:
                full, f_trial = (), objective(trial, 0)
            if f_trial <= f - 1e-4 * t * decrease:
                break
            # Within rounding of the optimum the value cannot show the promised decrease: a short,
            # full Newton step on a positive definite Hessian is taken on the model's word.
            if (positive and t == 1.0 and decrease < 1e-12 and np.abs(step).max() < 1e-2
                    and f_trial <= f + 1e-13 * (1 + abs(f))):
                break
            t /= 2
            if t < 1e-12:
                return None
        z = trial
        f, g, H = full if full else objective(z, 2)
    return None


def _newton_step(g: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, bool]:
    """The Newton step, and whether H itself was positive definite; if not, the step of
    H + mu I with the smallest mu (a power of ten times the largest curvature) that is."""
    H = (H + H.T) / 2
    scale = max(float(np.abs(np.diag(H)).max()), 1e-12)
    mu = 0.0
    while True:
        shifted = H + mu * np.eye(len(g))
        try:
            np.linalg.cholesky(shifted)
        except np.linalg.LinAlgError:
            mu = scale * 1e-6 if mu == 0.0 else mu * 10
            continue
        return np.linalg.solve(shifted, -g), mu == 0.0

"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While active a customer buys at Poisson rate lambda ~ Gamma(r, alpha); after
each purchase they drop out with probability p ~ Beta(a, b). Dropping out only
happens at a purchase, so a customer who never came back (x = 0) is certainly
alive in this model: P(alive) = 1. That is why BG/NBD alone cannot call a
one-time buyer lost (MBG/NBD and Pareto/NBD can).
"""

from __future__ import annotations

import os

import numpy as np

from ..twothreads import run_both
from ._fit import as_float_arrays, wsum
from .base import CountModel
from .rising import rising

__all__ = ["BGNBD"]


class BGNBD(CountModel):
    name = "bgnbd"
    title = "BG/NBD"
    param_names = ("r", "alpha", "a", "b")

    @classmethod
    def _prepare(cls, x, t_x, T, w):
        data = super()._prepare(x, t_x, T, w)
        data["rep"] = x > 0
        # Weight of each distinct count and each distinct age: sums of terms that depend on
        # nothing else are taken over those few values instead of every row.
        data["w_x"] = np.bincount(data["i_x"], weights=w, minlength=len(data["u_x"]))
        data["w_T"] = np.bincount(data["i_T"], weights=w, minlength=len(data["u_T"]))
        data["wx_T"] = np.bincount(data["i_T"], weights=w * x, minlength=len(data["u_T"]))
        return data

    @classmethod
    def _x0(cls, data):
        # Start alpha near the mean age so lambda starts at a sensible scale.
        return np.array([0.0, np.log(max(np.average(data["T"], weights=data["w"]), 1e-3)), 0.0, 0.0])

    @staticmethod
    def _terms(p, data):
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        x, ux, ix, rep = data["x"], data["u_x"], data["i_x"], data["rep"]
        la_T = np.log(alpha + data["u_T"])[data["i_T"]]
        la_tx = np.log(alpha + data["u_t_x"])[data["i_t_x"]]
        A12 = (rising(r, ux, 0)[0] + r * np.log(alpha) + rising(b, ux, 0)[0] - rising(a + b, ux, 0)[0])[ix]
        A3 = -(r + x) * la_T
        # b + x - 1 is only used, and only positive, when x > 0.
        log_bx1 = np.log(np.where(ux > 0, b + ux - 1, 1.0))[ix]
        A4 = np.where(rep, np.log(a) - log_bx1 - (r + x) * la_tx, -np.inf)
        return A12, A3, A4, la_T, la_tx

    @classmethod
    def _loglik_each(cls, p, data):
        A12, A3, A4, _, _ = cls._terms(p, data)
        return A12 + np.logaddexp(A3, A4)

    @classmethod
    def _negloglik(cls, logp, data):
        value, grad = cls._negloglik_derivatives(logp, data, 1)
        return (1e10, np.zeros(4)) if not np.isfinite(value) else (value, grad)

    @classmethod
    def _negloglik_derivatives(cls, logp, data, order: int = 2):
        """Mean negative log-likelihood in log-parameters; with its gradient (``order`` 1) and Hessian (2).

        A customer's likelihood is e^A12 (e^A3 + e^A4): still active at T (A3), or
        gone after the last purchase (A4, repeat buyers only). With D = A4 - A3,
        w4 = e^D / (1 + e^D) the share of the second branch and d = ∇A3 - ∇A4,
        ℓ = A12 + A3 + log(1 + e^D), ∇ℓ = ∇A12 + ∇A3 - w4 d and
        ∇²ℓ = ∇²A12 + ∇²A3 + w4 (∇²A4 - ∇²A3) + w4 (1 - w4) d dᵀ. Terms that depend
        on the count alone or the age alone are summed over their distinct values;
        the rest over the distinct rows. Everything is summed in the raw parameters p
        and turned into log-parameters z at the end:
        ∇_z = p ∇_p, ∇²_z = diag(p) ∇²_p diag(p) + diag(p ∇_p).
        """
        p = np.exp(np.asarray(logp, dtype=np.float64))
        r, alpha, a, b = p
        ux, uT, ut = data["u_x"], data["u_T"], data["u_t_x"]
        w_x, w_T, W = data["w_x"], data["w_T"], data["wsum"]
        rw_T = r * w_T + data["wx_T"]  # sum of w (r + x) at each distinct age
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            lr, lb, lab = rising(r, ux, order), rising(b, ux, order), rising(a + b, ux, order)
            bx1 = np.where(ux > 0, b + ux - 1, 1.0)  # per distinct count; used only where x > 0
            c_x = np.where(ux > 0, np.log(a) - np.log(bx1), -np.inf)  # A4 - A3 less (r + x) log((α+T)/(α+t_x))
            log_aT = np.log(alpha + uT)
            per_value = (c_x, log_aT, np.log(alpha + ut), 1 / (alpha + uT), 1 / (alpha + ut), 1 / bx1)
            rows = _row_sums(r, per_value, data, order)
            total = (wsum(w_x, lr[0] + lb[0] - lab[0]) + W * r * np.log(alpha) - wsum(rw_T, log_aT) + rows[0])
            if order == 0:
                return -total / W
            inv_T = per_value[3]
            sum_ww4 = rows[3]
            g = np.array([
                wsum(w_x, lr[1]) + W * np.log(alpha) - wsum(w_T, log_aT) + rows[1],
                W * r / alpha - wsum(rw_T, inv_T) - rows[2],
                -wsum(w_x, lab[1]) + sum_ww4 / a,
                wsum(w_x, lb[1] - lab[1]) - rows[4],
            ])
            if order == 1:
                return -total / W, -g * p / W
            (sum_v, v_dl_dl, ww4_q, v_dl_al, ww4_al_gi, v_al_al, sum_v_dl, sum_v_al, v_dl_ib, v_al_ib, sum_v_ib,
             ib_ib) = rows[5:]
            H = np.empty((4, 4))
            H[0, 0] = wsum(w_x, lr[2]) + v_dl_dl
            H[0, 1] = W / alpha - wsum(w_T, inv_T) - ww4_q - v_dl_al
            H[1, 1] = -W * r / alpha ** 2 + wsum(rw_T, inv_T ** 2) + ww4_al_gi + v_al_al
            H[0, 2] = sum_v_dl / a
            H[1, 2] = -sum_v_al / a
            H[0, 3] = -v_dl_ib
            H[1, 3] = v_al_ib
            H[2, 2] = -wsum(w_x, lab[2]) + (sum_v - sum_ww4) / a ** 2
            H[2, 3] = -wsum(w_x, lab[2]) - sum_v_ib / a
            H[3, 3] = wsum(w_x, lb[2] - lab[2]) + ib_ib
        H = np.triu(H) + np.triu(H, 1).T
        Hz = H * np.outer(p, p) + np.diag(g * p)
        return -total / W, -g * p / W, -Hz / W

    # --- predictions -----------------------------------------------------------

    def _log_odds_dead(self, x, t_x, T):
        p = self.params
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0))
                 + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
        return np.where(x > 0, z, -np.inf)

    def p_alive(self, x, t_x, T):
        from scipy.special import expit

        x, t_x, T = as_float_arrays(x, t_x, T)
        return expit(-self._log_odds_dead(x, t_x, T))

    def expected_purchases(self, t, x, t_x, T):
        from scipy.special import hyp2f1

        t, x, t_x, T = as_float_arrays(t, x, t_x, T)
        p = self.params
        r, alpha, a, b = p["r"], p["alpha"], _nudge(p["a"]), p["b"]
        z = t / (alpha + T + t)
        # Euler's transformation turns 2F1(r+x, b+x; a+b+x-1; z) * (1-z)^(r+x),
        # which overflows for large x, into this well-behaved product.
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            tail = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
            per_alive = (a + b + x - 1) / (a - 1) * (1 - tail)
        per_alive = _degenerate_fallback(per_alive, a / (a + b + x - 1), r + x, t / (alpha + T))
        return per_alive * self.p_alive(x, t_x, T)

    def p_no_purchase(self, t, x, t_x, T):
        # Dropping out happens only at a purchase, so an active customer stays
        # active through a silent period; lambda | alive ~ Gamma(r + x, alpha + T).
        t, x, t_x, T = as_float_arrays(t, x, t_x, T)
        p = self.params
        pa = self.p_alive(x, t_x, T)
        silent = np.exp(-(p["r"] + x) * np.log1p(t / (p["alpha"] + T)))
        return 1 - pa + pa * silent


#: Distinct rows from which an evaluation is shared between two threads.
_TWO_THREADS = 50_000


def _row_sums(r: float, per_value: tuple, data: dict, order: int) -> np.ndarray:
    """The sums over the distinct rows that an evaluation of ``order`` needs (see
    :meth:`BGNBD._negloglik_derivatives` for what each is); many rows are summed in two halves
    on two threads, numpy running without the GIL. The full data's evaluations are most of a fit:
    for 147,000 distinct rows the fit took 64 ms instead of 75 (medians, docs/performance.md).
    """
    n = len(data["x"])
    if n < _TWO_THREADS or (os.cpu_count() or 1) < 2:
        return _rows_between(r, per_value, data, order, 0, n)
    half = n // 2
    parts: list = [None, None]

    def between(k: int, lo: int, hi: int) -> None:
        parts[k] = _rows_between(r, per_value, data, order, lo, hi)

    run_both(lambda: between(0, 0, half), lambda: between(1, half, n), "half of the rows")
    return parts[0] + parts[1]


def _rows_between(r, per_value, data, order, lo, hi) -> np.ndarray:
    c_x, log_aT, log_at, inv_T, inv_t, inv_bx1 = per_value
    x, w = data["x"][lo:hi], data["w"][lo:hi]
    ix, iT, it = data["i_x"][lo:hi], data["i_T"][lo:hi], data["i_t_x"][lo:hi]
    # errstate is per thread: set here, not only in the caller.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        dl = log_aT[iT] - log_at[it]
        rx = r + x
        D = c_x[ix] + rx * dl  # -inf for one-time buyers: their A4 branch does not exist
        # log(1 + e^D), stable for any D (and 0 at -inf); numpy's logaddexp takes 5x as long.
        soft = np.maximum(D, 0.0) + np.log1p(np.exp(-np.abs(D)))
        sums = [wsum(w, soft)]
        if order >= 1:
            w4 = np.exp(D - soft)
            ww4 = w * w4
            gi_T, gi_t = inv_T[iT], inv_t[it]
            q = gi_t - gi_T
            d_al = rx * q  # d for alpha; d for r is -dl, for a -1/a, for b 1/(b + x - 1)
            ib = inv_bx1[ix]
            sums += [wsum(ww4, dl), wsum(ww4, d_al), ww4.sum(), wsum(ww4, ib)]
        if order >= 2:
            v = ww4 * (1 - w4)  # w w3 w4
            v_dl, v_al = v * dl, v * d_al
            sums += [v.sum(), wsum(v_dl, dl), wsum(ww4, q), wsum(v_dl, d_al), wsum(ww4 * d_al, gi_t + gi_T),
                     wsum(v_al, d_al), v_dl.sum(), v_al.sum(), wsum(v_dl, ib), wsum(v_al, ib), (v * ib).sum(),
                     wsum(ww4 + v, ib * ib)]
    return np.array(sums)


def _degenerate_fallback(value, p_mean, shape, t_scaled):
    """Where 2F1 over- or underflows (a and b in the hundreds of thousands, a
    nearly degenerate Beta), the drop-out probability is practically fixed at
    its mean p, and E[X(t) | alive, p] = (1 - (1 + p t / (alpha + T))^-(r + x)) / p."""
    bad = ~np.isfinite(value)
    if bad.any():
        p = np.broadcast_to(p_mean, value.shape)[bad]
        k = np.broadcast_to(shape, value.shape)[bad]
        ts = np.broadcast_to(t_scaled, value.shape)[bad]
        value = value.copy()
        value[bad] = -np.expm1(-k * np.log1p(p * ts)) / p
    return value


def _nudge(a: float) -> float:
    """The expectation has a removable singularity at a = 1; step off it."""
    return 1 + 1e-7 if abs(a - 1) < 1e-7 else a

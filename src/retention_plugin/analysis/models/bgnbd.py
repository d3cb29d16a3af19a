"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While active a customer buys at Poisson rate lambda ~ Gamma(r, alpha); after
each purchase they drop out with probability p ~ Beta(a, b). Dropping out only
happens at a purchase, so a customer who never came back (x = 0) is certainly
alive in this model: P(alive) = 1. That is why BG/NBD alone cannot call a
one-time buyer lost (MBG/NBD and Pareto/NBD can).
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from ._fit import as_float_arrays, wsum
from .base import CountModel

__all__ = ["BGNBD"]


class BGNBD(CountModel):
    name = "bgnbd"
    title = "BG/NBD"
    param_names = ("r", "alpha", "a", "b")

    @classmethod
    def _prepare(cls, x, t_x, T, w):
        data = super()._prepare(x, t_x, T, w)
        data["rep"] = x > 0
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
        A12 = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
               + gammaln(a + b) + gammaln(b + ux) - gammaln(b) - gammaln(a + b + ux))[ix]
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
        p = dict(zip(cls.param_names, np.exp(logp)))
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        x, w, rep, ux, ix = data["x"], data["w"], data["rep"], data["u_x"], data["i_x"]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            A12, A3, A4, la_T, la_tx = cls._terms(p, data)
            L = np.logaddexp(A3, A4)
            w4 = np.where(rep, np.exp(A4 - L), 0.0)  # weight of the "dropped out after t_x" branch
            w3 = 1.0 - w4
            dr = (digamma(r + ux) - digamma(r))[ix] + np.log(alpha) - w3 * la_T - w4 * la_tx
            inv_T = (1 / (alpha + data["u_T"]))[data["i_T"]]
            inv_tx = (1 / (alpha + data["u_t_x"]))[data["i_t_x"]]
            dalpha = r / alpha - (r + x) * (w3 * inv_T + w4 * inv_tx)
            dab = (digamma(a + b) - digamma(a + b + ux))[ix]
            da = dab + w4 / a
            db = dab + (digamma(b + ux) - digamma(b))[ix] - w4 / np.where(rep, b + x - 1, 1.0)
            value = -wsum(w, A12 + L) / data["wsum"]
        if not np.isfinite(value):
            return 1e10, np.zeros(4)
        grads = np.array([dr, dalpha, da, db])
        return value, -wsum(w, grads) * np.array([r, alpha, a, b]) / data["wsum"]

    # --- predictions -----------------------------------------------------------

    def _log_odds_dead(self, x, t_x, T):
        p = self.params
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0))
                 + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
        return np.where(x > 0, z, -np.inf)

    def p_alive(self, x, t_x, T):
        x, t_x, T = as_float_arrays(x, t_x, T)
        return expit(-self._log_odds_dead(x, t_x, T))

    def expected_purchases(self, t, x, t_x, T):
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

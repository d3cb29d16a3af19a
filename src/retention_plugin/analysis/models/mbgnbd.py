"""MBG/NBD (Batislam, Denizel & Filiztekin 2007): BG/NBD with a drop-out chance
at time zero as well as after each repeat purchase.

The only change from BG/NBD is that the first purchase is also a chance to
leave, so a one-time buyer's P(alive) falls as the silence grows: this model
can call one-time buyers lost.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from ._fit import as_float_arrays, wsum
from .base import CountModel
from .bgnbd import BGNBD, _degenerate_fallback, _nudge

__all__ = ["MBGNBD"]


class MBGNBD(CountModel):
    name = "mbgnbd"
    title = "MBG/NBD"
    param_names = ("r", "alpha", "a", "b")
    _x0 = BGNBD._x0

    @staticmethod
    def _terms(p, data):
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        x, ux, ix = data["x"], data["u_x"], data["i_x"]
        la_T = np.log(alpha + data["u_T"])[data["i_T"]]
        la_tx = np.log(alpha + data["u_t_x"])[data["i_t_x"]]
        A12 = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
               + gammaln(a + b) + gammaln(b + ux + 1) - gammaln(b) - gammaln(a + b + ux + 1))[ix]
        A3 = -(r + x) * la_T
        A4 = (np.log(a) - np.log(b + ux))[ix] - (r + x) * la_tx
        return A12, A3, A4, la_T, la_tx

    @classmethod
    def _loglik_each(cls, p, data):
        A12, A3, A4, _, _ = cls._terms(p, data)
        return A12 + np.logaddexp(A3, A4)

    @classmethod
    def _negloglik(cls, logp, data):
        p = dict(zip(cls.param_names, np.exp(logp)))
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        x, w, ux, ix = data["x"], data["w"], data["u_x"], data["i_x"]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            A12, A3, A4, la_T, la_tx = cls._terms(p, data)
            L = np.logaddexp(A3, A4)
            w4 = np.exp(A4 - L)
            w3 = 1.0 - w4
            dr = (digamma(r + ux) - digamma(r))[ix] + np.log(alpha) - w3 * la_T - w4 * la_tx
            inv_T = (1 / (alpha + data["u_T"]))[data["i_T"]]
            inv_tx = (1 / (alpha + data["u_t_x"]))[data["i_t_x"]]
            dalpha = r / alpha - (r + x) * (w3 * inv_T + w4 * inv_tx)
            dab = (digamma(a + b) - digamma(a + b + ux + 1))[ix]
            da = dab + w4 / a
            db = dab + (digamma(b + ux + 1) - digamma(b))[ix] - w4 * (1 / (b + ux))[ix]
            value = -wsum(w, A12 + L) / data["wsum"]
        if not np.isfinite(value):
            return 1e10, np.zeros(4)
        grads = np.array([dr, dalpha, da, db])
        return value, -wsum(w, grads) * np.array([r, alpha, a, b]) / data["wsum"]

    # --- predictions -----------------------------------------------------------

    def p_alive(self, x, t_x, T):
        x, t_x, T = as_float_arrays(x, t_x, T)
        p = self.params
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        log_odds_dead = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return expit(-log_odds_dead)

    def expected_purchases(self, t, x, t_x, T):
        t, x, t_x, T = as_float_arrays(t, x, t_x, T)
        p = self.params
        r, alpha, a, b = p["r"], p["alpha"], _nudge(p["a"]), p["b"]
        z = t / (alpha + T + t)
        # Euler's transformation of 2F1(r+x, b+x+1; a+b+x; z) * (1-z)^(r+x), as in BG/NBD.
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            tail = (1 - z) ** (a - 1) * hyp2f1(a + b - r, a - 1, a + b + x, z)
            per_alive = (a + b + x) / (a - 1) * (1 - tail)
        per_alive = _degenerate_fallback(per_alive, a / (a + b + x), r + x, t / (alpha + T))
        return per_alive * self.p_alive(x, t_x, T)

    def p_no_purchase(self, t, x, t_x, T):
        t, x, t_x, T = as_float_arrays(t, x, t_x, T)
        p = self.params
        pa = self.p_alive(x, t_x, T)
        silent = np.exp(-(p["r"] + x) * np.log1p(t / (p["alpha"] + T)))
        return 1 - pa + pa * silent

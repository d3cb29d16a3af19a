"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987), computed as in Fader &
Hardie's notes on implementing it.

While active a customer buys at Poisson rate lambda ~ Gamma(r, alpha); their
lifetime is exponential with rate mu ~ Gamma(s, beta) and can end at any time,
purchase or not, so a long silence lowers P(alive) for one-time buyers too.

The likelihood needs the Gaussian hypergeometric function 2F1(a, b; a+1; z).
Written naively it overflows for frequent buyers (b = r + x when alpha < beta),
so that branch goes through Euler's transformation and everything is added in
log space. Only distinct (x, t) pairs need 2F1, so it is computed once per
pair and gathered: that is what makes a million customers fit in seconds.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, gammaln, hyp2f1

from ._fit import as_float_arrays, unique_rows, wsum
from .base import CountModel

__all__ = ["ParetoNBD"]


def _log_part(rx, s, alpha, beta, t):
    """log[ 2F1(r+s+x, b; r+s+x+1; z(t)) / (max(alpha, beta) + t)^(r+s+x) ]

    with b = s + 1 and z = (alpha - beta)/(alpha + t) when alpha >= beta, and
    b = r + x, z = (beta - alpha)/(beta + t) otherwise (Fader & Hardie 2005).
    """
    rx, alpha, beta, t = np.broadcast_arrays(*as_float_arrays(rx, alpha, beta, t))
    rsx = rx + s
    a_big = alpha >= beta
    m = np.where(a_big, alpha, beta)
    z = np.abs(alpha - beta) / (m + t)
    out = np.empty(rx.shape)
    if a_big.any():
        za, ra = z[a_big], rsx[a_big]
        out[a_big] = np.log(hyp2f1(ra, s + 1, ra + 1, za))
    small = ~a_big
    if small.any():
        zb, rb, rxb = z[small], rsx[small], rx[small]
        # 2F1(rsx, r+x; rsx+1; z) = (1-z)^(1-r-x) 2F1(1, s+1; rsx+1; z)
        out[small] = (1 - rxb) * np.log1p(-zb) + np.log(hyp2f1(1.0, s + 1, rb + 1, zb))
    return out - rsx * np.log(m + t)


def _log_a0(part_tx, part_T):
    """log(e^part_tx - e^part_T): the chance of having died between t_x and T."""
    with np.errstate(divide="ignore"):
        return part_tx + np.log(-np.expm1(np.minimum(part_T - part_tx, 0.0)))


class ParetoNBD(CountModel):
    name = "pnbd"
    title = "Pareto/NBD"
    param_names = ("r", "alpha", "s", "beta")
    analytic_gradient = False

    @classmethod
    def _prepare(cls, x, t_x, T, w):
        data = super()._prepare(x, t_x, T, w)
        n = len(x)
        (px, pt), inv = unique_rows([np.concatenate([x, x]), np.concatenate([t_x, T])])
        data.update(pair_x=px, pair_t=pt, inv_tx=inv[:n], inv_T=inv[n:])
        ux, inv_x = np.unique(x, return_inverse=True)
        data.update(ux=ux, inv_x=inv_x.ravel())
        return data

    @classmethod
    def _x0(cls, data):
        mean_T = max(np.average(data["T"], weights=data["w"]), 1e-3)
        return np.array([0.0, np.log(mean_T), 0.0, np.log(mean_T)])

    @classmethod
    def _loglik_each(cls, p, data):
        r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
        x, T = data["x"], data["T"]
        ux = data["ux"]
        head = (gammaln(r + ux) - gammaln(r))[data["inv_x"]] + r * np.log(alpha) + s * np.log(beta)
        parts = _log_part(r + data["pair_x"], s, alpha, beta, data["pair_t"])
        log_a0 = _log_a0(parts[data["inv_tx"]], parts[data["inv_T"]])
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        dead = np.log(s) - np.log(r + s + x) + log_a0
        return head + np.logaddexp(alive, dead)

    @classmethod
    def _negloglik(cls, logp, data):
        p = dict(zip(cls.param_names, np.exp(logp)))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            value = -wsum(data["w"], cls._loglik_each(p, data)) / data["wsum"]
        return value if np.isfinite(value) else 1e10

    # --- predictions -----------------------------------------------------------

    def _alive_dead(self, x, t_x, T):
        p = self.params
        r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
        log_a0 = _log_a0(_log_part(r + x, s, alpha, beta, t_x), _log_part(r + x, s, alpha, beta, T))
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        dead = np.log(s) - np.log(r + s + x) + log_a0
        return alive, dead

    def p_alive(self, x, t_x, T):
        x, t_x, T = as_float_arrays(x, t_x, T)
        alive, dead = self._alive_dead(x, t_x, T)
        return expit(alive - dead)

    def expected_purchases(self, t, x, t_x, T):
        t, x, t_x, T = as_float_arrays(t, x, t_x, T)
        p = self.params
        r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
        L = np.log1p(t / (beta + T))
        # (1 - ((beta+T)/(beta+T+t))^(s-1)) / (s-1), continuous through s = 1
        horizon = L if abs(s - 1) < 1e-9 else -np.expm1(-(s - 1) * L) / (s - 1)
        return (r + x) / (alpha + T) * (beta + T) * horizon * self.p_alive(x, t_x, T)

    def p_no_purchase(self, t, x, t_x, T):
        # Given alive at T: lambda ~ Gamma(r+x, alpha+T), mu ~ Gamma(s, beta+T),
        # and silence over t is the new-customer P(X(t) = 0) with those parameters.
        t, x, t_x, T = as_float_arrays(t, x, t_x, T)
        p = self.params
        r1, a1, s, b1 = p["r"] + x, p["alpha"] + T, p["s"], p["beta"] + T
        zero = np.zeros_like(t)
        log_a0 = _log_a0(_log_part(r1, s, a1, b1, zero), _log_part(r1, s, a1, b1, t))
        with np.errstate(divide="ignore"):
            silent = np.exp(r1 * np.log(a1) + s * np.log(b1) + np.logaddexp(
                -r1 * np.log(a1 + t) - s * np.log(b1 + t), np.log(s) - np.log(r1 + s) + log_a0))
        pa = self.p_alive(x, t_x, T)
        return 1 - pa + pa * np.minimum(silent, 1.0)

"""Draw customer summaries from fitted models: for benchmarks and tests
that need data whose true parameters are known."""

from __future__ import annotations

import numpy as np

__all__ = ["simulate_bgnbd", "simulate_pnbd"]


def _on_grid(t_x, T, resolution):
    # Real summaries are measured in whole days; rounding down keeps t_x <= T.
    if resolution:
        t_x = np.minimum(np.floor(t_x / resolution + 1e-9) * resolution, T)
    return t_x


def simulate_bgnbd(params: dict, T, rng: np.random.Generator, resolution: float | None = None):
    """(x, t_x) for customers of ages ``T`` under BG/NBD with ``params``."""
    T = np.asarray(T, dtype=np.float64)
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], T.shape)
    p = np.clip(rng.beta(params["a"], params["b"], T.shape), 1e-12, 1.0)
    purchases_until_dropout = rng.geometric(p)  # the purchase at which the customer leaves
    n = rng.poisson(lam * T)
    x = np.minimum(n, purchases_until_dropout)
    # The x-th of n uniform arrival times in [0, T] is T * Beta(x, n - x + 1).
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(n - x + 1, 1)), 0.0)
    return x.astype(np.float64), _on_grid(t_x, T, resolution)


def simulate_pnbd(params: dict, T, rng: np.random.Generator, resolution: float | None = None):
    """(x, t_x) for customers of ages ``T`` under Pareto/NBD with ``params``."""
    T = np.asarray(T, dtype=np.float64)
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], T.shape)
    mu = rng.gamma(params["s"], 1.0 / params["beta"], T.shape)
    active = np.minimum(rng.exponential(1.0 / np.maximum(mu, 1e-300)), T)
    x = rng.poisson(lam * active)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    return x.astype(np.float64), _on_grid(t_x, T, resolution)

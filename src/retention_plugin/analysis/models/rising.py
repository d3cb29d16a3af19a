"""Log-gamma differences at whole-number steps: logs of rising factorials.

Purchase counts are whole numbers, and the count models need
``lnΓ(c + x) − lnΓ(c)`` (and its first and second derivatives in ``c``) only at
those counts. For a whole ``x`` that difference is the log of the rising
factorial ``c (c + 1) ... (c + x − 1)``, a plain sum of logarithms, and its
derivatives are sums of ``1 / (c + k)`` and ``−1 / (c + k)²``: one cumulative
sum over ``k < max(x)`` gives all three at every count at once. That is what
lets the BG/NBD fit run without importing ``scipy.special`` (about 0.2 s of
CPU, more than the fit itself: docs/performance.md). Counts that are not
whole, or so large that the sums would cost more than the special functions,
go to ``gammaln``, ``digamma`` and ``polygamma`` instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rising"]

#: Sum logarithms up to this count at least; beyond it only while the sums stay cheaper than
#: evaluating the special functions at each distinct count.
_MIN_TERMS = 1 << 16


def rising(c: float, counts: np.ndarray, order: int = 2) -> list[np.ndarray]:
    """``[lnΓ(c+n) − lnΓ(c), ψ(c+n) − ψ(c), ψ'(c+n) − ψ'(c)][:order + 1]`` at each of ``counts``.

    ``counts`` are the distinct non-negative counts of a data set (sorted or not).
    """
    counts = np.asarray(counts, dtype=np.float64)
    top = float(counts.max()) if counts.size else 0.0
    whole = counts.size and top <= max(_MIN_TERMS, 64 * counts.size) and bool(np.all(counts == np.floor(counts)))
    if not whole or (counts < 0).any():
        return _special(c, counts, order)
    k = c + np.arange(int(top), dtype=np.float64)
    at = counts.astype(np.intp)
    out = []
    for term in (np.log(k), 1.0 / k, -1.0 / (k * k))[:order + 1]:
        cum = np.zeros(len(k) + 1)
        np.cumsum(term, out=cum[1:])
        out.append(cum[at])
    return out


def _special(c: float, counts: np.ndarray, order: int) -> list[np.ndarray]:
    from scipy.special import digamma, gammaln, polygamma

    out = [gammaln(c + counts) - gammaln(c)]
    if order >= 1:
        out.append(digamma(c + counts) - digamma(c))
    if order >= 2:
        out.append(polygamma(1, c + counts) - polygamma(1, c))
    return out

"""Customer ids as dense codes 0..n-1, for the readers and the summaries alike.

Numpy's sort of plain integers is the workhorse: ids numbered 1, 2, 3... need
no sort at all, other integers one packed sort, text ids ``numpy.unique``.
"""

from __future__ import annotations

import numpy as np


def dense_codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..n-1 in the order of the ids, and the ids they stand for (``labels[codes] == ids``)."""
    if len(ids) == 0:
        return np.zeros(0, np.int64), ids[:0]
    if ids.dtype.kind in "iu":
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo < 4 * len(ids) + 4096:
            # Stored customers are numbered 1, 2, 3...: the id less the smallest is already a code.
            return ids.astype(np.int64) - lo, np.arange(lo, hi + 1, dtype=ids.dtype)
        shifted, order = sort_with_order(ids.astype(np.int64) - lo)
        starts = run_starts(shifted)
        new = np.zeros(len(ids), bool)
        new[starts] = True
        codes = np.empty(len(ids), np.int64)
        codes[order] = np.cumsum(new) - 1
        return codes, (shifted[starts] + lo).astype(ids.dtype)
    labels, codes = np.unique(ids, return_inverse=True)
    return codes.ravel().astype(np.int64), labels


def sort_with_order(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys and the permutation, like argsort but several times faster.

    Packing the position into the low bits lets numpy's vectorised sort of
    plain int64 do the work; argsort has no such fast path.
    """
    bits = max(len(key), 2).bit_length()
    if len(key) and int(key.max()) < (1 << (62 - bits)) and int(key.min()) >= 0:
        packed = (key << bits) | np.arange(len(key), dtype=np.int64)
        packed.sort()
        return packed >> bits, packed & ((1 << bits) - 1)
    order = np.argsort(key, kind="stable")
    return key[order], order


def run_starts(sorted_values: np.ndarray) -> np.ndarray:
    new = np.empty(len(sorted_values), bool)
    if len(new):
        new[0] = True
        np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    return np.flatnonzero(new)

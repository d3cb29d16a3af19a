"""The summary's sort shared between two threads gives what one sort gives."""

import numpy as np
import pytest

from retention_plugin.analysis import summary as S


@pytest.mark.parametrize("dtype", [np.int64, np.uint32])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 1001])
def test_the_two_thread_sort_is_a_sort(monkeypatch, dtype, n):
    monkeypatch.setattr(S, "_TWO_THREADS", 2)
    rng = np.random.default_rng(n)
    key = rng.integers(0, 1 << 31, n).astype(dtype)
    key[: n // 3] = key[-1] if n else key[: n // 3]  # repeated keys across the halves
    expected = np.sort(key)
    S._sort(key)
    assert key.dtype == dtype
    assert key.tolist() == expected.tolist()


def test_the_summary_is_the_same_either_way(monkeypatch):
    rng = np.random.default_rng(7)
    n = 20_000
    ids = 6_000_000_000_000 + rng.integers(0, 10**9, 900)[rng.integers(0, 900, n)]
    days = np.sort(19000 + rng.integers(0, 700, n))
    one = S._summarize_codes(ids, None, days, np.zeros(n), None, None, "weeks", spend=False,
                             id_offset=int(ids.min()))
    monkeypatch.setattr(S, "_TWO_THREADS", 16)
    two = S._summarize_codes(ids, None, days, np.zeros(n), None, None, "weeks", spend=False,
                             id_offset=int(ids.min()))
    for name in ("customer_ids", "x", "t_x", "T", "first_day", "last_day"):
        assert getattr(one, name).tolist() == getattr(two, name).tolist(), name


def test_a_failed_half_is_raised_on_the_caller(monkeypatch):
    monkeypatch.setattr(S, "_TWO_THREADS", 2)

    class Key(np.ndarray):
        def sort(self, *a, **k):
            raise MemoryError("no room")

    key = np.arange(10, dtype=np.int64).view(Key)
    with pytest.raises(MemoryError, match="no room"):
        S._sort(key)

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


def _brute_force(codes, days, offset):
    seen: dict[int, set] = {}
    for c, d in zip(codes.tolist(), days.tolist()):
        seen.setdefault(c - offset, set()).add(d)
    cs = sorted(seen)
    return ([c for c in cs], [min(seen[c]) for c in cs], [max(seen[c]) for c in cs], [len(seen[c]) for c in cs])


@pytest.mark.parametrize("threads_from", [2, 1 << 30])
@pytest.mark.parametrize("case", ["wide ids", "dense codes", "one customer", "one key", "two rows", "date order"])
def test_per_customer_days_match_a_brute_force(monkeypatch, threads_from, case):
    """First day, last day and distinct days per customer, with the keys sorted on one thread or
    on two (the halves' boundary then falls inside runs of repeated keys and of one customer)."""
    monkeypatch.setattr(S, "_TWO_THREADS", threads_from)
    rng = np.random.default_rng(len(case))
    n = 2 if case == "two rows" else 5_001
    if case == "wide ids":  # 13-digit ids: a 64-bit key
        codes = 6_000_000_000_000 + rng.integers(0, 10**10, 400)[rng.integers(0, 400, n)]
    elif case == "one customer":
        codes = np.full(n, 42)
    elif case == "one key":
        codes = np.full(n, 7)
    else:
        codes = rng.integers(0, 300, n)
    days = np.full(n, 19_500) if case == "one key" else 19_000 + rng.integers(0, 900, n)
    if case == "date order":
        days = np.sort(days)
    offset = int(codes.min())
    got = S._customer_days(codes, days, offset)
    assert [g.tolist() for g in got] == list(_brute_force(codes, days, offset))
    assert all(g.dtype == np.int64 for g in got)


def test_per_customer_days_of_nothing():
    got = S._customer_days(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert [len(g) for g in got] == [0, 0, 0, 0]

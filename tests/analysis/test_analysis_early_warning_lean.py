"""The daily early warning keeps its memory low without changing what it finds.

It reads only the orders' customer, day and value, keeps the per-customer results as arrays,
finds the crossings on arrays, writes the scores a chunk at a time, and the lost-score choice
releases each earlier window's arrays once its AUCs are known. Each test compares one of those
with the plain computation it replaces: the full loader, :func:`crossings` on dicts, the choice
made with every split kept, and ``scipy.stats.rankdata``.
"""

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import insert, select, update

from .analysis_simstore import simulate_store
from .test_analysis_store import at, store_rows
from retention_plugin.analysis import early_warning as ew
from retention_plugin.analysis import evaluate
from retention_plugin.analysis.early_warning import crossings, early_warning
from retention_plugin.analysis.metrics import rankdata
from retention_plugin.analysis.scoring import ScoreSettings, choose_lost_score, score_customers
from retention_plugin.analysis.store import load_store_history
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

UTC = timezone.utc


def expected_run(previous: dict, scores, as_of, first_run_reports: bool) -> tuple[dict, list[tuple]]:
    """What the early warning must return and store for ``scores``: dicts and :func:`crossings`."""
    c = scores.columns
    ids = [int(i) for i in scores.customer_ids]
    current = dict(zip(ids, c["state"].tolist()))
    found = crossings(previous, current, report_unknown=bool(previous) or first_run_reports)
    score_of = dict(zip(ids, c["lost_score"].tolist()))
    rows = [(cid, seg, Decimal(f"{pa:.6f}"), Decimal(f"{min(ep, 999999):.6f}"), as_of + timedelta(days=nd), as_of)
            for cid, seg, pa, ep, nd in zip(ids, c["state"].tolist(), c["p_alive"].tolist(),
                                            c["expected_purchases_horizon"].tolist(), c["next_purchase_days"].tolist())]
    return ({"at_risk": [(cid, score_of[cid]) for cid, seg in found if seg == "at_risk"],
             "lost": [(cid, score_of[cid]) for cid, seg in found if seg == "lost"],
             "scored": len(ids), "lost_score": scores.choice["label"]}, rows)


def stored(engine) -> list[tuple]:
    cs = t.customer_scores
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(cs.c.customer_id, cs.c.segment, cs.c.p_alive, cs.c.expected_purchases, cs.c.next_purchase_at,
                   cs.c.scored_at).order_by(cs.c.customer_id))]


def test_early_warning_finds_and_stores_what_the_plain_computation_does(db_url, monkeypatch):
    history, _ = simulate_store(n=150, seed=5, annual_leave=0.4)
    engine = make_engine(db_url)
    seen = []

    def scoring(h, settings):  # the scores the early warning works from, kept to check what it did with them
        seen.append((h, score_customers(h, settings)))
        return seen[-1][1]

    monkeypatch.setattr(ew, "score_customers", scoring)
    monkeypatch.setattr(ew, "_WRITE_ROWS", 7)  # several chunks, the last one short
    try:
        store_rows(engine, history)
        runs = []
        for day, first in ((history.as_of - 60, True), (history.as_of - 30, False), (history.as_of, False)):
            as_of = at(day).replace(hour=6)
            previous = {cid: seg for cid, seg, *_ in stored(engine)}
            got = early_warning(engine, as_of, first_run_reports=first)
            lean, scores = seen[-1]
            full = load_store_history(engine, as_of)
            assert [lean.orders.customer.tolist(), lean.orders.day.tolist(), lean.orders.amount.tolist()] == \
                [full.orders.customer.tolist(), full.orders.day.tolist(), full.orders.amount.tolist()]
            want, want_rows = expected_run(previous, scores, as_of, first)
            assert got == want
            assert stored(engine) == want_rows
            runs.append(got)
    finally:
        engine.dispose()
    # The fixture exercises every branch: the first run reports everyone not active, the later
    # ones only those who got worse, and someone stays at risk or lost without being reported.
    assert runs[0]["at_risk"] and runs[0]["lost"]
    assert runs[2]["lost"] and len(runs[2]["lost"]) + len(runs[2]["at_risk"]) < runs[2]["scored"]


def test_crossing_rows_are_the_crossings_in_the_same_order():
    rng = np.random.default_rng(3)
    segments = np.array(["active", "at_risk", "lost"])
    for trial in range(200):
        ids = np.unique(rng.integers(1, 80, int(rng.integers(0, 60))))
        state = segments[rng.integers(0, 3, len(ids))]
        before = {int(i): str(rng.choice(["active", "at_risk", "lost", "churned"]))
                  for i in rng.integers(1, 80, int(rng.integers(0, 60)))}
        report_unknown = bool(trial % 2)
        want = crossings(before, dict(zip(ids.tolist(), state.tolist())), report_unknown=report_unknown)
        before_ids = np.array(sorted(before), np.int64)
        before_rank = np.array([ew._RANK.get(before[i], 0) for i in sorted(before)], np.int8)
        got = ew._crossing_rows(ids, state, before_ids, before_rank, report_unknown=report_unknown)
        assert list(zip(ids[got].tolist(), state[got].tolist())) == want


def test_purchases_only_reads_the_same_purchases(db_url):
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(t.customers), [{"id": c, "tags": [], "created_at": now, "updated_at": now}
                                               for c in range(1, 7)])
            conn.execute(update(t.customers).where(t.customers.c.id == 6).values(merged_into=2))
            conn.execute(insert(t.orders), [
                {"id": k, "customer_id": 1 + k % 6, "currency": "EUR" if k % 7 else "USD",
                 "subtotal": Decimal(10 + k), "total": Decimal(10 + k), "refunded": Decimal(k % 3 * 7),
                 "created_at": now - timedelta(days=k, hours=k % 5), "test": k % 9 == 0,
                 "cancelled_at": now - timedelta(days=k - 1) if k % 8 == 0 else None,
                 "tags": [], "discount_codes": [], "source": "webhook"} for k in range(1, 40)]
                + [{"id": 40, "customer_id": 1, "currency": "EUR", "subtotal": Decimal(5), "total": Decimal(5),
                    "refunded": Decimal(0), "created_at": now + timedelta(days=2), "test": False, "cancelled_at": None,
                    "tags": [], "discount_codes": [], "source": "webhook"}])
        full = load_store_history(engine, now)
        lean = load_store_history(engine, now, purchases_only=True)
    finally:
        engine.dispose()
    for column in ("customer", "day", "amount"):
        assert getattr(lean.orders, column).tolist() == getattr(full.orders, column).tolist()
    assert 6 not in lean.orders.customer and 0.0 in lean.orders.amount  # merged; refunded beyond its value
    assert len(lean.orders.day) == 39 - 4 - 4  # test and cancelled orders left out, and the one after as_of
    assert (lean.as_of, lean.currency, lean.notes) == (full.as_of, full.currency, full.notes)
    assert len(lean.tickets.customer) == len(lean.refunds.customer) == 0


@pytest.mark.parametrize("horizon, origins", [(90, 3), (60, 4)])
def test_the_choice_is_the_same_with_earlier_windows_released(horizon, origins, monkeypatch):
    history, _ = simulate_store(n=800, seed=11, annual_leave=0.3)
    st = ScoreSettings(horizon_days=horizon, selection_origins=origins)
    lean = choose_lost_score(history, st)
    monkeypatch.setattr(evaluate, "_release_unneeded", lambda selection: None)
    kept = choose_lost_score(history, st)
    assert json.dumps(lean, sort_keys=True, default=str) == json.dumps(kept, sort_keys=True, default=str)
    assert lean["evaluation"]["selection"], "the fixture must have earlier windows to choose on"


def make_split(window, y, scores, holdout_length) -> evaluate.Split:
    c, e = window
    result = {"enough_data": True, "calibration_end": f"day {c}", "holdout_end": f"day {e}",
              "holdout_length": holdout_length, "customers": len(y), "no_purchase_in_holdout": int(y.sum())}
    return evaluate.Split(None, y, scores, {}, result, window=window)


def test_a_released_split_calibrates_the_chosen_score_as_a_kept_one_would():
    """The calibration of a chosen score that is not a probability is learned on the latest
    window of the final one's length; release keeps that array and the AUCs."""
    rng = np.random.default_rng(8)
    n = 400

    def splits():
        out = []
        # Windows in no particular order: three of 30 days (the latest one without the expected
        # purchases, as when its model did not fit) and one of 20.
        for k, (window, fitted) in enumerate([((100, 130), True), ((140, 160), True), ((150, 180), False),
                                              ((120, 150), True)]):
            y = rng.random(n) < 0.4
            noise = np.random.default_rng(k)
            scores = {"baseline.days_since_last": y * 5.0 + noise.normal(size=n),
                      "pnbd.p_no_purchase": np.clip(y * 0.3 + noise.random(n) * 0.7, 0, 1)}
            if fitted:
                scores["pnbd.expected_purchases"] = y * 1.0 + noise.normal(size=n)
            out.append(make_split(window, y, scores, (window[1] - window[0]) / 7))
        return out

    yf = np.random.default_rng(99).random(n) < 0.4
    final_scores = {"baseline.days_since_last": yf * 5.0 + rng.normal(size=n),
                    "pnbd.p_no_purchase": rng.random(n),
                    "pnbd.expected_purchases": yf * 1.0 + rng.normal(size=n)}
    final = make_split((190, 220), yf, final_scores, 30 / 7)
    kept = splits()
    released = [make_split(s.window, s.y, dict(s.scores), s.result["holdout_length"]) for s in kept]
    for i in range(len(released)):
        evaluate._release_unneeded(released[: i + 1])
    assert all(sp.summary is None and sp.aucs for sp in released)
    # For each window length and score that is not a probability, the latest window keeps the array.
    assert {i: sorted(sp.scores) for i, sp in enumerate(released) if sp.scores} == {
        1: ["baseline.days_since_last", "pnbd.expected_purchases"], 2: ["baseline.days_since_last"],
        3: ["pnbd.expected_purchases"]}
    want, want_cal = evaluate._choose(kept, final)
    got, got_cal = evaluate._choose(released, final)
    assert want["score"] == "baseline.days_since_last" and want["calibrated_on"] == "day 150"
    assert json.dumps(got, sort_keys=True, default=str) == json.dumps(want, sort_keys=True, default=str)
    assert got_cal["knots"].tolist() == want_cal["knots"].tolist()
    assert got_cal["p_no_purchase"].tolist() == want_cal["p_no_purchase"].tolist()


def test_rankdata_is_scipys():
    from scipy.stats import rankdata as scipy_rankdata

    rng = np.random.default_rng(2)
    cases = [np.array([]), np.array([3.0]), np.array([2, 2, 1, 3, 2]), np.array([0.0, -0.0, np.inf, -np.inf, 1.0]),
             np.array([1.0, np.nan, 2.0]), rng.normal(size=1000), rng.integers(0, 7, 2000).astype(float)]
    for a in cases:
        want = scipy_rankdata(a)
        got = rankdata(a)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), a

"""The stored-data path: loader, report command, win-back lift and the early warning, on SQLite."""

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, insert, select

from .analysis_simstore import simulate_store
from retention_plugin.analysis.commands import analyze
from retention_plugin.analysis.early_warning import crossings, early_warning
from retention_plugin.analysis.store import load_store_history
from retention_plugin.analysis.saved_report import latest_report
from retention_plugin.analysis.winback import assign_group
from retention_plugin.storage import tables as t

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(day, hours=12.0):
    return EPOCH + timedelta(days=int(day), hours=hours)


def from_secs(s):
    return None if s is None or np.isnan(s) else EPOCH + timedelta(seconds=float(s))


@pytest.fixture
def engine(tmp_path):
    eng = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    t.metadata.create_all(eng)
    return eng


def store_rows(engine, history):
    """Write a simulated History into the tables, as the webhooks would have."""
    o = history.orders
    now = at(history.as_of)
    ids = np.unique(o.customer)
    with engine.begin() as conn:
        conn.execute(insert(t.customers), [{"id": int(i), "email": f"c{i}@example.com", "tags": [],
                                             "created_at": now, "updated_at": now} for i in ids])
        conn.execute(insert(t.orders), [
            {"id": k + 1, "customer_id": int(c), "currency": "EUR", "subtotal": Decimal(f"{a:.2f}"),
             "total": Decimal(f"{a:.2f}"), "total_discounts": Decimal("5") if d else Decimal("0"),
             "created_at": at(day, 9), "fulfilled_at": None if np.isnan(f) else at(day, 9 + f * 24),
             "tags": [], "discount_codes": [], "test": False, "source": "import"}
            for k, (c, day, a, d, f) in enumerate(zip(o.customer, o.day, o.amount, o.discounted, o.fulfil_days))])
        conn.execute(insert(t.order_lines), [
            {"order_id": k + 1, "line_key": "1", "product_type": cat, "quantity": 1, "price": Decimal("1"),
             "tags": []} for k, cat in enumerate(o.category)])
        tk = history.tickets
        conn.execute(insert(t.tickets), [
            {"zendesk_id": k + 1, "customer_id": int(c), "created_at": from_secs(cr), "first_public_reply_at":
             from_secs(fr), "solved_at": from_secs(sv), "status": "solved" if not np.isnan(sv) else "open",
             "complaint": bool(cp), "tags": [], "custom_fields": {}}
            for k, (c, cr, fr, sv, cp) in enumerate(zip(tk.customer, tk.created, tk.first_reply, tk.solved,
                                                         tk.complaint))])
        rt = history.ratings
        conn.execute(insert(t.ratings), [
            {"source": "zendesk", "source_id": str(k), "customer_id": int(c), "score": "bad" if v < 0.5 else "good",
             "value": Decimal(str(v)), "created_at": from_secs(tm)}
            for k, (c, tm, v) in enumerate(zip(rt.customer, rt.time, rt.value))])


def test_loader_reads_orders_tickets_ratings_and_applies_the_rules(engine):
    now = at(19000)
    with engine.begin() as conn:
        conn.execute(insert(t.customers), [
            {"id": i, "tags": [], "created_at": now, "updated_at": now} for i in (1, 2, 3)])
        conn.execute(t.customers.update().where(t.customers.c.id == 3).values(merged_into=1))
        base = {"currency": "EUR", "tags": [], "discount_codes": [], "source": "webhook"}
        for row in [
            {**base, "id": 1, "customer_id": 1, "subtotal": 20, "total": 25, "created_at": at(18990), "test": False},
            {**base, "id": 2, "customer_id": 1, "subtotal": 30, "total": 35, "refunded": 10, "created_at": at(18995),
             "test": False, "fulfilled_at": at(19001)},
            {**base, "id": 3, "customer_id": 2, "subtotal": 99, "total": 99, "created_at": at(18996), "test": True},
            {**base, "id": 4, "customer_id": 2, "subtotal": 50, "total": 50, "created_at": at(18997), "test": False,
             "cancelled_at": at(18998)},
            {**base, "id": 5, "customer_id": 3, "subtotal": 40, "total": 40, "created_at": at(18998), "test": False,
             "total_discounts": 4},
            {**base, "id": 6, "customer_id": 1, "subtotal": 60, "total": 60, "created_at": at(19001), "test": False},
        ]:
            conn.execute(insert(t.orders).values(**row))  # rows differ in their columns
        for row in [
            {"zendesk_id": 10, "customer_id": 2, "created_at": at(18991), "first_public_reply_at": at(18994),
             "complaint": True, "tags": [], "custom_fields": {}},
            {"zendesk_id": 11, "customer_id": 2, "created_at": at(19002), "complaint": False, "tags": [],
             "custom_fields": {}},
        ]:
            conn.execute(insert(t.tickets).values(**row))
        conn.execute(insert(t.ratings), [{"source": "zendesk", "source_id": "r1", "customer_id": 3, "score": "bad",
                                          "value": Decimal("0"), "created_at": at(18999)}])
    h = load_store_history(engine, at(19000).date())
    # Test, cancelled and future orders are out; customer 3's order counts for customer 1.
    assert sorted(zip(h.orders.customer.tolist(), h.orders.day.tolist())) == [(1, 18990), (1, 18995), (1, 18998)]
    assert sorted(h.orders.amount.tolist()) == [20.0, 20.0, 40.0]  # 30 less 10 refunded
    assert h.orders.discounted.tolist().count(True) == 1
    assert h.tickets.customer.tolist() == [2] and h.tickets.complaint.tolist() == [True]
    assert (h.tickets.first_reply - h.tickets.created).tolist() == [3 * 86400]
    assert h.ratings.customer.tolist() == [1] and h.ratings.value.tolist() == [0.0]
    assert h.currency == "EUR" and h.as_of == 19000


def test_report_command_writes_a_self_contained_report(engine, tmp_path):
    history, _ = simulate_store(n=1500, seed=3, annual_leave=0.3)
    store_rows(engine, history)
    as_of = str(np.datetime64(history.as_of, "D"))
    out = tmp_path / "report"
    res = CliRunner().invoke(analyze, ["report", "--out", str(out), "--as-of", as_of],
                             obj=SimpleNamespace(engine=engine))
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    kept = latest_report(engine)  # what the console's Analysis page shows
    assert kept["html"] == html and kept["as_of"].date().isoformat() == as_of
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", html)  # opens offline
    assert html.count("data:image/png;base64,") >= 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["customers"] == len(np.unique(history.orders.customer))
    assert summary["lost_score"]["verdict"] in html
    verdict = summary["lost_score"]["verdict"]
    assert "beats the days-since-last-purchase baseline" in verdict or "Days since the last purchase" in verdict
    # Chosen on earlier windows of the horizon, judged on the last one.
    ev = summary["evaluation"]
    assert summary["lost_score"]["on_evidence"] and ev["selection"]
    assert all(w["holdout_end"] <= ev["calibration_end"] for w in ev["selection"])
    assert "played no part in the choice" in verdict
    assert ev["tracking"]["actual"] and set(ev["tracking"]["expected"]) == set(ev["models"])
    assert all(m["standard_errors"] and m["intervals"] for m in summary["models"].values())
    assert summary["reasons"]["adjusted"]["fitted"] and "not causes" in summary["reasons"]["adjusted"]["wording"]
    assert "Tracking" in html or "tracking" in html
    assert "Benjamini" in html and "not causes" in html
    assert summary["thresholds"]["lost_from"] == 0.8 and "lost score 0.8 or more" in html
    assert sum(summary["states"].values()) == summary["customers"]
    lines = (out / "customers.csv").read_text().splitlines()
    assert len(lines) == summary["customers"] + 1
    assert lines[0].startswith("customer_id,first_order,last_order,purchase_days")
    header = lines[0].split(",")
    for row in lines[1:50]:
        v = dict(zip(header, row.split(",")))
        assert float(v["p_alive_low"]) <= float(v["p_alive"]) <= float(v["p_alive_high"])
        assert (float(v["expected_purchases_horizon_low"]) <= float(v["expected_purchases_horizon"])
                <= float(v["expected_purchases_horizon_high"]))
    assert summary["reasons"]["rows"] and summary["cohorts"]["cohorts"]


def test_winback_command_reports_both_groups_and_the_lift(engine):
    now = at(19100)
    base = {"currency": "EUR", "tags": [], "discount_codes": [], "source": "webhook", "test": False}
    rng = np.random.default_rng(0)
    with engine.begin() as conn:
        conn.execute(insert(t.customers), [{"id": i, "tags": [], "created_at": now, "updated_at": now}
                                           for i in range(1, 2001)])
        assignments, orders = [], []
        for i in range(1, 2001):
            group = assign_group(i)
            assignments.append({"key": f"winback:{i}", "customer_id": i, "group": group, "segment": "lost",
                                "created_at": at(19000)})
            if rng.random() < (0.30 if group == "offer" else 0.10):
                orders.append({**base, "customer_id": i, "subtotal": 10, "total": 10, "created_at": at(19020)})
        conn.execute(insert(t.winback), assignments)
        conn.execute(insert(t.orders), orders)
    res = CliRunner().invoke(analyze, ["winback", "--as-of", "2022-04-01", "--json"],
                             obj=SimpleNamespace(engine=engine))
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["offer"]["customers"] + out["holdout"]["customers"] == 2000
    assert out["holdout"]["customers"] == sum(assign_group(i) == "holdout" for i in range(1, 2001))
    assert out["lift"]["ci_low"] > 0 and out["pending"] == 0
    # Too early: nobody has had the 60 days yet.
    res = CliRunner().invoke(analyze, ["winback", "--as-of", str(at(19030).date()), "--json"],
                             obj=SimpleNamespace(engine=engine))
    early = json.loads(res.output)
    assert early["pending"] == 2000 and early["lift"] is None


def test_early_warning_reports_only_crossings(engine):
    history, _ = simulate_store(n=500, seed=5, annual_leave=0.4)
    store_rows(engine, history)
    first = early_warning(engine, at(history.as_of - 60).date())
    assert first["scored"] > 0 and first["at_risk"] == [] and first["lost"] == []  # first run: no flood
    with engine.connect() as conn:
        stored = dict(conn.execute(select(t.customer_scores.c.customer_id, t.customer_scores.c.segment)).all())
    assert len(stored) == first["scored"]
    later = early_warning(engine, at(history.as_of).date())
    crossed = {cid for cid, _ in later["at_risk"] + later["lost"]}
    assert crossed, "60 days later some customers must have gone quiet"
    for cid, _ in later["lost"]:
        assert stored.get(cid) != "lost"
    again = early_warning(engine, at(history.as_of).date())
    assert again["at_risk"] == [] and again["lost"] == []


def test_crossings_rules():
    prev = {1: "active", 2: "at_risk", 3: "lost", 4: "lost"}
    cur = {1: "at_risk", 2: "lost", 3: "lost", 4: "active", 5: "lost", 6: "active"}
    assert sorted(crossings(prev, cur)) == [(1, "at_risk"), (2, "lost"), (5, "lost")]
    assert sorted(crossings(prev, cur, report_unknown=False)) == [(1, "at_risk"), (2, "lost")]


def test_saving_reports_prunes_the_old_ones_of_its_own_shop_only(make_app, tmp_path):
    """Each shop keeps its newest KEEP reports: a busy shop's runs never delete a quiet shop's only report."""
    from retention_plugin import shop_scope
    from retention_plugin.analysis.saved_report import KEEP, KIND, save_report

    b = "second-shop.myshopify.com"
    app = make_app(shops={b: {}})
    out = tmp_path / "report"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"as_of": "2026-03-01T00:00:00"}))
    (out / "report.html").write_text("<p>report</p>")
    quiet = save_report(app.engine, out, params={}, now=app.now())
    with shop_scope.scope(b):
        busy = [save_report(app.engine, out, params={}, now=app.now()) for _ in range(KEEP + 3)]
    with app.engine.connect() as conn:
        kept = dict(conn.execute(select(t.analysis_runs.c.id, t.analysis_runs.c.shop)
                                 .where(t.analysis_runs.c.kind == KIND)).all())
    assert kept[quiet] != b
    assert sorted(i for i, shop in kept.items() if shop == b) == busy[-KEEP:]

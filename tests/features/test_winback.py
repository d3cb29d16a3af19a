"""Early warning (daily scoring in the worker) and the built-in win-back plugin."""

from collections import Counter
from datetime import timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import func, select

from retention_plugin import hookimpl
from retention_plugin.features.winback import early_warning_task
from retention_plugin.storage import tables as t
from retention_plugin.testing import run_worker


def seed_store(app, n=300, seed=3):
    """Customers buying at their own pace over two years, some stopping along the way."""
    rng = np.random.default_rng(seed)
    start = app.now() - timedelta(days=730)
    customers, orders = [], []
    for i in range(n):
        cid = i + 1
        customers.append({"id": cid, "shopify_id": 900000 + cid, "email": f"c{cid}@example.com", "tags": [],
                          "marketing_consent": "subscribed", "country": "LT", "locale": "en",
                          "created_at": start, "updated_at": start})
        day = float(rng.integers(0, 300))
        rate = rng.gamma(2.0, 1 / 60)  # about one purchase every 30 days
        stop = day + rng.exponential(400)
        while day < min(stop, 700):
            orders.append({"customer_id": cid, "currency": "EUR", "subtotal": Decimal("40.00"),
                           "total": Decimal("40.00"), "created_at": start + timedelta(days=day),
                           "shopify_id": 10_000_000 + len(orders), "source": "import", "tags": [],
                           "discount_codes": [], "test": False, "total_discounts": 0, "total_tax": 0,
                           "shipping": 0, "refunded": 0})
            day += rng.exponential(1 / rate)
    with app.engine.begin() as conn:
        conn.execute(t.customers.insert(), customers)
        conn.execute(t.orders.insert(), orders)
    return len(orders)


class Seen:
    def __init__(self):
        self.calls = []

    @hookimpl
    def customer_at_risk(self, customer_id, score, ctx):
        self.calls.append(("at_risk", customer_id, score))

    @hookimpl
    def customer_lost(self, customer_id, score, ctx):
        self.calls.append(("lost", customer_id, score))


def run_task(app):
    from retention_plugin.context import HookContext

    with app.engine.connect() as conn:  # as the worker runs tasks: the transaction starts at the first write
        early_warning_task(HookContext(app, conn, now=app.now(), source="task"))
        conn.commit()


def test_hook_customer_at_risk(make_app, clock):
    seen = Seen()
    app = make_app(extra_plugins=[seen])
    seed_store(app)
    run_task(app)
    assert seen.calls == []  # the first run reports nobody: no offers to everyone lost over the years
    with app.engine.connect() as conn:
        scored = conn.execute(select(func.count()).select_from(t.customer_scores)).scalar()
    assert scored == 300
    clock.advance(days=150)  # nobody buys for five months
    run_task(app)
    kinds = Counter(k for k, _, _ in seen.calls)
    assert kinds["at_risk"] + kinds["lost"] > 0
    assert all(0.0 <= s <= 1.0 for _, _, s in seen.calls)


def test_hook_customer_lost(make_app, clock):
    seen = Seen()
    app = make_app(extra_plugins=[seen])
    seed_store(app, seed=4)
    run_task(app)
    clock.advance(days=400)
    run_task(app)
    lost = [cid for k, cid, _ in seen.calls if k == "lost"]
    assert lost, "a year without any purchase must make someone lost"
    with app.engine.connect() as conn:
        segments = dict(conn.execute(select(t.customer_scores.c.customer_id, t.customer_scores.c.segment)).all())
    assert all(segments[cid] == "lost" for cid in lost)


def test_winback_offers_to_about_90_percent_and_holds_out_the_rest(make_app, clock):
    app = make_app()
    seed_store(app, n=400, seed=5)
    run_task(app)
    clock.advance(days=400)
    run_task(app)
    run_task(app)  # a second run the same day changes nothing
    with app.engine.connect() as conn:
        rows = conn.execute(select(t.winback)).mappings().all()
        messages = conn.execute(select(t.messages).where(t.messages.c.kind == "win_back")).mappings().all()
        rewards = conn.execute(select(t.rewards).where(t.rewards.c.feature == "winback")).mappings().all()
        actions = conn.execute(select(t.actions.c.kind).where(t.actions.c.key.like("winback:%"))).scalars().all()
    groups = Counter(r["group"] for r in rows)
    assert len(rows) >= 50
    assert 0.80 <= groups["offer"] / len(rows) <= 0.97
    assert groups["holdout"] > 0
    offered = {r["customer_id"] for r in rows if r["group"] == "offer"}
    assert {m["customer_id"] for m in messages} == offered  # holdout customers get nothing
    assert len(rewards) == len(offered) and all(r["code"].startswith("MISSYOU-") for r in rewards)
    assert actions.count("discount_code_basic_create") == len(offered)
    assert len({r["customer_id"] for r in rows}) == len(rows)  # one assignment per customer


def test_early_warning_runs_daily_in_the_worker(make_app, clock):
    seen = Seen()
    app = make_app(extra_plugins=[seen])
    seed_store(app, seed=6)
    run_worker(app)  # first run: scores stored, nobody reported
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.customer_scores)).scalar() == 300
    clock.advance(days=200)
    run_worker(app)
    assert seen.calls


class Signals:
    """A plugin adding its own covariate to the reasons table."""

    def __init__(self):
        self.got = None

    @hookimpl
    def customer_signals(self, customers, ctx):
        self.got = (list(customers), ctx)
        assert ctx.conn is not None
        return {"bought the discontinued blend": {c for c in customers if c % 3 == 0}}


def test_hook_customer_signals(make_app, clock, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from retention_plugin import cli as cli_mod

    plugin = Signals()
    app = make_app(extra_plugins=[plugin])
    seed_store(app, seed=7)
    monkeypatch.setattr(cli_mod.LazyApp, "app", property(lambda self: app))
    cli_mod.register_plugin_commands([])
    out = tmp_path / "report"
    r = CliRunner().invoke(cli_mod.cli, ["analyze", "report", "--out", str(out),
                                         "--as-of", app.now().date().isoformat()])
    assert r.exit_code == 0, r.output
    customers, ctx = plugin.got
    assert len(customers) == 300
    summary = json.loads((out / "summary.json").read_text())
    text = json.dumps(summary)
    assert "bought the discontinued blend" in text
    assert (out / "report.html").exists() and (out / "customers.csv").exists()

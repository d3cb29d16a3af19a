"""The daily loyalty pass walks customers a chunk at a time and commits each chunk (issue 19).

A pass that stops part-way keeps the chunks it finished; the next pass does the rest, and
nothing is expired, demoted or announced twice.
"""

from __future__ import annotations

from sqlalchemy import select

from test_loyalty_support import actions, customer_id, ledger, rows
from payloads import order
from retention_plugin import hookimpl
from retention_plugin.features.loyalty import engine
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

SETTINGS = {"pending_days": 0, "expire_after_days": 30, "expiry_warning_days": 0,
            "tiers": [{"name": "silver", "min_spend": "50.00", "window_days": 30}]}


def tiers(app) -> dict:
    with app.engine.connect() as conn:
        return dict(conn.execute(select(t.customer_tiers.c.customer_id, t.customer_tiers.c.tier)).all())


def test_a_pass_stopped_between_chunks_keeps_them_and_the_next_pass_finishes_once(make_app, clock, monkeypatch):
    monkeypatch.setattr(engine, "DAILY_CHUNK", 2)

    class Flaky:
        fail_for: int | None = None

        @hookimpl
        def loyalty_changed(self, customer_id, change, ctx):
            if change["reason"] == "tier" and customer_id == self.fail_for:
                self.fail_for = None  # once
                raise RuntimeError("the announcement failed")

    flaky = Flaky()
    app = make_app([flaky], loyalty=SETTINGS)
    for k in range(5):
        deliver_shopify(app, "orders/paid", order(3001 + k, customer_id=7001 + k, email=f"c{k}@example.com",
                                                  subtotal="80.00", created=clock.now))
    run_worker(app)
    ids = [customer_id(app, 7001 + k) for k in range(5)]
    assert sorted(ids) == ids and set(tiers(app).values()) == {"silver"}

    # A month later everyone's points lapse and everyone drops out of silver; the fourth
    # customer's announcement fails, in the second chunk of the tier pass.
    clock.advance(days=31)
    flaky.fail_for = ids[3]
    run_worker(app)
    [run] = [r for r in rows(app, t.task_runs) if r["name"] == "loyalty.daily"]
    assert "the announcement failed" in run["last_error"]
    assert len(ledger(app, kind="expire")) == 5  # the expiry pass finished before the tiers began
    assert [tiers(app)[c] for c in ids] == [None, None, "silver", "silver", "silver"]

    clock.advance(days=1)
    run_worker(app)
    assert [tiers(app)[c] for c in ids] == [None] * 5
    assert len(ledger(app, kind="expire")) == 5
    removed = [a["request"]["variables"]["id"] for a in actions(app, "tags_remove")]
    assert sorted(removed) == [f"gid://shopify/Customer/{7001 + k}" for k in range(5)]

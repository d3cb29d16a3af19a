"""hooks/weekend_double_points.py, loaded the way a shop loads it: from a directory named in [plugins] dirs."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from payloads import order
from test_loyalty_support import ledger
from retention_plugin.testing import deliver_shopify, run_worker

HOOKS = Path(__file__).resolve().parents[2] / "hooks"
GOLD = {"name": "gold", "min_spend": "10.00", "points_multiplier": "2"}


def earned(app, order_id) -> int:
    return ledger(app, key=f"loyalty:earn:order:{order_id}")[0]["points"]


def test_weekend_double_points_keeps_the_tier_multiplier(make_app):
    app = make_app(plugins={"dirs": [str(HOOKS)]}, loyalty={"tiers": [GOLD], "points_per_currency_unit": "1.5"})
    assert app.pm.has_plugin("weekend_double_points")

    wednesday = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc)
    deliver_shopify(app, "orders/paid", order(5101, subtotal="20.00", created=wednesday))
    run_worker(app)
    assert earned(app, 5101) == 30  # a weekday, not yet gold: the built-in rule, 1.5 x 20

    # Saturday 01:30 in Vilnius, still Friday in UTC; the customer is gold now (x2), and it is the weekend (x2).
    saturday_night = datetime(2026, 3, 6, 23, 30, tzinfo=timezone.utc)
    deliver_shopify(app, "orders/paid", order(5102, subtotal="33.33", created=saturday_night))
    run_worker(app)
    assert earned(app, 5102) == 199  # floor(1.5 x 2 x 33.33 x 2) = floor(199.98)

    monday = datetime(2026, 3, 9, 9, 0, tzinfo=timezone.utc)
    deliver_shopify(app, "orders/paid", order(5103, subtotal="10.00", created=monday))
    run_worker(app)
    assert earned(app, 5103) == 30  # the built-in rule with gold's multiplier: 1.5 x 2 x 10

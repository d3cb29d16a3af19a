"""Example plugin: double loyalty points on orders placed on a Saturday or Sunday.

Copy this file into the directory named by ``[plugins].dirs`` and edit it.
It overrides the built-in earning rule through the ``points_for_order``
hook: the first plugin to return a number wins, and the built-in rule runs
last, so returning ``None`` falls back to it.

Doubling starts from what the built-in rule would give, so the tier's points
multiplier and the configured basis (``[loyalty] basis``) still apply: a gold
customer earning x2 gets x4 at weekends.
"""

from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from retention_plugin import hookimpl

#: "Weekend" in the shop's own time zone: an order at Saturday 01:00 in Vilnius is Friday in UTC.
SHOP_TIMEZONE = ZoneInfo("Europe/Vilnius")
WEEKEND_FACTOR = Decimal(2)


@hookimpl
def points_for_order(order, customer, rule, ctx):
    placed = order.created_at or order.processed_at
    if placed is None or placed.astimezone(SHOP_TIMEZONE).weekday() < 5:
        return None  # weekdays: let the built-in rule decide
    points = (Decimal(str(rule["points_per_currency_unit"])) * Decimal(str(rule["points_multiplier"]))
              * Decimal(str(rule["basis_amount"])) * WEEKEND_FACTOR)
    return int(points.to_integral_value(rounding=ROUND_FLOOR))

"""Example plugin: double loyalty points on orders placed on a Saturday or Sunday.

Copy this file into the directory named by ``[plugins].dirs`` and edit it.
It overrides the built-in earning rule through the ``points_for_order``
hook: the first plugin to return a number wins, and the built-in rule runs
last, so returning ``None`` falls back to it.
"""

from decimal import ROUND_FLOOR, Decimal

from retention_plugin import hookimpl


@hookimpl
def points_for_order(order, customer, rule, ctx):
    if order.created_at.weekday() < 5:
        return None  # weekdays: let the built-in rule decide
    per_unit = Decimal(str(rule["points_per_currency_unit"]))
    return int((order.subtotal.amount * per_unit * 2).to_integral_value(rounding=ROUND_FLOOR))

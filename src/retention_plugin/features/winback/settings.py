"""The ``[winback]`` section: who gets a win-back offer, how much, how often, and the holdout."""

from __future__ import annotations

from decimal import Decimal

from marshmallow import RAISE, Schema, fields, validate

from retention_plugin.config import section_or_defaults

PLUGIN = "winback"


class WinbackSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(load_default=True)
    segments = fields.List(fields.String(validate=validate.OneOf(["at_risk", "lost"])),
                           load_default=lambda: ["at_risk", "lost"])
    holdout_percent = fields.Decimal(load_default=Decimal("10"), validate=validate.Range(min=0, max=50),
                                     as_string=False)
    discount_percent = fields.Decimal(load_default=Decimal("15"), validate=validate.Range(min=1, max=100))
    valid_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=365))
    #: one offer per customer per this many days, whatever the crossings
    cooldown_days = fields.Integer(load_default=180, validate=validate.Range(min=1))
    #: also report customers already at risk or lost on the very first run (after install)
    first_run_reports = fields.Boolean(load_default=False)
    seed = fields.String(load_default="winback")


def settings_of(source) -> dict:
    """``[winback]`` from a HookContext, the app or the Settings; its defaults when absent."""
    return section_or_defaults(source, PLUGIN, WinbackSchema)

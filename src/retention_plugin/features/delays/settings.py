"""The ``[delays]`` section, and the problems an apology can be for."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from retention_plugin.config import section_or_defaults

PLUGIN = "delays"
TASK = "delays.apologise"
EVERY_SECONDS = 3600
#: Orders handled per run at most (the next run continues).
BATCH = 500
#: The problems an apology can be for (the ``reason`` its template words it by).
UNSHIPPED, STALLED = "unshipped", "stalled"
CARRIER_PROBLEMS = ("delayed", "failure", "attempted_delivery")
#: Carrier statuses of a parcel still on its way: no new event for ``stalled_after_days`` means it is stuck.
#: (delivered, picked_up, ready_for_pickup wait for nobody but the customer; failure has its own apology.)
MOVING = ("label_purchased", "label_printed", "confirmed", "carrier_picked_up", "in_transit", "out_for_delivery",
          "delayed", "attempted_delivery")
DELIVERED = ("delivered", "picked_up")
#: No goodwill credit for these: the carrier came, and the customer was not there.
NO_CREDIT = ("attempted_delivery",)


class DelaysSchema(Schema):
    class Meta:
        unknown = RAISE

    #: An order paid this many days ago and not shipped is late.
    after_days = fields.Float(load_default=5.0, validate=validate.Range(min=0, min_inclusive=False))
    #: Orders paid longer ago than this get no apology (first run, imports, long-forgotten orders).
    max_age_days = fields.Float(load_default=30.0, validate=validate.Range(min=0, min_inclusive=False))
    #: Orders with any of these tags are never "late" (case-insensitive).
    skip_tags = fields.List(fields.String(validate=validate.Length(min=1)),
                            load_default=lambda: ["preorder", "pre-order"])
    #: An optional small credit with the apology: a single-use code for that customer.
    credit_percent = fields.Decimal(load_default=None, validate=validate.Range(min=0, max=100, min_inclusive=False))
    credit_amount = fields.Decimal(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    credit_valid_days = fields.Integer(load_default=60, strict=True, validate=validate.Range(min=1, max=3650))
    code_prefix = fields.String(load_default="SORRY", validate=validate.Regexp(
        r"^[A-Z0-9]{1,20}$", error="expected 1-20 capital letters or digits"))
    #: Carrier statuses (fulfillment_events/create) that get an apology of their own.
    carrier_statuses = fields.List(fields.String(validate=validate.OneOf(CARRIER_PROBLEMS)),
                                   load_default=lambda: list(CARRIER_PROBLEMS))
    #: A shipment with no new tracking event for this many days while on its way is stuck (0: never).
    stalled_after_days = fields.Float(load_default=5.0, allow_none=True, validate=validate.Range(min=0))

    @validates_schema
    def _check(self, data, **_):
        if data.get("credit_percent") is not None and data.get("credit_amount") is not None:
            raise ValidationError("give at most one of credit_percent or credit_amount", "credit_percent")
        if data["max_age_days"] <= data["after_days"]:
            raise ValidationError("must be greater than after_days", "max_age_days")


def settings_of(settings) -> dict:
    """``[delays]`` from the Settings (or anything that has them); its defaults when absent."""
    return section_or_defaults(settings, PLUGIN, DelaysSchema)

"""The ``[referrals]`` configuration section (config/retention.example.toml documents every key)."""

from __future__ import annotations

from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ...config import section_or_defaults

SECTION = "referrals"


class ReferralsSchema(Schema):
    class Meta:
        unknown = RAISE

    discount_percent = fields.Decimal(load_default=None, validate=validate.Range(
        min=0, max=100, min_inclusive=False))
    discount_amount = fields.Decimal(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    discount_valid_days = fields.Integer(load_default=30, strict=True, validate=validate.Range(min=1, max=3650))
    pending_days = fields.Integer(load_default=14, strict=True, validate=validate.Range(min=0, max=365))
    monthly_cap = fields.Integer(load_default=10, strict=True, validate=validate.Range(min=1))
    code_prefix = fields.String(load_default="FRIEND", validate=validate.Regexp(
        r"^[A-Z0-9][A-Z0-9-]{0,15}$", error="use 1-16 upper-case letters, digits or '-'"))
    cookie_days = fields.Integer(load_default=30, strict=True, validate=validate.Range(min=1, max=400))

    @validates_schema
    def _one_discount(self, data, **_):
        if data.get("discount_percent") is not None and data.get("discount_amount") is not None:
            raise ValidationError("give discount_percent or discount_amount, not both", "discount_amount")


def settings_of(source) -> dict:
    s = dict(section_or_defaults(source, SECTION, ReferralsSchema))
    if s.get("discount_percent") is None and s.get("discount_amount") is None:
        s["discount_percent"] = Decimal(10)
    return s

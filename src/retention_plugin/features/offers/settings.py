"""The ``[offers]`` section: the thank-you, the occasions that earn a voucher, and what codes combine with."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from retention_plugin.config import section_or_defaults
from retention_plugin.discounts import COMBINES_WITH_DEFAULTS

PLUGIN = "offers"
OCCASIONS = ("first_order", "nth_order", "order_above")
#: The occasion ``choose_offer`` gets when no configured occasion matches the order.
EVERY_ORDER = "order"


class _Strict(Schema):
    class Meta:
        unknown = RAISE


_CURRENCY = validate.Regexp(r"^[A-Z]{3}$", error="expected an ISO 4217 code like EUR")


class OccasionSchema(_Strict):
    """One ``[[offers.occasions]]`` entry: when an order earns a voucher, and which."""

    occasion = fields.String(required=True, validate=validate.OneOf(OCCASIONS))
    #: nth_order: the customer's n-th paid order (counting this one).
    n = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=2))
    #: nth_order: every n-th order (n, 2n, 3n, ...) instead of only the n-th.
    every = fields.Boolean(load_default=False)
    #: order_above: the order's subtotal (after discounts, before shipping and tax) is at least this.
    min_subtotal = fields.Decimal(load_default=None, validate=validate.Range(min=0))
    #: order_above: only orders in this currency (default: any; the subtotal is in shop money).
    #: amount offers: the currency of ``amount`` (default: the order's, i.e. the shop currency).
    currency = fields.String(load_default=None, validate=_CURRENCY)
    percent = fields.Decimal(load_default=None, validate=validate.Range(min=0, max=100, min_inclusive=False))
    amount = fields.Decimal(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    valid_days = fields.Integer(load_default=30, strict=True, validate=validate.Range(min=1, max=3650))

    @validates_schema
    def _check(self, data, **_):
        if (data.get("percent") is None) == (data.get("amount") is None):
            raise ValidationError("give exactly one of percent or amount", "percent")
        occ = data["occasion"]
        if occ == "nth_order" and data.get("n") is None:
            raise ValidationError("required for occasion = \"nth_order\"", "n")
        if occ != "nth_order":
            for k in ("n", "every"):
                if data.get(k):
                    raise ValidationError("only used with occasion = \"nth_order\"", k)
        if occ == "order_above" and data.get("min_subtotal") is None:
            raise ValidationError("required for occasion = \"order_above\"", "min_subtotal")
        if occ != "order_above" and data.get("min_subtotal") is not None:
            raise ValidationError("only used with occasion = \"order_above\"", "min_subtotal")


class OffersSchema(_Strict):
    #: Send a thank-you message (transactional) after every paid order.
    thank_you = fields.Boolean(load_default=True)
    thank_you_delay_minutes = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    #: Link to the order in the thank-you; placeholders {order_id} {order_name} {order_number}.
    order_url = fields.String(load_default=None, validate=validate.Regexp(r"^https?://\S+$",
                                                                          error="expected an http(s) URL"))
    #: When the voucher message is due after the order (time for the code to be created in Shopify).
    voucher_delay_minutes = fields.Integer(load_default=60, strict=True, validate=validate.Range(min=0))
    #: An orders/paid older than this (a replayed dead letter, an import) gets neither message nor voucher.
    #: The age is taken from the payload's updated_at (about when it was paid), else processed_at/created_at.
    max_order_age_days = fields.Float(load_default=7.0, validate=validate.Range(min=0, min_inclusive=False))
    #: Voucher codes are PREFIX-XXXXXXXXXXXXX.
    code_prefix = fields.String(load_default="THANKS", validate=validate.Regexp(
        r"^[A-Z0-9]{1,20}$", error="expected 1-20 capital letters or digits"))
    #: Discount title in the Shopify admin (the order name is appended).
    title = fields.String(load_default="Thank-you offer", validate=validate.Length(min=1, max=200))
    #: With a known expected next purchase: the voucher ends this many days after it.
    expire_after_expected_days = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=0))
    #: Bounds for the expected-purchase-based end.
    min_valid_days = fields.Integer(load_default=7, strict=True, validate=validate.Range(min=1))
    max_valid_days = fields.Integer(load_default=90, strict=True, validate=validate.Range(min=1))
    occasions = fields.List(fields.Nested(OccasionSchema), load_default=list)
    #: Per kind of code, the discount classes it combines with; kinds not given keep their default.
    combines_with = fields.Dict(
        keys=fields.String(validate=validate.OneOf(tuple(COMBINES_WITH_DEFAULTS))),
        values=fields.List(fields.String(validate=validate.OneOf(("order", "product", "shipping")))),
        load_default=dict)
    #: Bounds of the daily scoring's predicted next purchase (customer_scores.next_purchase_at), in days.
    next_purchase_min_days = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=0))
    next_purchase_max_days = fields.Integer(load_default=365, strict=True, validate=validate.Range(min=1))

    @validates_schema
    def _bounds(self, data, **_):
        if data["next_purchase_min_days"] > data["next_purchase_max_days"]:
            raise ValidationError("must not be greater than next_purchase_max_days", "next_purchase_min_days")
        if data["min_valid_days"] > data["max_valid_days"]:
            raise ValidationError("must not be greater than max_valid_days", "min_valid_days")
        url = data.get("order_url")
        if url:
            try:
                url.format(order_id="", order_name="", order_number="")
            except (KeyError, IndexError, ValueError) as e:
                raise ValidationError(f"unknown placeholder {e} (known: {{order_id}} {{order_name}} "
                                      "{order_number})", "order_url") from None


def settings_of(source) -> dict:
    """``[offers]`` from a HookContext, the app or the Settings; its defaults when absent."""
    return section_or_defaults(source, PLUGIN, OffersSchema)

"""The ``[reminders]`` section: rules (what needs replenishing, and when) and the subscription offer."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from retention_plugin.config import section_or_defaults

PLUGIN = "reminders"
OFFER_KIND = "replenishment_offer"

_URL = validate.Regexp(r"^https?://\S+$", error="expected an http(s) URL")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class RuleSchema(_Strict):
    #: Part of every reminder's key: keep it stable once reminders exist.
    name = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9_-]{0,63}$", error="expected lower-case letters, digits, _ or - (at most 64)"))
    skus = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    product_ids = fields.List(fields.Integer(strict=True), load_default=list)
    product_types = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    tags = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    interval_days = fields.Float(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    learn = fields.Boolean(load_default=False)
    fallback_days = fields.Float(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    min_pairs = fields.Integer(load_default=None, validate=validate.Range(min=1))
    scale_by_quantity = fields.Boolean(load_default=None)
    max_quantity_factor = fields.Integer(load_default=None, validate=validate.Range(min=1))
    service = fields.Boolean(load_default=False)
    service_name = fields.String(load_default=None)
    booking_url = fields.String(load_default=None, validate=_URL)
    product_url = fields.String(load_default=None, validate=_URL)
    kind = fields.String(load_default=None, validate=validate.Length(min=1, max=32))

    @validates_schema
    def _check(self, data, **_):
        if not any(data.get(k) for k in ("skus", "product_ids", "product_types", "tags")):
            raise ValidationError("a rule needs at least one of skus, product_ids, product_types, tags", "skus")
        if data.get("learn"):
            if data.get("interval_days") is not None:
                raise ValidationError("give interval_days or learn = true, not both "
                                      "(with learn, fallback_days applies until there is enough history)",
                                      "interval_days")
        else:
            if data.get("interval_days") is None:
                raise ValidationError("required unless learn = true", "interval_days")
            if data.get("fallback_days") is not None:
                raise ValidationError("only used with learn = true", "fallback_days")
            if data.get("min_pairs") is not None:
                raise ValidationError("only used with learn = true", "min_pairs")


class OfferSchema(_Strict):
    enabled = fields.Boolean(load_default=True)
    min_purchases = fields.Integer(load_default=3, validate=validate.Range(min=3))
    tolerance = fields.Float(load_default=0.25, validate=validate.Range(min=0, max=1))
    min_interval_days = fields.Float(load_default=7.0, validate=validate.Range(min=0))
    delay_days = fields.Float(load_default=1.0, validate=validate.Range(min=0))
    url = fields.String(load_default=None, validate=_URL)

    @validates_schema
    def _placeholders(self, data, **_):
        url = data.get("url")
        if url:
            try:
                url.format(**dict.fromkeys(OFFER_URL_PLACEHOLDERS, ""))
            except (KeyError, IndexError, ValueError) as e:
                raise ValidationError(f"unknown placeholder {e} (known: "
                                      f"{', '.join('{%s}' % p for p in OFFER_URL_PLACEHOLDERS)})", "url") from None


OFFER_URL_PLACEHOLDERS = ("sku", "variant_id", "product_id", "interval_days", "quantity", "customer_id")


class RemindersSchema(_Strict):
    store_url = fields.String(load_default=None, validate=_URL)
    learn_min_pairs = fields.Integer(load_default=5, validate=validate.Range(min=1))
    learn_max_gap_days = fields.Float(load_default=400.0, validate=validate.Range(min=1))
    rules = fields.List(fields.Nested(RuleSchema), load_default=list)
    offer = fields.Nested(OfferSchema, load_default=lambda: OfferSchema().load({}))

    @validates_schema
    def _unique(self, data, **_):
        seen = set()
        for i, rule in enumerate(data.get("rules") or []):
            if rule["name"] in seen:
                raise ValidationError({i: {"name": [f"rule name {rule['name']!r} is used twice"]}}, "rules")
            seen.add(rule["name"])


def settings_of(source) -> dict:
    """``[reminders]`` from a HookContext, the app or the Settings; its defaults when absent."""
    return section_or_defaults(source, PLUGIN, RemindersSchema)

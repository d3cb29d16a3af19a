"""The ``[loyalty]`` configuration section: a marshmallow schema and typed accessors.

Every key has a default, so a shop gets the plain earning rule (1 point per
unit of shop currency, on the subtotal) without writing a ``[loyalty]``
section at all. See docs/loyalty.md and config/retention.example.toml.
"""

from __future__ import annotations

from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ...config import section_or_defaults
from ...platforms.shopify.mutations import METAFIELD_NAME

SECTION = "loyalty"

NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"
NAME_ERROR = "use 1-40 lower-case letters, digits, '-' or '_' (it becomes a Shopify tag and a key)"

#: What the earning rule multiplies: the default is the issue's "subtotal after
#: discounts, without shipping and taxes", in shop money.
BASES = ("subtotal", "subtotal_with_shipping", "total")

METAFIELD_SYNC = ("off", "tier_change", "balance_change")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _decimal(**kw):
    return fields.Decimal(**kw)


class TierSchema(_Strict):
    """One ``[[loyalty.tiers]]`` entry. Tiers are listed lowest first; the highest one met wins."""

    name = fields.String(required=True, validate=validate.Regexp(NAME, error=NAME_ERROR))
    title = fields.String(load_default=None)
    min_spend = _decimal(load_default=None, validate=validate.Range(min=0))
    min_points = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=0))
    window_days = fields.Integer(load_default=365, strict=True, validate=validate.Range(min=1))
    discount_percent = _decimal(load_default=Decimal(0), validate=validate.Range(min=0, max=100))
    points_multiplier = _decimal(load_default=Decimal(1), validate=validate.Range(min=0))
    perks = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    segment_id = fields.String(load_default=None, validate=validate.Regexp(
        r"^gid://shopify/Segment/\d+$", error="expected a GID like gid://shopify/Segment/123"))

    @validates_schema
    def _one_threshold(self, data, **_):
        if (data.get("min_spend") is None) == (data.get("min_points") is None):
            raise ValidationError("give exactly one of min_spend or min_points", "min_spend")


class RewardSchema(_Strict):
    """One ``[[loyalty.rewards]]`` entry: so many points buy a discount code."""

    name = fields.String(load_default=None, validate=validate.Regexp(NAME, error=NAME_ERROR))
    points = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    amount = _decimal(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    percent = _decimal(load_default=None, validate=validate.Range(min=0, max=100, min_inclusive=False))
    automatic = fields.Boolean(load_default=True)
    valid_days = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1))
    #: False: kept for codes already issued, but no longer offered on the rewards page nor issued automatically.
    enabled = fields.Boolean(load_default=True)
    #: What the rewards page calls it (per language: ``titles = {lt = "..."}``); unset: "10.00 EUR off".
    title = fields.String(load_default=None, validate=validate.Length(min=1, max=120))
    titles = fields.Dict(keys=fields.String(validate=validate.Regexp(
        r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", error="expected a locale such as lt or pt-BR")),
        values=fields.String(validate=validate.Length(min=1, max=120)), load_default=dict)

    @validates_schema
    def _one_value(self, data, **_):
        if (data.get("amount") is None) == (data.get("percent") is None):
            raise ValidationError("give exactly one of amount or percent", "amount")


class PunchMatchSchema(_Strict):
    skus = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    product_ids = fields.List(fields.Integer(strict=True), load_default=list)
    variant_ids = fields.List(fields.Integer(strict=True), load_default=list)
    product_types = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    vendors = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    tags = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    collections = fields.List(fields.String(validate=validate.Regexp(
        r"^(gid://shopify/Collection/)?\d+$", error="expected a collection id or GID")), load_default=list)


class PunchCardSchema(_Strict):
    """One ``[[loyalty.punch_cards]]`` entry: buy ``size`` matching units, get the next one free."""

    name = fields.String(required=True, validate=validate.Regexp(NAME, error=NAME_ERROR))
    title = fields.String(load_default=None)
    size = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    match = fields.Nested(PunchMatchSchema, required=True)
    #: ``unit``: 100 % off one matching unit (a Buy X get Y code with ``discountOnQuantity``).
    #: Older choices: ``unit_price``, a fixed amount off equal to the dearest matching unit paid
    #: for; ``percent``, 100 % off every matching unit of one order.
    free_item = fields.String(load_default="unit", validate=validate.OneOf(["unit", "unit_price", "percent"]))
    valid_days = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1))
    #: The item's name per language for the reward message (``{lt = "rašalo kasetė"}``); others get ``title``.
    titles = fields.Dict(keys=fields.String(validate=validate.Regexp(
        r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", error="expected a locale such as lt or pt-BR")),
        values=fields.String(validate=validate.Length(min=1, max=255)), load_default=dict)

    @validates_schema
    def _something_matches(self, data, **_):
        m = data.get("match") or {}
        if not any(m.get(k) for k in PunchMatchSchema().fields):
            raise ValidationError("name at least one of skus, product_ids, variant_ids, product_types, "
                                  "vendors, tags or collections", "match")


#: The earning rules of ``[loyalty.earn]`` besides orders (each its own ledger reason and key).
ACTIVITIES = ("account_created", "birthday", "review", "referral")


class EarnSchema(_Strict):
    """``[loyalty.earn]``: points for what a customer does besides ordering (0 switches a rule off)."""

    account_created = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=1_000_000))
    birthday = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=1_000_000))
    review = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=1_000_000))
    referral = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=1_000_000))
    #: The customer metafield (``namespace.key``, a ``date``) a birthday is read from, once.
    birthday_metafield = fields.String(load_default="facts.birth_date", validate=validate.Regexp(
        f"^{METAFIELD_NAME}$", error="expected namespace.key, e.g. facts.birth_date"))
    #: Secret of the signed ``POST /webhooks/reviews`` endpoint (no secret: no endpoint).
    reviews_secret = fields.String(load_default=None, validate=validate.Length(min=16, error=(
        "use at least 16 characters (e.g. `openssl rand -hex 32`)")))


class LoyaltySchema(_Strict):
    points_per_currency_unit = _decimal(load_default=Decimal(1), validate=validate.Range(min=0))
    basis = fields.String(load_default="subtotal", validate=validate.OneOf(BASES))
    pending_days = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    expire_after_days = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1))
    expiry_warning_days = fields.Integer(load_default=14, strict=True, validate=validate.Range(min=0))
    include_test_orders = fields.Boolean(load_default=False)
    currency = fields.String(load_default=None, validate=validate.Regexp(
        r"^[A-Z]{3}$", error="expected an ISO 4217 code like EUR"))
    reward_valid_days = fields.Integer(load_default=90, strict=True, validate=validate.Range(min=1))
    point_value = _decimal(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    min_redeem_points = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1))
    code_prefix = fields.String(load_default="LOYAL", validate=validate.Regexp(
        r"^[A-Z0-9][A-Z0-9-]{0,15}$", error="use 1-16 upper-case letters, digits or '-'"))
    tag_prefix = fields.String(load_default="retention-tier-", validate=validate.Length(min=1, max=40))
    #: When Shopify's ``<namespace>.points`` / ``.tier`` metafields are written (features/loyalty/sync.py).
    metafields = fields.String(load_default="balance_change", validate=validate.OneOf(METAFIELD_SYNC))
    #: At most one metafield write per customer this often; the last change always goes out.
    sync_interval_minutes = fields.Integer(load_default=10, strict=True, validate=validate.Range(min=1, max=1440))
    metafield_namespace = fields.String(load_default="retention", validate=validate.Length(min=3, max=255))
    #: True: customers cannot redeem on the rewards page (it says the programme is paused); earning and
    #: the admin's ``loyalty redeem`` go on.
    paused = fields.Boolean(load_default=False)
    tiers = fields.List(fields.Nested(TierSchema), load_default=list)
    rewards = fields.List(fields.Nested(RewardSchema), load_default=list)
    punch_cards = fields.List(fields.Nested(PunchCardSchema), load_default=list)
    earn = fields.Nested(EarnSchema, load_default=lambda: EarnSchema().load({}))

    @validates_schema
    def _consistent(self, data, **_):
        names = [t["name"] for t in data.get("tiers") or []]
        if len(names) != len(set(names)):
            raise ValidationError("tier names must be unique", "tiers")
        cards = [c["name"] for c in data.get("punch_cards") or []]
        if len(cards) != len(set(cards)):
            raise ValidationError("punch card names must be unique", "punch_cards")
        rewards = data.get("rewards") or []
        sizes = [r["points"] for r in rewards]
        if len(sizes) != len(set(sizes)):
            raise ValidationError("two rewards cost the same number of points", "rewards")
        exp, warn = data.get("expire_after_days"), data.get("expiry_warning_days") or 0
        if exp is not None and warn >= exp:
            raise ValidationError("must be shorter than expire_after_days", "expiry_warning_days")


def schema() -> LoyaltySchema:
    return LoyaltySchema()


def defaults() -> dict:
    return LoyaltySchema().load({})


def settings_of(source) -> dict:
    """``[loyalty]`` from a HookContext, the app or the Settings; its defaults when absent."""
    return section_or_defaults(source, SECTION, LoyaltySchema)


def reward_name(reward: dict) -> str:
    return reward.get("name") or f"{reward['points']}pts"


def tier_config(settings: dict, name: str | None) -> dict | None:
    if name is None:
        return None
    for tier in settings["tiers"]:
        if tier["name"] == name:
            return tier
    return None  # a tier removed from the configuration since it was given

"""The ``[recovery]`` configuration section: agent context, routing, complaints, watch, goodwill policy.

Every key has a default, so service recovery works without a ``[recovery]``
section: it posts the context note, classifies complaints with the built-in
tags and keywords, and offers goodwill by the default amounts (without a
monthly budget until one is set). See docs/recovery.md and
config/retention.example.toml.
"""

from __future__ import annotations

from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ...config import section_or_defaults

SEVERITIES = ("low", "medium", "high")
PRIORITIES = ("low", "normal", "high", "urgent")
KINDS = ("discount_code", "store_credit")

_TAG = validate.Regexp(r"^[^\s,]+$", error="a Zendesk tag is one word without spaces or commas")
_CURRENCY = validate.Regexp(r"^[A-Z]{3}$", error="expected an ISO 4217 code like EUR")
_LOCALE = validate.Regexp(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", error="expected a locale like en or pt-BR")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _money(**kw):
    return fields.Decimal(validate=validate.Range(min=0), **kw)


def _severity(**kw):
    return fields.String(validate=validate.OneOf(SEVERITIES), **kw)


class RoutingRuleSchema(_Strict):
    """One ``[[recovery.routing]]`` rule. Rules are tried in order; the first that matches is used.

    A rule matches when the customer meets *all* of its conditions (a rule
    without conditions matches everyone); write two rules for "either".
    """

    name = fields.String(load_default=None)
    tiers = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    min_spend = _money(load_default=None)
    min_orders = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=0))
    priority = fields.String(load_default=None, validate=validate.OneOf(PRIORITIES))
    group_id = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1))
    tags = fields.List(fields.String(validate=_TAG), load_default=list)

    @validates_schema
    def _does_something(self, data, **_):
        if data.get("priority") is None and data.get("group_id") is None and not data.get("tags"):
            raise ValidationError("a routing rule needs at least one of priority, group_id or tags", "priority")


class FieldRuleSchema(_Strict):
    """A ticket form field whose value marks a complaint: ``{id = 360001, values = {damaged = "high"}}``."""

    id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    values = fields.Dict(keys=fields.String(), values=_severity(), load_default=dict)
    #: Severity when the field has any value not listed in ``values`` (None: other values don't count).
    any_value = _severity(load_default=None)

    @validates_schema
    def _something(self, data, **_):
        if not data.get("values") and data.get("any_value") is None:
            raise ValidationError("give values or any_value", "values")


class ComplaintsSchema(_Strict):
    #: Ticket tags that mark a complaint, with their severity.
    tags = fields.Dict(keys=fields.String(validate=_TAG), values=_severity(),
                       load_default=lambda: {"complaint": "medium"})
    #: ``fields`` in TOML (loaded as ``form_fields``: the name would shadow marshmallow's module here).
    form_fields = fields.List(fields.Nested(FieldRuleSchema), data_key="fields", load_default=list)
    #: ``{language = {severity = [words]}}``: matched in subject and description, case-insensitively,
    #: as whole words; a trailing ``*`` makes a stem ("sugadint*" catches "sugadintas"). Replaces the
    #: built-in list of that language; other languages keep theirs.
    keywords = fields.Dict(keys=fields.String(validate=validate.Length(min=2)),
                           values=fields.Dict(keys=fields.String(validate=validate.OneOf(SEVERITIES)),
                                              values=fields.List(fields.String(validate=validate.Length(min=2)))),
                           load_default=dict)
    builtin_keywords = fields.Boolean(load_default=True)
    #: The severity given to a ticket that was not classified a complaint but got a bad rating.
    bad_rating_severity = _severity(load_default="medium")


class WatchSchema(_Strict):
    """The response watch: a valued customer's ticket without a public reply after ``after_hours``."""

    enabled = fields.Boolean(load_default=True)
    after_hours = fields.Float(load_default=4.0, validate=validate.Range(min=0, min_inclusive=False))
    #: Tickets older than this are left alone (no flood of escalations when the feature is first enabled).
    max_age_hours = fields.Float(load_default=168.0, validate=validate.Range(min=0, min_inclusive=False))
    #: Who is watched: a loyalty tier in ``tiers``, or lifetime spend of at least ``min_spend``.
    tiers = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    min_spend = _money(load_default=None)
    #: ``up`` raises the priority one step; a priority name sets it (never lowered).
    priority = fields.String(load_default="up", validate=validate.OneOf(("up",) + PRIORITIES))
    tag = fields.String(load_default="retention_waiting", validate=_TAG)

    @validates_schema
    def _window(self, data, **_):
        if data["max_age_hours"] <= data["after_hours"]:
            raise ValidationError("must be longer than after_hours", "max_age_hours")


class ValueBandSchema(_Strict):
    min_spend = _money(required=True)
    multiplier = fields.Decimal(required=True, validate=validate.Range(min=0))


class RecoverySchema(_Strict):
    #: Shop currency for amounts, caps and the budget; default: the currency of the latest order.
    currency = fields.String(load_default=None, validate=_CURRENCY)

    # --- 1. context for the agent ------------------------------------------------------
    context_note = fields.Boolean(load_default=True)
    recent_orders = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=0, max=20))
    routing = fields.List(fields.Nested(RoutingRuleSchema), load_default=list)
    #: Use the loyalty tier's ``support_priority`` perk when it is higher than the rule's priority.
    use_tier_perks = fields.Boolean(load_default=True)

    # --- 2. complaints ------------------------------------------------------------------------
    complaints = fields.Nested(ComplaintsSchema, load_default=lambda: ComplaintsSchema().load({}))

    # --- 3. response watch --------------------------------------------------------------------
    watch = fields.Nested(WatchSchema, load_default=lambda: WatchSchema().load({}))

    # --- 4. goodwill offers -----------------------------------------------------------------------
    offer_on_complaint_solved = fields.Boolean(load_default=True)
    offer_on_bad_rating = fields.Boolean(load_default=True)
    #: A rating is bad when its normalised value (0 worst .. 1 best) is below this.
    bad_rating_below = fields.Decimal(load_default=Decimal("0.5"), validate=validate.Range(min=0, max=1))
    #: Goodwill amount by severity, in shop currency.
    amounts = fields.Dict(keys=fields.String(validate=validate.OneOf(SEVERITIES)), values=_money(),
                          load_default=lambda: {"low": Decimal("5"), "medium": Decimal("10"), "high": Decimal("20")})
    #: Multiply the amount for a loyalty tier: ``{gold = 1.5}``.
    tier_multipliers = fields.Dict(keys=fields.String(), values=fields.Decimal(validate=validate.Range(min=0)),
                                   load_default=dict)
    #: Or by lifetime spend: ``[{min_spend = 1000, multiplier = 1.5}]``; the larger multiplier wins.
    value_multipliers = fields.List(fields.Nested(ValueBandSchema), load_default=list)
    max_per_offer = _money(load_default=None)
    #: What one customer may receive in any 365 days, in total.
    max_per_customer_year = _money(load_default=None)
    #: At most this many offers per customer in any 365 days; a further complaint gets none.
    max_offers_per_year = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=0))
    #: Sum of offers per calendar month (UTC), in shop currency; unset means no budget limit.
    monthly_budget = _money(load_default=None)
    #: Offers below this (after caps) are not worth making.
    min_amount = _money(load_default=Decimal("1"))
    #: ``storeCreditAccountCredit`` instead of a discount code (needs a Shopify customer id).
    store_credit = fields.Boolean(load_default=False)
    valid_days = fields.Integer(load_default=90, strict=True, validate=validate.Range(min=1))
    code_prefix = fields.String(load_default="SORRY", validate=validate.Regexp(
        r"^[A-Z0-9][A-Z0-9-]{0,15}$", error="use 1-16 upper-case letters, digits or '-'"))
    #: Post the offer as an internal note for the agent to send, instead of a public reply.
    require_approval = fields.Boolean(load_default=False)
    #: Offers above this amount (shop currency) wait for `retention recovery approve`; unset: no limit.
    #: Offers for complaints known from keywords alone, and for customers without a Shopify id, always wait.
    approval_above = _money(load_default=None)
    #: A customer's bad rating, the tickets the product opened and any ticket about the same order within
    #: this many days are one incident, which gets at most one goodwill offer (0: every case on its own).
    incident_window_days = fields.Integer(load_default=14, strict=True, validate=validate.Range(min=0, max=365))
    #: Tell the agent in an internal note why no offer was made (over budget, too many, ...).
    note_declined = fields.Boolean(load_default=True)
    #: Locale of the apology when the customer's is unknown; default ``[messages] fallback_locale``.
    default_locale = fields.String(load_default=None, validate=_LOCALE)

    # --- 5. outcome ------------------------------------------------------------------------------
    #: A repeat purchase counts when the customer orders within this many days of the decision.
    outcome_days = fields.Integer(load_default=60, strict=True, validate=validate.Range(min=1))

    @validates_schema
    def _caps(self, data, **_):
        cap, floor = data.get("max_per_offer"), data.get("min_amount")
        if cap is not None and floor is not None and cap < floor:
            raise ValidationError("must not be below min_amount", "max_per_offer")


def schema() -> RecoverySchema:
    return RecoverySchema()


def defaults() -> dict:
    return RecoverySchema().load({})


def settings_of(ctx_or_app) -> dict:
    """The loaded ``[recovery]`` section (its defaults when the app never registered it)."""
    return section_or_defaults(ctx_or_app, "recovery", RecoverySchema)

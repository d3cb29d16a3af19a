"""Loyalty: a points ledger, tiers with better prices for regulars, punch cards, rewards as Shopify codes.

The built-in plugin ``loyalty`` (``[plugins] disabled = ["loyalty"]`` switches
it off), configured under ``[loyalty]`` (see docs/loyalty.md). It reacts to
``order_paid``, ``refund_created`` and ``order_cancelled``; implements the
default earning rule as ``points_for_order`` with ``trylast=True``, so any
plugin returning an int overrides it; calls ``loyalty_changed`` after every
balance or tier change; tells ``customers show`` (and service recovery, which
reads ``perks``) where a customer stands through ``customer_facts``; and runs
a daily task (tier re-evaluation, expiry and its warnings, automatic rewards
for points that matured), a tier-pricing task, and a task that keeps the
points and tier metafields in Shopify current (:mod:`.sync`). Its rows follow
customer merges and erasure through :mod:`.data`.

Beyond orders (:mod:`.activities`): ``[loyalty.earn]`` rules for a new account
(``customer_updated`` with ``created``), birthdays (a daily task), reviews
(the signed ``POST /webhooks/reviews`` of :mod:`.reviews`, added through
``register_routes``) and referrals (``referral_qualified`` /
``referral_reversed`` from the referrals plugin), each priced by
``points_for_activity`` (the built-in, ``trylast``, returns the configured
number). A customer without a stored birthday sets it once on the storefront rewards page
(:mod:`.birthday_form`, through ``storefront_sections`` and ``storefront_action``); the birthday
metafield reaches the customer webhooks because ``shopify_webhook_metafields`` names it to
``retention shopify subscribe``.
"""

from __future__ import annotations

from retention_plugin import hookimpl

from . import activities, engine
from .account import builtin_points
from .data import TEXT_COLUMNS, customer_redact, customers_merged, shop_redact  # noqa: F401 (hook implementations)
from .settings import LoyaltySchema

#: How often the tier discounts are reconciled with Shopify (cheap when nothing changed).
PRICING_EVERY_SECONDS = 600
#: How often marked customers' points and tier are written to Shopify (each at most once per
#: ``[loyalty] sync_interval_minutes``).
METAFIELDS_EVERY_SECONDS = 60
DAILY = 24 * 3600
#: Hourly, so a birthday is rewarded early in the day whenever the worker started; once a year by key.
BIRTHDAYS_EVERY_SECONDS = 3600


@hookimpl
def register_config_sections(register):
    register(engine.SECTION, LoyaltySchema())


@hookimpl
def register_commands(cli):
    from .commands import loyalty

    cli.add_command(loyalty)


@hookimpl
def register_tasks(register):
    from .pricing import sync

    from . import sync as metafields

    register("loyalty.daily", engine.daily, DAILY)
    register("loyalty.tier_pricing", sync, PRICING_EVERY_SECONDS)
    register("loyalty.metafields", metafields.run, METAFIELDS_EVERY_SECONDS)
    register("loyalty.birthdays", activities.run_birthdays, BIRTHDAYS_EVERY_SECONDS)


@hookimpl
def register_routes(retention):
    from ...routes import Route
    from .reviews import PATH, ReviewsResource

    return [Route(PATH, ReviewsResource(retention))]


@hookimpl
def shopify_webhook_metafields(settings):
    """The birthday metafield, on the customer topics, when birthdays earn points."""
    from .settings import settings_of

    earn = settings_of(settings)["earn"]
    if not earn["birthday"]:
        return None
    return [(topic, earn["birthday_metafield"]) for topic in ("CUSTOMERS_CREATE", "CUSTOMERS_UPDATE")]


@hookimpl
def customer_updated(event, ctx):
    activities.on_customer(ctx, event)


@hookimpl(trylast=True)
def points_for_activity(activity, rule):
    """The built-in rule: the number configured in ``[loyalty.earn]``."""
    return int(rule["points"])


@hookimpl
def referral_qualified(referral, ctx):
    activities.earn(ctx, referral["referrer_id"], "referral", referral["id"],
                    reason=f"referral {referral['id']}", details={"referee_id": referral["referee_id"]})


@hookimpl
def referral_reversed(referral, ctx):
    activities.take_back(ctx, referral["referrer_id"], "referral", referral["id"],
                         reason=f"referral {referral['id']} reversed: {referral['reason']}")


@hookimpl
def order_paid(event, ctx):
    engine.on_order_event(ctx, event.order.shopify_id, event.order, paid=True)


@hookimpl
def refund_created(event, ctx):
    engine.on_order_event(ctx, event.refund.order_id, paid=False)


@hookimpl
def order_cancelled(event, ctx):
    engine.on_order_event(ctx, event.order.shopify_id, paid=False)


@hookimpl(trylast=True)
def points_for_order(order, customer, rule, ctx):
    """The built-in rule: ``floor(points_per_currency_unit x tier multiplier x basis)``."""
    return builtin_points(order, rule)


@hookimpl
def customer_facts(customer_id, ctx):
    if ctx is None or getattr(ctx, "conn", None) is None:
        return None  # asked outside a transaction: nothing to look up
    return engine.facts(ctx, customer_id)


@hookimpl(trylast=True)
def loyalty_account(customer_id, ctx):
    from .shopper import account

    return account(ctx, customer_id)


@hookimpl(trylast=True)
def loyalty_redeem(customer_id, reward, key, ctx):
    from .shopper import redeem

    return redeem(ctx, customer_id, reward, key, actor=f"customer:{customer_id}")


@hookimpl
def register_admin_operations(register):
    from .admin import register as offer

    offer(register)


@hookimpl
def storefront_sections(customer_id, locale, ctx, post_url, csrf):
    from .birthday_form import section

    found = section(ctx, customer_id, locale, post_url, csrf)
    return [found] if found else None


@hookimpl
def storefront_action(customer_id, action, form, locale, ctx):
    from .birthday_form import ACTION, act

    return act(ctx, customer_id, form, locale) if action == ACTION else None

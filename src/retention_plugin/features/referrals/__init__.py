"""Referrals: a signed link per customer, a first-order code for the friend, points for the referrer.

The built-in plugin ``referrals`` (``[plugins] disabled = ["referrals"]``
switches it off), configured under ``[referrals]``; its links need ``[links]
secret`` and ``base_url`` (without them no landing page is served). It adds
``/referrals/r/{code}`` through ``register_routes`` (:mod:`.landing`), follows
the referee's first order through ``order_paid``, ``refund_created`` and
``order_cancelled`` (:mod:`.engine`), decides referrals in the
``referrals.qualify`` task, and tells other plugins through
``referral_qualified`` and ``referral_reversed`` (the loyalty plugin gives and
takes back the referrer's points there). :func:`.codes.referral_url` is the
link for a customer; ``retention referrals report`` the numbers.
"""

from __future__ import annotations

from retention_plugin import hookimpl

from . import engine
from .codes import referral_url  # noqa: F401 (the library function for pages and plugins)
from .data import (  # noqa: F401 (hook implementations)
    TEXT_COLUMNS, customer_data_request, customer_redact, customers_merged, shop_redact)
from .settings import SECTION, ReferralsSchema

#: How often ordered referrals are checked for qualification (cheap when none is due).
QUALIFY_EVERY_SECONDS = 900


@hookimpl
def register_config_sections(register):
    register(SECTION, ReferralsSchema())


@hookimpl
def register_commands(cli):
    from .commands import referrals

    cli.add_command(referrals)


@hookimpl
def register_tasks(register):
    register("referrals.qualify", engine.qualify, QUALIFY_EVERY_SECONDS)


@hookimpl
def register_routes(retention):
    from ... import links
    from ...routes import Route
    from .landing import PATH, LandingResource

    if links.settings_of(retention.settings).get("secret") is None:
        return []  # no secret, no codes: nothing to land on
    return [Route(PATH, LandingResource(retention))]


@hookimpl
def customer_updated(event, ctx):
    engine.bind_customer(ctx, event.customer)


@hookimpl
def order_paid(event, ctx):
    engine.on_order_paid(ctx, event.order)


@hookimpl
def refund_created(event, ctx):
    if event.refund.merchandise.amount > 0:  # a refund of shipping alone leaves the order as bought
        engine.on_order_taken_back(ctx, event.refund.order_id, "refunded")


@hookimpl
def customer_facts(customer_id, ctx):
    """The customer's referral link and how their invitations went (for pages such as the storefront's)."""
    if ctx is None or getattr(ctx, "conn", None) is None:
        return None
    return {"referrals": engine.facts(ctx, customer_id)}


@hookimpl
def order_cancelled(event, ctx):
    engine.on_order_taken_back(ctx, event.order.shopify_id, "cancelled")


@hookimpl
def storefront_sections(customer_id, account, locale, ctx):
    from .storefront import section

    found = section(ctx, customer_id, locale)
    return [found] if found else None

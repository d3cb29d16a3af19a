"""Storefront: the customer's rewards page through Shopify's app proxy, and redeeming there.

The built-in plugin ``storefront`` (``[plugins] disabled = ["storefront"]``
switches it off), configured under ``[storefront]`` (docs/storefront.md). It
adds one route, ``[storefront] path``, which Shopify's app proxy forwards
``/<app_proxy_prefix>/<app_proxy_subpath>`` to. What the page shows and what
redeeming does come from the ``loyalty_account`` and ``loyalty_redeem`` hooks
(the loyalty plugin answers them); other plugins add sections through
``storefront_sections`` (a referral link, say).
"""

from __future__ import annotations

from retention_plugin import hookimpl

from .settings import SECTION, StorefrontSchema, settings_of


@hookimpl
def register_config_sections(register):
    register(SECTION, StorefrontSchema())


@hookimpl
def register_routes(retention):
    from ...routes import Route
    from .page import RewardsPage

    shopify = retention.settings.section("shopify")
    if not shopify:
        return []  # a Zendesk-only installation has no storefront
    return [Route(settings_of(retention.settings)["path"], RewardsPage(retention))]

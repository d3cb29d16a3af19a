"""The Admin API access scopes the built-in features need, and what each is for.

The install asks for ``[shopify] scopes`` (unset: all of these), and
``retention shopify app-config`` writes the same list to ``shopify.app.toml``.
A write scope includes its read scope (Shopify's "Access scopes" page); the
read ones are listed where the webhook topics need them by name.
"""

from __future__ import annotations

from typing import Any, Mapping

#: Scope -> what uses it.
SCOPE_USES: dict[str, str] = {
    "read_orders": "orders/* and refunds/create webhooks; `retention import shopify`",
    "read_customers": "customers/* webhooks",
    "write_customers": "loyalty tier tags and metafields, message tags, unsubscribes (email marketing consent), "
                       "tier customer segments",
    "read_fulfillments": "fulfillments/* and fulfillment_events/create webhooks (late-delivery apologies)",
    "write_discounts": "thank-you, loyalty, recall and goodwill discount codes; tier price discounts",
    "write_store_credit_account_transactions": "goodwill offers paid as store credit",
    "write_app_proxy": "the storefront app proxy (shopify.app.toml [app_proxy])",
}

DEFAULT_SCOPES: tuple[str, ...] = tuple(SCOPE_USES)


def configured_scopes(shopify: Mapping[str, Any]) -> list[str]:
    """``[shopify] scopes``, or every scope the features need."""
    return list(shopify.get("scopes") or DEFAULT_SCOPES)

"""Shopify adapter: webhook verification, payload parsing, GraphQL Admin client."""

from .client import ShopifyClient, raise_for_user_errors, throttle_wait
from .payloads import SUPPORTED_TOPICS, build_customer, build_order, build_refund, parse_shopify
from .verify import verify_oauth_query, verify_webhook

__all__ = [
    "SUPPORTED_TOPICS",
    "ShopifyClient",
    "build_customer",
    "build_order",
    "build_refund",
    "parse_shopify",
    "raise_for_user_errors",
    "throttle_wait",
    "verify_oauth_query",
    "verify_webhook",
]

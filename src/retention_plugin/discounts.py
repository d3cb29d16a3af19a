"""What every feature that hands out a Shopify discount needs alike.

Loyalty rewards, thank-you vouchers, late-delivery apologies and recovery
offers all create codes through ``discountCodeBasicCreate``. The code text is
derived from the idempotency key of the action that creates it, so a retried
create sends the same code and Shopify answers "taken" instead of a second
discount being made.
"""

from __future__ import annotations

import base64
import hashlib
from decimal import Decimal
from typing import Mapping

from sqlalchemy import select

from .storage import tables as t


def code_for(prefix: str, key: str) -> str:
    """Discount code text derived from an idempotency key: same key, same code."""
    digest = base64.b32encode(hashlib.sha256(key.encode()).digest()).decode().rstrip("=")
    return f"{prefix}-{digest[:12]}"


def customer_gid(customer: Mapping | None) -> str | None:
    """The customer's Shopify GID, for ``context.customers``; None when not linked to Shopify."""
    if not customer or customer.get("shopify_id") is None:
        return None
    return f"gid://shopify/Customer/{customer['shopify_id']}"


def money_text(amount: Decimal) -> str:
    """An amount as the Admin API's Decimal scalar takes it: a string with two places."""
    return str(Decimal(amount).quantize(Decimal("0.01")))


def shop_currency(conn, settings: Mapping) -> str | None:
    """The configured currency, else the one the newest stored order was in."""
    if settings.get("currency"):
        return settings["currency"]
    row = conn.execute(select(t.orders.c.currency).order_by(t.orders.c.id.desc()).limit(1)).first()
    return row[0] if row else None

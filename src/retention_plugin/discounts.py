"""What every feature that hands out a Shopify discount needs alike.

Loyalty rewards, thank-you vouchers, late-delivery apologies and recovery
offers all create codes through ``discountCodeBasicCreate``, and all derive
the code text with :func:`code_for`:

- **unguessable**: the text is an HMAC-SHA256 of the action's idempotency key
  under a per-install secret (256 random bits, :func:`code_secret`), so
  knowing a ticket or order number does not give its code away;
- **deterministic per key**: the same key gives the same code, so a retried
  create sends the same code and Shopify answers "taken" instead of a second
  discount being made;
- **bound to a customer**: :func:`code_for` refuses a customer without a
  Shopify id (:class:`UnboundCode`), because such a code would be limited to
  nobody and usable by anyone who learns it. Every issuer goes through it, so
  no feature can mint such a code by forgetting the check.

The secret is generated on first use and stored in ``plugin_state``
(``discounts`` / ``code_secret``): it is part of every database backup.
``retention discounts rotate-secret`` replaces it; codes issued before keep
working, because every issuer stores a code with its reward before the create
is queued and never derives the same key twice (docs/offers-and-followups.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from decimal import Decimal
from typing import Mapping

from sqlalchemy import select, update

from .storage import tables as t
from .storage.db import insert_ignore

SECRET_PLUGIN = "discounts"
SECRET_KEY = "code_secret"
#: 32 random bytes: far above the 64 bits that make the codes unguessable.
SECRET_BYTES = 32


class UnboundCode(ValueError):
    """A discount code was asked for a customer without a Shopify id: it would be bound to nobody."""


def _secret_row(conn):
    ps = t.plugin_state
    return conn.execute(select(ps.c.value).where(ps.c.plugin == SECRET_PLUGIN, ps.c.key == SECRET_KEY)).scalar()


def code_secret(conn, now=None) -> bytes:
    """This install's code secret, created (once, whoever races) on first use."""
    value = _secret_row(conn)
    if value is None:
        from datetime import datetime, timezone

        insert_ignore(conn, t.plugin_state, {
            "plugin": SECRET_PLUGIN, "key": SECRET_KEY, "value": {"secret": secrets.token_hex(SECRET_BYTES)},
            "updated_at": now or datetime.now(timezone.utc)}, ["plugin", "key"])
        value = _secret_row(conn)  # ours, or the one a concurrent first use committed
    return bytes.fromhex(value["secret"])


def rotate_secret(conn, now) -> None:
    """Replace the code secret (codes already issued stay as they are)."""
    code_secret(conn, now)
    ps = t.plugin_state
    conn.execute(update(ps).where(ps.c.plugin == SECRET_PLUGIN, ps.c.key == SECRET_KEY).values(
        value={"secret": secrets.token_hex(SECRET_BYTES)}, updated_at=now))


def derive_code(secret: bytes, prefix: str, key: str) -> str:
    """``PREFIX-`` and 12 base32 characters (60 bits) of HMAC-SHA256(secret, key)."""
    digest = hmac.new(secret, key.encode(), hashlib.sha256).digest()
    return f"{prefix}-{base64.b32encode(digest).decode().rstrip('=')[:12]}"


def code_for(conn, prefix: str, key: str, customer: Mapping | None) -> str:
    """The discount code for idempotency ``key``, limited to ``customer``: same key, same code.

    :raises UnboundCode: the customer has no Shopify id to limit the code to.
    """
    if customer_gid(customer) is None:
        who = f"customer {customer.get('id')}" if customer else "no customer"
        raise UnboundCode(f"{who} has no Shopify customer id: a code for {key} would be bound to nobody")
    return derive_code(code_secret(conn), prefix, key)


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

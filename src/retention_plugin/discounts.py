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

What each kind of code combines with is :func:`combines_with`'s (``[offers]
combines_with``, read whether or not the ``offers`` plugin is on), and a
single-use code for one customer, with its ``rewards`` row and the Shopify
action, is :func:`issue_discount`'s: the thank-you voucher, the late-delivery
apology and the win-back offer all make theirs with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Mapping

from sqlalchemy import select, update

from .platforms.shopify.mutations import discount_code_basic_create
from .shop_scope import of_row
from .storage import tables as t
from .storage.db import insert_ignore

SECRET_PLUGIN = "discounts"
SECRET_KEY = "code_secret"
#: 32 random bytes: far above the 64 bits that make the codes unguessable.
SECRET_BYTES = 32
#: The section whose ``combines_with`` table overrides :data:`COMBINES_WITH_DEFAULTS` (the offers plugin's).
COMBINES_WITH_SECTION = "offers"
#: What each kind of discount the plugins create may be combined with (Shopify's discount classes).
#: Every code here applies to all items or to named products; the tier discount is an automatic
#: discount on all items, i.e. an *order* discount, so a code stacks on it only when both list "order".
COMBINES_WITH_DEFAULTS = {
    "voucher": ("order", "shipping"),
    "delay_apology": ("order", "shipping"),
    "win_back": ("order", "shipping"),
    "recovery": ("order", "shipping"),
    "loyalty_reward": ("order", "shipping"),
    "punch_card": ("order", "shipping"),
    "tier_discount": ("order", "product", "shipping"),
}
#: The kind of the codes ``issue_discount`` makes, by the feature that asks.
FEATURE_KIND = {"offers": "voucher", "delays": "delay_apology", "winback": "win_back"}

R = t.rewards


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


# --- combining, and single-use codes for one customer -----------------------------------------


def combines_with(ctx, kind: str) -> list[str]:
    """The discount classes codes of ``kind`` combine with: ``[offers] combines_with``, else the default.

    Read by every feature that creates a discount (loyalty and recovery too); with the
    ``offers`` plugin switched off its section does not exist and the defaults apply.
    """
    if kind not in COMBINES_WITH_DEFAULTS:
        raise ValueError(f"unknown discount kind {kind!r}")
    chosen = ((ctx.section(COMBINES_WITH_SECTION) or {}).get("combines_with") or {}).get(kind)
    return list(COMBINES_WITH_DEFAULTS[kind] if chosen is None else chosen)


def percent_text(percent: Decimal) -> str:
    return format(Decimal(percent).normalize(), "f")


def issue_discount(ctx, *, key: str, action_key: str, feature: str, customer: Mapping,
                   percent: Decimal | None = None, amount: Decimal | None = None, currency: str | None = None,
                   ends_at: datetime, title: str, prefix: str, source_ref: str | None) -> dict:
    """A single-use code limited to ``customer``: a ``rewards`` row and the Shopify action, once per ``key``.

    Returns the rewards row (the existing one when ``key`` was used before).
    The caller checks that the customer has a Shopify id.
    """
    existing = ctx.conn.execute(select(R).where(R.c.key == key)).mappings().first()
    if existing is not None:
        return dict(existing)
    gid = customer_gid(customer)
    if gid is None:
        raise ValueError(f"customer {customer.get('id')} has no Shopify id: a code cannot be limited to them")
    code = code_for(ctx.conn, prefix, key, customer)
    now = ctx.now
    insert_ignore(ctx.conn, R, {
        "key": key, "customer_id": customer["id"], "feature": feature,
        "kind": "percent" if percent is not None else "amount", "code": code, "percent": percent,
        "amount": amount, "currency": currency if amount is not None else None, "status": "issued",
        "source_ref": source_ref, "created_at": now, "expires_at": ends_at,
    }, ["key"])
    request = discount_code_basic_create(
        code, title, percent=percent, amount=money_text(amount) if amount is not None else None,
        currency=currency if amount is not None else None, customer_gid=gid, starts_at=now, ends_at=ends_at,
        usage_limit=1, applies_once_per_customer=True,
        combines_with=combines_with(ctx, FEATURE_KIND.get(feature, "voucher")))
    with of_row(customer):  # the code is made in the customer's shop (a win-back task's offer too)
        ctx.enqueue_action("shopify", "discount_code_basic_create", action_key, request)
    return dict(ctx.conn.execute(select(R).where(R.c.key == key)).mappings().one())


def offer_data(reward: Mapping) -> dict:
    """The offer variables templates share: code, discount_percent, discount_amount, currency, expires_at."""
    return {
        "code": reward["code"],
        "discount_percent": percent_text(reward["percent"]) if reward["percent"] is not None else None,
        "discount_amount": money_text(reward["amount"]) if reward["amount"] is not None else None,
        "currency": reward["currency"],
        "expires_at": reward["expires_at"].isoformat() if reward["expires_at"] else None,
    }

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
  nobody and usable by anyone who learns it. Every code is made by
  :func:`make_code`, which holds it for approval instead (a ``held`` rewards
  row, ``retention discounts held | approve ID | decline ID``), so no feature
  can mint such a code by forgetting the check.

The secret is generated on first use and stored in ``plugin_state``
(``discounts`` / ``code_secret``): it is part of every database backup.
``retention discounts rotate-secret`` replaces it; codes issued before keep
working, because every issuer stores a code with its reward before the create
is queued and never derives the same key twice (docs/offers-and-followups.md).

What each kind of code combines with is :func:`combines_with`'s (``[offers]
combines_with``, read whether or not the ``offers`` plugin is on). :func:`make_code`
writes a code's ``rewards`` row, its Shopify action and the message that carries
it; :func:`issue_discount` is its shorthand for the thank-you voucher, the
late-delivery apology and the win-back offer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Mapping

from sqlalchemy import select, update

from .platforms.shopify.mutations import discount_code_basic_create
from .shop_scope import of_row
from .storage import tables as t
from .storage import writes
from .storage.db import for_update, insert_ignore

SECRET_PLUGIN = "discounts"
SECRET_KEY = "code_secret"
#: 32 random bytes: far above the 64 bits that make the codes unguessable.
SECRET_BYTES = 32
#: Base32 characters of the HMAC in a code's text: 65 bits.
CODE_CHARS = 13
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


_SECRET = select(t.plugin_state.c.value).where(t.plugin_state.c.plugin == SECRET_PLUGIN,
                                               t.plugin_state.c.key == SECRET_KEY)


def _stored_secret(conn) -> str | None:
    """The stored secret's hex text, read once per transaction of ``conn`` until ``plugin_state`` is written.

    Every paid order asks (the referral household digest), and the secret changes only by
    :func:`rotate_secret` or a first use, both writes to ``plugin_state`` that make the next call
    read again. A rotation another process commits during the worker's group shows from the next
    group on (PostgreSQL): the group's codes and digests are those of the secret it started with,
    as they would be had it run a moment earlier.
    """
    def load():
        value = conn.execute(_SECRET).scalar()
        return None if value is None else value["secret"]

    return writes.cached(conn, ("discounts.code_secret",), ("plugin_state",), load)


def code_secret(conn, now=None) -> bytes:
    """This install's code secret, created (once, whoever races) on first use."""
    secret = _stored_secret(conn)
    if secret is None:
        from datetime import datetime, timezone

        insert_ignore(conn, t.plugin_state, {
            "plugin": SECRET_PLUGIN, "key": SECRET_KEY, "value": {"secret": secrets.token_hex(SECRET_BYTES)},
            "updated_at": now or datetime.now(timezone.utc)}, ["plugin", "key"])
        secret = _stored_secret(conn)  # ours, or the one a concurrent first use committed
    if secret is None:
        raise RuntimeError("the code secret was inserted but cannot be read back")
    return bytes.fromhex(secret)


def rotate_secret(conn, now) -> None:
    """Replace the code secret (codes already issued stay as they are)."""
    code_secret(conn, now)
    ps = t.plugin_state
    conn.execute(update(ps).where(ps.c.plugin == SECRET_PLUGIN, ps.c.key == SECRET_KEY).values(
        value={"secret": secrets.token_hex(SECRET_BYTES)}, updated_at=now))


def derive_code(secret: bytes, prefix: str, key: str) -> str:
    """``PREFIX-`` and 13 base32 characters (65 bits) of HMAC-SHA256(secret, key).

    65 bits, not fewer: guessing any one of a shop's codes stays out of reach even
    with many codes out (issue 13 asks at least 64).
    """
    digest = hmac.new(secret, key.encode(), hashlib.sha256).digest()
    return f"{prefix}-{base64.b32encode(digest).decode().rstrip('=')[:CODE_CHARS]}"


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


class HoldError(Exception):
    """An approve or decline of a held code that cannot be done; the message says why."""


#: ``rewards.status`` of a code waiting for approval.
HELD = "held"


def make_code(ctx, *, key: str, action_key: str, feature: str, discount_kind: str, customer: Mapping,
              title: str, prefix: str, ends_at: datetime, percent: Decimal | None = None,
              amount: Decimal | None = None, currency: str | None = None, points: int | None = None,
              row_kind: str | None = None, product_gids=(), variant_gids=(), free_units: int | None = None,
              source_ref: str | None = None, message: Mapping | None = None, unbound: str = "hold",
              code_key: str | None = None) -> dict:
    """The one way a plugin makes a single-use discount code for one customer, once per ``key``.

    A ``rewards`` row under ``key``, the Shopify create under ``action_key``
    (``discountCodeBasicCreate``, or ``discountCodeBxgyCreate`` for ``free_units``
    of the given products) and, when given, the ``message`` that carries the code
    (``key``, ``kind``, ``data``, optional ``locale``, ``delay_minutes``,
    ``message_class``; the code's fields are added to ``data``).

    A customer without a Shopify id cannot have a code limited to them: with
    ``unbound="hold"`` the reward is recorded ``held`` with everything needed to make
    it later (``rewards.hold``) and nothing is created or sent until an admin runs
    ``retention discounts approve ID`` (:func:`approve_held`); with
    ``unbound="refuse"`` :class:`UnboundCode` is raised instead (loyalty: the points
    stay unspent). Returns the rewards row (the existing one when ``key`` was used before).

    :param code_key: what the code text is derived from, when not ``key`` (recovery derives
        it from the case key, so a case's code is the same whatever its reward row is called).
    """
    existing = ctx.conn.execute(select(R).where(R.c.key == key)).mappings().first()
    if existing is not None:
        return dict(existing)
    if discount_kind not in COMBINES_WITH_DEFAULTS:
        raise ValueError(f"unknown discount kind {discount_kind!r}")
    now = ctx.now
    spec = {"feature": feature, "action_key": action_key, "code_key": code_key or key,
            "discount_kind": discount_kind, "title": title, "prefix": prefix,
            "valid_seconds": max(0, int((ends_at - now).total_seconds())),
            "product_gids": list(product_gids or ()), "variant_gids": list(variant_gids or ()),
            "free_units": free_units, "message": dict(message) if message is not None else None}
    row = {"key": key, "customer_id": customer["id"], "feature": feature,
           "kind": row_kind or ("percent" if percent is not None else "amount"), "percent": percent,
           "amount": amount, "currency": currency if amount is not None else None, "points": points,
           "source_ref": source_ref, "created_at": now, "expires_at": ends_at}
    if customer_gid(customer) is None:
        if unbound != "hold":
            code_for(ctx.conn, prefix, code_key or key, customer)  # raises UnboundCode, naming the customer
        reason = (f"customer {customer['id']} has no Shopify customer id (customers.shopify_id): "
                  "a code would be bound to nobody")
        insert_ignore(ctx.conn, R, {**row, "code": None, "status": HELD, "hold": {**spec, "reason": reason}},
                      ["key"])
        held = dict(ctx.conn.execute(select(R).where(R.c.key == key)).mappings().one())
        ctx.log.warning("discount %s held for approval (reward %s): %s", key, held["id"], reason)
        return held
    code = code_for(ctx.conn, prefix, code_key or key, customer)
    insert_ignore(ctx.conn, R, {**row, "code": code, "status": "issued"}, ["key"])
    issued = dict(ctx.conn.execute(select(R).where(R.c.key == key)).mappings().one())
    _create(ctx, issued, spec, customer)
    return issued


def _create(ctx, reward: Mapping, spec: Mapping, customer: Mapping) -> None:
    """The Shopify create of an issued ``reward`` and the message that carries its code."""
    gid = customer_gid(customer)
    assert gid is not None and reward["code"] is not None
    with of_row(customer):  # the code is made in the customer's shop (a task's or an approval's too)
        _enqueue(ctx, reward, spec, customer, gid)


def _enqueue(ctx, reward: Mapping, spec: Mapping, customer: Mapping, gid: str) -> None:
    from .platforms.shopify.mutations import discount_code_free_units

    starts, ends = ctx.now, reward["expires_at"]
    stacks = combines_with(ctx, spec["discount_kind"])
    if spec.get("free_units"):
        request = discount_code_free_units(
            reward["code"], spec["title"], product_gids=spec["product_gids"], variant_gids=spec["variant_gids"],
            quantity=spec["free_units"], customer_gid=gid, starts_at=starts, ends_at=ends, combines_with=stacks)
        ctx.enqueue_action("shopify", "discount_code_bxgy_create", spec["action_key"], request)
    else:
        amount = reward["amount"]
        request = discount_code_basic_create(
            reward["code"], spec["title"], percent=reward["percent"],
            amount=money_text(amount) if amount is not None else None,
            currency=reward["currency"] if amount is not None else None, customer_gid=gid, starts_at=starts,
            ends_at=ends, usage_limit=1, applies_once_per_customer=True,
            product_gids=spec["product_gids"] or None, combines_with=stacks)
        ctx.enqueue_action("shopify", "discount_code_basic_create", spec["action_key"], request)
    message = spec.get("message")
    if message:
        ctx.schedule_message(key=message["key"], customer_id=reward["customer_id"], kind=message["kind"],
                             due_at=ctx.now + timedelta(minutes=message.get("delay_minutes") or 0),
                             data={**(message.get("data") or {}), **offer_data(reward)},
                             message_class=message.get("message_class"), locale=message.get("locale"))


def issue_discount(ctx, *, key: str, action_key: str, feature: str, customer: Mapping,
                   percent: Decimal | None = None, amount: Decimal | None = None, currency: str | None = None,
                   ends_at: datetime, title: str, prefix: str, source_ref: str | None,
                   message: Mapping | None = None) -> dict:
    """A single-use code limited to ``customer`` (:func:`make_code`), of the kind ``feature`` makes.

    Without a Shopify customer id the code is held for approval, not made: the row
    comes back with ``status == "held"`` and no code, and ``message`` goes out only
    once it is approved.
    """
    return make_code(ctx, key=key, action_key=action_key, feature=feature,
                     discount_kind=FEATURE_KIND.get(feature, "voucher"), customer=customer, title=title,
                     prefix=prefix, ends_at=ends_at, percent=percent, amount=amount, currency=currency,
                     source_ref=source_ref, message=message)


# --- codes held for approval ---------------------------------------------------------------------


def held_rewards(conn) -> list[dict]:
    """Codes waiting for approval, oldest first."""
    return [dict(r) for r in conn.execute(select(R).where(R.c.status == HELD).order_by(R.c.id)).mappings()]


def _locked_reward(ctx, reward_id: int) -> dict:
    row = ctx.conn.execute(for_update(select(R).where(R.c.id == reward_id), ctx.conn)).mappings().first()
    if row is None:
        raise HoldError(f"ID: no reward {reward_id}")
    return dict(row)


def _decided(row: Mapping) -> bool:
    return bool((row["hold"] or {}).get("decided_by"))


def approve_held(ctx, reward_id: int, *, by: str, note: str | None = None) -> tuple[dict, bool]:
    """Make a held code now that its customer has a Shopify id; ``(reward row, made now?)``.

    The code is created exactly once: a conditional update from ``held`` decides who
    wins, and approving again changes nothing. The code is valid for as long as it
    would have been, counted from the approval.
    """
    row = _locked_reward(ctx, reward_id)
    if row["status"] != HELD:
        if row["status"] == "issued" and _decided(row):
            return row, False
        raise HoldError(f"ID: reward {reward_id} is {row['status']}, not held for approval")
    customer = ctx.customer(row["customer_id"])
    if customer is None or customer.get("redacted_at") is not None:
        raise HoldError(f"ID: reward {reward_id}: the customer's data was erased; decline it")
    if customer_gid(customer) is None:
        raise HoldError(f"customers.shopify_id: customer {customer['id']} still has no Shopify customer id, so the "
                        "code would be bound to nobody; approve it once Shopify has linked the customer "
                        "(an order or customers/update from Shopify), or decline it")
    spec = dict(row["hold"] or {})
    spec.update(decided_by=by[:255], decided_at=ctx.now.isoformat(), decision="approved", note=note)
    code = code_for(ctx.conn, spec["prefix"], spec.get("code_key") or row["key"], customer)
    won = ctx.conn.execute(update(R).where(R.c.id == reward_id, R.c.status == HELD).values(
        status="issued", code=code, expires_at=ctx.now + timedelta(seconds=int(spec["valid_seconds"])),
        hold=spec)).rowcount
    fresh = dict(ctx.conn.execute(select(R).where(R.c.id == reward_id)).mappings().one())
    if won != 1:
        return fresh, False
    _create(ctx, fresh, spec, customer)
    return fresh, True


def decline_held(ctx, reward_id: int, *, by: str, reason: str) -> tuple[dict, bool]:
    """Drop a held code, recording who and why; ``(reward row, declined now?)``."""
    if not reason.strip():
        raise HoldError("--reason: must not be empty")
    row = _locked_reward(ctx, reward_id)
    if row["status"] != HELD:
        if row["status"] == "declined" and _decided(row):
            return row, False
        raise HoldError(f"ID: reward {reward_id} is {row['status']}, not held for approval")
    spec = dict(row["hold"] or {})
    spec.update(decided_by=by[:255], decided_at=ctx.now.isoformat(), decision="declined", note=reason)
    won = ctx.conn.execute(update(R).where(R.c.id == reward_id, R.c.status == HELD).values(
        status="declined", hold=spec)).rowcount
    return dict(ctx.conn.execute(select(R).where(R.c.id == reward_id)).mappings().one()), won == 1


def offer_data(reward: Mapping) -> dict:
    """The offer variables templates share: code, discount_percent, discount_amount, currency, expires_at."""
    return {
        "code": reward["code"],
        "discount_percent": percent_text(reward["percent"]) if reward["percent"] is not None else None,
        "discount_amount": money_text(reward["amount"]) if reward["amount"] is not None else None,
        "currency": reward["currency"],
        "expires_at": reward["expires_at"].isoformat() if reward["expires_at"] else None,
    }

"""Relationship pricing: a standing percentage off for every customer of a tier.

Shopify (Admin API 2025-10 and later) lets an *automatic* discount name the
buyers it applies to through ``context`` — all buyers, listed customers, or
customer segments. A segment is a saved query over customer facts, and
``customer_tags CONTAINS 'retention-tier-gold'`` selects exactly the
customers this plugin has tagged. So each tier with ``discount_percent > 0``
gets, through the actions outbox:

1. ``segmentCreate`` with that query (skipped when the tier names an existing
   ``segment_id``);
2. once that action is done and its result carries the segment's id,
   ``discountAutomaticBasicCreate`` for ``discount_percent`` off all items,
   ``context.customerSegments`` = that segment, combinable as ``[offers]
   combines_with`` says for ``tier_discount`` (by default with order, product
   and shipping discounts, so reward and punch-card codes still apply);
3. when the percentage or what it combines with changes, or the tier loses
   its discount, the earlier automatic discount is switched off
   (``discountAutomaticDeactivate``).

An automatic discount needs no code: the price drops in the cart as soon as a
tagged customer is logged in. Tier changes move the tag, which moves the
customer in or out of the segment. The task doing this runs every few
minutes; in ``dry_run`` the segment action has no real result, so step 2
waits until actions are performed for real.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from sqlalchemy import func, select

from ...platforms.shopify.mutations import (
    discount_automatic_activate,
    discount_automatic_basic_create,
    discount_automatic_deactivate,
    segment_create,
)
from ...storage import tables as t
from ...shop_scope import only, scoped
from .tiers import tag_for

A = t.actions

def segment_query(settings: dict, tier: str) -> str:
    return f"customer_tags CONTAINS '{tag_for(settings, tier)}'"


def _shop_key(ctx, key: str) -> str:
    """``key`` for the shop in scope: another shop's segments and discounts are its own (action keys are
    unique across the install); the configured shop's keys stay as they were."""
    shop = scoped()
    return f"{key}@{shop}" if shop and shop != ctx.app.default_shop else key


def _action(conn, key):
    return conn.execute(select(A).where(A.c.key == key)).mappings().first()


def _count(conn, prefix: str) -> int:
    return conn.execute(select(func.count()).select_from(A).where(A.c.key.startswith(prefix, autoescape=True))).scalar()


def _result_id(action, *path) -> str | None:
    if action is None or action["status"] != "done" or not isinstance(action["result"], dict):
        return None
    node = action["result"]
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    return node if isinstance(node, str) else None


def discount_key(tier: str, percent: Decimal, segment_gid: str, combines=()) -> str:
    # What the discount combines with is part of its identity: changing it makes a new
    # discount and switches the old one off, as a new percentage does.
    digest = hashlib.sha256(f"{percent.normalize():f}|{segment_gid}|{','.join(sorted(combines))}"
                            .encode()).hexdigest()[:16]
    return f"loyalty:tier-discount:{tier}:{digest}"


def sync(ctx) -> dict:
    """The ``loyalty.tier_pricing`` task: make Shopify's tier discounts match ``[[loyalty.tiers]]``."""
    from ...discounts import combines_with
    from .settings import settings_of

    s = settings_of(ctx)
    conn = ctx.conn
    wanted: set[str] = set()
    out = {"segments": 0, "discounts": 0, "activated": 0, "deactivated": 0}
    for tier in s["tiers"]:
        percent = tier["discount_percent"]
        if not percent or percent <= 0:
            continue
        name = tier["name"]
        gid = tier["segment_id"]
        if gid is None:
            skey = _shop_key(ctx, f"loyalty:tier-segment:{name}")
            if _action(conn, skey) is None:
                out["segments"] += 1
            ctx.enqueue_action("shopify", "segment_create", skey,
                               segment_create(f"Retention tier: {tier['title'] or name}", segment_query(s, name)))
            gid = _result_id(_action(conn, skey), "segment", "id")
        if gid is None:
            continue  # the segment is not created yet (or in dry_run): next run
        combines = combines_with(ctx, "tier_discount")
        dkey = _shop_key(ctx, discount_key(name, percent, gid, combines))
        wanted.add(dkey)
        existing = _action(conn, dkey)
        if existing is None:
            title = f"{tier['title'] or name.capitalize()} members: {percent.normalize():f}% off"
            ctx.enqueue_action("shopify", "discount_automatic_basic_create", dkey,
                               discount_automatic_basic_create(title, percent, gid, ctx.now, combines))
            out["discounts"] += 1
        else:
            out["activated"] += _toggle(ctx, existing, active=True)
    # Earlier tier discounts no longer wanted (percentage changed, tier removed): switch them off.
    olds = conn.execute(select(A).where(A.c.key.startswith("loyalty:tier-discount:", autoescape=True),
                                        only(A))).mappings()
    for old in olds.all():
        if old["key"] not in wanted:
            out["deactivated"] += _toggle(ctx, old, active=False)
    return out


def _toggle(ctx, action, *, active: bool) -> int:
    """Switch a created tier discount on or off; counts of earlier switches keep every key unique."""
    node = _result_id(action, "automaticDiscountNode", "id")
    if node is None:
        return 0
    suffix = action["key"].split(":", 2)[2]
    offs = _count(ctx.conn, f"loyalty:tier-discount-off:{suffix}:")
    ons = _count(ctx.conn, f"loyalty:tier-discount-on:{suffix}:")
    is_active = offs == ons
    if is_active == active:
        return 0
    if active:
        ctx.enqueue_action("shopify", "discount_automatic_activate", f"loyalty:tier-discount-on:{suffix}:{ons}",
                           discount_automatic_activate(node))
    else:
        ctx.enqueue_action("shopify", "discount_automatic_deactivate", f"loyalty:tier-discount-off:{suffix}:{offs}",
                           discount_automatic_deactivate(node))
    return 1

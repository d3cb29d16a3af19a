"""Punch cards: buy ``size`` matching units (across orders), get the next one free.

``punches`` rows, each under a key:

``loyalty:punch:<card>:order:<order id>``     +units of a paid order that match the card
``loyalty:punch:<card>:refund:<refund id>``   -units a refund took back
``loyalty:punch:<card>:cancel:<order id>``    -what a cancellation left of the order's units
``loyalty:punch:<card>:fill:<customer>:<n>``  -size when the card filled and a reward was issued

A unit matches when its line's SKU, product, variant, product type, vendor or
line tags are listed in the card's ``match``, or its product is in one of the
card's collections (kept in plugin state by ``retention loyalty sync-products``,
since order webhooks do not say which collections a product is in). Units the
customer got free (a line discounted by its whole price, e.g. the reward
itself) do not count.

A full card gives one unit free: a Buy X get Y code, 100 % off one unit of the
card's products (``discountOnQuantity``), limited to the customer, single use
(``free_item = "unit"``, the default).
"""

from __future__ import annotations

import logging
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy import func, select

from ...storage import tables as t
from ...storage.db import insert_ignore
from .account import LoyaltyOp
from .rewards import issue
from ...discounts import customer_gid

P = t.punches
OL = t.order_lines
log = logging.getLogger("retention_plugin.loyalty")

STATE_PLUGIN = "loyalty"


def products_state_key(card: str) -> str:
    return f"punch:{card}:products"


def synced_products(ctx, card: dict) -> set[int]:
    if not (card["match"]["collections"] or card["match"]["tags"]):
        return set()
    return {int(x) for x in ctx.state_get(STATE_PLUGIN, products_state_key(card["name"]), []) or []}


def line_matches(card: dict, line, extra_products: set[int]) -> bool:
    m = card["match"]
    tags = set(line["tags"] or [])
    return bool(
        (line["sku"] and line["sku"] in m["skus"])
        or (line["product_id"] is not None and (line["product_id"] in m["product_ids"]
                                               or line["product_id"] in extra_products))
        or (line["variant_id"] is not None and line["variant_id"] in m["variant_ids"])
        or (line["product_type"] and line["product_type"] in m["product_types"])
        or (line["vendor"] and line["vendor"] in m["vendors"])
        or (tags and tags & set(m["tags"]))
    )


def paid_units(line) -> int:
    """Units of a line the customer paid for: quantity less the units discounted to nothing."""
    qty, price = int(line["quantity"]), Decimal(line["price"] or 0)
    if price <= 0:
        return 0
    free = int((Decimal(line["total_discount"] or 0) / price).to_integral_value(rounding=ROUND_FLOOR))
    return max(0, qty - free)


def _key(card: str, what: str, ref) -> str:
    return f"loyalty:punch:{card}:{what}:{ref}"


def _row(conn, key):
    return conn.execute(select(P).where(P.c.key == key)).mappings().first()


def _insert(op: LoyaltyOp, key: str, card: str, quantity: int, order_id=None) -> bool:
    return insert_ignore(op.conn, P, {"key": key, "customer_id": op.customer_id, "card": card,
                                      "quantity": quantity, "order_id": order_id, "created_at": op.now},
                         ["key"]) is not None


def count(conn, customer_id: int, card: str) -> int:
    return int(conn.execute(select(func.coalesce(func.sum(P.c.quantity), 0)).where(
        P.c.customer_id == customer_id, P.c.card == card)).scalar())


def reconcile(op: LoyaltyOp, order_row, *, paid: bool) -> list[dict]:
    """Count a paid order's units, take back refunded/cancelled ones, fill cards; returns rewards issued."""
    cards = op.settings["punch_cards"]
    if not cards:
        return []
    conn = op.conn
    sid = order_row["shopify_id"]
    lines = conn.execute(select(OL).where(OL.c.order_id == order_row["id"])).mappings().all()
    refunds = None
    issued = []
    for card in cards:
        name = card["name"]
        extra = synced_products(op.ctx, card)
        matching = {ln["line_key"]: ln for ln in lines if line_matches(card, ln, extra)}
        okey = _key(name, "order", sid)
        counted_row = _row(conn, okey)
        if counted_row is None:
            if not paid or order_row["cancelled_at"] is not None or not matching:
                continue
            if order_row["test"] and not op.settings["include_test_orders"]:
                continue
            units = sum(paid_units(ln) for ln in matching.values())
            if units <= 0:
                continue
            _insert(op, okey, name, units, order_row["id"])
            counted = units
        else:
            counted = counted_row["quantity"]
        taken = -int(conn.execute(select(func.coalesce(func.sum(P.c.quantity), 0)).where(
            P.c.order_id == order_row["id"], P.c.card == name, P.c.quantity < 0,
            ~P.c.key.startswith(f"loyalty:punch:{name}:fill:", autoescape=True))).scalar())
        remaining = counted - taken
        if refunds is None:
            refunds = conn.execute(select(t.refunds).where(t.refunds.c.order_id == order_row["id"])
                                   .order_by(t.refunds.c.created_at, t.refunds.c.id)).mappings().all()
        for r in refunds:
            rkey = _key(name, "refund", r["shopify_id"])
            if _row(conn, rkey) is not None:
                continue
            back = 0
            for rl in r["lines"] or []:
                ln = matching.get(str(rl.get("line_id")))
                if ln is not None and rl.get("quantity"):
                    back += min(int(rl["quantity"]), paid_units(ln))
            back = min(back, remaining)
            if back > 0:
                _insert(op, rkey, name, -back, order_row["id"])
                remaining -= back
        if order_row["cancelled_at"] is not None and remaining > 0:
            _insert(op, _key(name, "cancel", sid), name, -remaining, order_row["id"])
        issued.extend(fill(op, card))
    return issued


def fill(op: LoyaltyOp, card: dict) -> list[dict]:
    """While the card holds ``size`` punches: use them up and issue a free-item code."""
    name, size = card["name"], card["size"]
    if customer_gid(op.ctx.customer(op.customer_id)) is None:
        return []  # no Shopify customer to limit a code to (yet): the punches wait
    have = count(op.conn, op.customer_id, name)
    if have >= size and card["free_item"] == "unit" and not any(free_items(op, card)):
        log.warning("punch card %s of customer %s is full, but no product is known to give free "
                    "(orders without product ids?): the punches wait", name, op.customer_id)
        return []
    prefix = f"loyalty:punch:{name}:fill:{op.customer_id}:"
    n = op.conn.execute(select(func.count()).select_from(P).where(P.c.key.startswith(prefix, autoescape=True))).scalar()
    issued = []
    while have >= size:
        if not _insert(op, f"{prefix}{n}", name, -size):
            break
        issued.append(_reward(op, card, n))
        have -= size
        n += 1
    return issued


def _matching_lines(op: LoyaltyOp, card: dict, extra: set[int]) -> list:
    lines = op.conn.execute(select(OL).join(t.orders, t.orders.c.id == OL.c.order_id).where(
        t.orders.c.customer_id == op.customer_id, t.orders.c.cancelled_at.is_(None))).mappings().all()
    return [ln for ln in lines if line_matches(card, ln, extra) and paid_units(ln) > 0]


def free_items(op: LoyaltyOp, card: dict, matching=None) -> tuple[list[str], list[str]]:
    """(product GIDs, variant GIDs) a free unit may be taken from: what the card names and what was bought.

    A line counted by its SKU or variant gives that variant (a SKU is one variant); a line
    counted by its product, type, vendor, tags or collection gives its whole product.
    """
    m = card["match"]
    extra = synced_products(op.ctx, card)
    if matching is None:
        matching = _matching_lines(op, card, extra)
    products = set(m["product_ids"]) | extra
    variants = set(m["variant_ids"])
    for ln in matching:
        by_product = (ln["product_id"] is not None and (ln["product_id"] in m["product_ids"]
                                                       or ln["product_id"] in extra)) \
            or (ln["product_type"] and ln["product_type"] in m["product_types"]) \
            or (ln["vendor"] and ln["vendor"] in m["vendors"]) or bool(set(ln["tags"] or []) & set(m["tags"]))
        if by_product and ln["product_id"] is not None:
            products.add(ln["product_id"])
        elif ln["variant_id"] is not None:
            variants.add(ln["variant_id"])
        elif ln["product_id"] is not None:
            products.add(ln["product_id"])
    return ([f"gid://shopify/Product/{p}" for p in sorted(products)],
            [f"gid://shopify/ProductVariant/{v}" for v in sorted(variants)])


def _reward(op: LoyaltyOp, card: dict, n: int) -> dict:
    """One free matching unit: by default 100 % off one unit (a Buy X get Y code), bound to the customer."""
    extra = synced_products(op.ctx, card)
    matching = _matching_lines(op, card, extra)
    title = card["title"] or card["name"]
    valid = card["valid_days"] or op.settings["reward_valid_days"]
    common = dict(key_base=f"punch:{card['name']}:{op.customer_id}:{n}", feature="punch", points=None,
                  valid_days=valid, title=f"Punch card {title}: one free item",
                  description=f"one free {title}", message_data=free_item_data(card),
                  source_ref=f"punch:{card['name']}")
    if card["free_item"] == "unit":
        products, variants = free_items(op, card, matching)
        return issue(op, free_units=1, product_gids=products, variant_gids=variants, **common)
    # The older choices, kept for shops that configured them: money off, or every unit of one order free.
    gids = [f"gid://shopify/Product/{p}" for p in sorted(
        {ln["product_id"] for ln in matching if ln["product_id"] is not None}
        | set(card["match"]["product_ids"]) | extra)]
    common["product_gids"] = gids
    unit = max((Decimal(ln["price"]) - Decimal(ln["total_discount"] or 0) / ln["quantity"] for ln in matching),
               default=Decimal(0))
    if card["free_item"] == "percent" and gids:
        return issue(op, percent=Decimal(100), **common)
    if unit <= 0:
        unit = Decimal("0.01")
    return issue(op, amount=unit.quantize(Decimal("0.01")), **common)


def free_item_data(card: dict) -> dict:
    """What the ``reward`` message says is free: the card's title, and its ``titles`` per language.

    The template words the sentence around it ("one free ... with your next order") in the
    customer's language; only the item's name comes from the card.
    """
    title = card["title"] or card["name"]
    titles = card.get("titles") or {}
    return {"free_item": title, "translations": {loc: {"free_item": text} for loc, text in titles.items()}}


def cards_state(conn, settings: dict, customer_id: int) -> list[dict]:
    out = []
    for card in settings["punch_cards"]:
        have = count(conn, customer_id, card["name"])
        fills = conn.execute(select(func.count()).select_from(P).where(
            P.c.key.startswith(f"loyalty:punch:{card['name']}:fill:{customer_id}:", autoescape=True))).scalar()
        out.append({"name": card["name"], "title": card["title"], "size": card["size"], "punches": have,
                    "to_go": max(0, card["size"] - have), "filled": int(fills)})
    return out

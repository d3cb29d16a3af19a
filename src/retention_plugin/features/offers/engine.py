"""What thank-you offers do: the thank-you message, which occasion an order is, the voucher decision."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy import and_, func, or_, select, update

from retention_plugin import events as ev
from retention_plugin.customers import follow_merges as load_customer
from retention_plugin.discounts import HELD, issue_discount, money_text, offer_data, percent_text
from retention_plugin.messaging.schedule import cancel_message, record_suppressed
from retention_plugin.records.orders import order_name
from retention_plugin.storage import tables as t

from .settings import EVERY_ORDER, OCCASIONS, PLUGIN, settings_of

log = logging.getLogger("retention_plugin.features.offers")

R = t.rewards


# --- occasions ---------------------------------------------------------------------------


def order_position(conn, order: Mapping) -> tuple[int, int]:
    """(this order's number among the customer's paid, kept, non-test orders; how many there are)."""
    o = t.orders
    mine = and_(o.c.customer_id == order["customer_id"], o.c.paid_at.is_not(None), o.c.cancelled_at.is_(None),
                o.c.test.is_(False))
    earlier = or_(o.c.created_at < order["created_at"],
                  and_(o.c.created_at == order["created_at"], o.c.id <= order["id"]))
    position = conn.execute(select(func.count()).select_from(o).where(mine, earlier)).scalar() or 0
    total = conn.execute(select(func.count()).select_from(o).where(mine)).scalar() or 0
    return position, total


def rule_matches(rule: Mapping, order: Mapping, position: int, total: int) -> bool:
    occ = rule["occasion"]
    if occ == "first_order":
        # Only when no other order exists at all: an older order arriving late is not a "first" too.
        return position == 1 and total == 1
    if occ == "nth_order":
        return position > 0 and (position % rule["n"] == 0 if rule["every"] else position == rule["n"])
    if occ == "order_above":
        if rule["currency"] and rule["currency"] != order["currency"]:
            return False
        return Decimal(order["subtotal"]) >= rule["min_subtotal"]
    return False


def matching_rule(ctx, order: Mapping, occasion: str | None = None) -> dict | None:
    """The first configured occasion the order matches (only entries of ``occasion`` when given)."""
    rules = [r for r in settings_of(ctx)["occasions"] if occasion is None or r["occasion"] == occasion]
    if not rules or order["customer_id"] is None:
        return None
    position, total = order_position(ctx.conn, order)
    return next((r for r in rules if rule_matches(r, order, position, total)), None)


def builtin_offer(order, occasion, ctx) -> dict | bool:
    """The built-in: the offer of the first ``[[offers.occasions]]`` entry of this occasion the order matches."""
    if occasion not in OCCASIONS:
        return False
    row = ctx.order_row(order.shopify_id)
    rule = matching_rule(ctx, row, occasion) if row is not None else None
    if rule is None:
        return False
    if rule["percent"] is not None:
        return {"percent": rule["percent"], "valid_days": rule["valid_days"]}
    return {"amount": ev.Money(rule["amount"], rule["currency"] or order.currency), "valid_days": rule["valid_days"]}


class OfferInvalid(ValueError):
    pass


def normalise_offer(offer: Any, shop_currency: str) -> dict:
    """``{"percent": Decimal}`` or ``{"amount": Decimal, "currency": str}``, plus ``valid_days``.

    Raises OfferInvalid."""
    if not isinstance(offer, Mapping):
        raise OfferInvalid(f"expected a dict, False or None, got {type(offer).__name__}")
    percent, amount = offer.get("percent"), offer.get("amount")
    if (percent is None) == (amount is None):
        raise OfferInvalid("give exactly one of percent or amount")
    valid_days = offer.get("valid_days", 30)
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or not 1 <= valid_days <= 3650:
        raise OfferInvalid(f"valid_days must be an int in 1..3650, got {valid_days!r}")
    if percent is not None:
        if isinstance(percent, (bool, float)) or not isinstance(percent, (Decimal, int, str)):
            raise OfferInvalid(f"percent must be a Decimal, got {percent!r}")
        p = Decimal(str(percent))
        if not (0 < p <= 100):
            raise OfferInvalid(f"percent must be in (0, 100], got {p}")
        return {"percent": p, "amount": None, "currency": None, "valid_days": valid_days}
    if not isinstance(amount, ev.Money):
        raise OfferInvalid(f"amount must be events.Money (Decimal + currency), got {amount!r}")
    if amount.amount <= 0:
        raise OfferInvalid("amount must be positive")
    if amount.currency != shop_currency:
        raise OfferInvalid(f"amount is in {amount.currency}, but codes apply in the shop currency {shop_currency}")
    return {"percent": None, "amount": amount.amount, "currency": amount.currency, "valid_days": valid_days}


def expected_next_purchase(conn, customer_id: int, now: datetime) -> datetime | None:
    """When the daily scoring expects this customer's next order, counted from an order placed ``now``.

    The purchase models are memoryless while a customer is active: the wait they
    predicted at ``scored_at`` (``next_purchase_at - scored_at``) starts again at
    an order placed since. None when the customer was never scored.
    """
    cs = t.customer_scores
    row = conn.execute(select(cs.c.next_purchase_at, cs.c.scored_at).where(cs.c.customer_id == customer_id)).first()
    if row is None or row.next_purchase_at is None:
        return None
    if row.scored_at is not None and row.scored_at < now:
        return now + (row.next_purchase_at - row.scored_at)
    return row.next_purchase_at


def voucher_end(ctx, customer_id: int, valid_days: int, s: Mapping) -> datetime:
    now = ctx.now
    end = now + timedelta(days=valid_days)
    if s["expire_after_expected_days"] is not None:
        nxt = expected_next_purchase(ctx.conn, customer_id, now)
        if nxt is not None:
            end = nxt + timedelta(days=s["expire_after_expected_days"])
            end = min(max(end, now + timedelta(days=s["min_valid_days"])), now + timedelta(days=s["max_valid_days"]))
    return end


# --- reactions ---------------------------------------------------------------------------


def _keys(order_id: int) -> dict:
    return {"thank_you": f"offers:thank_you:order:{order_id}", "voucher": f"offers:voucher:order:{order_id}",
            "discount": f"offers:discount:order:{order_id}", "state": f"order:{order_id}"}


def on_order_paid(ctx, order: ev.Order) -> None:
    s = settings_of(ctx)
    if order.source != "webhook":
        return  # history brought in by an importer is not a purchase happening now
    paid_about = order.updated_at or order.processed_at or order.created_at
    if paid_about is not None and ctx.now - paid_about > timedelta(days=s["max_order_age_days"]):
        log.info("order %s: paid about %s, older than [offers] max_order_age_days; no thank-you or voucher",
                 order.shopify_id, paid_about.isoformat())
        return
    row = ctx.order_row(order.shopify_id)
    if row is None or row["customer_id"] is None or row["test"] or row["cancelled_at"] is not None:
        return
    row = dict(row)
    customer = load_customer(ctx.conn, row["customer_id"], ctx=ctx)
    if customer is None:
        return
    keys = _keys(order.shopify_id)
    if s["thank_you"]:
        url = None
        if s["order_url"]:
            name = order_name(row)
            url = s["order_url"].format(order_id=order.shopify_id, order_name=name, order_number=name.lstrip("#"))
        ctx.schedule_message(key=keys["thank_you"], customer_id=customer["id"], kind="thank_you",
                             due_at=ctx.now + timedelta(minutes=s["thank_you_delay_minutes"]),
                             locale=row["locale"], data={
                                 "order_name": order_name(row), "order_total": str(order.total.amount),
                                 "currency": order.total.currency, "order_url": url})
    if s["occasions"] or _another_chooser(ctx):
        decide_voucher(ctx, order, row, customer, s)
    # Else no voucher can be decided: with no occasion configured the built-in ``choose_offer`` says
    # no (and so the decision is None), and without reading the order's stored decision a replay of
    # an earlier one (made when occasions were configured) has no effect either way.


def _another_chooser(ctx) -> bool:
    """Whether a plugin other than this one implements ``choose_offer`` (it may offer on any order)."""
    # The built-in is the one defined in this package; told by its module, since importing the
    # package from here would make an import cycle.
    return any(impl.function.__module__ != __package__ for impl in ctx.hook.choose_offer.get_hookimpls())


def decide_voucher(ctx, order: ev.Order, row: Mapping, customer: Mapping, s: Mapping) -> dict | None:
    """Issue the order's voucher, or record why not; returns the decision (None: nothing to decide)."""
    keys = _keys(order.shopify_id)
    done = ctx.state_get(PLUGIN, keys["state"])
    if done is not None:  # a replay: the first decision stands, whatever changed since
        return done
    rule = matching_rule(ctx, row)
    occasion = rule["occasion"] if rule else EVERY_ORDER
    offer = ctx.hook.choose_offer(order=order, customer=customer, occasion=occasion, ctx=ctx)
    base = {"occasion": occasion, "decided_at": ctx.now.isoformat(), "order_name": order_name(row)}
    if offer is None or offer is False:
        if rule is None:
            return None  # an ordinary order nobody wanted to reward: nothing worth recording
        return _decline(ctx, keys, base, "choose_offer returned no offer")
    try:
        o = normalise_offer(offer, order.currency)
    except OfferInvalid as e:
        log.error("order %s: choose_offer returned an invalid offer: %s", order.shopify_id, e)
        return _decline(ctx, keys, base, f"invalid offer from choose_offer: {e}")
    base["offer"] = {"percent": percent_text(o["percent"]) if o["percent"] is not None else None,
                     "amount": money_text(o["amount"]) if o["amount"] is not None else None,
                     "currency": o["currency"], "valid_days": o["valid_days"]}
    reason = None
    consent = customer.get("marketing_consent")
    if customer.get("redacted_at") is not None:
        reason = "the customer's personal data was erased"
    elif consent != "subscribed":
        reason = f"no marketing consent ({consent or 'none recorded'})"
    if reason is not None:
        record_suppressed(ctx, key=keys["voucher"], customer_id=customer["id"], kind="voucher",
                          locale=row["locale"], reason=f"no offer made: {reason}",
                          data={"order_name": order_name(row), "occasion": occasion, "offer": base["offer"]})
        return _decline(ctx, keys, base, reason)
    ends = voucher_end(ctx, customer["id"], o["valid_days"], s)
    reward = issue_discount(ctx, key=keys["voucher"], action_key=keys["discount"], feature=PLUGIN,
                            customer=customer, percent=o["percent"], amount=o["amount"], currency=o["currency"],
                            ends_at=ends, title=f"{s['title']} {order_name(row)}", prefix=s["code_prefix"],
                            source_ref=f"order:{order.shopify_id}",
                            message={"key": keys["voucher"], "kind": "voucher", "locale": row["locale"],
                                     "delay_minutes": s["voucher_delay_minutes"],
                                     "data": {"order_name": order_name(row), "minimum_amount": None}})
    if reward["status"] == HELD:
        # No Shopify customer to limit the code to: it waits for `retention discounts approve`.
        decision = dict(base, decision="held", reward_id=reward["id"], reason=reward["hold"]["reason"])
        ctx.state_set(PLUGIN, keys["state"], decision)
        return decision
    data = offer_data(reward)
    decision = dict(base, decision="issued", code=reward["code"], expires_at=data["expires_at"])
    ctx.state_set(PLUGIN, keys["state"], decision)
    return decision


def _decline(ctx, keys, base, reason: str) -> dict:
    decision = dict(base, decision="declined", reason=reason)
    ctx.state_set(PLUGIN, keys["state"], decision)
    return decision


def withdraw(ctx, order_id: int) -> None:
    """Withdraw the thank-you and voucher not yet sent; the voucher's reward is marked cancelled."""
    keys = _keys(order_id)
    cancel_message(ctx.conn, keys["thank_you"], "the order was cancelled")
    if cancel_message(ctx.conn, keys["voucher"], "the order was cancelled"):
        # The code exists in Shopify (single use, that customer only) but the customer never got it.
        ctx.conn.execute(update(R).where(R.c.key == keys["voucher"], R.c.status == "issued")
                         .values(status="cancelled"))
    # A voucher still held for approval must not be approved for a cancelled order.
    ctx.conn.execute(update(R).where(R.c.key == keys["voucher"], R.c.status == HELD).values(status="cancelled"))


def facts(ctx, customer_id: int) -> dict | None:
    """The customer's latest vouchers, for ``customers show``."""
    rows = ctx.conn.execute(select(R.c.code, R.c.percent, R.c.amount, R.c.currency, R.c.status, R.c.source_ref,
                                   R.c.expires_at).where(R.c.customer_id == customer_id, R.c.feature == PLUGIN)
                            .order_by(R.c.id.desc()).limit(10)).mappings().all()
    if not rows:
        return None
    return {PLUGIN: {"vouchers": [
        {"code": r["code"], "status": r["status"], "order": r["source_ref"],
         "discount": (f"{percent_text(r['percent'])}%" if r["percent"] is not None
                      else f"{money_text(r['amount'])} {r['currency']}"),
         "expires_at": r["expires_at"].isoformat() if r["expires_at"] else None} for r in rows]}}

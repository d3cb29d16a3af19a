"""What reminders do: learn repeat intervals, schedule and cancel reminders, spot subscription prospects."""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from retention_plugin.shop_scope import only
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import insert_ignore

from .settings import OFFER_KIND, PLUGIN, settings_of

log = logging.getLogger("retention_plugin.features.reminders")


# --- small helpers ------------------------------------------------------------------------


def order_time(order: Mapping) -> datetime:
    """When the customer bought: ``processed_at``, else ``created_at``."""
    return order.get("processed_at") or order["created_at"]


def store_url(ctx) -> str | None:
    url = settings_of(ctx).get("store_url")
    if url:
        return url.rstrip("/")
    shop = ctx.section("shopify").get("shop") if ctx.settings.has("shopify") else None
    return f"https://{shop}" if shop else None


def reorder_url(store: str, *, variant_id: int | None, quantity: int, product_url: str | None = None,
                sku: str | None = None, title: str | None = None) -> str:
    """The Shopify cart permalink ``{store}/cart/{variant}:{qty}``; without a variant, the product page.

    Order lines carry no product handle, so the "product page" is the rule's
    ``product_url`` when set, else the store's search for the SKU (or title).
    """
    if variant_id:
        return f"{store}/cart/{int(variant_id)}:{max(1, int(quantity))}"
    if product_url:
        return product_url
    return f"{store}/search?q={quote(sku or title or '', safe='')}"


def _claim(conn, key: str, value, now: datetime) -> bool:
    """Insert a plugin_state row unless it exists; True only for the transaction that inserted it."""
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = (dialect.insert(t.plugin_state).values(plugin=PLUGIN, key=key, value=value, updated_at=now)
            .on_conflict_do_nothing(index_elements=["plugin", "key"]).returning(t.plugin_state.c.key))
    return conn.execute(stmt).first() is not None  # (rowcount is -1 here on psycopg)


def rule_matches(rule: Mapping, line: Mapping) -> bool:
    if line.get("sku") and line["sku"] in rule["skus"]:
        return True
    if line.get("product_id") is not None and line["product_id"] in rule["product_ids"]:
        return True
    if line.get("product_type") and line["product_type"].lower() in {p.lower() for p in rule["product_types"]}:
        return True
    tags = {x.lower() for x in (line.get("tags") or [])}
    return bool(tags & {x.lower() for x in rule["tags"]})


def first_rule(rules: Iterable[Mapping], line: Mapping) -> Mapping | None:
    """Rules are tried in the order written; the first that matches a line wins."""
    for rule in rules:
        if rule_matches(rule, line):
            return rule
    return None


def _item(line: Mapping) -> str:
    """What the reminder is about: the SKU, else the variant or product id."""
    if line.get("sku"):
        return line["sku"]
    if line.get("variant_id"):
        return f"variant:{line['variant_id']}"
    return f"product:{line.get('product_id')}"


# --- learned intervals -----------------------------------------------------------------------


_PURCHASES = (
    select(t.orders.c.customer_id, t.orders.c.processed_at, t.orders.c.created_at, t.order_lines.c.quantity,
           t.order_lines.c.refunded_quantity)
    .select_from(t.order_lines.join(t.orders, t.order_lines.c.order_id == t.orders.c.id))
    .where(t.order_lines.c.sku == bindparam("sku"), t.orders.c.customer_id.is_not(None),
           t.orders.c.cancelled_at.is_(None), t.orders.c.test.is_(False)))
# Built once: every paid order asks it for each of its SKUs.
_CUSTOMER_PURCHASES = _PURCHASES.where(t.orders.c.customer_id == bindparam("cid"))


def purchase_history(conn, sku: str, customer_id: int | None = None) -> dict[int, list[tuple[date, int]]]:
    """``{customer_id: [(day, quantity), ...]}``: one entry per distinct purchase day, oldest first.

    Counts paid-or-imported orders that were not cancelled and are not test
    orders; quantity is what was kept (ordered minus refunded).
    """
    if customer_id is None:
        rows = conn.execute(_PURCHASES, {"sku": sku})
    else:
        rows = conn.execute(_CUSTOMER_PURCHASES, {"sku": sku, "cid": customer_id})
    days: dict[int, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        kept = r.quantity - (r.refunded_quantity or 0)
        if kept <= 0:
            continue
        day = (r.processed_at or r.created_at).date()
        days[r.customer_id][day] += kept
    return {cid: sorted(d.items()) for cid, d in days.items()}


def gaps(purchases: list[tuple[date, int]], *, per_unit: bool, max_gap_days: float) -> list[float]:
    """Days between consecutive purchase days; per unit bought at the earlier one when ``per_unit``.

    A gap longer than ``max_gap_days`` is a lapse, not a usage interval, and is left out.
    """
    out = []
    for (d1, q1), (d2, _) in zip(purchases, purchases[1:]):
        gap = (d2 - d1).days
        if gap <= 0 or gap > max_gap_days:
            continue
        out.append(gap / q1 if per_unit else float(gap))
    return out


def learn_interval(conn, sku: str, *, per_unit: bool, max_gap_days: float) -> tuple[float | None, int]:
    """The median repeat interval of ``sku`` across customers, and how many repeat pairs it rests on."""
    all_gaps: list[float] = []
    for purchases in purchase_history(conn, sku).values():
        all_gaps.extend(gaps(purchases, per_unit=per_unit, max_gap_days=max_gap_days))
    if not all_gaps:
        return None, 0
    return float(statistics.median(all_gaps)), len(all_gaps)


def learned_interval(ctx, sku: str, *, per_unit: bool) -> tuple[float | None, int]:
    """:func:`learn_interval`, computed at most once a day per SKU (cached in ``plugin_state``)."""
    s = settings_of(ctx)
    key = f"learned:{'unit' if per_unit else 'order'}:{sku}"[:255]
    today = ctx.now.date().isoformat()
    cached = ctx.state_get(PLUGIN, key)
    if isinstance(cached, dict) and cached.get("day") == today:
        return cached.get("days"), int(cached.get("pairs") or 0)
    days, pairs = learn_interval(ctx.conn, sku, per_unit=per_unit, max_gap_days=s["learn_max_gap_days"])
    ctx.state_set(PLUGIN, key, {"day": today, "days": days, "pairs": pairs})
    return days, pairs


def rule_interval(ctx, rule: Mapping, sku: str | None, *, per_unit: bool) -> tuple[float | None, str]:
    """The interval in days a rule gives for a SKU and where it came from (``fixed``/``learned``/``fallback``)."""
    if not rule["learn"]:
        return rule["interval_days"], "fixed"
    min_pairs = rule["min_pairs"] or settings_of(ctx)["learn_min_pairs"]
    if sku:
        days, pairs = learned_interval(ctx, sku, per_unit=per_unit)
        if days is not None and pairs >= min_pairs:
            return days, "learned"
    return rule["fallback_days"], "fallback"


# --- scheduling ----------------------------------------------------------------------------------


def _message_status(conn, message_id) -> str | None:
    if message_id is None:
        return None
    return conn.execute(select(t.messages.c.status).where(t.messages.c.id == message_id)).scalar()


# The customer's reminders of the same rule and item from other orders (built once: asked per paid line).
_OTHERS = (select(t.reminders.c.id, t.reminders.c.key, t.reminders.c.status, t.reminders.c.message_id,
                  t.reminders.c.order_id, t.orders.c.processed_at, t.orders.c.created_at)
           .select_from(t.reminders.join(t.orders, t.reminders.c.order_id == t.orders.c.id, isouter=True))
           .where(t.reminders.c.rule == bindparam("rule"), t.reminders.c.customer_id == bindparam("cid"),
                  t.reminders.c.sku == bindparam("sku"), t.reminders.c.order_id != bindparam("oid")))


# A superseded reminder's new status (built once, as _OTHERS).
_SET_STATUS = (update(t.reminders).where(t.reminders.c.id == bindparam("rid"))
               .values(status=bindparam("new_status", type_=t.reminders.c.status.type)))


def schedule_for_order(ctx, order_id: int) -> list[str]:
    """Schedule (or supersede) the reminders one stored order calls for; returns the keys scheduled.

    Works from the stored order, so a webhook, an import or a command can call it.
    """
    from retention_plugin.messaging.outbox import cancel_message

    conn = ctx.conn
    s = settings_of(ctx)
    if not s["rules"]:
        return []
    order = ctx.order(order_id)
    if order is None or order["customer_id"] is None or order["cancelled_at"] is not None or order["test"]:
        return []
    store = store_url(ctx)
    bought_at = order_time(order)
    groups: dict[tuple[str, str], dict] = {}
    for line in ctx.order_lines(order_id):
        qty = line["quantity"] - (line["refunded_quantity"] or 0)
        if qty <= 0:
            continue
        rule = first_rule(s["rules"], line)
        if rule is None:
            continue
        g = groups.setdefault((rule["name"], _item(line)), {"rule": rule, "line": line, "quantity": 0})
        g["quantity"] += qty

    r = t.reminders
    scheduled = []
    for (rule_name, item), g in groups.items():
        rule, line, qty = g["rule"], g["line"], g["quantity"]
        cid = order["customer_id"]
        # Newest order wins: if a reminder exists from a later order, this (late) order changes nothing.
        # A customer this delivery's record created has no reminder yet (a first order: nothing to look for).
        others = [] if ctx.customer_is_new(cid, "reminders") else conn.execute(
            _OTHERS, {"rule": rule_name, "cid": cid, "sku": item, "oid": order_id}).mappings().all()
        if any(x["created_at"] is not None and (order_time(x), x["order_id"]) > (bought_at, order_id) for x in others):
            continue
        for x in others:
            if x["status"] != "scheduled":
                continue
            if cancel_message(conn, x["key"], f"reordered in order {order['name'] or order_id}"):
                status = "cancelled"  # the UPDATE just set it: no need to read it back
            else:
                status = _message_status(conn, x["message_id"]) or "cancelled"
            conn.execute(_SET_STATUS, {"rid": x["id"],
                                       "new_status": "cancelled" if status in ("scheduled", "deferred") else status})

        service = rule["service"]
        per_unit = rule["scale_by_quantity"] if rule["scale_by_quantity"] is not None else not service
        interval, source = rule_interval(ctx, rule, line["sku"], per_unit=per_unit)
        if interval is None:
            log.info("reminder rule %s: no interval for %s yet (learning, no fallback_days)", rule_name, item)
            continue
        factor = 1
        if per_unit:
            factor = qty if rule["max_quantity_factor"] is None else min(qty, rule["max_quantity_factor"])
        due_at = bought_at + timedelta(days=interval * factor)
        if due_at <= ctx.now:
            log.info("reminder rule %s for %s: due %s has passed (an old order); not scheduled",
                     rule_name, item, due_at.isoformat())
            continue
        if store is None:
            log.warning("reminders: no [reminders].store_url and no [shopify].shop; cannot build a reorder link")
            continue
        link = reorder_url(store, variant_id=line["variant_id"], quantity=qty, product_url=rule["product_url"],
                           sku=line["sku"], title=line["title"])
        title = line["title"] or line["sku"] or item
        data: dict[str, Any] = {"product_title": title, "reorder_url": link, "last_ordered_at": bought_at,
                                "sku": line["sku"], "quantity": qty, "rule": rule_name,
                                "interval_days": round(interval * factor, 1), "interval_source": source}
        if service:
            kind, message_class = "service_reminder", "transactional"
            data.update(service_name=rule["service_name"] or rule_name, due_date=due_at.date().isoformat(),
                        booking_url=rule["booking_url"])
        else:
            kind, message_class = "reminder", "marketing"
        if rule["kind"]:
            kind = rule["kind"]
            message_class = ctx.app.message_kinds.get(kind) or message_class
        key = f"reminder:{rule_name}:{cid}:{item}:{order_id}"[:255]
        mid = ctx.schedule_message(key=key, customer_id=cid, kind=kind, due_at=due_at, data=data,
                                   message_class=message_class, locale=order["locale"])
        insert_ignore(conn, r, {"key": key, "customer_id": cid, "rule": rule_name, "sku": item,
                                "order_id": order_id, "due_at": due_at, "status": "scheduled",
                                "message_id": mid, "created_at": ctx.now}, ["key"])
        scheduled.append(key)
    return scheduled


def cancel_for_order(ctx, order_id: int, reason: str) -> int:
    """Withdraw the pending reminders an order scheduled (it was cancelled); returns how many."""
    from retention_plugin.messaging.outbox import cancel_message

    r = t.reminders
    n = 0
    for x in ctx.conn.execute(select(r.c.id, r.c.key).where(r.c.order_id == order_id, r.c.status == "scheduled")):
        cancel_message(ctx.conn, x.key, reason)
        ctx.conn.execute(update(r).where(r.c.id == x.id).values(status="cancelled"))
        n += 1
    return n


# --- subscription prospects --------------------------------------------------------------------


def regular_interval(purchases: list[tuple[date, int]], offer: Mapping) -> float | None:
    """The median gap when the purchases are regular enough for an offer, else None.

    Regular: at least ``min_purchases`` purchase days, the median gap at least
    ``min_interval_days``, and every gap within ``tolerance`` (a fraction) of the median.
    """
    if len(purchases) < offer["min_purchases"]:
        return None
    g = [(b[0] - a[0]).days for a, b in zip(purchases, purchases[1:])]
    med = float(statistics.median(g))
    if med <= 0 or med < offer["min_interval_days"]:
        return None
    if any(abs(x - med) > offer["tolerance"] * med for x in g):
        return None
    return med


def check_candidates(ctx, order_id: int) -> list[str]:
    """Call ``replenishment_candidate`` (once per customer and SKU) for regular buyers in this order."""
    s = settings_of(ctx)
    offer = s["offer"]
    conn = ctx.conn
    order = ctx.order(order_id)
    if order is None or order["customer_id"] is None or order["cancelled_at"] is not None or order["test"]:
        return []
    cid = order["customer_id"]
    if offer["min_purchases"] > 1 and ctx.known_order_ids(cid) == (order_id,):
        return []  # the customer's one order is one purchase day: no SKU of it is bought regularly yet
    found = []
    lines = {ln["sku"]: ln for ln in ctx.order_lines(order_id) if ln["sku"]}
    for sku, line in lines.items():
        purchases = purchase_history(conn, sku, customer_id=cid).get(cid, [])
        med = regular_interval(purchases, offer)
        if med is None:
            continue
        interval_days = max(1, round(med))
        if not _claim(conn, f"candidate:{cid}:{sku}"[:255],
                      {"interval_days": interval_days, "purchases": len(purchases), "order_id": order_id},
                      ctx.now):
            continue  # this customer and SKU had their one offer already
        results = ctx.hook.replenishment_candidate(customer_id=cid, sku=sku, interval_days=interval_days, ctx=ctx)
        found.append(sku)
        if not offer["enabled"] or any(res is False for res in results):
            continue
        store = store_url(ctx)
        qty = max(1, line["quantity"])
        link = reorder_url(store, variant_id=line["variant_id"], quantity=qty, sku=sku,
                           title=line["title"]) if store else None
        url = offer["url"].format(sku=quote(sku, safe=""), variant_id=line["variant_id"] or "",
                                  product_id=line["product_id"] or "", interval_days=interval_days,
                                  quantity=qty, customer_id=cid) if offer["url"] else link
        ctx.schedule_message(
            key=f"{OFFER_KIND}:{cid}:{sku}"[:255], customer_id=cid, kind=OFFER_KIND, message_class="marketing",
            due_at=ctx.now + timedelta(days=offer["delay_days"]), locale=order["locale"],
            data={"product_title": line["title"] or sku, "sku": sku, "interval_days": interval_days,
                  "purchases": len(purchases), "subscribe_url": url, "reorder_url": link})
    return found


# --- reactions ------------------------------------------------------------------------------------


def stored_order_id(ctx, event_order) -> int | None:
    if event_order is None or event_order.shopify_id is None:
        return None
    row = ctx.order_row(event_order.shopify_id)
    return row["id"] if row else None


# --- keeping reminder rows in step with their messages ----------------------------------------------


def sync_statuses(ctx) -> int:
    """Copy the fate of each scheduled reminder's message (sent, suppressed, failed, cancelled) onto it."""
    r, m = t.reminders, t.messages
    n = 0
    for status in ("sent", "suppressed", "failed", "cancelled"):
        done = select(m.c.id).where(m.c.status == status)
        n += ctx.conn.execute(update(r).where(r.c.status == "scheduled", r.c.message_id.in_(done), only(r))
                              .values(status=status)).rowcount or 0
    return n



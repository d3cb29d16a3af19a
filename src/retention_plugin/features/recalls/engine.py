"""What a recall does: find the buyers, open their cases, queue notices and tickets, move the cases on.

The hooks (``__init__``), the task, the commands and the acknowledgment page
all act through these functions.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import date, datetime, time, timezone
from typing import Mapping

from sqlalchemy import and_, func, literal, not_, or_, select, update
from sqlalchemy import case as sql_case

from retention_plugin import links
from retention_plugin.shop_scope import current, only, scope, scoped
from retention_plugin.storage import tables as t
from retention_plugin.storage import writes
from retention_plugin.storage.db import insert_ignore

from .ack import ack_url
from .settings import PLUGIN, QUALITY_KIND, SAFETY_KIND, SEVERITIES, STATES, RecallError, settings_of
from .texts import check_texts, language_coverage, message_translations, recall_languages

log = logging.getLogger("retention_plugin.features.recalls")

rc, rl, m = t.recall_cases, t.recalls, t.messages


# --- keys, windows ------------------------------------------------------------------------------


def parse_bound(value, *, end: bool) -> datetime | None:
    """A window bound: a date means its whole day (UTC); a datetime without zone is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time.max if end else time.min, timezone.utc)
    raise ValueError(f"{value!r} is not a date")


def recall_key(sku: str | None, product_id: int | None, ordered_from: datetime | None,
               ordered_to: datetime | None) -> str:
    """The recall's idempotency key: the same item and window is the same recall."""
    parts = (f"sku={sku or ''}", f"product={product_id if product_id is not None else ''}",
             f"from={ordered_from.isoformat() if ordered_from else ''}",
             f"to={ordered_to.isoformat() if ordered_to else ''}")
    key = "recall:" + ":".join(parts)
    if len(key) > 255:
        key = "recall:sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def recall_options(ctx_or_conn, recall_id: int) -> dict:
    """What ``recall create`` stored with the recall: instructions, remedy, texts per language, tickets."""
    conn = getattr(ctx_or_conn, "conn", ctx_or_conn)
    v = conn.execute(select(t.plugin_state.c.value).where(
        t.plugin_state.c.plugin == PLUGIN, t.plugin_state.c.key == f"recall:{recall_id}")).scalar()
    return v if isinstance(v, dict) else {}


# --- who is affected -------------------------------------------------------------------------------


def _line_match(recall: Mapping):
    ol = t.order_lines
    conds = []
    if recall["sku"]:
        conds.append(ol.c.sku == recall["sku"])
    if recall["product_id"] is not None:
        conds.append(ol.c.product_id == recall["product_id"])
    return or_(*conds)


def find_affected(conn, recall: Mapping, *, order_id: int | None = None,
                  missing_only: bool = False) -> tuple[dict[int, dict], int]:
    """Buyers of the recalled item in the window: ``({customer_id: latest matching order}, unreachable)``.

    Webhook and imported orders count alike. Test orders, and orders cancelled
    before anything was fulfilled, do not. ``unreachable`` counts matching
    orders with no customer to contact.
    """
    o, ol = t.orders, t.order_lines
    shop = recall.get("shop") or current(conn)  # a recall reaches the buyers of its own shop only
    q = (select(o.c.id, o.c.customer_id, o.c.name, o.c.created_at, o.c.locale, o.c.source, ol.c.title, ol.c.sku)
         .select_from(ol.join(o, ol.c.order_id == o.c.id))
         .where(o.c.shop == shop, _line_match(recall), o.c.test.is_(False),
                not_(and_(o.c.cancelled_at.is_not(None), o.c.fulfilled_at.is_(None))))
         .order_by(o.c.created_at, o.c.id))
    if recall["ordered_from"] is not None:
        q = q.where(o.c.created_at >= recall["ordered_from"])
    if recall["ordered_to"] is not None:
        q = q.where(o.c.created_at <= recall["ordered_to"])
    if order_id is not None:
        q = q.where(o.c.id == order_id)
    if missing_only:
        q = q.where(not_(select(rc.c.id).where(rc.c.recall_id == recall["id"],
                                               rc.c.customer_id == o.c.customer_id).exists()))
    found: dict[int, dict] = {}
    unreachable: set[int] = set()
    for r in conn.execute(q).mappings():
        if r["customer_id"] is None:
            unreachable.add(r["id"])
            continue
        found[r["customer_id"]] = {"order_id": r["id"], "order_name": r["name"], "ordered_at": r["created_at"],
                                   "locale": r["locale"], "product_title": r["title"] or r["sku"],
                                   "source": r["source"]}
    return found, len(unreachable)


def add_cases(ctx, recall: Mapping, affected: Mapping[int, Mapping]) -> list[int]:
    """Open a case per affected customer (once); returns the customer ids whose case is new."""
    new = []
    for cid, info in affected.items():
        got = insert_ignore(ctx.conn, rc, {"recall_id": recall["id"], "customer_id": cid, "order_id": info["order_id"],
                                           "status": "affected", "created_at": ctx.now}, ["recall_id", "customer_id"])
        if got is not None:
            new.append(cid)
    return new


# --- notices and tickets ---------------------------------------------------------------------------------


def _quality_template(ctx) -> str | None:
    """``recall_quality`` templates when an admin or the messaging package has them, else ``recall``'s."""
    from retention_plugin.messaging.outbox import renderer_for

    try:
        return None if QUALITY_KIND in renderer_for(ctx.settings).available() else SAFETY_KIND
    except Exception:  # a broken override directory is reported at send time, not here
        return SAFETY_KIND


def _line_title(conn, recall: Mapping, order_id) -> str | None:
    ol = t.order_lines
    if order_id is None:
        return None
    r = conn.execute(select(ol.c.title, ol.c.sku).where(ol.c.order_id == order_id, _line_match(recall))
                     .order_by(ol.c.id)).first()
    return (r.title or r.sku) if r else None


def notify_pending(ctx, recall: Mapping, *, customer_ids=None, limit: int | None = None) -> dict[str, int]:
    """Schedule the notice (and the ticket, when the recall opens them) for cases that have none yet.

    Cases already resolved get none. Returns ``{"notices": n, "tickets": n}`` newly queued.
    """
    from retention_plugin.messaging.outbox import schedule_message

    counts = {"notices": 0, "tickets": 0}
    problem = links.configured(ctx.settings)
    if problem:
        log.error("recall %s: %s; notices wait (re-run `recall create`)", recall["id"], problem)
        return counts
    o = t.orders
    q = (select(rc.c.id, rc.c.customer_id, rc.c.order_id, o.c.name, o.c.locale)
         .select_from(rc.join(o, rc.c.order_id == o.c.id, isouter=True))
         .where(rc.c.recall_id == recall["id"], rc.c.message_id.is_(None), rc.c.status != "resolved")
         .order_by(rc.c.id))
    if customer_ids is not None:
        if not customer_ids:
            return counts
        q = q.where(rc.c.customer_id.in_(list(customer_ids)))
    if limit:
        q = q.limit(limit)
    cases = ctx.conn.execute(q).mappings().all()
    if not cases:
        return counts
    opts = recall_options(ctx, recall["id"])
    safety = recall["severity"] == "safety"
    kind = SAFETY_KIND if safety else QUALITY_KIND
    template = None if safety else _quality_template(ctx)
    for case in cases:
        cid = case["customer_id"]
        product = _line_title(ctx.conn, recall, case["order_id"]) or recall["sku"] or f"product {recall['product_id']}"
        data = {"product_title": product, "recall_title": recall["title"],
                "ack_url": ack_url(ctx.settings, recall["id"], cid, ctx.now),
                "order_name": case["name"], "instructions": opts.get("instructions"), "remedy": opts.get("remedy"),
                "severity": recall["severity"], "recall_id": recall["id"], "sku": recall["sku"],
                "translations": message_translations(opts.get("texts") or {})}
        mid = schedule_message(ctx.conn, key=f"recall:{recall['id']}:{cid}", customer_id=cid, kind=kind,
                               message_class="transactional", due_at=ctx.now, data=data, locale=case["locale"],
                               template=template, now=ctx.now)
        ctx.conn.execute(update(rc).where(rc.c.id == case["id"]).values(message_id=mid))
        counts["notices"] += 1
        if opts.get("tickets"):
            counts["tickets"] += int(open_ticket(ctx, recall, case["id"], cid, product, case["name"]))
    return counts


def ticket_key(recall_id: int, customer_id: int) -> str:
    return f"recalls:ticket:{recall_id}:{customer_id}"


def open_ticket(ctx, recall: Mapping, case_id: int, customer_id: int, product: str, order_name: str | None) -> bool:
    """Queue a Zendesk ticket for one case, once per key; True only when newly queued."""
    from retention_plugin.platforms.zendesk.requests import ticket_create

    key = ticket_key(recall["id"], customer_id)
    if ctx.conn.execute(select(t.actions.c.id).where(t.actions.c.key == key)).first() is not None:
        return False
    if not ctx.settings.has("zendesk"):
        log.warning("recall %s: tickets requested but there is no [zendesk] section", recall["id"])
        return False
    customer = ctx.customer(customer_id) or {}
    email = customer.get("email")
    if not email:
        log.info("recall %s: customer %s has no email address; no ticket", recall["id"], customer_id)
        return False
    name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p) or None
    body = (f"Product recall #{recall['id']} ({recall['severity']}): {recall['title']}\n"
            f"Product: {product}" + (f" (SKU {recall['sku']})" if recall["sku"] else "") + "\n"
            + (f"Order: {order_name}\n" if order_name else "")
            + f"Customer: {name or '-'} <{email}>\n\n"
            "The customer was sent the recall notice. Track the return or repair on this ticket; "
            "solving it marks the customer's recall case resolved in retention-plugin.")
    request = ticket_create(email, name, f"Recall #{recall['id']}: {product}", body,
                            tags=["recall", f"recall_{recall['id']}", f"recall_case_{case_id}"],
                            external_id=f"recall:{recall['id']}:{customer_id}", public=False, idempotency_key=key)
    ctx.enqueue_action("zendesk", "ticket_create", key, request)
    return True


def open_missing_tickets(ctx, recall: Mapping) -> int:
    """Queue tickets for every notified-or-pending case that has none (after turning tickets on later)."""
    n = 0
    o = t.orders
    for case in ctx.conn.execute(
            select(rc.c.id, rc.c.customer_id, rc.c.order_id, o.c.name)
            .select_from(rc.join(o, rc.c.order_id == o.c.id, isouter=True))
            .where(rc.c.recall_id == recall["id"], rc.c.zendesk_ticket_id.is_(None), rc.c.status != "resolved",
                   rc.c.message_id.is_not(None))).mappings().all():
        product = _line_title(ctx.conn, recall, case["order_id"]) or recall["sku"] or f"product {recall['product_id']}"
        n += int(open_ticket(ctx, recall, case["id"], case["customer_id"], product, case["name"]))
    return n


# --- keeping cases in step with their notices and tickets -----------------------------------------------


def sync_notified(conn, recall_id: int | None = None) -> int:
    """Cases whose notice went out become ``notified`` (``notified_at`` = when it was sent).

    The ``recalls.sync`` task stores this every round; what :func:`recall_status` and
    :func:`recall_cases` show is computed the same way (:func:`shown_status`), so they read only.
    """
    sent = select(m.c.id).where(m.c.status == "sent")
    sent_at = select(m.c.sent_at).where(m.c.id == rc.c.message_id).scalar_subquery()
    scope = [rc.c.recall_id == recall_id] if recall_id is not None else []
    n = conn.execute(update(rc).where(rc.c.status == "affected", rc.c.message_id.in_(sent), *scope)
                     .values(status="notified", notified_at=sent_at)).rowcount or 0
    conn.execute(update(rc).where(rc.c.notified_at.is_(None), rc.c.message_id.in_(sent), *scope)
                 .values(notified_at=sent_at))
    return n


def link_tickets(conn, recall_id: int | None = None, batch: int = 500) -> int:
    """Store the Zendesk ticket id of each case from its performed ``ticket_create`` action."""
    a = t.actions
    q = select(rc.c.id, rc.c.recall_id, rc.c.customer_id).where(rc.c.zendesk_ticket_id.is_(None))
    if recall_id is not None:
        q = q.where(rc.c.recall_id == recall_id)
    cases = conn.execute(q).all()
    n = 0
    for i in range(0, len(cases), batch):
        chunk = {ticket_key(c.recall_id, c.customer_id): c.id for c in cases[i:i + batch]}
        for key, result in conn.execute(select(a.c.key, a.c.result).where(a.c.key.in_(list(chunk)),
                                                                            a.c.status == "done")):
            tid = ((result or {}).get("ticket") or {}).get("id") if isinstance(result, dict) else None
            if isinstance(tid, int) and tid > 0:
                conn.execute(update(rc).where(rc.c.id == chunk[key], rc.c.zendesk_ticket_id.is_(None))
                             .values(zendesk_ticket_id=tid))
                n += 1
    return n


def sync_recall(ctx, recall: Mapping, *, limit: int | None = None) -> dict[str, int]:
    """Bring one recall up to date: late buyers join, pending notices are queued, states follow the notices."""
    affected, _ = find_affected(ctx.conn, recall, missing_only=True)
    if limit:
        affected = dict(list(affected.items())[:limit])
    joined = add_cases(ctx, recall, affected) if recall["status"] == "open" else []
    counts = notify_pending(ctx, recall, limit=limit)
    sync_notified(ctx.conn, recall["id"])
    return {"joined": len(joined), **counts}


def sync_all(ctx) -> None:
    """The periodic task: every open recall, a batch at a time."""
    batch = settings_of(ctx.settings)["batch_size"]
    open_recalls = select(rl).where(rl.c.status == "open", only(rl)).order_by(rl.c.id)
    for recall in ctx.conn.execute(open_recalls).mappings().all():
        with scope(recall["shop"]):  # the cases and notices it adds are its shop's
            sync_recall(ctx, recall, limit=batch)
    sync_notified(ctx.conn)
    link_tickets(ctx.conn)


# --- creating a recall ----------------------------------------------------------------------------------------


def recall_row(conn, recall_id: int) -> dict | None:
    """The recall, or None."""
    r = conn.execute(select(rl).where(rl.c.id == recall_id)).mappings().first()
    return dict(r) if r else None


def require_links(settings) -> None:
    s = links.settings_of(settings)
    missing = [k for k in ("secret", "base_url") if not s.get(k)]
    if missing:
        raise RecallError(f"[links] {missing[0]} is not set: recall notices carry a signed acknowledgment link, "
                          f"which needs [links] secret and [links] base_url")


def create_recall(app, *, sku: str | None = None, product_id: int | None = None, ordered_from=None, ordered_to=None,
                  severity: str = "safety", title: str | None = None, instructions: str | None = None,
                  remedy: str | None = None, tickets: bool | None = None, preview: bool = False,
                  texts: Mapping | None = None) -> dict:
    """Create (or complete) a recall: cases for every buyer, a notice each, tickets if asked.

    Running it again with the same item and window finds the same recall and
    only adds what is missing (new buyers, notices not queued yet): nobody is
    notified twice. With ``preview`` nothing is written.

    :param texts: the notice's text per language, ``{"lt": {"title", "instructions", "remedy"}}``;
        ``title``/``instructions``/``remedy`` are the default (English) text, used by every
        language without its own. An ``en`` entry fills whichever of those is not given.
        The result's ``languages`` says which languages fall back to the default text.
    """

    texts = check_texts(texts)
    english = texts.pop("en", {})
    title = title or english.get("title")
    instructions = instructions or english.get("instructions")
    remedy = remedy or english.get("remedy")

    if not sku and product_id is None:
        raise RecallError("give --sku or --product-id (or both: a line matching either is recalled)")
    if severity not in SEVERITIES:
        raise RecallError(f"--severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    try:
        start, end = parse_bound(ordered_from, end=False), parse_bound(ordered_to, end=True)
    except ValueError as e:
        raise RecallError(f"--ordered-from/--ordered-to: {e}") from None
    if start and end and start > end:
        raise RecallError("--ordered-from is after --ordered-to")
    key = recall_key(sku, product_id, start, end)
    shop = scoped() or app.default_shop
    if shop != app.default_shop:
        # Another shop's recall of the same item and window is another recall (the configured
        # shop's keys stay as they were, so re-running an existing recall still finds it).
        key = f"{shop}:{key}"
        if len(key) > 255:
            key = "recall:sha256:" + hashlib.sha256(key.encode()).hexdigest()
    with scope(shop):
        return _create_recall(app, shop, key, sku=sku, product_id=product_id, start=start, end=end,
                              severity=severity, title=title, instructions=instructions, remedy=remedy,
                              tickets=tickets, preview=preview, texts=texts)


def _create_recall(app, shop: str, key: str, *, sku, product_id, start, end, severity, title, instructions,
                   remedy, tickets, preview, texts) -> dict:
    from retention_plugin.context import HookContext

    cfg = settings_of(app.settings)
    now = app.now()
    with app.engine.begin() as conn:
        existing = conn.execute(select(rl).where(rl.c.key == key)).mappings().first()
        probe = dict(existing) if existing else {"id": -1, "shop": shop, "sku": sku, "product_id": product_id,
                                                  "ordered_from": start, "ordered_to": end, "severity": severity,
                                                  "title": title, "status": "open"}
        if preview:
            found, unreachable = find_affected(conn, probe)
            by_source: dict[str, int] = {}
            for info in found.values():
                by_source[info["source"]] = by_source.get(info["source"], 0) + 1
            return {"preview": True, "existing_recall_id": existing["id"] if existing else None, "key": key,
                    "customers": len(found), "by_source": by_source, "unreachable_orders": unreachable}
        notes = []
        if existing is None:
            if not title:
                raise RecallError("--title is required for a new recall: it is the sentence the notice "
                                  "tells customers (e.g. \"the lid can come loose and cause burns\")")
            require_links(app.settings)
            rid = insert_ignore(conn, rl, {"key": key, "sku": sku, "product_id": product_id, "ordered_from": start,
                                           "ordered_to": end, "severity": severity, "title": title, "status": "open",
                                           "created_at": now}, ["key"])
            created = rid is not None
            if rid is None:  # created concurrently by another run
                rid = conn.execute(select(rl.c.id).where(rl.c.key == key)).scalar_one()
            else:
                ctx = HookContext(app, conn, now=now, source="cli")
                ctx.state_set(PLUGIN, f"recall:{rid}", {
                    "instructions": instructions, "remedy": remedy, "texts": texts,
                    "tickets": cfg["zendesk_tickets"] if tickets is None else bool(tickets)})
        else:
            created, rid = False, existing["id"]
            require_links(app.settings)
            if existing["severity"] != severity:
                notes.append(f"recall {rid} exists with severity {existing['severity']!r}; kept")
            if title and title != existing["title"]:
                notes.append(f"recall {rid} exists with another title; kept {existing['title']!r}")
            ctx = HookContext(app, conn, now=now, source="cli")
            opts = recall_options(conn, rid)
            changed = False
            if tickets is not None and bool(tickets) != bool(opts.get("tickets")):
                opts["tickets"] = bool(tickets)
                changed = True
            merged = {loc: dict(fields_) for loc, fields_ in (opts.get("texts") or {}).items()}
            for loc, fields_ in texts.items():
                merged.setdefault(loc, {}).update(fields_)
            if merged != (opts.get("texts") or {}):
                opts["texts"] = merged
                changed = True
                notes.append(f"recall {rid}: texts for {', '.join(sorted(texts))} stored; notices already "
                             "queued keep the text they were queued with")
            if changed:
                ctx.state_set(PLUGIN, f"recall:{rid}", opts)
            if existing["status"] != "open":
                notes.append(f"recall {rid} is closed: new buyers are not added (notices still go to its cases)")
        recall = recall_row(conn, rid)

    # Cases and notices in batches, each committed on its own: a huge recall neither holds one
    # long transaction nor loses work if interrupted; running create again completes it.
    totals = {"joined": 0, "notices": 0, "tickets": 0}
    batch = cfg["batch_size"]
    with app.engine.connect() as conn:
        affected, unreachable = find_affected(conn, recall, missing_only=True)
    items = list(affected.items()) if recall["status"] == "open" else []
    for i in range(0, len(items), batch):
        with app.engine.begin() as conn:
            ctx = HookContext(app, conn, now=app.now(), source="cli")
            totals["joined"] += len(add_cases(ctx, recall, dict(items[i:i + batch])))
    while True:
        with app.engine.begin() as conn:
            ctx = HookContext(app, conn, now=app.now(), source="cli")
            got = notify_pending(ctx, recall, limit=batch)
        totals["notices"] += got["notices"]
        totals["tickets"] += got["tickets"]
        if got["notices"] < batch:
            break
    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=app.now(), source="cli")
        if recall_options(conn, rid).get("tickets"):
            totals["tickets"] += open_missing_tickets(ctx, recall)
        status = recall_status(conn, rid)
        opts = recall_options(conn, rid)
    default = {"title": status["title"], "instructions": opts.get("instructions"), "remedy": opts.get("remedy")}
    return {**status, "created": created, "new_cases": totals["joined"], "notices_scheduled": totals["notices"],
            "tickets_queued": totals["tickets"], "unreachable_orders": unreachable, "notes": notes,
            "languages": language_coverage(default, opts.get("texts") or {}, recall_languages(app))}


# --- state changes -------------------------------------------------------------------------------------------


def _case_for(conn, recall_id: int, customer_id: int) -> dict | None:
    from retention_plugin.messaging.outbox import load_customer

    customer = load_customer(conn, customer_id)  # follows merges to the surviving record
    if customer is None:
        return None
    r = conn.execute(select(rc).where(rc.c.recall_id == recall_id,
                                      rc.c.customer_id == customer["id"])).mappings().first()
    return dict(r) if r else None


def _sent_at(conn, message_id):
    if message_id is None:
        return None
    return conn.execute(select(m.c.sent_at).where(m.c.id == message_id, m.c.status == "sent")).scalar()


def acknowledge(conn, recall_id: int, customer_id: int, now: datetime) -> str:
    """Record that the customer acknowledged the notice.

    Returns ``acknowledged``, ``already`` (acknowledged before), ``resolved``
    (the case is closed; the acknowledgment time is still kept) or ``unknown``.
    """
    case = _case_for(conn, recall_id, customer_id)
    if case is None:
        return "unknown"
    notified_at = case["notified_at"] or _sent_at(conn, case["message_id"]) or now
    if case["status"] == "resolved":
        if case["acknowledged_at"] is None:
            conn.execute(update(rc).where(rc.c.id == case["id"]).values(acknowledged_at=now, notified_at=notified_at))
        return "resolved"
    if case["status"] == "acknowledged":
        return "already"
    conn.execute(update(rc).where(rc.c.id == case["id"], rc.c.status.in_(("affected", "notified")))
                 .values(status="acknowledged", acknowledged_at=now, notified_at=notified_at))
    return "acknowledged"


def resolve_case(conn, case: Mapping, now: datetime, reason: str) -> bool:
    """Close a case (return or repair done); a notice not sent yet is withdrawn. False if already resolved."""
    from retention_plugin.messaging.outbox import cancel_message

    if case["status"] == "resolved":
        return False
    notified_at = case["notified_at"] or _sent_at(conn, case["message_id"])
    conn.execute(update(rc).where(rc.c.id == case["id"], rc.c.status != "resolved")
                 .values(status="resolved", resolved_at=now, notified_at=notified_at))
    if case["message_id"] is not None:
        key = conn.execute(select(m.c.key).where(m.c.id == case["message_id"])).scalar()
        if key:
            cancel_message(conn, key, f"recall case resolved: {reason}")
    log.info("recall %s: case of customer %s resolved (%s)", case["recall_id"], case["customer_id"], reason)
    return True


def resolve(conn, recall_id: int, customer_id: int, now: datetime, reason: str) -> str:
    """``resolved``, ``already`` or ``unknown``."""
    case = _case_for(conn, recall_id, customer_id)
    if case is None:
        return "unknown"
    return "resolved" if resolve_case(conn, case, now, reason) else "already"


# --- status ------------------------------------------------------------------------------------------------------


def as_iso(v):
    return v.isoformat() if isinstance(v, (date, datetime)) else v


def recall_json(r: Mapping) -> dict:
    return {"id": r["id"], "key": r["key"], "sku": r["sku"], "product_id": r["product_id"],
            "ordered_from": as_iso(r["ordered_from"]), "ordered_to": as_iso(r["ordered_to"]), "severity": r["severity"],
            "title": r["title"], "status": r["status"], "created_at": as_iso(r["created_at"])}


# What :func:`sync_notified` would store, computed from the case and its notice (``m`` joined on the
# case's ``message_id``): the pages and commands that show cases read only, and a notice sent since
# the last ``recalls.sync`` round already shows as ``notified``.
_SENT = m.c.status == "sent"
shown_status = sql_case((and_(rc.c.status == "affected", _SENT), literal("notified")), else_=rc.c.status)
shown_notified_at = sql_case((and_(_SENT, or_(rc.c.status == "affected", rc.c.notified_at.is_(None))), m.c.sent_at),
                         else_=rc.c.notified_at)


def recall_cases(conn, recall_id: int, state: str | None = None) -> list[dict]:
    """Each affected customer of a recall and where their case stands (with the notice's status), in order."""
    c = t.customers
    shown = {"status": shown_status.label("status"), "notified_at": shown_notified_at.label("notified_at")}
    q = (select(*(shown.get(col.name, col) for col in rc.c), c.c.email, m.c.status.label("notice"),
                m.c.reason.label("notice_reason"))
         .select_from(rc.join(c, rc.c.customer_id == c.c.id).join(m, rc.c.message_id == m.c.id, isouter=True))
         .where(rc.c.recall_id == recall_id).order_by(rc.c.id))
    if state:
        q = q.where(shown_status == state)
    return [{k: as_iso(v) for k, v in r.items()} for r in conn.execute(q).mappings()]


def recall_status(conn, recall_id: int) -> dict:
    """Counts per state (they add up to ``total``), cumulative milestones, notice outcomes, tickets.

    A read: a case whose notice went out counts as notified whether or not ``recalls.sync`` stored it yet.
    """
    recall = recall_row(conn, recall_id)
    if recall is None:
        raise RecallError(f"no recall with id {recall_id}")
    with_notice = rc.join(m, rc.c.message_id == m.c.id, isouter=True)
    states = dict.fromkeys(STATES, 0)
    for status, n in conn.execute(select(shown_status, func.count()).select_from(with_notice)
                                  .where(rc.c.recall_id == recall_id).group_by(shown_status)):
        states[status] = states.get(status, 0) + int(n)
    cum = conn.execute(select(func.count(shown_notified_at), func.count(rc.c.acknowledged_at),
                              func.count(rc.c.resolved_at), func.count(rc.c.zendesk_ticket_id))
                       .select_from(with_notice).where(rc.c.recall_id == recall_id)).one()
    notices: dict[str, int] = {}
    for status, n in conn.execute(select(m.c.status, func.count()).select_from(
            rc.join(m, rc.c.message_id == m.c.id, isouter=True)).where(rc.c.recall_id == recall_id)
            .group_by(m.c.status)):
        notices[status or "none"] = int(n)
    return {**recall_json(recall), "total": sum(states.values()), **{s: int(states[s]) for s in STATES},
            "cumulative": {"notified": int(cum[0]), "acknowledged": int(cum[1]), "resolved": int(cum[2])},
            "notices": notices, "tickets": int(cum[3])}


# --- reactions -------------------------------------------------------------------------------------------------------


_OPEN = select(rl).where(rl.c.status == "open")  # built once: asked for every paid order


def open_recalls(conn) -> tuple:
    """The open recalls (row mappings), read once per transaction of ``conn`` until ``recalls`` is written.

    Every paid and fulfilled order asks, and there is rarely any: the worker's group of deliveries
    reads the list once. A recall created or closed in another transaction during the group shows
    from the next one on (PostgreSQL; on SQLite none commits meanwhile); an order it misses is
    joined by the ``recalls.sync`` task (:func:`sync_recall` looks for every buyer not in it yet).
    """
    return writes.cached(conn, ("recalls.open",), ("recalls",), lambda: tuple(conn.execute(_OPEN).mappings().all()))


def join_order(ctx, order_id: int) -> int:
    """An order arriving after a recall was created joins every open recall it falls in; returns how many."""
    joined = 0
    for recall in open_recalls(ctx.conn):
        affected, _ = find_affected(ctx.conn, recall, order_id=order_id, missing_only=True)
        new = add_cases(ctx, recall, affected)
        if new:
            notify_pending(ctx, recall, customer_ids=new)
            joined += 1
    return joined


def stored_order_id(ctx, shopify_id) -> int | None:
    if shopify_id is None:
        return None
    row = ctx.order_row(shopify_id)
    return row["id"] if row else None


_CASE_TAG = re.compile(r"^recall_case_(\d+)$")
_RECALL_TAG = re.compile(r"^recall_(\d+)$")


def case_for_ticket(conn, ticket) -> dict | None:
    """The case a Zendesk ticket tracks: by its ``recall_case_<id>`` tag, its stored ticket id,
    or a ``recall_<id>`` tag plus the ticket's requester."""
    from retention_plugin.records.support import ticket_row

    tags = [str(x).strip().lower() for x in (ticket.tags or [])]
    for tag in tags:
        match = _CASE_TAG.match(tag)
        if match:
            r = conn.execute(select(rc).where(rc.c.id == int(match.group(1)))).mappings().first()
            if r:
                return dict(r)
    r = conn.execute(select(rc).where(rc.c.zendesk_ticket_id == ticket.zendesk_id)).mappings().first()
    if r:
        return dict(r)
    stored = ticket_row(conn, ticket.zendesk_id)
    if stored is None or stored["customer_id"] is None:
        return None
    for tag in tags:
        match = _RECALL_TAG.match(tag)
        if match:
            case = _case_for(conn, int(match.group(1)), stored["customer_id"])
            if case:
                return case
    return None


def link_ticket(ctx, ticket) -> dict | None:
    case = case_for_ticket(ctx.conn, ticket)
    if case is not None and case["zendesk_ticket_id"] is None:
        ctx.conn.execute(update(rc).where(rc.c.id == case["id"]).values(zendesk_ticket_id=ticket.zendesk_id))
        case["zendesk_ticket_id"] = ticket.zendesk_id
    return case



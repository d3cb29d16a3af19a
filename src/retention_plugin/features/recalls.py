"""Product recalls: reach every buyer, quickly, and track each case to the end.

``retention recall create --sku S ...`` finds every customer who ordered the
item in the date window, from stored webhook orders and imported history
alike, and opens one *case* per customer (``recall_cases``). Each case gets a
transactional notice (kind ``recall`` for safety recalls, ``recall_quality``
for quality recalls), optionally a Zendesk ticket to track the return or
repair, and moves through exactly one state at a time:

``affected``      the customer bought it; the notice is not sent (yet)
``notified``      the notice was sent
``acknowledged``  the customer clicked the signed link in the notice
``resolved``      the Zendesk ticket was solved, or ``retention recall resolve``

so the four counts of ``retention recall status`` always add up to the number
of cases. Orders in the window that arrive later (webhooks, imports) join the
open recall. Keys make everything idempotent: the recall's key comes from
(sku, product id, window), a case is unique per (recall, customer), the notice
is message ``recall:<recall id>:<customer id>`` and the ticket action
``recalls:ticket:<recall id>:<customer id>``, so running create again notifies
nobody twice. See docs/reminders-and-recalls.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from http import HTTPStatus
from typing import Mapping
from urllib.parse import parse_qs

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import and_, func, not_, or_, select, update

from retention_plugin import hookimpl
from retention_plugin.config import section_or_defaults
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import insert_ignore

PLUGIN = "recalls"
SEVERITIES = ("safety", "quality")
STATES = ("affected", "notified", "acknowledged", "resolved")
SAFETY_KIND = "recall"
QUALITY_KIND = "recall_quality"
log = logging.getLogger("retention_plugin.features.recalls")

rc, rl, m = t.recall_cases, t.recalls, t.messages


class RecallError(Exception):
    """A problem the person running a recall command can fix; worded for them."""


# --- configuration -----------------------------------------------------------------------


class RecallsSchema(Schema):
    class Meta:
        unknown = RAISE

    #: Where the receiver is reachable from the internet: the ack link is {public_url}/r/ack?t=...
    public_url = fields.String(load_default=None, validate=validate.Regexp(
        r"^https?://[^\s/?#]+(/[^\s?#]*)?$", error="expected a base URL like https://retention.example.com"))
    #: HMAC key for acknowledgment links (named *secret* so `config check` masks it).
    signing_secret = fields.String(load_default=None, validate=validate.Length(
        min=16, error="use at least 16 characters (e.g. `openssl rand -hex 32`)"))
    #: Open a Zendesk ticket per affected customer (default for `recall create`; --tickets/--no-tickets).
    zendesk_tickets = fields.Boolean(load_default=False)
    #: The link opens a page with a Confirm button; only the button (a POST) records the acknowledgment.
    confirm_ack = fields.Boolean(load_default=True)
    #: Cases written per transaction by `recall create` and the sync task.
    batch_size = fields.Integer(load_default=500, validate=validate.Range(min=1))


@hookimpl
def register_config_sections(register):
    register(PLUGIN, RecallsSchema())


@hookimpl
def register_message_kinds(register):
    # ``recall`` is built in (and listed in [contact_policy].safety_kinds); a quality recall is
    # transactional too but keeps quiet hours, so it needs a kind of its own.
    register(QUALITY_KIND, "transactional")


@hookimpl
def register_tasks(register):
    register("recalls.sync", sync_all, 60)


def _cfg(settings) -> dict:
    return section_or_defaults(settings, PLUGIN, RecallsSchema)


def _require_links(cfg: Mapping) -> None:
    missing = [k for k in ("public_url", "signing_secret") if not cfg.get(k)]
    if missing:
        raise RecallError(f"[recalls].{missing[0]} is not set: recall notices carry a signed acknowledgment "
                          f"link, which needs [recalls].public_url and [recalls].signing_secret")


# --- the acknowledgment link ------------------------------------------------------------------


def _sig(secret: str, recall_id: int, customer_id: int) -> str:
    mac = hmac.new(secret.encode(), f"retention-recall-ack:{recall_id}:{customer_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode().rstrip("=")


def sign_ack(secret: str, recall_id: int, customer_id: int) -> str:
    """The token in a recall notice's acknowledgment link: ``<recall id>.<customer id>.<HMAC>``."""
    if not secret:
        raise ValueError("no signing secret")
    return f"{int(recall_id)}.{int(customer_id)}.{_sig(secret, int(recall_id), int(customer_id))}"


_TOKEN = re.compile(r"^(\d{1,18})\.(\d{1,18})\.([A-Za-z0-9_-]{24})$")


def verify_ack(secret: str, token: str | None) -> tuple[int, int] | None:
    """``(recall_id, customer_id)`` when the token is genuine, else None (constant-time check)."""
    if not secret or not isinstance(token, str):
        return None
    match = _TOKEN.match(token.strip())
    if not match:
        return None
    rid, cid = int(match.group(1)), int(match.group(2))
    if not hmac.compare_digest(_sig(secret, rid, cid), match.group(3)):
        return None
    return rid, cid


def ack_url(cfg: Mapping, recall_id: int, customer_id: int) -> str:
    return f"{cfg['public_url'].rstrip('/')}/r/ack?t={sign_ack(cfg['signing_secret'], recall_id, customer_id)}"


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


def _options(ctx_or_conn, recall_id: int) -> dict:
    conn = getattr(ctx_or_conn, "conn", ctx_or_conn)
    v = conn.execute(select(t.plugin_state.c.value).where(
        t.plugin_state.c.plugin == PLUGIN, t.plugin_state.c.key == f"recall:{recall_id}")).scalar()
    return v if isinstance(v, dict) else {}


# --- the notice's text, per language --------------------------------------------------------------

#: Text a recall gives the notice, by the name `recall create` uses, and the template variable it fills.
TEXT_FIELDS = {"title": "recall_title", "instructions": "instructions", "remedy": "remedy"}
#: The shipped languages besides English: `recall create` takes ``--title-<lang>`` and the like for these.
TEXT_LANGUAGES = ("lt", "sl", "ru", "ka")
#: Longer text is refused (a notice is read on a phone; the ticket and the page carry the title too).
MAX_TEXT_CHARS = 4000


def check_texts(texts, where: str = "texts") -> dict[str, dict[str, str]]:
    """``{"lt": {"title": ..., "instructions": ..., "remedy": ...}, ...}`` checked and cleaned:
    locales normalised (``pt_br`` -> ``pt-BR``), empty values dropped.

    :raises RecallError: naming the language or field that is wrong.
    """
    from retention_plugin.messaging.templates import normalize_locale

    if texts is None:
        return {}
    if not isinstance(texts, Mapping):
        raise RecallError(f"{where}: expected a table of languages, e.g. {{lt = {{title = \"...\"}}}}")
    out: dict[str, dict[str, str]] = {}
    for lang, fields_ in texts.items():
        loc = normalize_locale(lang) if isinstance(lang, str) else None
        if not loc:
            raise RecallError(f"{where}: {lang!r} is not a language code (e.g. lt, ru, pt-BR)")
        if not isinstance(fields_, Mapping):
            raise RecallError(f"{where}.{lang}: expected a table with title, instructions and/or remedy")
        for name, value in fields_.items():
            if name not in TEXT_FIELDS:
                raise RecallError(f"{where}.{lang}.{name}: unknown field (expected {', '.join(TEXT_FIELDS)})")
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if not isinstance(value, str):
                raise RecallError(f"{where}.{lang}.{name}: expected text")
            if len(value) > MAX_TEXT_CHARS:
                raise RecallError(f"{where}.{lang}.{name}: longer than {MAX_TEXT_CHARS} characters")
            out.setdefault(loc, {})[name] = value.strip()
    return out


def load_texts(path: str) -> dict[str, dict[str, str]]:
    """Per-language texts from a TOML or JSON file (by its extension; otherwise JSON, then TOML)."""
    import tomllib

    try:
        raw = open(path, "rb").read()
    except OSError as e:
        raise RecallError(f"--texts: cannot read {path}: {e.strerror or e}") from None
    text = raw.decode("utf-8", "replace")
    tries = [("JSON", json.loads), ("TOML", tomllib.loads)]
    if path.lower().endswith(".toml"):
        tries = tries[1:]
    elif path.lower().endswith(".json"):
        tries = tries[:1]
    problems = []
    for kind, parse in tries:
        try:
            return check_texts(parse(text), where=f"--texts {path}")
        except (ValueError, tomllib.TOMLDecodeError) as e:
            problems.append(f"not {kind}: {e}")
    raise RecallError(f"--texts {path}: " + "; ".join(problems))


def message_translations(texts: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Stored texts as the messages' ``translations`` (``recall_title``, ``instructions``, ``remedy``)."""
    return {loc: {TEXT_FIELDS[k]: v for k, v in fields_.items() if k in TEXT_FIELDS and v}
            for loc, fields_ in (texts or {}).items()}


def language_coverage(default: Mapping[str, str | None], texts: Mapping[str, Mapping[str, str]],
                      languages) -> dict:
    """Which languages have their own text and which get the default (``--title`` ...) text instead.

    A field falls back when the default has it and the language does not. Without default
    instructions or remedy every language's template has its own wording for them, so only
    the title can fall back then.
    """
    given = {loc: sorted(f for f in fields_ if f in TEXT_FIELDS) for loc, fields_ in sorted(texts.items())}
    fallback = {}
    for loc in sorted(set(languages) | set(texts)):
        if loc == "en" or loc.startswith("en-"):
            continue
        missing = [f for f in TEXT_FIELDS if default.get(f) and not (texts.get(loc) or {}).get(f)]
        if missing:
            fallback[loc] = missing
    return {"given": given, "fallback": fallback}


def _recall_languages(app) -> list[str]:
    """The languages recall notices are written in here (shipped and override templates)."""
    from retention_plugin.messaging.outbox import renderer_for

    try:
        available = renderer_for(app.settings).available()
    except Exception:  # a broken override directory is reported at send time
        return ["en", *TEXT_LANGUAGES]
    return sorted(set(available.get(SAFETY_KIND, [])) | set(available.get(QUALITY_KIND, [])))


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
    q = (select(o.c.id, o.c.customer_id, o.c.name, o.c.created_at, o.c.locale, o.c.source, ol.c.title, ol.c.sku)
         .select_from(ol.join(o, ol.c.order_id == o.c.id))
         .where(_line_match(recall), o.c.test.is_(False),
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

    cfg = _cfg(ctx.settings)
    counts = {"notices": 0, "tickets": 0}
    if not (cfg["public_url"] and cfg["signing_secret"]):
        log.error("recall %s: [recalls].public_url / signing_secret not set; notices wait (re-run `recall create`)",
                  recall["id"])
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
    opts = _options(ctx, recall["id"])
    safety = recall["severity"] == "safety"
    kind = SAFETY_KIND if safety else QUALITY_KIND
    template = None if safety else _quality_template(ctx)
    for case in cases:
        cid = case["customer_id"]
        product = _line_title(ctx.conn, recall, case["order_id"]) or recall["sku"] or f"product {recall['product_id']}"
        data = {"product_title": product, "recall_title": recall["title"], "ack_url": ack_url(cfg, recall["id"], cid),
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
    """Cases whose notice went out become ``notified`` (``notified_at`` = when it was sent)."""
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
    batch = _cfg(ctx.settings)["batch_size"]
    for recall in ctx.conn.execute(select(rl).where(rl.c.status == "open").order_by(rl.c.id)).mappings().all():
        sync_recall(ctx, recall, limit=batch)
    sync_notified(ctx.conn)
    link_tickets(ctx.conn)


# --- creating a recall ----------------------------------------------------------------------------------------


def _recall(conn, recall_id: int) -> dict | None:
    r = conn.execute(select(rl).where(rl.c.id == recall_id)).mappings().first()
    return dict(r) if r else None


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
    from retention_plugin.context import HookContext

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
    cfg = _cfg(app.settings)
    now = app.now()
    with app.engine.begin() as conn:
        existing = conn.execute(select(rl).where(rl.c.key == key)).mappings().first()
        probe = dict(existing) if existing else {"id": -1, "sku": sku, "product_id": product_id, "ordered_from": start,
                                                  "ordered_to": end, "severity": severity, "title": title,
                                                  "status": "open"}
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
            _require_links(cfg)
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
            _require_links(cfg)
            if existing["severity"] != severity:
                notes.append(f"recall {rid} exists with severity {existing['severity']!r}; kept")
            if title and title != existing["title"]:
                notes.append(f"recall {rid} exists with another title; kept {existing['title']!r}")
            ctx = HookContext(app, conn, now=now, source="cli")
            opts = _options(conn, rid)
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
        recall = _recall(conn, rid)

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
        if _options(conn, rid).get("tickets"):
            totals["tickets"] += open_missing_tickets(ctx, recall)
        status = recall_status(conn, rid)
        opts = _options(conn, rid)
    default = {"title": status["title"], "instructions": opts.get("instructions"), "remedy": opts.get("remedy")}
    return {**status, "created": created, "new_cases": totals["joined"], "notices_scheduled": totals["notices"],
            "tickets_queued": totals["tickets"], "unreachable_orders": unreachable, "notes": notes,
            "languages": language_coverage(default, opts.get("texts") or {}, _recall_languages(app))}


# --- state changes -------------------------------------------------------------------------------------------


def _case_for(conn, recall_id: int, customer_id: int) -> dict | None:
    from retention_plugin.messaging.outbox import load_customer

    customer = load_customer(conn, customer_id)  # follows merges to the surviving record
    if customer is None:
        return None
    r = conn.execute(select(rc).where(rc.c.recall_id == recall_id, rc.c.customer_id == customer["id"])).mappings().first()
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


def _iso(v):
    return v.isoformat() if isinstance(v, (date, datetime)) else v


def recall_json(r: Mapping) -> dict:
    return {"id": r["id"], "key": r["key"], "sku": r["sku"], "product_id": r["product_id"],
            "ordered_from": _iso(r["ordered_from"]), "ordered_to": _iso(r["ordered_to"]), "severity": r["severity"],
            "title": r["title"], "status": r["status"], "created_at": _iso(r["created_at"])}


def recall_status(conn, recall_id: int) -> dict:
    """Counts per state (they add up to ``total``), cumulative milestones, notice outcomes, tickets.

    Call :func:`sync_notified` first for current figures (the commands do).
    """
    recall = _recall(conn, recall_id)
    if recall is None:
        raise RecallError(f"no recall with id {recall_id}")
    states = dict.fromkeys(STATES, 0)
    for status, n in conn.execute(select(rc.c.status, func.count()).where(rc.c.recall_id == recall_id)
                                  .group_by(rc.c.status)):
        states[status] = states.get(status, 0) + int(n)
    cum = conn.execute(select(func.count(rc.c.notified_at), func.count(rc.c.acknowledged_at),
                              func.count(rc.c.resolved_at), func.count(rc.c.zendesk_ticket_id))
                       .where(rc.c.recall_id == recall_id)).one()
    notices: dict[str, int] = {}
    for status, n in conn.execute(select(m.c.status, func.count()).select_from(
            rc.join(m, rc.c.message_id == m.c.id, isouter=True)).where(rc.c.recall_id == recall_id)
            .group_by(m.c.status)):
        notices[status or "none"] = int(n)
    return {**recall_json(recall), "total": sum(states.values()), **{s: int(states[s]) for s in STATES},
            "cumulative": {"notified": int(cum[0]), "acknowledged": int(cum[1]), "resolved": int(cum[2])},
            "notices": notices, "tickets": int(cum[3])}


# --- reactions -------------------------------------------------------------------------------------------------------


def join_order(ctx, order_id: int) -> int:
    """An order arriving after a recall was created joins every open recall it falls in; returns how many."""
    joined = 0
    for recall in ctx.conn.execute(select(rl).where(rl.c.status == "open")).mappings().all():
        affected, _ = find_affected(ctx.conn, recall, order_id=order_id, missing_only=True)
        new = add_cases(ctx, recall, affected)
        if new:
            notify_pending(ctx, recall, customer_ids=new)
            joined += 1
    return joined


def _order_id(ctx, shopify_id) -> int | None:
    from retention_plugin.records import order_row

    if shopify_id is None:
        return None
    row = order_row(ctx.conn, shopify_id)
    return row["id"] if row else None


@hookimpl
def order_paid(event, ctx):
    oid = _order_id(ctx, event.order.shopify_id)
    if oid is not None:
        join_order(ctx, oid)


@hookimpl
def order_fulfilled(event, ctx):
    sid = event.order.shopify_id if event.order is not None else (
        event.fulfillment.order_id if event.fulfillment is not None else None)
    oid = _order_id(ctx, sid)
    if oid is not None:
        join_order(ctx, oid)


_CASE_TAG = re.compile(r"^recall_case_(\d+)$")
_RECALL_TAG = re.compile(r"^recall_(\d+)$")


def case_for_ticket(conn, ticket) -> dict | None:
    """The case a Zendesk ticket tracks: by its ``recall_case_<id>`` tag, its stored ticket id,
    or a ``recall_<id>`` tag plus the ticket's requester."""
    from retention_plugin.records import ticket_row

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


def _link(ctx, ticket) -> dict | None:
    case = case_for_ticket(ctx.conn, ticket)
    if case is not None and case["zendesk_ticket_id"] is None:
        ctx.conn.execute(update(rc).where(rc.c.id == case["id"]).values(zendesk_ticket_id=ticket.zendesk_id))
        case["zendesk_ticket_id"] = ticket.zendesk_id
    return case


@hookimpl
def ticket_created(event, ctx):
    _link(ctx, event.ticket)


@hookimpl
def ticket_updated(event, ctx):
    _link(ctx, event.ticket)


@hookimpl
def ticket_solved(event, ctx):
    case = _link(ctx, event.ticket)
    if case is not None:
        resolve_case(ctx.conn, case, ctx.now, f"Zendesk ticket {event.ticket.zendesk_id} solved")


@hookimpl
def customer_facts(customer_id, ctx):
    rows = ctx.conn.execute(select(rc.c.recall_id, rc.c.status, rc.c.zendesk_ticket_id)
                            .where(rc.c.customer_id == customer_id).order_by(rc.c.recall_id)).mappings().all()
    if not rows:
        return None
    return {PLUGIN: [{"recall_id": r["recall_id"], "status": r["status"], "zendesk_ticket_id": r["zendesk_ticket_id"]}
                     for r in rows]}


# --- the acknowledgment endpoint (mounted by web.py at /r/ack) -------------------------------------------------------


@dataclass
class AckResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=lambda: [
        ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
        ("X-Robots-Tag", "noindex"), ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")])
    outcome: str = ""

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"


def token_from_request(query_string: str | None, body: bytes | None = None) -> str | None:
    """The ``t`` parameter, from the form body (POST) or the query string."""
    for source in (body.decode("utf-8", "replace") if body else None, query_string):
        if source:
            values = parse_qs(source).get("t")
            if values:
                return values[0]
    return None


def _page(app, state: str, accept_language: str | None, customer_id: int | None = None, **values) -> bytes:
    """The acknowledgment page in the customer's language (``pages/<locale>/recall_ack.j2``)."""
    from retention_plugin.messaging.pages import customer_locale, render_page

    locale = None
    if customer_id is not None:
        with app.engine.connect() as conn:
            locale = customer_locale(conn, customer_id)
    return render_page(app.settings, "recall_ack", customer_locale=locale, accept_language=accept_language,
                       state=state, **values).encode()


def handle_ack(app, method: str, token: str | None, accept_language: str | None = None) -> AckResponse:
    """The acknowledgment link, independent of the web framework.

    GET shows the recall and a confirm button; POST (the button) records the
    acknowledgment. A link scanner that fetches every URL in an email therefore
    acknowledges nothing. With ``[recalls].confirm_ack = false`` a GET records it too.
    The page is in the customer's language (else the browser's, ``accept_language``).
    """
    method = (method or "").upper()
    if method not in ("GET", "HEAD", "POST"):
        return AckResponse(405, _page(app, "method", accept_language), outcome="method")
    cfg = _cfg(app.settings)
    got = verify_ack(cfg.get("signing_secret"), token)
    if got is None:
        return AckResponse(400, _page(app, "invalid", accept_language), outcome="invalid")
    rid, cid = got
    if method in ("GET", "HEAD") and cfg["confirm_ack"]:
        with app.engine.connect() as conn:
            recall = _recall(conn, rid)
            texts = _options(conn, rid).get("texts") or {} if recall is not None else {}
        if recall is None:
            return AckResponse(404, _page(app, "unknown_recall", accept_language, cid), outcome="unknown")
        return AckResponse(200, _page(app, "confirm", accept_language, cid, token=token, recall_title=recall["title"],
                                      translations=message_translations(texts)), outcome="confirm")
    with app.engine.begin() as conn:
        outcome = acknowledge(conn, rid, cid, app.now())
    if outcome == "unknown":
        return AckResponse(404, _page(app, "unknown_case", accept_language, cid), outcome=outcome)
    return AckResponse(200, _page(app, "done", accept_language, cid), outcome=outcome)


# --- commands -------------------------------------------------------------------------------------------------------------


def _print_status(click, s: Mapping) -> None:
    window = f"{(s['ordered_from'] or '…')[:10]} – {(s['ordered_to'] or '…')[:10]}"
    what = " / ".join(x for x in (f"SKU {s['sku']}" if s["sku"] else "",
                                  f"product {s['product_id']}" if s["product_id"] is not None else "") if x)
    click.echo(f"recall {s['id']} ({s['severity']}, {s['status']}): {s['title']}")
    click.echo(f"  {what}, ordered {window}")
    click.echo(f"  {s['total']} customer(s): affected {s['affected']}, notified {s['notified']}, "
               f"acknowledged {s['acknowledged']}, resolved {s['resolved']}")
    click.echo(f"  notices: {', '.join(f'{k} {v}' for k, v in sorted(s['notices'].items())) or 'none'}; "
               f"tickets: {s['tickets']}")


def _text_options(f):
    """``--title-lt``, ``--instructions-lt``, ``--remedy-lt`` ... for every shipped language but English."""
    import click

    for lang in reversed(TEXT_LANGUAGES):
        for name in reversed(TEXT_FIELDS):
            f = click.option(f"--{name}-{lang}", f"{name}_{lang}", metavar="TEXT",
                             help=f"The {name} in {lang}." if name != "title" else
                             f"--title, --instructions, --remedy in {lang} (and -sl, -ru, -ka ...).")(f)
    return f


@hookimpl
def register_commands(cli):
    import click

    from retention_plugin.clihelp import echo_json, pass_app, resolve_customer_arg

    def fail(e: Exception):
        raise click.ClickException(str(e)) from None

    @cli.group("recall")
    def recall_group():
        """Product recalls: notify every buyer and track each case."""

    @recall_group.command("create")
    @click.option("--sku", help="The recalled SKU.")
    @click.option("--product-id", type=int, help="The recalled Shopify product id (any variant).")
    @click.option("--ordered-from", metavar="DATE", help="First order date affected (YYYY-MM-DD, UTC).")
    @click.option("--ordered-to", metavar="DATE", help="Last order date affected, inclusive.")
    @click.option("--severity", type=click.Choice(SEVERITIES), default="safety", show_default=True)
    @click.option("--title", help="What is wrong, as the notice says it to customers (required for a new recall).")
    @click.option("--instructions", help="What the customer should do now (default: the template's wording).")
    @click.option("--remedy", help="What the store will do (refund, repair, replacement).")
    @click.option("--texts", "texts_file", metavar="FILE", help="The notice's text per language, TOML or JSON: "
                  "{lt = {title = \"...\", instructions = \"...\", remedy = \"...\"}, ru = {...}}.")
    @_text_options
    @click.option("--tickets/--no-tickets", default=None, help="Open a Zendesk ticket per customer "
                  "(default: [recalls].zendesk_tickets).")
    @click.option("--preview", is_flag=True, help="Only count who would be affected; change nothing.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_app
    def recall_create(app, sku, product_id, ordered_from, ordered_to, severity, title, instructions, remedy,
                      texts_file, tickets, preview, as_json, **per_language):
        """Find every buyer, open a case each, send each a transactional notice.

        Safe to run again: it finds the same recall and only adds what is missing.
        --title, --instructions and --remedy are the default (English) text; --title-lt and the
        like, or --texts FILE, give other languages theirs. The output says which languages fall
        back to the default text.
        """
        from retention_plugin.clihelp import require_schema

        require_schema(app)
        try:
            texts = load_texts(texts_file) if texts_file else {}
            for option, value in per_language.items():
                name, _, lang = option.rpartition("_")
                if value:
                    texts.setdefault(lang, {})[name] = value
            out = create_recall(app.app, sku=sku, product_id=product_id, ordered_from=ordered_from,
                                ordered_to=ordered_to, severity=severity, title=title, instructions=instructions,
                                remedy=remedy, tickets=tickets, preview=preview, texts=texts)
        except RecallError as e:
            fail(e)
        if as_json:
            echo_json(out)
            return
        if preview:
            src = ", ".join(f"{k} {v}" for k, v in sorted(out["by_source"].items()))
            click.echo(f"{out['customers']} customer(s) would be affected ({src or 'none'}); "
                       f"{out['unreachable_orders']} matching order(s) have no customer to contact")
            return
        for note in out["notes"]:
            click.echo(f"note: {note}", err=True)
        langs = out["languages"]
        given = "; ".join(f"{loc} ({', '.join(f)})" for loc, f in langs["given"].items()) or "none"
        click.echo(f"texts in other languages: {given}")
        if langs["fallback"]:
            click.echo("falls back to the default (--title/--instructions/--remedy, English) text: "
                       + "; ".join(f"{loc} ({', '.join(f)})" for loc, f in langs["fallback"].items()))
        click.echo(f"recall {out['id']} {'created' if out['created'] else 'already existed'}: "
                   f"{out['new_cases']} new case(s), {out['notices_scheduled']} notice(s) and "
                   f"{out['tickets_queued']} ticket(s) queued; {out['unreachable_orders']} matching order(s) "
                   "without a customer")
        _print_status(click, out)

    @recall_group.command("status")
    @click.argument("recall_id", metavar="ID", type=int)
    @click.option("--json", "as_json", is_flag=True)
    @pass_app
    def recall_status_cmd(app, recall_id, as_json):
        """Cases per state (they add up to the total), notice outcomes, tickets."""
        with app.engine.begin() as conn:
            sync_notified(conn, recall_id)
            link_tickets(conn, recall_id)
            try:
                s = recall_status(conn, recall_id)
            except RecallError as e:
                raise click.BadParameter(str(e), param_hint="ID") from None
        if as_json:
            echo_json(s)
        else:
            _print_status(click, s)

    @recall_group.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @pass_app
    def recall_list(app, as_json):
        """Every recall with its counts, newest first."""
        with app.engine.begin() as conn:
            sync_notified(conn)
            ids = conn.execute(select(rl.c.id).order_by(rl.c.id.desc())).scalars().all()
            rows = [recall_status(conn, i) for i in ids]
        if as_json:
            echo_json(rows)
            return
        if not rows:
            click.echo("no recalls")
        for s in rows:
            click.echo(f"{s['id']:>5}  {s['created_at'][:10]}  {s['severity']:<7} {s['status']:<6} "
                       f"{s['sku'] or s['product_id']}  total {s['total']}: affected {s['affected']}, "
                       f"notified {s['notified']}, acknowledged {s['acknowledged']}, resolved {s['resolved']}  "
                       f"{s['title']}")

    @recall_group.command("cases")
    @click.argument("recall_id", metavar="ID", type=int)
    @click.option("--state", type=click.Choice(STATES))
    @click.option("--json", "as_json", is_flag=True)
    @pass_app
    def recall_cases_cmd(app, recall_id, state, as_json):
        """Each affected customer and where their case stands."""
        c = t.customers
        with app.engine.begin() as conn:
            sync_notified(conn, recall_id)
            if _recall(conn, recall_id) is None:
                raise click.BadParameter(f"no recall with id {recall_id}", param_hint="ID")
            q = (select(rc, c.c.email, m.c.status.label("notice"), m.c.reason.label("notice_reason"))
                 .select_from(rc.join(c, rc.c.customer_id == c.c.id).join(m, rc.c.message_id == m.c.id, isouter=True))
                 .where(rc.c.recall_id == recall_id).order_by(rc.c.id))
            if state:
                q = q.where(rc.c.status == state)
            rows = [{k: _iso(v) for k, v in r.items()} for r in conn.execute(q).mappings()]
        if as_json:
            echo_json(rows)
            return
        for r in rows:
            click.echo(f"{r['customer_id']:>7}  {r['status']:<12} {r['email'] or '(no email)':<32} "
                       f"notice {r['notice'] or '-'}  ticket {r['zendesk_ticket_id'] or '-'}")

    @recall_group.command("resolve")
    @click.argument("recall_id", metavar="ID", type=int)
    @click.argument("customer")
    @click.option("--reason", default="resolved by command", show_default=True)
    @pass_app
    def recall_resolve(app, recall_id, customer, reason):
        """Mark a customer's case resolved (the return or repair is done)."""
        cust = resolve_customer_arg(app, customer)
        with app.engine.begin() as conn:
            if _recall(conn, recall_id) is None:
                raise click.BadParameter(f"no recall with id {recall_id}", param_hint="ID")
            sync_notified(conn, recall_id)
            outcome = resolve(conn, recall_id, cust["id"], app.now(), reason)
        if outcome == "unknown":
            raise click.BadParameter(f"customer {cust['id']} is not affected by recall {recall_id}",
                                     param_hint="CUSTOMER")
        click.echo(f"recall {recall_id}, customer {cust['id']}: "
                   f"{'resolved' if outcome == 'resolved' else 'was already resolved'}")

    @recall_group.command("ack")
    @click.argument("token")
    @pass_app
    def recall_ack(app, token):
        """Record an acknowledgment from a link's token (the t= value), e.g. one a customer sent back by mail."""
        got = verify_ack(_cfg(app.settings).get("signing_secret"), token)
        if got is None:
            raise click.BadParameter("not a valid acknowledgment token for this [recalls].signing_secret",
                                     param_hint="TOKEN")
        with app.engine.begin() as conn:
            outcome = acknowledge(conn, got[0], got[1], app.now())
        if outcome == "unknown":
            raise click.ClickException(f"recall {got[0]} has no case for customer {got[1]}")
        text = {"acknowledged": "acknowledged", "already": "was already acknowledged",
                "resolved": "is already resolved (acknowledgment time recorded)"}[outcome]
        click.echo(f"recall {got[0]}, customer {got[1]}: {text}")

    @recall_group.command("close")
    @click.argument("recall_id", metavar="ID", type=int)
    @pass_app
    def recall_close(app, recall_id):
        """Stop adding new buyers to a recall (its cases stay as they are)."""
        with app.engine.begin() as conn:
            n = conn.execute(update(rl).where(rl.c.id == recall_id).values(status="closed")).rowcount
        if not n:
            raise click.BadParameter(f"no recall with id {recall_id}", param_hint="ID")
        click.echo(f"recall {recall_id} closed")

"""Personal data: export it on request, erase it on request, delete a whole shop.

Erasure keeps every row that sums (ledger entries, orders' amounts, rewards)
and removes what identifies a person: email, names, phone, addresses and the
free text of tickets, ratings and messages, including inside the raw webhook
bodies the inbox keeps.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, or_, select, update

from . import events as ev
from .customers import customer_for
from .storage import tables as t

REDACTED = "[redacted]"

#: Payload keys that hold personal data wherever they appear in a body.
PII_KEYS = {
    "email", "contact_email", "phone", "first_name", "last_name", "name", "address1", "address2",
    "city", "zip", "latitude", "longitude", "company", "browser_ip", "note", "customer_locale",
    "description", "subject", "comment", "body", "html_body", "plain_body", "requester_email",
    "requester_name", "current_comment",
}


def _json_default(v):
    if isinstance(v, (datetime,)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def collect_export(ctx, customer_id: int) -> dict:
    conn = ctx.conn

    def rows(table, col="customer_id", value=customer_id):
        return [dict(r) for r in conn.execute(select(table).where(table.c[col] == value)).mappings()]

    customer = conn.execute(select(t.customers).where(t.customers.c.id == customer_id)).mappings().first()
    orders = rows(t.orders)
    order_ids = [o["id"] for o in orders]
    lines = [dict(r) for r in conn.execute(select(t.order_lines).where(t.order_lines.c.order_id.in_(order_ids))).mappings()]
    refunds = [dict(r) for r in conn.execute(select(t.refunds).where(t.refunds.c.order_id.in_(order_ids))).mappings()]
    export = {
        "customer": dict(customer) if customer else None,
        "orders": orders, "order_lines": lines, "refunds": refunds,
        "tickets": rows(t.tickets), "ratings": rows(t.ratings), "messages": rows(t.messages),
        "loyalty_ledger": rows(t.ledger), "rewards": rows(t.rewards), "reminders": rows(t.reminders),
        "recall_cases": rows(t.recall_cases),
    }
    for name_result in ctx.pm.hook.customer_facts(customer_id=customer_id, ctx=ctx):
        if name_result:
            export.setdefault("plugins", {}).update(name_result)
    return json.loads(json.dumps(export, default=_json_default))


def export_for_request(ctx, event: ev.CustomerDataRequest) -> None:
    c = customer_for(ctx.conn, shopify_id=event.customer.shopify_id, email=event.customer.email)
    export = collect_export(ctx, c["id"]) if c else {"customer": None, "note": "no data stored for this customer"}
    for extra in ctx.pm.hook.customer_data_request(event=event, ctx=ctx):
        if extra:
            export.setdefault("plugins", {}).update(json.loads(json.dumps(extra, default=_json_default)))
    ctx.conn.execute(t.privacy_requests.insert().values(
        kind="data_request", customer_id=c["id"] if c else None, shopify_customer_id=event.customer.shopify_id,
        export=export, inbox_id=ctx.inbox_id, created_at=ctx.now))


# --- erasure --------------------------------------------------------------------------


def _needles(customer: dict, extra: ev.CustomerInfo | None) -> list[str]:
    values = {customer.get("email"), customer.get("phone"), customer.get("first_name"), customer.get("last_name")}
    if extra is not None:
        values |= {extra.email, extra.phone, extra.first_name, extra.last_name}
    out = sorted({v.strip() for v in values if v and len(v.strip()) >= 2}, key=len, reverse=True)
    phones = [re.sub(r"\D", "", v) for v in out if sum(ch.isdigit() for ch in v) >= 6]
    return out + [p for p in phones if p and p not in out]


def scrub(value, needles: list[str], *, pii_keys: bool):
    """Walk a JSON value: blank personal keys (when ``pii_keys``) and cut needles out of any text."""
    pattern = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE) if needles else None

    def walk(v, key=None):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, key) for x in v]
        if isinstance(v, str):
            if pii_keys and key in PII_KEYS and v:
                return REDACTED
            if pattern is not None:
                return pattern.sub(REDACTED, v)
        return v

    return walk(value)


def _scrub_inbox(conn, needles: list[str], related_order_ids: set[int], also_id: int | None) -> int:
    """Rewrite stored bodies that mention the person (or their redacted orders)."""
    if not needles and not related_order_ids:
        return 0
    pattern = re.compile("|".join(re.escape(n) for n in needles).encode(), re.IGNORECASE) if needles else None
    order_markers = [str(i).encode() for i in related_order_ids]
    changed = 0
    for row in conn.execute(select(t.inbox.c.id, t.inbox.c.body)).all():
        body = bytes(row.body)
        hit = row.id == also_id or (pattern is not None and pattern.search(body)) or any(
            m in body for m in order_markers)
        if not hit:
            continue
        try:
            payload = json.loads(body)
            new = json.dumps(scrub(payload, needles, pii_keys=True)).encode()
        except (ValueError, RecursionError):  # unreadable as JSON: blank the matches in the raw text
            new = pattern.sub(REDACTED.encode(), body) if pattern else body
        conn.execute(update(t.inbox).where(t.inbox.c.id == row.id).values(body=new))
        changed += 1
    return changed


def erase_customer(ctx, customer: dict, extra: ev.CustomerInfo | None = None,
                   orders_to_redact: list[int] = (), *, call_hook: bool = True) -> dict:
    """Erase one person's personal data, keeping sums intact. Returns counts."""
    conn, cid = ctx.conn, customer["id"]
    needles = _needles(customer, extra)
    conn.execute(update(t.customers).where(or_(t.customers.c.id == cid, t.customers.c.merged_into == cid)).values(
        email=None, first_name=None, last_name=None, phone=None, external_id=None, province=None,
        tags=[], redacted_at=ctx.now, updated_at=ctx.now))
    order_ids = {r[0] for r in conn.execute(select(t.orders.c.shopify_id).where(
        t.orders.c.customer_id == cid, t.orders.c.shopify_id.is_not(None)))}
    order_ids |= set(orders_to_redact or ())
    conn.execute(update(t.orders).where(or_(t.orders.c.customer_id == cid,
                                            t.orders.c.shopify_id.in_(list(order_ids) or [-1]))).values(email=None))
    conn.execute(update(t.tickets).where(t.tickets.c.customer_id == cid).values(
        requester_email=None, subject=REDACTED, description=REDACTED, custom_fields={}))
    conn.execute(update(t.ratings).where(t.ratings.c.customer_id == cid).values(comment=None))
    conn.execute(update(t.messages).where(t.messages.c.customer_id == cid).values(data={}, rendered=None))
    conn.execute(update(t.ledger).where(t.ledger.c.customer_id == cid, t.ledger.c.kind == "adjust").values(reason=REDACTED))
    conn.execute(update(t.privacy_requests).where(t.privacy_requests.c.customer_id == cid).values(export=None))
    scrubbed = _scrub_inbox(conn, needles, order_ids, ctx.inbox_id)
    for table in (t.actions,):
        for row in conn.execute(select(table.c.id, table.c.request)).all():
            new = scrub(row.request, needles, pii_keys=False)
            if new != row.request:
                conn.execute(update(table).where(table.c.id == row.id).values(request=new))
    for row in conn.execute(select(t.action_attempts.c.id, t.action_attempts.c.response,
                                   t.action_attempts.c.error)).all():
        vals = {k: scrub(getattr(row, k), needles, pii_keys=False) for k in ("response", "error")
                if getattr(row, k)}
        if any(vals[k] != getattr(row, k) for k in vals):
            conn.execute(update(t.action_attempts).where(t.action_attempts.c.id == row.id).values(**vals))
    if call_hook:
        ctx.pm.hook.customer_redact(event=ev.CustomerRedact(customer=extra or ev.CustomerInfo(
            shopify_id=customer.get("shopify_id"))), ctx=ctx)
    conn.execute(t.privacy_requests.insert().values(kind="redact", customer_id=cid, shopify_customer_id=None,
                                                    inbox_id=ctx.inbox_id, created_at=ctx.now))
    return {"customer_id": cid, "inbox_rows_scrubbed": scrubbed}


def redact_for_request(ctx, event: ev.CustomerRedact) -> None:
    info = event.customer
    customer = customer_for(ctx.conn, shopify_id=info.shopify_id, email=info.email)
    if customer is None:
        # Nothing stored under this person; still scrub the request and any raw bodies naming them.
        needles = _needles({}, info)
        _scrub_inbox(ctx.conn, needles, set(event.orders_to_redact), ctx.inbox_id)
        ctx.pm.hook.customer_redact(event=event, ctx=ctx)
        return
    erase_customer(ctx, customer, info, event.orders_to_redact, call_hook=False)
    ctx.pm.hook.customer_redact(event=event, ctx=ctx)


def shop_redact(ctx, event: ev.ShopRedact) -> None:
    """Delete every row of the shop's data; keep only a record that the request was honoured."""
    conn = ctx.conn
    keep_inbox = ctx.inbox_id
    for table in reversed(t.metadata.sorted_tables):
        if table is t.inbox:
            conn.execute(delete(table).where(table.c.id != (keep_inbox or -1)))
        elif table is t.privacy_requests:
            conn.execute(delete(table))
        elif table is t.task_runs:
            continue
        else:
            conn.execute(delete(table))
    conn.execute(t.privacy_requests.insert().values(kind="shop_redact", inbox_id=keep_inbox, created_at=ctx.now))

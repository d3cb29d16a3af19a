"""Personal data: export it on request, erase one person on request.

Erasing a person touches only what is theirs, and keeps every row that sums
(ledger entries, orders' amounts, rewards):

- **their own rows, found by id** (the customer row and rows merged into it;
  their orders and the orders Shopify names; those orders' refunds; their
  tickets, ratings, exports, outbound actions; the stored webhook bodies whose
  parsed events name them): identity columns are cleared and free text is
  blanked, one step per core table (:data:`ERASE_STEPS`). Then every plugin
  erases its own rows in ``customer_redact``, where ``ctx.erasure``
  (:class:`Erasure`) says who the person is: the messaging plugin their
  messages, loyalty their ledger adjustments;
- **everyone's free text** (every column the core and the plugins declare as
  free text, :mod:`.redaction`): only whole-token matches of their email,
  phone and full name are replaced, so erasing "Wei Li" leaves "Olivia" and
  "telling" alone.

Who the person is is read once, before anything is erased. Deleting a whole
shop is ``shop_erasure``'s.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select, update

from . import events as ev
from .customers import customer_for
from .platforms.deliveries import parse_delivery
from .redaction import (
    REDACTED,
    Matcher,
    declared_columns,
    name_tokens,
    phone_digits,
    scrub,
    rows_to_search,
    scrub_shared_text,
    searched_columns,
)
from .shop_scope import current, of_row
from .storage import tables as t


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
    lines = [dict(r) for r in
             conn.execute(select(t.order_lines).where(t.order_lines.c.order_id.in_(order_ids))).mappings()]
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



# --- erasure: who the person is ------------------------------------------------------------


@dataclass
class Person:
    """Everything that says "this is theirs": ids across platforms and the rows they own."""

    customer_ids: set[int] = field(default_factory=set)
    shopify_ids: set[int] = field(default_factory=set)
    zendesk_ids: set[int] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # digits only
    names: set[tuple[str, ...]] = field(default_factory=set)  # full names, two or more tokens
    order_ids: set[int] = field(default_factory=set)
    shopify_order_ids: set[int] = field(default_factory=set)
    ticket_ids: set[int] = field(default_factory=set)
    zendesk_ticket_ids: set[int] = field(default_factory=set)
    message_keys: set[str] = field(default_factory=set)

    def matcher(self) -> Matcher:
        return Matcher(self.emails, self.phones, self.names)

    def add_identity(self, email=None, phone=None, first_name=None, last_name=None) -> None:
        if email and email.strip():
            self.emails.add(email.strip().lower())
        if phone_digits(phone):
            self.phones.add(phone_digits(phone))
        if name_tokens(first_name, last_name):
            self.names.add(name_tokens(first_name, last_name))


def find_person(conn, customer: dict | None, extra: ev.CustomerInfo | None = None,
                orders_to_redact=()) -> Person:
    """Read who the person is before anything is erased: their rows, and the rows merged into them."""
    p = Person()
    c = t.customers
    ids = {customer["id"]} if customer else set()
    while ids - p.customer_ids:
        p.customer_ids |= ids
        ids = set(conn.execute(select(c.c.id).where(c.c.merged_into.in_(p.customer_ids))).scalars()) | p.customer_ids
    for row in conn.execute(select(c).where(c.c.id.in_(p.customer_ids))).mappings():
        p.add_identity(row["email"], row["phone"], row["first_name"], row["last_name"])
        if row["shopify_id"] is not None:
            p.shopify_ids.add(row["shopify_id"])
        if row["zendesk_user_id"] is not None:
            p.zendesk_ids.add(row["zendesk_user_id"])
    if extra is not None:
        p.add_identity(extra.email, extra.phone, extra.first_name, extra.last_name)
        if extra.shopify_id is not None:
            p.shopify_ids.add(int(extra.shopify_id))
        if extra.zendesk_user_id is not None:
            p.zendesk_ids.add(int(extra.zendesk_user_id))
    o = t.orders
    for row in conn.execute(select(o.c.id, o.c.shopify_id).where(o.c.shop == current(conn), or_(
            o.c.customer_id.in_(p.customer_ids), o.c.shopify_id.in_([int(x) for x in orders_to_redact or ()]),
            o.c.email.in_(p.emails)))):
        p.order_ids.add(row.id)
        if row.shopify_id is not None:
            p.shopify_order_ids.add(row.shopify_id)
    p.shopify_order_ids |= {int(x) for x in orders_to_redact or ()}
    tk = t.tickets
    for row in conn.execute(select(tk.c.id, tk.c.zendesk_id).where(tk.c.shop == current(conn), or_(
            tk.c.customer_id.in_(p.customer_ids), tk.c.requester_email.in_(p.emails)))):
        p.ticket_ids.add(row.id)
        p.zendesk_ticket_ids.add(row.zendesk_id)
    p.message_keys = set(conn.execute(select(t.messages.c.key).where(
        t.messages.c.customer_id.in_(p.customer_ids))).scalars())
    return p


def names_person(obj, p: Person) -> bool:
    """Does a parsed event (or any part of it) name the person or one of their orders or tickets?"""
    if isinstance(obj, ev.CustomerInfo):
        return (obj.shopify_id in p.shopify_ids or obj.zendesk_user_id in p.zendesk_ids
                or (obj.email or "").strip().lower() in p.emails)
    if isinstance(obj, ev.Order) and (obj.shopify_id in p.shopify_order_ids
                                      or (obj.email or "").strip().lower() in p.emails):
        return True
    if isinstance(obj, (ev.Refund, ev.Fulfillment)):
        return obj.order_id in p.shopify_order_ids
    if isinstance(obj, ev.Ticket) and obj.zendesk_id in p.zendesk_ticket_ids:
        return True
    if isinstance(obj, ev.Comment):
        # A comment is the ticket's: the person's words on someone else's ticket are
        # shared text (their tokens go), not a reason to blank the requester's body.
        return obj.ticket_id in p.zendesk_ticket_ids
    if isinstance(obj, ev.Rating) and (obj.ticket_id in p.zendesk_ticket_ids or obj.order_id in p.shopify_order_ids):
        return True
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return any(names_person(getattr(obj, f.name), p) for f in dataclasses.fields(obj))
    if isinstance(obj, (list, tuple)):
        return any(names_person(x, p) for x in obj)
    return False


# --- erasure: one step per table -------------------------------------------------------------
#
# Each step erases the person's own rows in one table (found by id) and returns how many
# rows it changed. Their tokens in everyone's free text go afterwards, in one pass.


def _erase_customers(ctx, p: Person, m: Matcher) -> int:
    return ctx.conn.execute(update(t.customers).where(t.customers.c.id.in_(p.customer_ids)).values(
        email=None, first_name=None, last_name=None, phone=None, external_id=None, province=None,
        tags=[], redacted_at=ctx.now, updated_at=ctx.now)).rowcount


def _erase_orders(ctx, p: Person, m: Matcher) -> int:
    return ctx.conn.execute(update(t.orders).where(t.orders.c.id.in_(p.order_ids), t.orders.c.email.is_not(None))
                            .values(email=None)).rowcount


def _erase_refunds(ctx, p: Person, m: Matcher) -> int:
    # Staff write these ("Refund requested by ... (+370...)"): on their orders, all of it goes.
    return ctx.conn.execute(update(t.refunds).where(t.refunds.c.order_id.in_(p.order_ids),
                                                    t.refunds.c.note.is_not(None)).values(note=REDACTED)).rowcount


def _erase_tickets(ctx, p: Person, m: Matcher) -> int:
    return ctx.conn.execute(update(t.tickets).where(t.tickets.c.id.in_(p.ticket_ids)).values(
        requester_email=None, subject=REDACTED, description=REDACTED, custom_fields={})).rowcount


def _erase_ratings(ctx, p: Person, m: Matcher) -> int:
    r = t.ratings
    return ctx.conn.execute(update(r).where(or_(r.c.customer_id.in_(p.customer_ids), r.c.ticket_id.in_(p.ticket_ids),
                                                r.c.order_id.in_(p.order_ids)), r.c.comment.is_not(None))
                            .values(comment=None)).rowcount


def _erase_exports(ctx, p: Person, m: Matcher) -> int:
    return ctx.conn.execute(update(t.privacy_requests).where(t.privacy_requests.c.customer_id.in_(p.customer_ids),
                                                             t.privacy_requests.c.export.is_not(None))
                            .values(export=None)).rowcount


_GID = re.compile(r"gid://shopify/Customer/(\d+)")
_TICKET_PATH = re.compile(r"/tickets/(\d+)")
_REQUESTER_ID = re.compile(r'"requester_id":\s*"?(\d+)')
_EMAIL_FIELD = re.compile(r'"email":\s*"([^"]+)"')


def action_is_theirs(key: str, request, p: Person) -> bool:
    """A call to or about the person: their Shopify customer, ticket, message, or them as requester.

    Only these structured fields count: the person's email quoted in the text of a
    call about someone else's ticket makes it theirs no more than it makes it mine.
    """
    if any(key.startswith(f"message:{k}:") for k in p.message_keys):
        return True
    text = json.dumps(request, default=str)
    return (any(int(x) in p.shopify_ids for x in _GID.findall(text))
            or any(int(x) in p.zendesk_ticket_ids for x in _TICKET_PATH.findall(text))
            or any(int(x) in p.zendesk_ids for x in _REQUESTER_ID.findall(text))
            or any(x.strip().lower() in p.emails for x in _EMAIL_FIELD.findall(text)))


def _erase_actions(ctx, p: Person, m: Matcher) -> int:
    """Their calls keep kind and outcome, lose the words; one not yet made is cancelled, not sent blank."""
    a, conn = t.actions, ctx.conn
    theirs = []
    for row in conn.execute(select(a.c.id, a.c.key, a.c.request, a.c.result, a.c.status)).all():
        if not action_is_theirs(row.key, row.request, p):
            continue
        theirs.append(row.id)
        values = {"request": scrub(row.request, m, pii_keys=True), "result": scrub(row.result, m, pii_keys=True),
                  "updated_at": ctx.now}
        if row.status in ("pending", "failed"):
            values.update(status="cancelled", last_error="cancelled: the customer's personal data was erased")
        conn.execute(update(a).where(a.c.id == row.id).values(**values))
    if theirs:
        conn.execute(update(t.action_attempts).where(t.action_attempts.c.action_id.in_(theirs),
                                                     t.action_attempts.c.response.is_not(None))
                     .values(response=REDACTED))
    return len(theirs)


def _scrub_body(body: bytes, m: Matcher, *, theirs: bool) -> bytes:
    text = body.decode("utf-8", "surrogateescape")
    if not theirs and not m.may_occur(text):
        return body
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):  # unreadable as JSON: replace the tokens in the raw text
        return m.sub_raw(text).encode("utf-8", "surrogateescape")
    new = scrub(payload, m, pii_keys=theirs)
    return body if new is payload else json.dumps(new).encode()


def _delivery_is_theirs(row, p: Person, markers: list[bytes]) -> bool:
    # Only a body holding one of their ids or emails can name them; the parser decides whether it does.
    folded = bytes(row.body).lower()
    if not any(m in folded for m in markers):
        return False
    try:
        events = parse_delivery({"platform": row.platform, "topic": row.topic, "shop": row.shop,
                                 "body": bytes(row.body)})
    except Exception:  # noqa: BLE001 - a body nobody can parse is not known to be theirs; its tokens still go
        return False
    return names_person(events, p)


def _erase_inbox(ctx, p: Person, m: Matcher) -> int:
    """Bodies whose parsed events name the person lose every personal field; all others only their tokens."""
    ids = p.shopify_ids | p.zendesk_ids | p.shopify_order_ids | p.zendesk_ticket_ids
    markers = [str(i).encode() for i in ids] + [e.encode() for e in p.emails]
    i, conn, changed = t.inbox, ctx.conn, 0
    # Another shop's deliveries are its own customers' (the same email there is another customer).
    for row in conn.execute(select(i.c.id, i.c.platform, i.c.shop, i.c.topic, i.c.body).where(
            or_(rows_to_search(i, shop_of(ctx)), i.c.id == ctx.inbox_id))).all():
        body = bytes(row.body)
        theirs = row.id == ctx.inbox_id or _delivery_is_theirs(row, p, markers)
        new = _scrub_body(body, m, theirs=theirs)
        if new != body:
            conn.execute(update(i).where(i.c.id == row.id).values(body=new))
            changed += 1
    return changed


#: The person's own rows in the core's tables, table by table, in this order; then the plugins'
#: (``customer_redact``); then their tokens in everyone's free text.
ERASE_STEPS = (
    ("customers", _erase_customers),
    ("orders", _erase_orders),
    ("refunds", _erase_refunds),
    ("tickets", _erase_tickets),
    ("ratings", _erase_ratings),
    ("privacy_requests", _erase_exports),
    ("actions", _erase_actions),
    ("inbox", _erase_inbox),
)


@dataclass
class Erasure:
    """One person's erasure while it runs: what ``customer_redact`` finds as ``ctx.erasure``.

    A plugin erases the rows it keeps about :attr:`person` (their ids are on it:
    ``customer_ids``, ``order_ids``, ``ticket_ids``, ``shopify_ids``, ``emails``
    ...), says how many it changed with :meth:`count`, and uses :meth:`scrub`
    for text that may quote them. Free-text columns it declares in
    ``TEXT_COLUMNS`` are searched for the person's words by the core afterwards.
    """

    person: Person
    matcher: Matcher
    changed: dict[str, int] = field(default_factory=dict)

    def count(self, table: str, rows: int) -> None:
        if rows:
            self.changed[table] = self.changed.get(table, 0) + rows

    def scrub(self, value, *, theirs: bool = False):
        """``value`` (text or JSON) with the person's email, phone and full name replaced; with ``theirs``
        (a record that is the person's own) every personal field (email, name, note, ...) blanked too."""
        return scrub(value, self.matcher, pii_keys=theirs)


def shop_of(ctx) -> str:
    """The shop whose customer is being erased: the one in scope (the request's, ``--shop``), else the configured."""
    return current(ctx.conn)


def erase_person(ctx, p: Person, event: ev.CustomerRedact | None = None) -> dict[str, int]:
    """The core's steps, every plugin's ``customer_redact``, then the free-text search of the shop's rows;
    rows changed per table."""
    erasure = Erasure(p, p.matcher())
    for table, step in ERASE_STEPS:
        erasure.count(table, step(ctx, p, erasure.matcher))
    if event is not None:
        ctx.erasure = erasure
        try:
            ctx.hook.customer_redact(event=event, ctx=ctx)
        finally:
            ctx.erasure = None
    columns = searched_columns(declared_columns(ctx.pm))
    for table, n in scrub_shared_text(ctx.conn, erasure.matcher, columns, shop=shop_of(ctx)).items():
        erasure.count(table, n)
    return erasure.changed


def erase_customer(ctx, customer: dict, extra: ev.CustomerInfo | None = None,
                   orders_to_redact: list[int] = (), *, event: ev.CustomerRedact | None = None) -> dict:
    """Erase one person's personal data, keeping sums intact. Returns counts.

    :param event: the ``customers/redact`` being honoured; None (an admin's command) makes one from the
        customer, for the plugins' ``customer_redact``.
    """
    event = event or ev.CustomerRedact(customer=extra or ev.CustomerInfo(shopify_id=customer.get("shopify_id")))
    with of_row(customer):  # an admin's command erases the customer within their own shop
        person = find_person(ctx.conn, customer, extra, orders_to_redact)
        changed = erase_person(ctx, person, event)
    ctx.conn.execute(t.privacy_requests.insert().values(kind="redact", customer_id=customer["id"],
                                                        shopify_customer_id=None, inbox_id=ctx.inbox_id,
                                                        created_at=ctx.now))
    return {"customer_id": customer["id"], "inbox_rows_scrubbed": changed.get("inbox", 0), "rows_changed": changed}


def redact_for_request(ctx, event: ev.CustomerRedact) -> None:
    info = event.customer
    customer = customer_for(ctx.conn, shopify_id=info.shopify_id, email=info.email)
    if customer is None:
        # No customer row: still erase the orders Shopify names, and the person's words wherever they are.
        erase_person(ctx, find_person(ctx.conn, None, info, event.orders_to_redact), event)
        return
    erase_customer(ctx, customer, info, event.orders_to_redact, event=event)

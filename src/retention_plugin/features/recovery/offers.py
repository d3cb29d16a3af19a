"""Recovery cases: one decision per complaint ticket (or ticketless bad rating), made once, one offer per incident.

A case is a ``recoveries`` row under the key ``recovery:ticket:<zendesk id>``
(``recovery:rating:<source>:<id>`` for a bad rating that names no ticket).
Whatever comes first, the complaint being solved or a bad rating, decides;
later triggers for the same case find the row and change nothing.

**Incidents.** One bad experience often arrives several ways: a bad follow-up
rating, the ticket the product opens for it, the customer's own email about
the same order. A case joins the incident of an earlier case of the same
customer (offered or waiting for approval) from the last
``incident_window_days`` when both are about the same order, or either names
no order; it is then declined (``same_incident``). ``recoveries.incident`` is
the key of the incident's first case.

**Approval.** An offer waits (``decision = pending``, the reason in ``hold``)
instead of going out when the complaint is known from keywords alone, when it
is above ``approval_above``, or when the customer has no Shopify id (a code
would be bound to nobody). A pending offer holds its part of the budget and
caps. ``retention recovery approve ID`` issues it exactly once (a conditional
update decides who wins), ``decline ID`` records who declined it and why.

An offer is, in one transaction: the ``recoveries`` row, a ``rewards`` row,
the Shopify action (``discountCodeBasicCreate`` with a code derived from the
case key, or ``storeCreditAccountCredit``), and the apology: a public
Zendesk reply in the customer's language, or with ``require_approval`` an
internal note the agent can send; on a *closed* ticket (which Zendesk no
longer lets anyone update) a follow-up ticket (``via_followup_source_id``).
A declined case is a ``recoveries`` row too (with the reason), so the report
can compare what happened next.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select, update

from ...customers import lifetime_spend
from ...discounts import code_for, customer_gid, make_code, shop_currency  # noqa: F401 (re-exported)
from ...platforms.shopify.mutations import store_credit_account_credit
from ...platforms.zendesk.requests import ticket_comment, ticket_create
from ...storage import tables as t
from ...storage.db import for_update, insert_ignore
from .classify import keyword_only
from .context_note import customer_facts, money_text
from .policy import Decline, check_budget, lock_budget, normalise_offer, propose, record_spent

TEMPLATES = Path(__file__).parent / "templates"
KIND = "recovery_apology"
R = t.recoveries
#: Cases that take an incident's one offer (a declined case leaves the incident open).
HOLDING = ("offered", "pending")


def ticket_case_key(zendesk_id: int) -> str:
    return f"recovery:ticket:{zendesk_id}"


def rating_case_key(source: str, source_id: str) -> str:
    return f"recovery:rating:{source}:{source_id}"


def case_row(conn, key: str) -> dict | None:
    row = conn.execute(select(R).where(R.c.key == key)).mappings().first()
    return dict(row) if row else None


# --- incidents ------------------------------------------------------------------------------------


_ORDER_REF = re.compile(r"(?<![\w.,])#?(\d{3,})(?![\w.,]\d)")


def ticket_order_id(conn, ticket: dict | None, customer_id: int | None) -> int | None:
    """The customer's order a ticket is about: the first number in its subject or description that is
    one of their order names (``#1001``) or Shopify order ids."""
    if not ticket or customer_id is None:
        return None
    text = " ".join(x for x in (ticket.get("subject"), ticket.get("description")) if x)
    numbers = _ORDER_REF.findall(text)
    if not numbers:
        return None
    o = t.orders
    known: dict[str, int] = {}
    for oid, name, shopify_id in conn.execute(select(o.c.id, o.c.name, o.c.shopify_id)
                                              .where(o.c.customer_id == customer_id)):
        digits = re.sub(r"\D", "", name or "")
        if digits:
            known.setdefault(digits, oid)
        if shopify_id is not None:
            known.setdefault(str(shopify_id), oid)
    return next((known[n] for n in numbers if n in known), None)


def incident_case(conn, customer_id: int, order_id: int | None, now, days: int) -> dict | None:
    """The earlier case of the same incident that holds its offer, or None (always None when ``days`` is 0)."""
    if days <= 0:
        return None
    since = now - timedelta(days=days)
    for row in conn.execute(select(R).where(R.c.customer_id == customer_id, R.c.decision.in_(HOLDING),
                                            R.c.created_at >= since).order_by(R.c.id)).mappings():
        if order_id is None or row["order_id"] is None or row["order_id"] == order_id:
            return dict(row)
    return None


# --- the apology ------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _renderer(override_dir: str | None, fallback: str, strict: bool, shop_name: str, shop_url: str | None):
    from ...messaging.templates import Renderer

    return Renderer(override_dir, fallback_locale=fallback, strict=strict, shop_name=shop_name, shop_url=shop_url,
                    builtin_dir=TEMPLATES)


def renderer(app_settings):
    """The messaging renderer, looking in ``[messages] templates_dir`` first, then this package's templates."""
    from ...messaging.settings import section, templates_dir

    m = section(app_settings, "messages")
    d = templates_dir(app_settings)
    return _renderer(str(d) if d else None, m["fallback_locale"], m["strict_templates"], m["shop_name"],
                     m["shop_url"])


def apology_data(offer: dict, *, code: str | None, expires_at, ticket_id: int | None) -> dict:
    return {"offer_kind": offer["kind"], "amount": str(offer["amount"]), "currency": offer["currency"],
            "code": code, "expires_at": expires_at.date().isoformat() if expires_at else None,
            "ticket_id": ticket_id}


def render_apology(ctx, settings: dict, customer: dict, data: dict):
    locale = customer.get("locale") or settings.get("default_locale")
    return renderer(ctx.settings).render(KIND, locale, data, customer=customer)


# --- cases ------------------------------------------------------------------------------------------


def decide(ctx, settings: dict, *, key: str, trigger: str, severity: str | None, customer_id: int | None,
           ticket: dict | None, zendesk_id: int | None, source_ref: str, evidence=(),
           order_id: int | None = None) -> dict | None:
    """Make the one decision of a case; returns the new ``recoveries`` row, or None if it existed.

    :param evidence: what makes it a complaint (``classify.EVIDENCE``); keyword-only waits for approval.
    :param order_id: the ``orders.id`` the case is about (found in the ticket's text when not given).
    """
    conn = ctx.conn
    if case_row(conn, key) is not None:
        return None
    lock_budget(ctx)
    if case_row(conn, key) is not None:  # decided by another worker while we waited for the lock
        return None
    customer = ctx.customer(customer_id) if customer_id is not None else None
    currency = shop_currency(conn, settings)
    severity = severity or settings["complaints"]["bad_rating_severity"]
    if order_id is None and customer is not None:
        order_id = ticket_order_id(conn, ticket, customer["id"])
    case = {"key": key, "trigger": trigger, "severity": severity, "customer": customer, "ticket": ticket,
            "zendesk_id": zendesk_id, "source_ref": source_ref, "order_id": order_id, "incident": key,
            "evidence": ",".join(evidence) or None}
    try:
        if customer is None:
            raise Decline("no_customer", "the requester matches no stored customer")
        if currency is None:
            raise Decline("no_currency", "no shop currency known yet: set [recovery] currency")
        earlier = incident_case(conn, customer["id"], order_id, ctx.now, settings["incident_window_days"])
        if earlier is not None:
            case["incident"] = earlier["incident"] or earlier["key"]
            raise Decline("same_incident", f"one goodwill offer per incident: {earlier['key']} "
                                           f"({earlier['decision']} {earlier['created_at']:%Y-%m-%d})")
        spend = lifetime_spend(conn, customer["id"]).get(currency, 0)
        tier = (customer_facts(ctx, customer["id"]).get("loyalty") or {}).get("tier")
        declined = None
        try:
            proposal = propose(ctx, settings, customer=customer, severity=severity, tier=tier, spend=spend,
                               currency=currency)
        except Decline as d:
            proposal, declined = None, d
        result = ctx.hook.recovery_offer(ticket=ticket, customer=customer, proposal=proposal, ctx=ctx)
        if result is None:
            result = proposal if proposal is not None else False
        if result is False:
            if proposal is not None:
                raise Decline("vetoed", "a recovery_offer hook returned False")
            raise declined or Decline("vetoed", "a recovery_offer hook returned False")
        offer = normalise_offer(result, proposal, settings, currency)
        check_budget(ctx, settings, offer["amount"], currency)
    except Decline as d:
        return _declined(ctx, settings, case, d)
    holds = hold_reasons(settings, customer, offer, evidence)
    if holds:
        return _pending(ctx, settings, case, offer, holds)
    rid = _insert_case(ctx, case, decision="offered", reason=offer["reason"], offer=offer)
    if rid is None:
        return None
    _issue(ctx, settings, case_row(conn, key), customer, offer)
    return case_row(conn, key)


def hold_reasons(settings: dict, customer: dict, offer: dict, evidence) -> list[str]:
    """Why an offer must wait for a person's approval (empty: it goes out now)."""
    holds = []
    if customer_gid(customer) is None:
        holds.append("no Shopify customer id: a code or credit would be bound to nobody")
    if keyword_only(evidence):
        holds.append("the complaint is known from keywords alone")
    above = settings["approval_above"]
    if above is not None and offer["amount"] > above:
        holds.append(f"{offer['amount']} {offer['currency']} is above approval_above {above}")
    return holds


def _offer_json(offer: dict) -> dict:
    return {"kind": offer["kind"], "amount": str(offer["amount"]), "currency": offer["currency"],
            "valid_days": offer["valid_days"], "severity": offer.get("severity"), "reason": offer["reason"]}


def _insert_case(ctx, case: dict, *, decision: str, reason: str, offer: dict | None = None,
                 hold: str | None = None) -> int | None:
    customer, ticket = case["customer"], case["ticket"]
    return insert_ignore(ctx.conn, R, {
        "key": case["key"], "ticket_id": ticket["id"] if ticket else None,
        "customer_id": customer["id"] if customer else None, "trigger": case["trigger"],
        "severity": case["severity"], "decision": decision, "reason": reason[:2000],
        "amount": offer["amount"] if offer else None, "currency": offer["currency"] if offer else None,
        "outcome": "pending" if customer else None, "created_at": ctx.now, "incident": case["incident"],
        "order_id": case["order_id"], "evidence": case["evidence"], "hold": hold,
        "offer": _offer_json(offer) if offer else None}, ["key"])


def _note(ctx, case: dict, suffix: str, body: str) -> None:
    """An internal note on the case's ticket, unless there is none or it is closed (no longer updatable)."""
    ticket, zid = case["ticket"], case["zendesk_id"]
    if zid is None or (ticket or {}).get("status") == "closed":
        return
    ctx.enqueue_action("zendesk", "ticket_comment", f"{case['key']}:{suffix}", ticket_comment(zid, body, False))


def _declined(ctx, settings, case: dict, decline: Decline) -> dict | None:
    rid = _insert_case(ctx, case, decision="declined", reason=str(decline))
    if rid is None:
        return None
    ctx.log.info("recovery %s: no offer (%s)", case["key"], decline)
    if settings["note_declined"]:
        _note(ctx, case, "declined-note", (
            "No automatic goodwill offer for this case (retention-plugin service recovery).\n\n"
            f"Why: {_decline_words(decline)}\n\n"
            "If you think the customer should get something anyway, you have the authority to make it "
            "right: apologise and offer what fits."))
    return case_row(ctx.conn, case["key"])


def _pending(ctx, settings, case: dict, offer: dict, holds: list[str]) -> dict | None:
    hold = "; ".join(holds)
    rid = _insert_case(ctx, case, decision="pending", reason=offer["reason"], offer=offer, hold=hold)
    if rid is None:
        return None
    ctx.log.info("recovery %s: offer of %s %s waits for approval (%s)", case["key"], offer["amount"],
                 offer["currency"], hold)
    _note(ctx, case, "pending-note", (
        f"A goodwill offer of {money_text(offer['amount'], offer['currency'])} waits for approval "
        "(retention-plugin service recovery); nothing was sent to the customer.\n\n"
        f"Why it waits: {hold}.\n\n"
        f"To send it: retention recovery approve {rid}\nTo drop it: retention recovery decline {rid} "
        "--reason \"...\""))
    return case_row(ctx.conn, case["key"])


_DECLINE_WORDS = {
    "over_budget": "this month's goodwill budget would be exceeded",
    "too_many_recoveries": "the customer already received the maximum number of goodwill offers this year",
    "customer_cap": "the customer already received the maximum goodwill amount this year",
    "vetoed": "a store rule (recovery_offer hook) decided against an offer",
    "no_customer": "we could not match the requester to a customer",
    "no_currency": "the shop currency is not known yet",
    "no_amount": "no goodwill amount is configured for this severity",
    "same_incident": "the customer already has a goodwill offer for this incident",
}


def _decline_words(decline: Decline) -> str:
    words = _DECLINE_WORDS.get(decline.code, decline.code)
    return f"{words} ({decline.detail})" if decline.detail else words


# --- issuing -----------------------------------------------------------------------------------------


def _issue(ctx, settings, case: dict, customer: dict, offer: dict) -> None:
    """The reward, the Shopify action and the apology of an offered case (``case`` is its row)."""
    conn, now = ctx.conn, ctx.now
    key = case["key"]
    kind = offer["kind"]
    amount = Decimal(str(offer["amount"]))
    gid = customer_gid(customer)
    expires = now + timedelta(days=int(offer["valid_days"]))
    ticket = conn.execute(select(t.tickets).where(t.tickets.c.id == case["ticket_id"])).mappings().first() \
        if case["ticket_id"] is not None else None
    zendesk_id = ticket["zendesk_id"] if ticket else _ticket_of_key(key)
    source_ref = f"ticket {zendesk_id}" if zendesk_id is not None else f"rating {key.split(':', 2)[-1]}"
    amount_text = str(amount)
    code = None
    if kind == "discount_code":
        # The case itself waits for approval when there is no Shopify customer (hold_reasons, approve),
        # so here the code is always bound; make_code refuses rather than holds a second time.
        title = f"Service recovery: {money_text(amount, offer['currency'])} off ({source_ref})"
        reward = make_code(ctx, key=f"{key}:reward", action_key=f"{key}:discount", feature="recovery",
                           discount_kind="recovery", customer=customer, title=title, prefix=settings["code_prefix"],
                           ends_at=expires, amount=amount, currency=offer["currency"], source_ref=source_ref,
                           unbound="refuse", code_key=key)
        reward_id, code = reward["id"], reward["code"]
    else:
        reward_id = insert_ignore(conn, t.rewards, {
            "key": f"{key}:reward", "customer_id": customer["id"], "feature": "recovery", "kind": "store_credit",
            "code": None, "percent": None, "amount": amount, "currency": offer["currency"], "points": None,
            "status": "issued", "source_ref": source_ref, "created_at": now, "expires_at": expires}, ["key"])
        if reward_id is None:
            reward_id = conn.execute(select(t.rewards.c.id).where(t.rewards.c.key == f"{key}:reward")).scalar_one()
        request = store_credit_account_credit(gid, amount_text, offer["currency"], expires_at=expires)
        ctx.enqueue_action("shopify", "store_credit_account_credit", f"{key}:store_credit", request)
    conn.execute(update(R).where(R.c.id == case["id"]).values(reward_id=reward_id))
    offer = {**offer, "amount": amount}
    data = apology_data(offer, code=code, expires_at=expires, ticket_id=zendesk_id)
    _apologise(ctx, settings, key, customer, data, offer, code, zendesk_id, ticket["status"] if ticket else None)
    record_spent(ctx, offer["currency"])
    ctx.log.info("recovery %s: offered %s %s (%s)", key, amount, offer["currency"], offer["reason"])


def _ticket_of_key(key: str) -> int | None:
    # A rating that named a ticket we never stored still has its case under the ticket's id.
    prefix = "recovery:ticket:"
    return int(key[len(prefix):]) if key.startswith(prefix) and key[len(prefix):].isdigit() else None


def _apologise(ctx, settings, key: str, customer: dict, data: dict, offer: dict, code: str | None,
               zid: int | None, status: str | None) -> None:
    """The apology: on the ticket, on a follow-up of a closed ticket, or as a message without one."""
    email = customer.get("email") if customer.get("redacted_at") is None else None
    if zid is None or (status == "closed" and not email):
        # No ticket to answer on (a follow-up rating), or a closed one and no address to open another.
        ctx.schedule_message(key=f"{key}:apology", customer_id=customer["id"], kind=KIND, due_at=ctx.now,
                             data=data, message_class="transactional", locale=customer.get("locale"))
        return
    rendered = render_apology(ctx, settings, customer, data)
    public = not settings["require_approval"]
    body = rendered.text
    if not public:
        what = (f"the code {code} is created in Shopify" if code else
                f"{money_text(offer['amount'], offer['currency'])} of store credit is credited")
        body = ("Suggested goodwill reply from retention-plugin, NOT sent to the customer "
                "([recovery] require_approval = true).\n"
                f"Offer: {money_text(offer['amount'], offer['currency'])} ({offer['reason']}); {what}.\n"
                "Review it, then send it as a public reply.\n\n-----\n\n" + body)
    if status == "closed":
        # Zendesk refuses comments on closed tickets; a follow-up ticket references it instead.
        name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p) or None
        request = ticket_create(email, name, rendered.subject, body, tags=["retention_recovery"], public=public,
                                idempotency_key=f"{key}:followup", followup_source_id=zid)
        ctx.enqueue_action("zendesk", "ticket_create", f"{key}:followup", request)
        return
    ctx.enqueue_action("zendesk", "ticket_comment", f"{key}:reply", ticket_comment(zid, body, public))


# --- approval ----------------------------------------------------------------------------------------


class ApprovalError(Exception):
    """An approve or decline that cannot be done; the message says why."""


def pending_cases(conn) -> list[dict]:
    return [dict(r) for r in conn.execute(select(R).where(R.c.decision == "pending").order_by(R.c.id)).mappings()]


def _locked_case(ctx, case_id: int) -> dict:
    lock_budget(ctx)
    row = ctx.conn.execute(for_update(select(R).where(R.c.id == case_id), ctx.conn)).mappings().first()
    if row is None:
        raise ApprovalError(f"no recovery case {case_id}")
    return dict(row)


def approve(ctx, settings: dict, case_id: int, *, by: str, note: str | None = None) -> tuple[dict, bool]:
    """Issue a pending offer exactly once; ``(case row, issued now?)``. Approving again changes nothing."""
    row = _locked_case(ctx, case_id)
    if row["decision"] == "offered" and row["reviewed_at"] is not None:
        return row, False
    if row["decision"] != "pending":
        raise ApprovalError(f"case {case_id} is {row['decision']}, not waiting for approval")
    customer = ctx.customer(row["customer_id"]) if row["customer_id"] is not None else None
    if customer is None:
        raise ApprovalError(f"case {case_id}: the customer is no longer stored")
    if customer_gid(customer) is None:
        raise ApprovalError(f"case {case_id}: customer {customer['id']} still has no Shopify customer id, so the "
                            "code would be bound to nobody; approve it once Shopify has linked the customer "
                            "(an order or customers/update), or decline it")
    won = ctx.conn.execute(update(R).where(R.c.id == case_id, R.c.decision == "pending").values(
        decision="offered", reviewed_by=by[:255], reviewed_at=ctx.now, review_note=note)).rowcount
    if won != 1:
        return case_row(ctx.conn, row["key"]), False
    _issue(ctx, settings, row, customer, row["offer"])
    return case_row(ctx.conn, row["key"]), True


def decline(ctx, case_id: int, *, by: str, reason: str) -> tuple[dict, bool]:
    """Drop a pending offer, recording who and why; ``(case row, declined now?)``."""
    row = _locked_case(ctx, case_id)
    if row["decision"] == "declined" and row["reviewed_at"] is not None:
        return row, False
    if row["decision"] != "pending":
        raise ApprovalError(f"case {case_id} is {row['decision']}, not waiting for approval")
    ctx.conn.execute(update(R).where(R.c.id == case_id, R.c.decision == "pending").values(
        decision="declined", reason=f"declined_by_reviewer: {by}: {reason}"[:2000], reviewed_by=by[:255],
        reviewed_at=ctx.now, review_note=reason))
    return case_row(ctx.conn, row["key"]), True

"""Recovery cases: one decision per complaint ticket (or ticketless bad rating), made once.

A case is a ``recoveries`` row under the key ``recovery:ticket:<zendesk id>``
(``recovery:rating:<source>:<id>`` for a bad rating that names no ticket).
Whatever comes first, the complaint being solved or a bad rating, decides;
later triggers for the same case find the row and change nothing.

An offer is, in one transaction: the ``recoveries`` row, a ``rewards`` row,
the Shopify action (``discountCodeBasicCreate`` with a code derived from the
case key, or ``storeCreditAccountCredit``), and the apology: a public
Zendesk reply in the customer's language, or with ``require_approval`` an
internal note the agent can send. A declined case is a ``recoveries`` row
too (with the reason), so the report can compare what happened next.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select, update

from ...customers import lifetime_spend
from ...platforms.shopify.mutations import discount_code_basic_create, store_credit_account_credit
from ..offers import combines_with
from ...platforms.zendesk.requests import ticket_comment
from ...storage import tables as t
from ...storage.db import insert_ignore
from ...discounts import code_for, customer_gid, shop_currency  # noqa: F401 (re-exported)
from .context_note import customer_facts, money_text
from .policy import Decline, check_budget, lock_budget, normalise_offer, propose, record_spent

TEMPLATES = Path(__file__).parent / "templates"
KIND = "recovery_apology"
R = t.recoveries


def ticket_case_key(zendesk_id: int) -> str:
    return f"recovery:ticket:{zendesk_id}"


def rating_case_key(source: str, source_id: str) -> str:
    return f"recovery:rating:{source}:{source_id}"


def case_row(conn, key: str) -> dict | None:
    row = conn.execute(select(R).where(R.c.key == key)).mappings().first()
    return dict(row) if row else None


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
           ticket: dict | None, zendesk_id: int | None, source_ref: str) -> dict | None:
    """Make the one decision of a case; returns the new ``recoveries`` row, or None if it existed."""
    conn = ctx.conn
    if case_row(conn, key) is not None:
        return None
    lock_budget(ctx)
    if case_row(conn, key) is not None:  # decided by another worker while we waited for the lock
        return None
    customer = ctx.customer(customer_id) if customer_id is not None else None
    currency = shop_currency(conn, settings)
    severity = severity or settings["complaints"]["bad_rating_severity"]
    try:
        if customer is None:
            raise Decline("no_customer", "the requester matches no stored customer")
        if currency is None:
            raise Decline("no_currency", "no shop currency known yet: set [recovery] currency")
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
        return _declined(ctx, settings, key=key, trigger=trigger, severity=severity, customer=customer,
                         ticket=ticket, zendesk_id=zendesk_id, decline=d)
    return _offer(ctx, settings, key=key, trigger=trigger, severity=severity, customer=customer, ticket=ticket,
                  zendesk_id=zendesk_id, offer=offer, source_ref=source_ref)


def _insert_case(ctx, *, key, trigger, severity, customer, ticket, decision, reason, amount=None,
                 currency=None) -> int | None:
    return insert_ignore(ctx.conn, R, {
        "key": key, "ticket_id": ticket["id"] if ticket else None,
        "customer_id": customer["id"] if customer else None, "trigger": trigger, "severity": severity,
        "decision": decision, "reason": reason[:2000], "amount": amount, "currency": currency,
        "outcome": "pending" if customer else None, "created_at": ctx.now}, ["key"])


def _declined(ctx, settings, *, key, trigger, severity, customer, ticket, zendesk_id, decline: Decline) -> dict | None:
    rid = _insert_case(ctx, key=key, trigger=trigger, severity=severity, customer=customer, ticket=ticket,
                       decision="declined", reason=str(decline))
    if rid is None:
        return None
    ctx.log.info("recovery %s: no offer (%s)", key, decline)
    if zendesk_id is not None and settings["note_declined"]:
        body = ("No automatic goodwill offer for this case (retention-plugin service recovery).\n\n"
                f"Why: {_decline_words(decline)}\n\n"
                "If you think the customer should get something anyway, you have the authority to make it "
                "right: apologise and offer what fits.")
        ctx.enqueue_action("zendesk", "ticket_comment", f"{key}:declined-note", ticket_comment(zendesk_id, body, False))
    return case_row(ctx.conn, key)


_DECLINE_WORDS = {
    "over_budget": "this month's goodwill budget would be exceeded",
    "too_many_recoveries": "the customer already received the maximum number of goodwill offers this year",
    "customer_cap": "the customer already received the maximum goodwill amount this year",
    "vetoed": "a store rule (recovery_offer hook) decided against an offer",
    "no_customer": "we could not match the requester to a customer",
    "no_currency": "the shop currency is not known yet",
    "no_amount": "no goodwill amount is configured for this severity",
}


def _decline_words(decline: Decline) -> str:
    words = _DECLINE_WORDS.get(decline.code, decline.code)
    return f"{words} ({decline.detail})" if decline.detail else words


def _offer(ctx, settings, *, key, trigger, severity, customer, ticket, zendesk_id, offer, source_ref) -> dict | None:
    conn, now = ctx.conn, ctx.now
    gid = customer_gid(customer)
    reason = offer["reason"]
    kind = offer["kind"]
    if kind == "store_credit" and gid is None:
        kind = offer["kind"] = "discount_code"
        reason += "; no Shopify customer id, so a discount code instead of store credit"
    rid = _insert_case(ctx, key=key, trigger=trigger, severity=severity, customer=customer, ticket=ticket,
                       decision="offered", reason=reason, amount=offer["amount"], currency=offer["currency"])
    if rid is None:
        return None
    expires = now + timedelta(days=offer["valid_days"])
    code = code_for(settings["code_prefix"], key) if kind == "discount_code" else None
    reward_id = insert_ignore(conn, t.rewards, {
        "key": f"{key}:reward", "customer_id": customer["id"], "feature": "recovery",
        "kind": "amount" if kind == "discount_code" else "store_credit", "code": code, "percent": None,
        "amount": offer["amount"], "currency": offer["currency"], "points": None, "status": "issued",
        "source_ref": source_ref, "created_at": now, "expires_at": expires}, ["key"])
    if reward_id is None:
        reward_id = conn.execute(select(t.rewards.c.id).where(t.rewards.c.key == f"{key}:reward")).scalar_one()
    conn.execute(update(R).where(R.c.id == rid).values(reward_id=reward_id))
    amount_text = str(offer["amount"])
    if kind == "discount_code":
        title = f"Service recovery: {money_text(offer['amount'], offer['currency'])} off ({source_ref})"
        request = discount_code_basic_create(code, title, amount=amount_text, currency=offer["currency"],
                                             customer_gid=gid, starts_at=now, ends_at=expires, usage_limit=1,
                                             applies_once_per_customer=True,
                                             combines_with=combines_with(ctx, "recovery"))
        ctx.enqueue_action("shopify", "discount_code_basic_create", f"{key}:discount", request)
    else:
        request = store_credit_account_credit(gid, amount_text, offer["currency"], expires_at=expires)
        ctx.enqueue_action("shopify", "store_credit_account_credit", f"{key}:store_credit", request)
    data = apology_data(offer, code=code, expires_at=expires, ticket_id=zendesk_id)
    if zendesk_id is not None:
        text = render_apology(ctx, settings, customer, data).text
        if settings["require_approval"]:
            what = (f"the code {code} is created in Shopify" if code else
                    f"{money_text(offer['amount'], offer['currency'])} of store credit is credited")
            body = ("Suggested goodwill reply from retention-plugin, NOT sent to the customer "
                    "([recovery] require_approval = true).\n"
                    f"Offer: {money_text(offer['amount'], offer['currency'])} ({reason}); {what}.\n"
                    "Review it, then send it as a public reply.\n\n-----\n\n" + text)
            ctx.enqueue_action("zendesk", "ticket_comment", f"{key}:reply", ticket_comment(zendesk_id, body, False))
        else:
            ctx.enqueue_action("zendesk", "ticket_comment", f"{key}:reply", ticket_comment(zendesk_id, text, True))
    else:
        # No ticket to answer on (a follow-up rating): the apology goes out as a message.
        ctx.schedule_message(key=f"{key}:apology", customer_id=customer["id"], kind=KIND, due_at=now, data=data,
                             message_class="transactional", locale=customer.get("locale"))
    record_spent(ctx, offer["currency"])
    ctx.log.info("recovery %s: offered %s %s (%s)", key, offer["amount"], offer["currency"], reason)
    return case_row(conn, key)

"""What follow-ups do: schedule the message with its signed rating links, record an answer (from the
page, the command or code), open a ticket on a bad one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy import select, update

from retention_plugin import events as ev
from retention_plugin import links
from retention_plugin.context import HookContext
from retention_plugin.routes import LinkPage, LinkRequest
from retention_plugin.customers import follow_merges as load_customer
from retention_plugin.messaging.schedule import cancel_message, record_suppressed
from retention_plugin.records.orders import order_name, order_row
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import for_update, insert_ignore, read_only

from .settings import ANSWERS, PURPOSE, RATING_PATH, SOURCE, settings_of

log = logging.getLogger("retention_plugin.features.followups")

# --- scheduling ------------------------------------------------------------------------------


def message_key(order_id: int) -> str:
    return f"followups:order:{order_id}"


def ticket_key(order_id: int) -> str:
    return f"followups:ticket:order:{order_id}"


def rating_links(settings, order_id: int, customer_id: int, expires_at) -> dict:
    """Template variables with the signed rating links (one token, an ``a=`` per answer)."""
    base = links.make_url(settings, RATING_PATH, PURPOSE, {"o": int(order_id), "c": int(customer_id)}, expires_at)
    return {
        "rating_url": base,  # a page offering every answer
        "rating_url_good": f"{base}&a=good",
        "rating_url_bad": f"{base}&a=bad",
        "rating_urls": {str(n): f"{base}&a={n}" for n in range(1, 6)},
        "rating_expires_at": expires_at.isoformat(),
    }


def schedule_follow_up(ctx, order_id: int) -> int | None:
    """Schedule the order's follow-up once; returns the message id (None when the order gets none)."""
    s = settings_of(ctx.settings)
    row = order_row(ctx.conn, order_id)
    if (row is None or row["customer_id"] is None or row["test"] or row["cancelled_at"] is not None
            or row["fulfilled_at"] is None):
        return None
    key = message_key(order_id)
    existing = ctx.conn.execute(select(t.messages.c.id).where(t.messages.c.key == key)).scalar()
    if existing is not None:
        return existing
    customer = load_customer(ctx.conn, row["customer_id"])
    if customer is None:
        return None
    due = row["fulfilled_at"] + timedelta(days=s["days_after_fulfillment"])
    if due < ctx.now - timedelta(days=s["stale_after_days"]):
        log.info("order %s: follow-up would be %s overdue; skipped", order_id, ctx.now - due)
        return None
    due = max(due, ctx.now)
    data: dict[str, Any] = {
        "order_name": order_name(row), "support_url": s["support_url"], "help_url": s["help_url"],
        "product_titles": _titles(ctx.conn, row["id"]),
    }
    problem = links.configured(ctx.settings)
    if problem:
        # Without signed links the message cannot ask for a rating: record why, visibly.
        log.error("order %s: no follow-up: %s", order_id, problem)
        return record_suppressed(ctx, key=key, customer_id=customer["id"], kind="follow_up", data=data,
                                 reason=f"not sent: {problem}", locale=row["locale"])
    data.update(rating_links(ctx.settings, order_id, customer["id"], due + timedelta(days=s["link_valid_days"])))
    return ctx.schedule_message(key=key, customer_id=customer["id"], kind="follow_up", due_at=due,
                                locale=row["locale"], data=data)


def _titles(conn, internal_order_id: int) -> list[str]:
    ol = t.order_lines
    rows = conn.execute(select(ol.c.title).where(ol.c.order_id == internal_order_id).order_by(ol.c.id)).all()
    return [r[0] for r in rows if r[0]][:5]


def withdraw(ctx, order_id: int) -> None:
    """The follow-up of a cancelled order, if not sent yet, is withdrawn."""
    cancel_message(ctx.conn, message_key(order_id), "the order was cancelled")


# --- answers -------------------------------------------------------------------------------


class RatingError(ValueError):
    """An answer that cannot be recorded; the message is fit for the person who clicked."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def parse_answer(answer: Any) -> tuple[str, Decimal, bool]:
    """``(score, value 0..1, bad)``: good 1, bad 0; 1-5 -> (n-1)/4, bad at 2 or less."""
    a = str(answer).strip().lower() if answer is not None else ""
    if a not in ANSWERS:
        raise RatingError(f"unknown answer {str(answer)[:20]!r}: expected good, bad or 1-5")
    if a == "good":
        return a, Decimal(1), False
    if a == "bad":
        return a, Decimal(0), True
    n = int(a)
    return a, Decimal(n - 1) / 4, n <= 2


@dataclass
class RatingResult:
    order_id: int
    customer_id: int | None
    score: str
    value: Decimal
    bad: bool
    status: str  # recorded / changed / unchanged
    ticket: str | None  # enqueued / exists / skipped: <why> / None (not bad)


def record_rating_answer(app, token: str, answer: str, *, comment: str | None = None) -> RatingResult:
    """Check the token, store the answer (last one wins), fire ``satisfaction_rated``, open a ticket if bad.

    :raises links.LinkError: the token is not genuine, expired, or not a rating link.
    :raises RatingError: the answer is unknown, or the order is no longer stored.
    """
    now = app.now()
    payload = links.verify_with_settings(app.settings, PURPOSE, token, now)
    score, value, bad = parse_answer(answer)
    try:
        order_id = int(payload["o"])
        token_customer = int(payload["c"])
    except (KeyError, TypeError, ValueError):
        raise RatingError("the link is not a rating link") from None
    comment = (comment or "").strip()[:5000] or None
    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=now, source="link")
        return _record(ctx, order_id, token_customer, score, value, bad, comment)


def _record(ctx, order_id: int, token_customer: int, score: str, value: Decimal, bad: bool,
            comment: str | None) -> RatingResult:
    conn, now = ctx.conn, ctx.now
    order = order_row(conn, order_id)
    if order is None:
        raise RatingError("we no longer have this order on record", status=404)
    customer = load_customer(conn, order["customer_id"] or token_customer)
    cid = customer["id"] if customer else None
    r = t.ratings
    where = (r.c.source == SOURCE, r.c.source_id == str(order_id))
    values = {"score": score, "value": value, "customer_id": cid, "order_id": order["id"], "created_at": now}
    if comment is not None:
        values["comment"] = comment
    status = "recorded"
    row = {"source": SOURCE, "source_id": str(order_id), **values}
    if insert_ignore(conn, r, row, ["source", "source_id"]) is None:
        old = conn.execute(for_update(select(r).where(*where), conn)).mappings().one()
        if old["score"] == score and (comment is None or comment == old["comment"]):
            status = "unchanged"
        else:
            conn.execute(update(r).where(*where).values(**values))
            status = "changed"
    ticket = None
    if bad:
        ticket = _open_ticket(ctx, order, customer, score, comment)
    if status != "unchanged":
        rating = ev.Rating(source=SOURCE, source_id=str(order_id), score=score, value=float(value),
                           comment=comment, created_at=now, order_id=order_id,
                           customer=ev.CustomerInfo(shopify_id=customer.get("shopify_id"),
                                                    email=customer.get("email")) if customer else None)
        shop = ctx.settings.section("shopify").get("shop", "") if ctx.settings.has("shopify") else ""
        ctx.hook.satisfaction_rated(event=ev.SatisfactionRated(rating=rating, platform=SOURCE, shop=shop,
                                                               occurred_at=now), ctx=ctx)
    return RatingResult(order_id=order_id, customer_id=cid, score=score, value=value, bad=bad, status=status,
                        ticket=ticket)


def _open_ticket(ctx, order: Mapping, customer: Mapping | None, score: str, comment: str | None) -> str:
    s = settings_of(ctx.settings)
    key = ticket_key(order["shopify_id"])
    if ctx.conn.execute(select(t.actions.c.id).where(t.actions.c.key == key)).scalar() is not None:
        return "exists"
    if not s["ticket_on_bad"]:
        return "skipped: [followups] ticket_on_bad = false"
    if not ctx.settings.has("zendesk"):
        return "skipped: no [zendesk] section"
    if customer is None or customer.get("redacted_at") is not None or not customer.get("email"):
        return "skipped: no email address for the customer"
    from retention_plugin.platforms.zendesk.requests import ticket_create

    name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p) or None
    oname = order_name(order)
    answer = {"bad": "bad"}.get(score, f"{score} of 5")
    lines = [f"The customer rated order {oname} as {answer} in the follow-up message "
             f"({ctx.now.strftime('%Y-%m-%d %H:%M')} UTC).",
             f"Comment: {comment}" if comment else "No comment was given.",
             "Please get in touch and put it right."]
    if ctx.settings.has("shopify"):
        lines.append(f"Order: https://{ctx.settings.section('shopify')['shop']}/admin/orders/{order['shopify_id']}")
    request = ticket_create(customer["email"], name, f"Unhappy with order {oname}", "\n\n".join(lines),
                            tags=s["ticket_tags"], external_id=f"retention-followup-{order['shopify_id']}",
                            public=False, idempotency_key=key)
    ctx.enqueue_action("zendesk", "ticket_create", key, request)
    return "enqueued"


# --- the web page ------------------------------------------------------------------------------


def _first(mapping: Mapping | None, name: str) -> str | None:
    if not mapping:
        return None
    v = mapping.get(name)
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return v if isinstance(v, str) else None


def _page(app, state: str, *, accept_language: str | None, payload: Mapping | None = None, **values) -> str:
    """The rating page in the customer's language (``pages/<locale>/rating.j2``)."""
    from retention_plugin.messaging.pages import customer_locale, render_page

    locale = None
    if payload and payload.get("c") is not None:
        with read_only(app.engine) as conn:  # no wait for a worker's group to render a page
            locale = customer_locale(conn, payload["c"])
    return render_page(app.settings, "rating", customer_locale=locale, accept_language=accept_language,
                       state=state, **values)


def handle_rating_link(app, query: Mapping, *, method: str = "GET", form: Mapping | None = None,
                       accept_language: str | None = None) -> tuple[int, str]:
    """The ``/r/rate`` page, independent of the web framework: ``(status code, HTML)``.

    :param query: the query string as a dict (values may be lists, as ``parse_qs`` gives them).
    :param method: ``GET`` (a click in the message) or ``POST`` (the confirm form).
    :param form: the POST form fields (``t``, ``a``, ``comment``).
    :param accept_language: the browser's ``Accept-Language``, for a page whose token names no customer.

    A bad or expired token, or an unknown answer, is a 400 with a page saying
    so; nothing here raises for bad input. The page is in the customer's language.
    """
    method = (method or "GET").upper()
    if method not in ("GET", "HEAD", "POST"):
        return 405, _page(app, "not_allowed", accept_language=accept_language)
    token = _first(form, "t") or _first(query, "t")
    answer = _first(form, "a") or _first(query, "a")
    comment = _first(form, "comment") if method == "POST" else None
    try:
        payload = links.verify_with_settings(app.settings, PURPOSE, token, app.now())
    except links.LinkExpired:
        return 400, _page(app, "expired", accept_language=accept_language)
    except links.LinkError as e:
        if e.reason == "not_configured":
            log.error("rating link used, but %s", e.message)
        return 400, _page(app, "invalid", accept_language=accept_language, reason=e.reason)
    page = lambda state, **kw: _page(app, state, accept_language=accept_language, payload=payload,  # noqa: E731
                                     token=token, **kw)
    if not answer:
        return 200, page("choose")
    try:
        score, _, _ = parse_answer(answer)
    except RatingError:
        return 400, page("unknown_answer")
    if method in ("GET", "HEAD") and settings_of(app.settings)["confirm_clicks"]:
        return 200, page("confirm", score=score)
    if method == "HEAD":
        return 200, ""
    try:
        result = record_rating_answer(app, token, score, comment=comment)
    except RatingError as e:
        return e.status, page("gone" if e.status == 404 else "not_rating")
    except links.LinkError as e:  # expired between the two checks
        return 400, page("expired" if e.reason == "expired" else "invalid", reason=e.reason)
    return 200, page("thanks_bad" if result.bad else "thanks_good", score=score)


class RatingPage(LinkPage):
    """``/r/rate``: a click on a rating button, or the page's confirm form."""

    def respond(self, link: LinkRequest) -> tuple[int, str]:
        return handle_rating_link(self.retention, link.query, method=link.method,
                                  form=link.form if link.method == "POST" else None,
                                  accept_language=link.accept_language)

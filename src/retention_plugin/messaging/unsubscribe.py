"""One-click unsubscribe (RFC 8058) for the links in marketing mail, served at ``/r/unsubscribe``.

GET shows a page with a button, because mail scanners follow links; POST
(the button, or a mail client's ``List-Unsubscribe=One-Click``) records the
withdrawal at once — later marketing is suppressed by the contact policy —
and tells Shopify, so the store's own marketing stops too. The page is in the
customer's language (``messaging/templates/pages/<locale>/unsubscribe.j2``).

The token is a :mod:`retention_plugin.links` token for ``unsubscribe``
carrying the customer id; one from before (the id's HMAC with ``[email]
unsubscribe_secret``, the id in ``c``) still works while that secret is set.
"""

from __future__ import annotations

from sqlalchemy import select, update

from .. import links
from ..context import HookContext
from ..platforms.shopify.mutations import customer_email_marketing_consent_update
from ..routes import LinkPage, LinkRequest
from ..storage import tables as t
from ..storage.db import read_only
from .channels import UNSUBSCRIBE_PURPOSE

UNSUBSCRIBE_PATH = "/r/unsubscribe"


def check(app, customer_id: str | None, token: str | None) -> int | None:
    """The customer id the token was made for, else None.

    A ``c`` in the link (``customer_id``) must name the same customer as the token.
    """
    legacy = app.settings.section("email").get("unsubscribe_secret")
    try:
        payload = links.verify_with_settings(app.settings, UNSUBSCRIBE_PURPOSE, token, app.now(),
                                             legacy_secret=legacy, customer_id=customer_id)
        cid = payload["c"]
    except (links.LinkError, KeyError):
        return None
    if not isinstance(cid, int) or isinstance(cid, bool):
        return None
    if customer_id not in (None, "") and not (customer_id.isdigit() and int(customer_id) == cid):
        return None
    return cid


def handle(app, method: str, query: dict, accept_language: str | None = None) -> tuple[int, str]:
    """``(status, HTML)`` for ``/r/unsubscribe``; ``accept_language`` is the browser's header.

    GET and HEAD ask; POST unsubscribes.
    """
    from .pages import customer_locale, render_page

    method = (method or "").upper()
    token = query.get("t") or query.get("token")
    cid = check(app, query.get("c") or query.get("customer_id"), token)
    if cid is None:
        return 400, render_page(app.settings, "unsubscribe", accept_language=accept_language, state="invalid")
    with read_only(app.engine) as conn:  # a GET only asks: no wait for a worker's group
        locale = customer_locale(conn, cid)
    if method in ("GET", "HEAD"):
        return 200, render_page(app.settings, "unsubscribe", customer_locale=locale, accept_language=accept_language,
                                state="confirm", customer_id=cid, token=token)
    unsubscribe(app, cid)
    return 200, render_page(app.settings, "unsubscribe", customer_locale=locale, accept_language=accept_language,
                            state="done")


class UnsubscribePage(LinkPage):
    """``/r/unsubscribe``: the link's ``c`` and ``t`` (or ``customer_id`` and ``token``)."""

    def respond(self, link: LinkRequest) -> tuple[int, str]:
        return handle(self.retention, link.method, link.params, link.accept_language)


def unsubscribe(app, customer_id: int) -> None:
    now = app.now()
    with app.engine.begin() as conn:
        row = conn.execute(select(t.customers.c.shopify_id, t.customers.c.marketing_consent)
                           .where(t.customers.c.id == customer_id)).first()
        if row is None:
            return
        conn.execute(update(t.customers).where(t.customers.c.id == customer_id).values(
            marketing_consent="unsubscribed", updated_at=now))
        if row.shopify_id is not None and app.settings.has("shopify"):
            ctx = HookContext(app, conn, now=now, source="web")
            ctx.enqueue_action("shopify", "customer_email_marketing_consent_update",
                               f"unsubscribe:{customer_id}:{now.date().isoformat()}",
                               customer_email_marketing_consent_update(
                                   f"gid://shopify/Customer/{row.shopify_id}", "UNSUBSCRIBED"))

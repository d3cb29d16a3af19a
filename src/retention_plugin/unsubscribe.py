"""One-click unsubscribe (RFC 8058) for the links in marketing mail.

GET shows a page with a button, because mail scanners follow links; POST
(the button, or a mail client's ``List-Unsubscribe=One-Click``) records the
withdrawal at once — later marketing is suppressed by the contact policy —
and tells Shopify, so the store's own marketing stops too. The page is in the
customer's language (``messaging/templates/pages/<locale>/unsubscribe.j2``).
"""

from __future__ import annotations

import hmac

from sqlalchemy import select, update

from .context import HookContext
from .messaging.channels import unsubscribe_token
from .platforms.shopify.mutations import customer_email_marketing_consent_update
from .storage import tables as t

def check(app, customer_id: str | None, token: str | None) -> int | None:
    """The customer id when the token is right for it, else None."""
    secret = app.settings.section("email").get("unsubscribe_secret")
    if not secret or not customer_id or not token or not customer_id.isdigit():
        return None
    if not hmac.compare_digest(unsubscribe_token(secret, int(customer_id)), token):
        return None
    return int(customer_id)


def handle(app, method: str, query: dict, accept_language: str | None = None) -> tuple[int, str]:
    """``(status, HTML)`` for ``/r/unsubscribe``; ``accept_language`` is the browser's header."""
    from .messaging.pages import customer_locale, render_page

    cid = check(app, query.get("c") or query.get("customer_id"), query.get("t") or query.get("token"))
    if cid is None:
        return 400, render_page(app.settings, "unsubscribe", accept_language=accept_language, state="invalid")
    with app.engine.connect() as conn:
        locale = customer_locale(conn, cid)
    if method == "GET":
        return 200, render_page(app.settings, "unsubscribe", customer_locale=locale, accept_language=accept_language,
                                state="confirm", customer_id=cid, token=query.get("t") or query.get("token"))
    unsubscribe(app, cid)
    return 200, render_page(app.settings, "unsubscribe", customer_locale=locale, accept_language=accept_language,
                            state="done")


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

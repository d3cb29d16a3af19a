"""One-click unsubscribe (RFC 8058) for the links in marketing mail.

GET shows a page with a button, because mail scanners follow links; POST
(the button, or a mail client's ``List-Unsubscribe=One-Click``) records the
withdrawal at once — later marketing is suppressed by the contact policy —
and tells Shopify, so the store's own marketing stops too.
"""

from __future__ import annotations

import hmac
from html import escape

from sqlalchemy import select, update

from .context import HookContext
from .messaging.channels import unsubscribe_token
from .storage import tables as t

CONSENT_MUTATION = """mutation customerEmailMarketingConsentUpdate($input: CustomerEmailMarketingConsentUpdateInput!) {
  customerEmailMarketingConsentUpdate(input: $input) {
    customer { id }
    userErrors { field message }
  }
}"""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head><body style="font-family:sans-serif;max-width:32em;margin:3em auto">{body}</body></html>"""


def _page(title: str, body: str) -> str:
    return PAGE.format(title=escape(title), body=body)


def check(app, customer_id: str | None, token: str | None) -> int | None:
    """The customer id when the token is right for it, else None."""
    secret = app.settings.section("email").get("unsubscribe_secret")
    if not secret or not customer_id or not token or not customer_id.isdigit():
        return None
    if not hmac.compare_digest(unsubscribe_token(secret, int(customer_id)), token):
        return None
    return int(customer_id)


def handle(app, method: str, query: dict) -> tuple[int, str]:
    cid = check(app, query.get("c") or query.get("customer_id"), query.get("t") or query.get("token"))
    if cid is None:
        return 400, _page("Link not valid", "<p>This unsubscribe link is not valid. "
                          "Please use the link from the most recent email.</p>")
    if method == "GET":
        return 200, _page("Unsubscribe", f"""<form method="post"><p>Stop marketing emails from us?
<br><small>Order, recall and service messages still reach you.</small></p>
<input type="hidden" name="c" value="{cid}"><input type="hidden" name="t" value="{escape(query.get('t') or query.get('token'))}">
<button type="submit">Unsubscribe</button></form>""")
    unsubscribe(app, cid)
    return 200, _page("Unsubscribed", "<p>You will receive no more marketing emails from us.</p>")


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
                               {"query": CONSENT_MUTATION, "variables": {"input": {
                                   "customerId": f"gid://shopify/Customer/{row.shopify_id}",
                                   "emailMarketingConsent": {"marketingState": "UNSUBSCRIBED"}}}})

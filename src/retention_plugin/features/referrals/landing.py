"""``/referrals/r/{code}``: where a referral link lands.

``GET`` checks the code, remembers it in a cookie (``retention_referral``) and
shows a form asking for the visitor's email; ``POST`` (that form) records the
invitation and, when the email is a Shopify customer's, shows their
first-order code at once. A forged or unknown code gets a plain 404 page that
says nothing about why. The page never shows anything about the referrer.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl

import falcon

from ...context import HookContext
from .codes import customer_of
from .engine import ReferralRefused, invite
from .settings import settings_of

PATH = "/referrals/r/{code}"
COOKIE = "retention_referral"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body><main><h1>{title}</h1>{body}</main></body></html>
"""


def _page(resp, status: str, title: str, body: str) -> None:
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.text = _PAGE.format(title=html.escape(title), body=body)


def _form(code: str, offer: str, error: str | None = None, email: str = "") -> str:
    err = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return (f"<p>A friend invited you: {html.escape(offer)} off your first order.</p>{err}"
            f'<form method="post" action="/referrals/r/{html.escape(code)}">'
            f'<label>Your email <input type="email" name="email" required value="{html.escape(email)}"></label>'
            f'<button type="submit">Get my code</button></form>')


class LandingResource:
    def __init__(self, retention):
        self.retention = retention

    def _offer(self) -> str:
        s = settings_of(self.retention.settings)
        if s["discount_amount"] is not None:
            return f"{s['discount_amount']:f}"
        return f"{s['discount_percent'].normalize():f}%"

    def _referrer(self, resp, code: str) -> int | None:
        cid = customer_of(self.retention.settings, code)
        if cid is None:
            _page(resp, falcon.HTTP_404, "Link not valid", "<p>This referral link is not valid.</p>")
        return cid

    def on_get(self, req, resp, code):
        if self._referrer(resp, code) is None:
            return
        days = settings_of(self.retention.settings)["cookie_days"]
        resp.set_cookie(COOKIE, code, max_age=days * 86400, path="/referrals", http_only=True,
                        secure=req.scheme == "https", same_site="Lax")
        _page(resp, falcon.HTTP_200, "You have been invited", _form(code, self._offer()))

    def on_post(self, req, resp, code):
        referrer = self._referrer(resp, code)
        if referrer is None:
            return
        email = None
        if req.content_type and "form-urlencoded" in req.content_type:
            pairs = parse_qsl(req.bounded_stream.read(16 * 1024).decode("utf-8", "replace"), keep_blank_values=True)
            emails = [v for k, v in pairs if k == "email"]
            email = emails[0] if len(emails) == 1 else None
        if not isinstance(email, str) or not _EMAIL.match(email.strip()) or len(email) > 320:
            _page(resp, falcon.HTTP_400, "You have been invited",
                  _form(code, self._offer(), "email: please give a valid email address.",
                        email if isinstance(email, str) else ""))
            return
        try:
            with self.retention.engine.begin() as conn:
                ctx = HookContext(self.retention, conn, now=self.retention.now(), source="referrals")
                _, discount = invite(ctx, referrer, email)
        except ReferralRefused as e:
            _page(resp, falcon.HTTP_409 if e.reason in ("already_invited", "not_first_order") else falcon.HTTP_422,
                  "Referral not possible", f"<p>{html.escape(e.message)}</p>")
            return
        if discount is not None:
            _page(resp, falcon.HTTP_200, "Your code",
                  f"<p>Your code for {html.escape(self._offer())} off your first order:</p>"
                  f'<p><strong class="code">{html.escape(discount["code"])}</strong></p>'
                  f"<p>Valid until {discount['expires_at'].date().isoformat()}.</p>")
        else:
            _page(resp, falcon.HTTP_200, "Almost there",
                  "<p>Create your account in the shop with this email address, then open this link again "
                  "to get your code.</p>")

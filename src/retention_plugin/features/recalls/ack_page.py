"""The page a recall notice's acknowledgment link opens, served at ``/r/ack`` by :class:`AckPage`.

:func:`handle_ack` is the page without the web framework (tests, other servers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

from retention_plugin import links
from retention_plugin.routes import LinkPage, LinkRequest
from retention_plugin.storage.db import read_only

from .ack import verify_ack
from .engine import acknowledge, recall_options, recall_row
from .settings import settings_of
from .texts import message_translations


log = logging.getLogger("retention_plugin.features.recalls")


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
        with read_only(app.engine) as conn:
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
    cfg = settings_of(app.settings)
    try:
        rid, cid = verify_ack(app.settings, token, app.now())
    except links.LinkError as e:
        if e.reason == "not_configured":
            log.error("recall acknowledgment link used, but %s", e.message)
        return AckResponse(400, _page(app, "invalid", accept_language), outcome="invalid")
    if method in ("GET", "HEAD") and cfg["confirm_ack"]:
        # Only asks: no wait for a worker's group (storage.db.read_only).
        with read_only(app.engine) as conn:
            recall = recall_row(conn, rid)
            texts = recall_options(conn, rid).get("texts") or {} if recall is not None else {}
        if recall is None:
            return AckResponse(404, _page(app, "unknown_recall", accept_language, cid), outcome="unknown")
        return AckResponse(200, _page(app, "confirm", accept_language, cid, token=token, recall_title=recall["title"],
                                      translations=message_translations(texts)), outcome="confirm")
    with app.engine.begin() as conn:
        outcome = acknowledge(conn, rid, cid, app.now())
    if outcome == "unknown":
        return AckResponse(404, _page(app, "unknown_case", accept_language, cid), outcome=outcome)
    return AckResponse(200, _page(app, "done", accept_language, cid), outcome=outcome)


class AckPage(LinkPage):
    """``/r/ack``: the token is the ``t`` parameter, from the link or the page's confirm button."""

    def respond(self, link: LinkRequest) -> tuple[int, str]:
        r = handle_ack(self.retention, link.method, link.params.get("t"), link.accept_language)
        return r.status, r.body.decode()

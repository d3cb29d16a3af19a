"""What a plugin hands the web app to add a page: a path and a Falcon resource.

Kept apart from ``web`` so a plugin can name a route without importing the
receiver (and its database driver) at load time. :class:`LinkPage` is the
shared base of the pages customers open from signed links in messages.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl


class Route(NamedTuple):
    """One page or endpoint a plugin adds through ``register_routes``.

    :param path: a Falcon URI template such as ``/admin/customers/{id:int}``.
    :param resource: an object with ``on_get``/``on_post``... responders
        (``on_get_<suffix>`` when ``suffix`` is given).
    :param suffix: lets one resource serve several paths, as in Falcon's ``add_route``.
    """

    path: str
    resource: object
    suffix: str | None = None


class RouteConflict(RuntimeError):
    """Two plugins claimed the same path; the app refuses to start rather than pick one."""


# --- pages opened from signed links in messages ------------------------------------------------


class LinkRequest(NamedTuple):
    """What a link page is asked, with every parameter given at most once.

    :param method: ``GET``, ``HEAD`` (a click, a mail scanner) or ``POST`` (the page's button,
        or a mail client's RFC 8058 one-click unsubscribe).
    :param query: the query string's parameters.
    :param form: a POSTed urlencoded form's fields (empty otherwise).
    :param accept_language: the browser's ``Accept-Language``, for a page whose link names nobody.
    """

    method: str
    query: dict[str, str]
    form: dict[str, str]
    accept_language: str | None

    @property
    def params(self) -> dict[str, str]:
        """Query and form together, the form's value winning (the button re-posts the link's token)."""
        return {**self.query, **self.form}


#: The answer when a link carries one parameter twice. Plain English: we cannot tell whose link it is.
REPEATED_PAGE = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>Link not valid</title></head>"
                 "<body><p>This link is not valid: a part of it appears twice. "
                 "Please open the link exactly as it is in our message.</p></body></html>")
#: Forms on these pages are a few short fields; anything longer is not ours.
MAX_FORM_BYTES = 64 * 1024


class LinkPage:
    """Base for a page a customer opens from a signed link (unsubscribe, recall acknowledgment, rating).

    It does the HTTP part every such page shares, so each plugin writes only
    :meth:`respond`, which verifies the token (:mod:`retention_plugin.links`),
    renders the page in the customer's language and, on POST, records what the
    button confirms. Mail scanners open every link, so a GET should only ask.

    - A parameter given twice (``?t=a&t=b``) is a 400 page before ``respond``
      runs: which value a handler would read is anybody's guess, and a signed
      link carries each once.
    - The answer is never cached or indexed, and the token in the URL is not
      sent on as a ``Referer``.
    """

    def __init__(self, retention):
        self.retention = retention

    def respond(self, link: LinkRequest) -> tuple[int, str]:
        """``(status code, HTML)``. Bad input is a 4xx page, never an exception."""
        raise NotImplementedError

    def on_get(self, req, resp) -> None:
        import falcon

        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Robots-Tag", "noindex")
        resp.set_header("Referrer-Policy", "no-referrer")
        query = _single_valued(parse_qsl(req.query_string, keep_blank_values=True))
        form = _single_valued(_form_pairs(req)) if query is not None else None
        if query is None or form is None:
            resp.status = falcon.HTTP_400
            resp.text = REPEATED_PAGE
            return
        status, html = self.respond(LinkRequest(req.method, query, form, req.get_header("Accept-Language")))
        resp.status = falcon.code_to_http_status(status)
        resp.text = html

    on_post = on_get
    on_head = on_get


def _single_valued(pairs: list[tuple[str, str]]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            return None
        params[key] = value
    return params


def _form_pairs(req) -> list[tuple[str, str]]:
    if req.method != "POST" or "form-urlencoded" not in (req.content_type or ""):
        return []
    return parse_qsl(req.bounded_stream.read(MAX_FORM_BYTES).decode("utf-8", "replace"), keep_blank_values=True)

"""Support for the storefront tests (no tests here): Shopify's app proxy played in front of the real app.

:class:`FakeShopifyProxy` is a WSGI app standing where Shopify stands: a request
to ``/apps/rewards`` is forwarded to ``[storefront] path`` with the query
Shopify adds (``shop``, ``logged_in_customer_id``, ``path_prefix``,
``timestamp``) signed by the documented rule; a ``application/liquid`` answer
is wrapped in a minimal "theme" page, as the shop's theme would wrap it.
Which customer is signed in is the test's choice (``proxy.customer``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from urllib.parse import parse_qsl, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from retention_plugin.testing.apps import SHOP, SHOPIFY_SECRET

PREFIX = "/apps/rewards"
THEME = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Test shop</title></head>"
         "<body><header style=\"padding:12px 16px;background:#1d3557;color:#fff;font:600 18px sans-serif\">"
         "Test shop</header><main>{content}</main></body></html>")


def sign(params: dict, secret: str = SHOPIFY_SECRET) -> str:
    text = "".join(sorted(f"{k}={v}" for k, v in params.items()))
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def proxy_query(customer: int | None, now, *, extra: dict | None = None, shop: str = SHOP,
                secret: str = SHOPIFY_SECRET) -> str:
    params = {**(extra or {}), "shop": shop, "logged_in_customer_id": "" if customer is None else str(customer),
              "path_prefix": PREFIX, "timestamp": str(int(now.timestamp()))}
    return urlencode({**params, "signature": sign(params, secret)})


def form_fields(html: str, reward: str) -> dict:
    """The hidden fields of ``reward``'s redeem form on a page."""
    m = re.search(r'<form class="rp-offer".*?name="reward" value="%s".*?</form>' % re.escape(reward), html, re.S)
    assert m, f"no redeem form for {reward}"
    return dict(re.findall(r'name="(csrf|reward|key)" value="([^"]*)"', m.group(0)))


class FakeShopifyProxy:
    def __init__(self, app, target_path: str, clock):
        self.app = app
        self.target_path = target_path
        self.clock = clock
        self.customer: int | None = None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        visitor = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        env = dict(environ, PATH_INFO=self.target_path + path[len(PREFIX):],
                   QUERY_STRING=proxy_query(self.customer, self.clock.now, extra=visitor))
        captured = {}

        def catch(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(env, catch))
        headers = [(k, v) for k, v in captured["headers"] if k.lower() not in ("content-length", "content-type")]
        kind = dict((k.lower(), v) for k, v in captured["headers"]).get("content-type", "")
        if kind.startswith("application/liquid"):
            body = THEME.format(content=body.decode()).encode()
            kind = "text/html; charset=utf-8"
        start_response(captured["status"], headers + [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]


class _Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 64  # twenty clients at once must not find the backlog full


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serving(wsgi_app):
    """``wsgi_app`` on a free loopback port, one thread per request; yields the base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, server_class=_Threaded, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

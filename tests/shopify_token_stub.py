"""A local stand-in for one shop's token endpoint and GraphQL Admin API, on 127.0.0.1.

Reached through ``[shopify] admin_base_url``. The token endpoint answers the
client credentials grant as Shopify documents it (form fields in, ``access_token``,
``scope``, ``expires_in`` out; ``{"error", "error_description"}`` with a 4xx for a
wrong secret) and numbers its tokens; the GraphQL endpoint answers ``shop { name }``
for a token it issued and 401 for any other or a revoked one. ``hold_first`` keeps
the first token answer back until the test releases it, so a test can start
another worker while a token request is on the wire.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ShopifyTokenStub:
    def __init__(self, client_id: str, client_secret: str, *, expires_in: int = 86399, hold_first: bool = False):
        self.client_id, self.client_secret = client_id, client_secret
        self.expires_in = expires_in
        self.lock = threading.Lock()
        self.token_requests: list[dict] = []
        self.graphql_tokens: list[str | None] = []
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.codes_used: set[str] = set()
        self.scope = "read_orders,write_discounts"
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                stub.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h: BaseHTTPRequestHandler):
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if h.path == "/admin/oauth/access_token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            with self.lock:
                self.token_requests.append(form)
                first = len(self.token_requests) == 1
            if first:
                self.first_arrived.set()
                self.release.wait(60)
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return self.answer(h, 401, {"error": "invalid_client",
                                            "error_description": "Client authentication failed"})
            with self.lock:
                token = f"shpat_stub_{len(self.issued) + 1:04d}"
            if "code" in form and "grant_type" not in form:  # an install's authorization code
                if form["code"] in self.codes_used:
                    return self.answer(h, 400, {"error": "invalid_request",
                                                "error_description": "The authorization code was already used"})
                self.codes_used.add(form["code"])
                with self.lock:
                    self.issued.append(token)
                extra = {"expires_in": 3600, "refresh_token": f"shprt_stub_{len(self.issued):04d}",
                         "refresh_token_expires_in": 7776000} if form.get("expiring") == "1" else {}
                return self.answer(h, 200, {"access_token": token, "scope": self.scope, **extra})
            if form.get("grant_type") != "client_credentials":
                return self.answer(h, 400, {"error": "unsupported_grant_type"})
            with self.lock:
                self.issued.append(token)
            return self.answer(h, 200, {"access_token": token, "scope": self.scope, "expires_in": self.expires_in})
        if h.path.endswith("/graphql.json"):
            token = h.headers.get("X-Shopify-Access-Token")
            with self.lock:
                self.graphql_tokens.append(token)
                known = token in self.issued and token not in self.revoked
            if not known:
                return self.answer(h, 401, {"errors": "[API] Invalid API key or access token (unrecognized login "
                                                      "or wrong password)"})
            return self.answer(h, 200, {"data": {"shop": {"name": "Stub Shop"}}})
        self.answer(h, 404, {"errors": "Not Found"})

    @staticmethod
    def answer(h, status: int, payload: dict):
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


def lock_waiters(db_url: str) -> int:
    """How many PostgreSQL sessions of this database wait for a lock (a worker blocked on the token row)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND wait_event_type = 'Lock'")).scalar()
    finally:
        engine.dispose()

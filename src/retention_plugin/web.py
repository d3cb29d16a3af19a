"""The webhook receiver: verify, store, answer. Nothing else.

Shopify allows five seconds for a whole delivery and Zendesk trips a circuit
breaker on slow or failing endpoints, so the receiver never parses business
content, never calls out and never runs plugin code: it checks the size, the
headers and the signature on the raw bytes, inserts one inbox row (a
duplicate delivery id inserts nothing) and answers.

Pages (the links in messages, the Shopify install) are added by the plugins
that own them through ``register_routes``; this module imports no feature.

Any WSGI server can host ``retention_plugin.web:app``; it reads the
configuration named by ``RETENTION_CONFIG``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from datetime import timezone

import falcon
import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from . import metrics
from . import shop_scope, shops
from .platforms.shopify import verify as shopify_verify
from .platforms.zendesk import verify as zendesk_verify
from .storage import tables as t
from .storage.db import read_only
import sqlite3

from .inbox import FastInserter
from .binding import METRICS_BIND_ENV, split_bind

log = logging.getLogger("retention_plugin.web")

try:
    from psycopg import Error as _PgError
except ImportError:  # PostgreSQL support is an extra
    class _PgError(Exception):
        pass

try:
    from gunicorn.http.errors import ParseException as _ServerParseError
except ImportError:  # hosted by another WSGI server
    class _ServerParseError(Exception):
        pass

# Reading a body can fail on the client's side: a chunked body whose framing is broken, a
# connection cut mid-body. That is a bad request, not our error.
_BODY_READ_ERRORS = (_ServerParseError, OSError, ValueError)

# Shopify sends X-Shopify-* and, on newer deliveries, the same names without
# the X- prefix. The WSGI environ keys are computed once: this runs eight
# times per delivery on the receiver's hot path.
_SHOPIFY_ENV_KEYS: dict[str, tuple[str, str]] = {}


def _header(req: falcon.Request, name: str) -> str | None:
    keys = _SHOPIFY_ENV_KEYS.get(name)
    if keys is None:
        suffix = name.upper().replace("-", "_")
        keys = _SHOPIFY_ENV_KEYS[name] = ("HTTP_X_SHOPIFY_" + suffix, "HTTP_SHOPIFY_" + suffix)
    env = req.env
    return env.get(keys[0]) or env.get(keys[1])


# What a delivery id or event id may look like: printable ASCII without spaces or commas, at most
# the column's 255 characters. A comma means the header came twice (WSGI joins repeats with ","),
# and a longer id would be cut, so two deliveries could share one.
_ID = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,255}")
# Shopify topics: lower-case words joined by "/" (orders/paid, customers/data_request).
_TOPIC = re.compile(r"[a-z0-9_]+(?:/[a-z0-9_]+)+")


def _check_id(name: str, value: str | None) -> None:
    if value and not _ID.fullmatch(value):
        raise Rejected(falcon.HTTP_400, "bad_header",
                       f"{name} must be one printable token of at most 255 characters (was it sent twice?)")


# The two answers a sender gets for a stored delivery, serialized once.
_STORED = json.dumps({"ok": True, "duplicate": False}).encode()
_DUPLICATE = json.dumps({"ok": True, "duplicate": True}).encode()


class Rejected(Exception):
    def __init__(self, status: str, reason: str, detail: str):
        self.status, self.reason, self.detail = status, reason, detail


class Receiver:
    def __init__(self, retention, metrics_bind: str | None = None):
        self.retention = retention
        s = retention.settings
        self.max_body = s.section("server")["max_body_bytes"]
        self.shopify = s.section("shopify")
        self.zendesk = s.section("zendesk")
        self.configured_shops = frozenset(shops.configured(s))
        if metrics_bind is None:
            metrics_bind = s.section("server").get("metrics_bind", "")
        self.metrics_port = split_bind(metrics_bind)[1] if metrics_bind else None
        self.inserter = FastInserter(retention.engine,
                                     synchronous=s.section("database").get("sqlite_synchronous", "full"))
        # Counter children bound once (labels() is a locked dict lookup per call).
        self.received = {p: metrics.RECEIVED.labels(p) for p in ("shopify", "zendesk")}
        self.duplicate = {p: metrics.DUPLICATE.labels(p) for p in ("shopify", "zendesk")}

    # --- shared steps ----------------------------------------------------------

    def _read_body(self, req: falcon.Request) -> bytes:
        length = req.content_length
        if length is not None and length > self.max_body:
            raise Rejected(falcon.HTTP_413, "too_large", f"body of {length} bytes exceeds {self.max_body}")
        try:
            if length is None and req.env.get("wsgi.input_terminated"):
                # Transfer-Encoding: chunked has no Content-Length; the server de-chunks and ends
                # the stream with the body (PEP 3333's input_terminated), so read it, one byte past
                # the limit at most. The signature is then checked on these de-chunked bytes.
                body = req.stream.read(self.max_body + 1)
            elif length is None and "chunked" in (req.get_header("Transfer-Encoding") or "").lower():
                raise Rejected(falcon.HTTP_411, "length_required",
                               "this server cannot read a chunked body here: send Content-Length")
            else:
                body = req.bounded_stream.read(self.max_body + 1)
        except _BODY_READ_ERRORS:
            raise Rejected(falcon.HTTP_400, "bad_body", "the body is malformed or was cut off") from None
        if len(body) > self.max_body:
            raise Rejected(falcon.HTTP_413, "too_large", f"body exceeds {self.max_body} bytes")
        if not body:
            raise Rejected(falcon.HTTP_400, "empty_body", "empty body")
        return body

    @staticmethod
    def _json(body: bytes) -> dict:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Rejected(falcon.HTTP_400, "bad_json", "body is not valid JSON") from None
        except RecursionError:
            raise Rejected(falcon.HTTP_400, "bad_json", "body nests too deeply") from None
        if not isinstance(payload, dict):
            raise Rejected(falcon.HTTP_400, "bad_json", "body must be a JSON object")
        return payload

    @staticmethod
    def _check_json(body: bytes) -> None:
        """``_json`` for a body whose content is the worker's business, not ours.

        orjson validates a delivery several times faster than the standard
        library, which made this check a fifth of the receiver's CPU. It is
        stricter in corners (NaN, lone surrogate escapes, UTF-16), and a signed
        delivery refused with a 400 is retried and then unsubscribed by Shopify,
        so what it refuses is judged by ``_json``, the parser the worker uses.
        """
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            Receiver._json(body)
            return
        if not isinstance(payload, dict):
            raise Rejected(falcon.HTTP_400, "bad_json", "body must be a JSON object")

    def _store(self, platform: str, shop: str, delivery_id: str, topic: str, event_id, headers, body) -> bool:
        return self.inserter.insert(platform=platform, shop=shop, delivery_id=delivery_id, topic=topic, body=body,
                                    now=self.retention.now(), headers=headers, event_id=event_id)

    def _answer(self, resp, platform: str, fn, req):
        try:
            stored = fn(req)
        except Rejected as r:
            metrics.REJECTED.labels(platform, r.reason).inc()
            log.warning("rejected %s webhook from %s: %s", platform, req.remote_addr, r.detail)
            resp.status = r.status
            resp.media = {"error": r.reason, "detail": r.detail}
            return
        except (SQLAlchemyError, sqlite3.Error, _PgError) as e:
            # Storage is down: ask the sender to retry rather than lose the delivery.
            metrics.REJECTED.labels(platform, "storage").inc()
            log.error("could not store %s webhook: %s", platform, type(e).__name__)
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", "30")
            resp.media = {"error": "unavailable", "detail": "storage unavailable, retry later"}
            return
        self.received[platform].inc()
        if not stored:
            self.duplicate[platform].inc()
        resp.status = falcon.HTTP_200
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _STORED if stored else _DUPLICATE

    # --- Shopify -----------------------------------------------------------------

    def on_post_shopify(self, req, resp):
        self._answer(resp, "shopify", self._shopify, req)

    def _shopify(self, req) -> bool:
        body = self._read_body(req)
        hmac_header = _header(req, "Hmac-Sha256")
        if not hmac_header:
            raise Rejected(falcon.HTTP_401, "missing_signature", "X-Shopify-Hmac-Sha256 header is missing")
        shop = _header(req, "Shop-Domain")
        if not shop:
            raise Rejected(falcon.HTTP_400, "missing_header", "X-Shopify-Shop-Domain header is missing")
        domain = shop_scope.normalise(shop)
        topic = _header(req, "Topic")
        if not self.shopify or domain is None or not self._installed(domain, topic or ""):
            raise Rejected(falcon.HTTP_401, "unknown_shop", f"shop {shop[:100]!r} is not installed")
        with shop_scope.scope(domain):  # a shop may have its own [shops."<shop>".shopify] secrets
            secrets = self.retention.settings.section("shopify")["webhook_secrets"]
        if not shopify_verify.verify_webhook(body, hmac_header, secrets):
            raise Rejected(falcon.HTTP_401, "bad_signature", "HMAC does not match the raw body")
        webhook_id = _header(req, "Webhook-Id")
        for name, value in (("X-Shopify-Topic", topic), ("X-Shopify-Webhook-Id", webhook_id)):
            if not value:
                raise Rejected(falcon.HTTP_400, "missing_header", f"{name} header is missing")
        if len(topic) > 128 or not _TOPIC.fullmatch(topic):
            raise Rejected(falcon.HTTP_400, "bad_header", "X-Shopify-Topic is not a topic like orders/paid "
                                                          "(was it sent twice?)")
        event_id = _header(req, "Event-Id")
        _check_id("X-Shopify-Webhook-Id", webhook_id)
        _check_id("X-Shopify-Event-Id", event_id)
        self._check_json(body)
        headers = {k: v for k, v in {
            "topic": topic, "api_version": _header(req, "Api-Version"),
            "triggered_at": _header(req, "Triggered-At"), "event_id": event_id,
        }.items() if v}
        return self._store("shopify", domain, webhook_id, topic, event_id, headers, body)

    def _installed(self, shop: str, topic: str) -> bool:
        """An installed shop (an uninstalled one for the privacy topics); the configured ones need no query."""
        if shop in self.configured_shops:
            return True
        # A read that must not wait for the worker's group: see storage.db.read_only.
        with read_only(self.retention.engine) as conn:
            return shops.accepts(self.retention, conn, shop, topic)

    # --- Zendesk -------------------------------------------------------------------

    def on_post_zendesk(self, req, resp):
        self._answer(resp, "zendesk", self._zendesk, req)

    def on_post_zendesk_shop(self, req, resp, shop):
        """A shop's own Zendesk account (``[shops."<shop>".zendesk]``) posts to ``/webhooks/zendesk/<shop>``,
        checked with that account's secret; its deliveries are that shop's work."""
        self._answer(resp, "zendesk", lambda r: self._zendesk(r, shop), req)

    def _zendesk(self, req, shop: str | None = None) -> bool:
        body = self._read_body(req)
        zendesk, store_as = self.zendesk, None
        if shop is not None:
            domain = shop_scope.normalise(shop)
            # Only a shop with an account of its own: under the shared secret, one shop's Zendesk could
            # otherwise file tickets as another's.
            if domain is None or not shops.own_zendesk(self.retention.settings, domain) or not self._installed(
                    domain, ""):
                raise Rejected(falcon.HTTP_401, "unknown_shop",
                               f"shop {shop[:100]!r} has no Zendesk account of its own here")
            with shop_scope.scope(domain):
                zendesk = self.retention.settings.section("zendesk")
            store_as = domain
        if not zendesk:
            raise Rejected(falcon.HTTP_401, "not_configured", "no [zendesk] section is configured")
        signature = req.get_header("X-Zendesk-Webhook-Signature")
        timestamp = req.get_header("X-Zendesk-Webhook-Signature-Timestamp")
        if not signature or not timestamp:
            raise Rejected(falcon.HTTP_401, "missing_signature",
                           "X-Zendesk-Webhook-Signature and -Signature-Timestamp headers are required")
        when = zendesk_verify.parse_timestamp(timestamp)
        if when is None:
            raise Rejected(falcon.HTTP_401, "bad_timestamp",
                           "signature timestamp is not an ISO 8601 time with a zone offset, in 1970-2200")
        skew = abs((self.retention.now() - when.astimezone(timezone.utc)).total_seconds())
        if skew > zendesk["max_clock_skew_seconds"]:
            raise Rejected(falcon.HTTP_401, "stale_timestamp",
                           f"signature timestamp is {int(skew)} s from now (replay protection)")
        if not zendesk_verify.verify_webhook(body, signature, timestamp, zendesk["webhook_secret"]):
            raise Rejected(falcon.HTTP_401, "bad_signature", "signature does not match timestamp + raw body")
        payload = self._json(body)
        invocation = req.get_header("X-Zendesk-Webhook-Invocation-Id")
        _check_id("X-Zendesk-Webhook-Invocation-Id", invocation)
        body_id = payload.get("id")
        delivery_id = invocation or (str(body_id) if body_id not in (None, "") else None)
        if not delivery_id:
            raise Rejected(falcon.HTTP_400, "missing_id",
                           "neither X-Zendesk-Webhook-Invocation-Id nor a body id to deduplicate on")
        if len(delivery_id) > 255:
            raise Rejected(falcon.HTTP_400, "bad_payload", "the body id is longer than 255 characters")
        topic = payload.get("type") or payload.get("retention_event") or "unknown"
        if not isinstance(topic, str):
            raise Rejected(falcon.HTTP_400, "bad_payload", "type must be a string")
        headers = {k: v for k, v in {
            "webhook_id": req.get_header("X-Zendesk-Webhook-Id"), "invocation_id": invocation,
            "timestamp": timestamp}.items() if v}
        event_id = str(body_id) if body_id not in (None, "") else None
        return self._store("zendesk", store_as or zendesk["subdomain"], delivery_id, topic, event_id, headers, body)

    # --- health and metrics ----------------------------------------------------------

    def on_get_healthz(self, req, resp):
        try:
            with read_only(self.retention.engine) as conn:
                conn.execute(select(func.count()).select_from(t.inbox).where(t.inbox.c.id == -1))
        except Exception as e:  # whatever the database did, the documented answer is a 503
            log.warning("health check failed: %s", type(e).__name__)
            resp.status = falcon.HTTP_503
            resp.media = {"ok": False, "database": type(e).__name__}
            return
        resp.media = {"ok": True, "database": "reachable"}

    def on_get_metrics(self, req, resp):
        # Only on the metrics listener ([server] metrics_bind), never on the webhook port:
        # queue depths and rejection counts are nobody's business on the internet.
        if not self._on_metrics_listener(req.env):
            raise falcon.HTTPNotFound()
        body, content_type = metrics.render(self.retention)
        resp.content_type = content_type
        resp.data = body

    def _on_metrics_listener(self, env) -> bool:
        if self.metrics_port is None:
            return False
        sock = env.get("gunicorn.socket")
        try:
            # The local end of the connection, not SERVER_PORT: gunicorn fills that from
            # the Host header when it listens on a unix socket, and a header is the client's.
            local = sock.getsockname() if sock is not None else (None, int(env.get("SERVER_PORT") or 0))
        except (OSError, ValueError):
            return False
        return isinstance(local, tuple) and len(local) >= 2 and local[1] == self.metrics_port


def add_plugin_routes(api: falcon.App, retention) -> None:
    """Add every plugin's ``register_routes`` pages; two plugins on one path stop the app."""
    from .routes import Route, RouteConflict

    owners: dict[str, str] = {}
    for impl in retention.pm.hook.register_routes.get_hookimpls():
        kwargs = {name: retention for name in impl.argnames if name == "retention"}
        for route in impl.function(**kwargs) or ():
            route = Route(*route)
            key = route.path if route.suffix is None else f"{route.path} ({route.suffix})"
            if route.path in owners:
                raise RouteConflict(f"two plugins claim the path {route.path}: "
                                    f"{owners[route.path]} and {impl.plugin_name}")
            owners[route.path] = impl.plugin_name
            log.debug("route %s from %s", key, impl.plugin_name)
            if route.suffix is None:
                api.add_route(route.path, route.resource)
            else:
                api.add_route(route.path, route.resource, suffix=route.suffix)


def create_app(retention, metrics_bind: str | None = None) -> falcon.App:
    api = falcon.App()
    api.req_options.strip_url_path_trailing_slash = True
    receiver = Receiver(retention, metrics_bind)
    api.add_route("/webhooks/shopify", receiver, suffix="shopify")
    api.add_route(shops.ZENDESK_PATH, receiver, suffix="zendesk")
    api.add_route(shops.ZENDESK_PATH + "/{shop}", receiver, suffix="zendesk_shop")
    api.add_route("/healthz", receiver, suffix="healthz")
    api.add_route("/metrics", receiver, suffix="metrics")
    # Every page beyond the receiver's own comes from a plugin: unsubscribe (messaging), recall
    # acknowledgment (recalls), rating (followups), the Shopify install (install).
    add_plugin_routes(api, retention)

    def on_error(req, resp, ex, params):
        if isinstance(ex, (SQLAlchemyError, sqlite3.Error, _PgError)):
            # Storage is down (a link page's write, say): a retry later will do.
            log.error("storage error on %s %s: %s", req.method, req.path, type(ex).__name__)
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", "30")
            resp.media = {"error": "unavailable", "detail": "storage unavailable, retry later"}
            return
        # Anything unforeseen is our bug, not the sender's: log it without the body.
        log.exception("unhandled error on %s %s", req.method, req.path)
        resp.status = falcon.HTTP_500
        resp.media = {"error": "internal"}

    # Falcon resolves handlers by the most specific class, so its own
    # HTTPError handling (404, 405, malformed headers) still applies.
    api.add_error_handler(Exception, on_error)
    return api


_wsgi = None
_build_lock = threading.Lock()
_failed_until = 0.0
#: After a failed start, answer 503 for this long before trying again (no reconnect storm).
RETRY_BUILD_SECONDS = 5.0
_UNAVAILABLE = json.dumps({"ok": False, "error": "unavailable",
                           "detail": "the receiver cannot start (configuration or database); retry later"}).encode()


def _build():
    from .app import Retention
    from .storage.db import check_schema

    retention = Retention.from_config(os.environ.get("RETENTION_CONFIG"))
    try:
        check_schema(retention.engine)
    except Exception:
        retention.dispose()
        raise
    return create_app(retention, os.environ.get(METRICS_BIND_ENV))


def app(environ, start_response):
    """WSGI entry point configured by RETENTION_CONFIG (built on first request, after fork).

    While it cannot be built (the database is down, the schema is outdated, the
    configuration is broken) every request, /healthz included, gets the
    documented JSON 503 with Retry-After, never the server's HTML 500; it
    tries again every RETRY_BUILD_SECONDS.
    """
    global _wsgi, _failed_until
    if _wsgi is None:
        with _build_lock:
            if _wsgi is None and time.monotonic() >= _failed_until:
                try:
                    _wsgi = _build()
                except Exception as e:
                    _failed_until = time.monotonic() + RETRY_BUILD_SECONDS
                    first_line = (str(e).strip().splitlines() or [""])[0][:300]
                    log.error("receiver cannot start: %s: %s", type(e).__name__, first_line)
        if _wsgi is None:
            start_response("503 Service Unavailable", [("Content-Type", "application/json"),
                                                       ("Content-Length", str(len(_UNAVAILABLE))),
                                                       ("Retry-After", "30")])
            return [_UNAVAILABLE]
    return _wsgi(environ, start_response)

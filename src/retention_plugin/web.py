"""The webhook receiver: verify, store, answer. Nothing else.

Shopify allows five seconds for a whole delivery and Zendesk trips a circuit
breaker on slow or failing endpoints, so the receiver never parses business
content, never calls out and never runs plugin code: it checks the size, the
headers and the signature on the raw bytes, inserts one inbox row (a
duplicate delivery id inserts nothing) and answers.

Any WSGI server can host ``retention_plugin.web:app``; it reads the
configuration named by ``RETENTION_CONFIG``.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import timezone

import falcon
import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from . import metrics
from .platforms.shopify import verify as shopify_verify
from .platforms.zendesk import verify as zendesk_verify
from .storage import tables as t
import sqlite3

from .inbox import FastInserter

log = logging.getLogger("retention_plugin.web")

try:
    from psycopg import Error as _PgError
except ImportError:  # PostgreSQL support is an extra
    class _PgError(Exception):
        pass

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


# The two answers a sender gets for a stored delivery, serialized once.
_STORED = json.dumps({"ok": True, "duplicate": False}).encode()
_DUPLICATE = json.dumps({"ok": True, "duplicate": True}).encode()


class Rejected(Exception):
    def __init__(self, status: str, reason: str, detail: str):
        self.status, self.reason, self.detail = status, reason, detail


class Receiver:
    def __init__(self, retention):
        self.retention = retention
        s = retention.settings
        self.max_body = s.section("server")["max_body_bytes"]
        self.shopify = s.section("shopify")
        self.zendesk = s.section("zendesk")
        self.inserter = FastInserter(retention.engine)
        # Counter children bound once (labels() is a locked dict lookup per call).
        self.received = {p: metrics.RECEIVED.labels(p) for p in ("shopify", "zendesk")}
        self.duplicate = {p: metrics.DUPLICATE.labels(p) for p in ("shopify", "zendesk")}

    # --- shared steps ----------------------------------------------------------

    def _read_body(self, req: falcon.Request) -> bytes:
        length = req.content_length
        if length is not None and length > self.max_body:
            raise Rejected(falcon.HTTP_413, "too_large", f"body of {length} bytes exceeds {self.max_body}")
        body = req.bounded_stream.read(self.max_body + 1)
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
        if not self.shopify or shop.lower() != self.shopify["shop"]:
            raise Rejected(falcon.HTTP_401, "unknown_shop", f"shop {shop[:100]!r} is not configured")
        if not shopify_verify.verify_webhook(body, hmac_header, self.shopify["webhook_secrets"]):
            raise Rejected(falcon.HTTP_401, "bad_signature", "HMAC does not match the raw body")
        topic = _header(req, "Topic")
        webhook_id = _header(req, "Webhook-Id")
        for name, value in (("X-Shopify-Topic", topic), ("X-Shopify-Webhook-Id", webhook_id)):
            if not value:
                raise Rejected(falcon.HTTP_400, "missing_header", f"{name} header is missing")
        self._check_json(body)
        event_id = _header(req, "Event-Id")
        headers = {k: v for k, v in {
            "topic": topic, "api_version": _header(req, "Api-Version"),
            "triggered_at": _header(req, "Triggered-At"), "event_id": event_id,
        }.items() if v}
        return self._store("shopify", shop.lower(), webhook_id, topic, event_id, headers, body)

    # --- Zendesk -------------------------------------------------------------------

    def on_post_zendesk(self, req, resp):
        self._answer(resp, "zendesk", self._zendesk, req)

    def _zendesk(self, req) -> bool:
        body = self._read_body(req)
        if not self.zendesk:
            raise Rejected(falcon.HTTP_401, "not_configured", "no [zendesk] section is configured")
        signature = req.get_header("X-Zendesk-Webhook-Signature")
        timestamp = req.get_header("X-Zendesk-Webhook-Signature-Timestamp")
        if not signature or not timestamp:
            raise Rejected(falcon.HTTP_401, "missing_signature",
                           "X-Zendesk-Webhook-Signature and -Signature-Timestamp headers are required")
        when = zendesk_verify.parse_timestamp(timestamp)
        if when is None:
            raise Rejected(falcon.HTTP_401, "bad_timestamp", "signature timestamp is not an ISO 8601 time")
        skew = abs((self.retention.now() - when.astimezone(timezone.utc)).total_seconds())
        if skew > self.zendesk["max_clock_skew_seconds"]:
            raise Rejected(falcon.HTTP_401, "stale_timestamp",
                           f"signature timestamp is {int(skew)} s from now (replay protection)")
        if not zendesk_verify.verify_webhook(body, signature, timestamp, self.zendesk["webhook_secret"]):
            raise Rejected(falcon.HTTP_401, "bad_signature", "signature does not match timestamp + raw body")
        payload = self._json(body)
        invocation = req.get_header("X-Zendesk-Webhook-Invocation-Id")
        body_id = payload.get("id")
        delivery_id = invocation or (str(body_id) if body_id not in (None, "") else None)
        if not delivery_id:
            raise Rejected(falcon.HTTP_400, "missing_id",
                           "neither X-Zendesk-Webhook-Invocation-Id nor a body id to deduplicate on")
        topic = payload.get("type") or payload.get("retention_event") or "unknown"
        if not isinstance(topic, str):
            raise Rejected(falcon.HTTP_400, "bad_payload", "type must be a string")
        headers = {k: v for k, v in {
            "webhook_id": req.get_header("X-Zendesk-Webhook-Id"), "invocation_id": invocation,
            "timestamp": timestamp}.items() if v}
        event_id = str(body_id) if body_id not in (None, "") else None
        return self._store("zendesk", self.zendesk["subdomain"], delivery_id, topic, event_id, headers, body)

    # --- health and metrics ----------------------------------------------------------

    def on_get_healthz(self, req, resp):
        try:
            with self.retention.engine.connect() as conn:
                conn.execute(select(func.count()).select_from(t.inbox).where(t.inbox.c.id == -1))
        except SQLAlchemyError as e:
            resp.status = falcon.HTTP_503
            resp.media = {"ok": False, "database": type(e).__name__}
            return
        resp.media = {"ok": True, "database": "reachable"}

    # --- links in messages -------------------------------------------------------------
    # Pages a customer opens from a message. Bad or forged tokens get a 400 page, never a 5xx.

    def _link(self, req, resp, handler):
        params = dict(req.params)
        if req.method == "POST" and req.content_type and "form-urlencoded" in req.content_type:
            from urllib.parse import parse_qsl

            params.update(parse_qsl(req.bounded_stream.read(64 * 1024).decode("utf-8", "replace")))
        status, html = handler(self.retention, req.method, params, req.get_header("Accept-Language"))
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = falcon.MEDIA_HTML
        resp.text = html

    def on_get_unsubscribe(self, req, resp):
        from . import unsubscribe

        self._link(req, resp, unsubscribe.handle)

    on_post_unsubscribe = on_get_unsubscribe

    def on_get_ack(self, req, resp):
        from .features import recalls

        def handler(app, method, params, accept_language=None):
            r = recalls.handle_ack(app, method, params.get("t"), accept_language)
            return r.status, r.body.decode()

        self._link(req, resp, handler)

    on_post_ack = on_get_ack

    def on_get_rate(self, req, resp):
        from .features import followups

        query = dict(req.params)
        form = None
        if req.method == "POST":
            from urllib.parse import parse_qs

            form = parse_qs(req.bounded_stream.read(64 * 1024).decode("utf-8", "replace"))
        status, html = followups.handle_rating_link(self.retention, query, method=req.method, form=form,
                                                    accept_language=req.get_header("Accept-Language"))
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Robots-Tag", "noindex")
        resp.text = html

    on_post_rate = on_get_rate
    on_head_rate = on_get_rate

    def on_get_metrics(self, req, resp):
        body, content_type = metrics.render(self.retention)
        resp.content_type = content_type
        resp.data = body


def create_app(retention) -> falcon.App:
    api = falcon.App()
    api.req_options.strip_url_path_trailing_slash = True
    receiver = Receiver(retention)
    api.add_route("/webhooks/shopify", receiver, suffix="shopify")
    api.add_route("/webhooks/zendesk", receiver, suffix="zendesk")
    api.add_route("/healthz", receiver, suffix="healthz")
    api.add_route("/metrics", receiver, suffix="metrics")
    api.add_route("/r/unsubscribe", receiver, suffix="unsubscribe")
    api.add_route("/r/ack", receiver, suffix="ack")
    api.add_route("/r/rate", receiver, suffix="rate")
    # Shopify installs (authorization code grant), in their own module; refuses to start without its settings.
    from .install.shopify_oauth import register_routes

    register_routes(api, retention)

    def on_error(req, resp, ex, params):
        # Anything unforeseen is our bug, not the sender's: log it without the body.
        log.exception("unhandled error on %s %s", req.method, req.path)
        resp.status = falcon.HTTP_500
        resp.media = {"error": "internal"}

    # Falcon resolves handlers by the most specific class, so its own
    # HTTPError handling (404, 405, malformed headers) still applies.
    api.add_error_handler(Exception, on_error)
    return api


_wsgi = None


def app(environ, start_response):
    """WSGI entry point configured by RETENTION_CONFIG (built on first request, after fork)."""
    global _wsgi
    if _wsgi is None:
        from .app import Retention
        from .storage.db import check_schema

        retention = Retention.from_config(os.environ.get("RETENTION_CONFIG"))
        check_schema(retention.engine)
        _wsgi = create_app(retention)
    return _wsgi(environ, start_response)

"""``POST /webhooks/reviews``: a review app (or the shop's own code) reports a product review.

The request is signed like Shopify's webhooks, with a secret of its own
(``[loyalty.earn] reviews_secret``): the header ``X-Retention-Review-Hmac-Sha256``
carries the base64 HMAC-SHA256 of the raw body. The body::

    {"id": "r-1042", "customer": {"shopify_id": 7001} | {"email": "ann@example.com"},
     "product_id": 632910392, "rating": 5}

The points are written while the request waits (one small transaction), under
the key ``loyalty:activity:review:<id>``: a retried or replayed review earns once.
Answers: 200 ``{"ok": true, "points": n, "created": bool}``; 401 a missing or
wrong signature (nothing else is said); 400/422 a body that is not such a review,
naming the field; 404 no such customer; 413 a body over 64 KiB.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re

import falcon
from sqlalchemy import select

from ...context import HookContext
from ...storage import tables as t
from .settings import settings_of

log = logging.getLogger("retention_plugin.loyalty.reviews")

PATH = "/webhooks/reviews"
HEADER = "X-Retention-Review-Hmac-Sha256"
MAX_BODY = 64 * 1024
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def sign(body: bytes, secret: str) -> str:
    """The header value for ``body``: what a sender computes."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _fail(resp, status: str, error: str, detail: str | None = None) -> None:
    resp.status = status
    resp.media = {"ok": False, "error": error, **({"detail": detail} if detail else {})}


class BadReview(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


def parse(payload) -> dict:
    """``{"id", "shopify_id"|"email", "rating", "product_id"}`` of a review body, or BadReview naming the field."""
    if not isinstance(payload, dict):
        raise BadReview("body", "must be a JSON object")
    rid = payload.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if not isinstance(rid, str) or not _REF.match(rid):
        raise BadReview("id", "required: the review's id (1-128 letters, digits, '.', '_', ':' or '-')")
    customer = payload.get("customer")
    if not isinstance(customer, dict):
        raise BadReview("customer", "required: an object with shopify_id or email")
    sid, email = customer.get("shopify_id"), customer.get("email")
    if sid is not None and (isinstance(sid, bool) or not isinstance(sid, int) or sid <= 0):
        raise BadReview("customer.shopify_id", "must be a positive integer")
    if email is not None and (not isinstance(email, str) or "@" not in email or len(email) > 320):
        raise BadReview("customer.email", "must be an email address")
    if sid is None and email is None:
        raise BadReview("customer", "give shopify_id or email")
    rating = payload.get("rating")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
        raise BadReview("rating", "must be an integer from 1 to 5")
    product = payload.get("product_id")
    if product is not None and (isinstance(product, bool) or not isinstance(product, int)):
        raise BadReview("product_id", "must be an integer")
    return {"id": rid, "shopify_id": sid, "email": email.strip().lower() if email else None,
            "rating": rating, "product_id": product}


class ReviewsResource:
    def __init__(self, retention):
        self.retention = retention

    def _secret(self) -> str | None:
        return settings_of(self.retention.settings)["earn"]["reviews_secret"]

    def on_post(self, req, resp):
        secret = self._secret()
        if not secret:
            _fail(resp, falcon.HTTP_404, "not_configured", "reviews are not accepted: [loyalty.earn] reviews_secret")
            return
        length = req.content_length
        if length is not None and length > MAX_BODY:
            _fail(resp, falcon.HTTP_413, "too_large", f"body over {MAX_BODY} bytes")
            return
        body = req.bounded_stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            _fail(resp, falcon.HTTP_413, "too_large", f"body over {MAX_BODY} bytes")
            return
        given = req.get_header(HEADER) or ""
        # The signature is checked on the raw bytes before the body is parsed at all.
        if not hmac.compare_digest(sign(body, secret).encode(), given.strip().encode("ascii", "replace")):
            _fail(resp, falcon.HTTP_401, "unauthorized")
            return
        try:
            review = parse(json.loads(body))
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            if isinstance(e, BadReview):
                _fail(resp, falcon.HTTP_422, "invalid", str(e))
            else:
                _fail(resp, falcon.HTTP_400, "bad_json", "body: not valid JSON")
            return
        from .activities import earn

        C = t.customers
        with self.retention.engine.begin() as conn:
            q = select(C.c.id).where(C.c.merged_into.is_(None), C.c.redacted_at.is_(None))
            q = q.where(C.c.shopify_id == review["shopify_id"]) if review["shopify_id"] is not None \
                else q.where(C.c.email == review["email"])
            cid = conn.execute(q.order_by(C.c.id).limit(1)).scalar()
            if cid is None:
                _fail(resp, falcon.HTTP_404, "unknown_customer", "customer: no such customer here")
                return
            ctx = HookContext(self.retention, conn, now=self.retention.now(), source="reviews")
            result = earn(ctx, cid, "review", review["id"], reason=f"review {review['id']}",
                          details={"rating": review["rating"], "product_id": review["product_id"]})
        log.info("review %s: %s point(s), new=%s", review["id"], result["points"], result["created"])
        resp.media = {"ok": True, "points": result["points"], "created": result["created"]}

"""Zendesk webhook signature check.

Zendesk sends ``X-Zendesk-Webhook-Signature``: base64 HMAC-SHA256, keyed by
the webhook's signing secret (as UTF-8 text, not base64-decoded), over the
``X-Zendesk-Webhook-Signature-Timestamp`` header value immediately followed
by the raw body. This module checks the signature only; how old a timestamp
may be is the receiver's rule (use :func:`parse_timestamp`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime, timezone

from ..schema_fields import parse_iso_datetime


def verify_webhook(body: bytes, signature: str, timestamp: str, secret: str) -> bool:
    """True when ``signature`` is base64 HMAC-SHA256(secret, timestamp + body).

    Never raises: missing or malformed headers, non-base64 signatures and an
    empty secret all give False.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return False
    if not isinstance(signature, str) or not signature.strip():
        return False
    if not isinstance(timestamp, str) or not timestamp:
        return False
    if not isinstance(secret, str) or not secret:
        return False
    try:
        received = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        message = timestamp.encode("utf-8") + bytes(body)
    except UnicodeEncodeError:
        return False
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return hmac.compare_digest(expected, received)


def parse_timestamp(ts: str | None) -> datetime | None:
    """The signature timestamp (e.g. ``2021-03-25T05:09:27Z``) as aware UTC, or None.

    A value without a zone offset is taken as unparseable rather than
    guessed, so the receiver rejects it. So is a time that cannot be
    expressed in UTC (``0001-01-01T00:00:00+14:00`` lies before year 1 there)
    or falls outside 1970-2200: no genuine signature carries one, and the
    header arrives before the signature is checked, so it must never raise.
    """
    if not isinstance(ts, str) or len(ts) > 64:
        return None
    parsed = parse_iso_datetime(ts)
    if parsed is None or parsed.tzinfo is None:
        return None
    try:
        when = parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None
    if not _EARLIEST <= when < _LATEST:
        return None
    return when


_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)

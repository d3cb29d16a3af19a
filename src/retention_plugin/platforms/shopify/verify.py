"""Shopify signature checks: webhook HMAC and OAuth/app-proxy query HMAC.

Both are HMAC-SHA256 under the app's client secret. Webhooks sign the raw
request body and send the digest base64-encoded in ``X-Shopify-Hmac-Sha256``;
OAuth redirects sign the other query parameters, sorted, and send the digest
hex-encoded as ``hmac``.

Note that the HMAC covers the body only: ``X-Shopify-Shop-Domain`` and
``X-Shopify-Topic`` are *not* authenticated by it. The payload parser
cross-checks the shop where the body names one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Mapping, Sequence

_EXCLUDED_QUERY_KEYS = frozenset({"hmac", "signature"})


def _key(secret: object) -> bytes | None:
    """The secret as HMAC key bytes, or None for anything unusable (never raises)."""
    try:
        if isinstance(secret, str):
            return secret.encode("utf-8") or None
        if isinstance(secret, (bytes, bytearray)):
            return bytes(secret) or None
    except UnicodeEncodeError:
        return None
    return None


def verify_webhook(body: bytes, hmac_header: str, secrets: Sequence[str]) -> bool:
    """True when ``hmac_header`` is the base64 HMAC-SHA256 of ``body`` under any secret.

    Pass the raw request bytes exactly as received: a re-serialized JSON body
    does not verify. Several secrets allow rotation (the old and the new
    client secret both accepted for a while). Never raises: a missing,
    empty or non-base64 header, or no usable secret, gives False.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return False
    if not isinstance(hmac_header, str) or not hmac_header.strip():
        return False
    try:
        # validate=True refuses stray characters instead of skipping them.
        received = base64.b64decode(hmac_header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(received) != hashlib.sha256().digest_size:
        return False
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]  # a lone secret is a common slip; accept it
    matched = False
    try:
        candidates = [k for k in map(_key, secrets or ()) if k]
    except TypeError:  # secrets is not iterable
        return False
    for key in candidates:
        expected = hmac.digest(key, body, "sha256")
        # No early exit: every configured secret costs the same time.
        matched |= hmac.compare_digest(expected, received)
    return matched


def verify_oauth_query(params: Mapping[str, str], secret: str) -> bool:
    """True when ``params["hmac"]`` is the hex HMAC-SHA256 of the other parameters.

    The signed message is ``k=v`` pairs sorted by key and joined with ``&``,
    leaving out ``hmac`` and ``signature``. ``params`` holds decoded values,
    as a web framework's query dict does. Never raises.
    """
    try:
        received = params.get("hmac") if params else None
        key = _key(secret)
        if not isinstance(received, str) or not received.strip() or key is None:
            return False
        message = "&".join(
            f"{key}={value}"
            for key, value in sorted(params.items())
            if key not in _EXCLUDED_QUERY_KEYS
        )
        expected = hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, received.strip().lower())
    except (AttributeError, TypeError, ValueError):
        return False

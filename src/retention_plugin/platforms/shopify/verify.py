"""Shopify signature checks: webhook HMAC and OAuth/app-proxy query HMAC.

Both are HMAC-SHA256 under the app's client secret. Webhooks sign the raw
request body and send the digest base64-encoded in ``X-Shopify-Hmac-Sha256``;
OAuth and install redirects sign the other query parameters, escaped and
sorted by Shopify's rules (:func:`oauth_query_message`), and send the digest
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
import json
import re
from typing import Mapping, Sequence
from urllib.parse import parse_qsl

_EXCLUDED_QUERY_KEYS = frozenset({"hmac", "signature"})
_HEX_DIGEST = re.compile(r"[0-9A-Fa-f]{64}")


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


def _query_pairs(params) -> list[tuple[str, str]] | None:
    """``params`` as (key, value) pairs in order, or None when it is not a query."""
    if isinstance(params, str):
        return parse_qsl(params[1:] if params.startswith("?") else params, keep_blank_values=True)
    pairs: list[tuple[str, str]] = []
    items = params.items() if isinstance(params, Mapping) else params
    for key, value in items:
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not isinstance(key, str) or not isinstance(v, str):
                return None
            pairs.append((key, v))
    return pairs


def oauth_query_message(params) -> str | None:
    """The text Shopify signs for an OAuth/install redirect's query, or None when it is ambiguous.

    ``params`` is the raw query string, a mapping of decoded values (a list
    where a key repeats, as web frameworks give them) or (key, value) pairs.
    Shopify's rules (its OAuth "HMAC validation" documentation and its own
    Python library's ``calculate_hmac``):

    - ``hmac`` (the signature itself) and ``signature`` (the retired MD5 one) are left out;
    - an array parameter ``ids[]=1&ids[]=2`` is signed as one pair ``ids=["1", "2"]``: the
      name without ``[]``, the values as a JSON list of strings (one value is still a list);
    - in keys and values ``%`` becomes ``%25`` and ``&`` becomes ``%26``; in keys ``=``
      also becomes ``%3D``; nothing else is encoded;
    - the ``key=value`` strings are sorted and joined with ``&``.

    Escaping makes the message spell exactly one set of parameters. Two
    inputs could still spell the same one, and those are refused here so that
    different parameter sets never share a signature: a key repeated without
    ``[]``, the same name both with and without ``[]``, and a plain value that
    reads like an array (``ids=["1"]`` would otherwise pass for ``ids[]=1``).
    """
    try:
        pairs = _query_pairs(params)
    except (TypeError, ValueError, AttributeError):
        return None
    if pairs is None:
        return None
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        if key not in _EXCLUDED_QUERY_KEYS:
            grouped.setdefault(key, []).append(value)
    signed: dict[str, str] = {}
    for key, values in grouped.items():
        if key.endswith("[]"):
            name, value = key[:-2], json.dumps(values)
        elif len(values) > 1 or (values[0].startswith("[") and values[0].endswith("]")):
            return None
        else:
            name, value = key, values[0]
        if name in signed:
            return None
        signed[name] = value
    return "&".join(sorted(
        _escape(name).replace("=", "%3D") + "=" + _escape(value) for name, value in signed.items()))


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("&", "%26")


def verify_oauth_query(params, secret: str | Sequence[str]) -> bool:
    """True when the query's ``hmac`` is the hex HMAC-SHA256 of :func:`oauth_query_message`.

    ``secret`` is the app's client secret, or several while it is rotated.
    The timestamp's age is the caller's rule. Never raises: a missing or
    repeated ``hmac``, an ambiguous query or no usable secret gives False.
    """
    try:
        pairs = _query_pairs(params) if params is not None else None
        received = [v for k, v in pairs if k == "hmac"] if pairs is not None else []
        if len(received) != 1 or not _HEX_DIGEST.fullmatch(received[0].strip()):
            return False
        message = oauth_query_message(pairs)
        if message is None:
            return False
        if isinstance(secret, (str, bytes)):
            secret = [secret]
        keys = [k for k in map(_key, secret or ()) if k]
    except (AttributeError, TypeError, ValueError):
        return False
    wanted = received[0].strip().lower().encode("ascii")
    matched = False
    for key in keys:
        expected = hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest().encode("ascii")
        matched |= hmac.compare_digest(expected, wanted)
    return matched

"""Shopify's app proxy: the signed query it adds to every storefront request it forwards.

Shopify forwards ``https://<shop>/<prefix>/<subpath>/...`` to the app's proxy
URL and appends ``shop``, ``logged_in_customer_id`` (blank for a visitor who
is not signed in), ``path_prefix``, ``timestamp`` and ``signature``. Its rule
("Authenticate app proxies"): leave ``signature`` out; for every other key,
``key=value`` with the values of a repeated key joined by ``,``; sort those
strings; concatenate them with no separator; the signature is the hex
HMAC-SHA256 of that text under the app's client secret.

With no separator the text does not spell one query: ``a=xab=y`` is both
``{a: "x", ab: "y"}`` and ``{a: "xa", b: "y"}``, and ``extra=1,2`` is both one
value and two. A signed query could therefore be cut again into different
parameters under the same signature, a customer id moved from one key's
value into ``logged_in_customer_id``. :func:`verify_proxy` closes that by
accepting only the keys it is told about, each value strictly shaped
(digits, the configured shop and prefix exactly, a short list of words) and
never repeated: with those, the signed text has exactly one reading.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl

#: What Shopify adds to every forwarded request.
SHOPIFY_KEYS = ("shop", "logged_in_customer_id", "path_prefix", "timestamp")
#: Proxied requests older (or further in the future) than this are refused: a copied link stops working.
MAX_AGE_SECONDS = 300
_HEX = re.compile(r"^[0-9a-f]{64}$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")


def proxy_message(params) -> str:
    """The text Shopify signs: ``key=v1,v2`` for each key but ``signature``, sorted, concatenated."""
    grouped: dict[str, list[str]] = {}
    for key, value in _pairs(params):
        if key != "signature":
            grouped.setdefault(key, []).append(value)
    return "".join(sorted(f"{k}={','.join(v)}" for k, v in grouped.items()))


def sign_proxy(params, secret: str) -> str:
    """The ``signature`` Shopify would send for ``params`` (tests and local previews sign with it)."""
    return hmac.new(secret.encode("utf-8"), proxy_message(params).encode("utf-8"), hashlib.sha256).hexdigest()


def _pairs(params) -> list[tuple[str, str]]:
    if isinstance(params, str):
        return parse_qsl(params[1:] if params.startswith("?") else params, keep_blank_values=True)
    if isinstance(params, Mapping):
        out = []
        for k, v in params.items():
            for one in (v if isinstance(v, (list, tuple)) else [v]):
                out.append((k, one))
        return out
    return list(params)


@dataclass(frozen=True)
class ProxyRequest:
    """A verified proxied request: who asked, on which shop, through which storefront path."""

    shop: str
    customer_id: int | None  # the Shopify customer id; None for a visitor not signed in
    path_prefix: str
    timestamp: datetime
    extra: Mapping[str, str]


class ProxyRejected(Exception):
    """Why a proxied request was refused; for the log only, never for the visitor (who gets a bare 401)."""


def verify_proxy(query: str | Iterable[tuple[str, str]], secrets: Sequence[str], *, shop: str,
                 path_prefix: str, now: datetime, extra: Mapping[str, Callable[[str], bool]] | None = None,
                 max_age: int = MAX_AGE_SECONDS) -> ProxyRequest:
    """Check a proxied query; returns what it says or raises :class:`ProxyRejected`.

    :param secrets: the app's client secret (several while it is rotated).
    :param shop: the one shop this installation serves; any other is refused.
    :param path_prefix: ``/<prefix>/<subpath>`` as configured (``/apps/rewards``).
    :param extra: the page's own query keys, each with a check its value must pass;
        any other key is refused (see the module's docstring for why).
    """
    try:
        pairs = _pairs(query)
    except ValueError:
        raise ProxyRejected("unreadable query") from None
    seen: dict[str, str] = {}
    allowed = set(SHOPIFY_KEYS) | {"signature"} | set(extra or {})
    for key, value in pairs:
        if key not in allowed:
            raise ProxyRejected(f"unexpected parameter {key[:40]!r}")
        if key in seen:
            raise ProxyRejected(f"repeated parameter {key!r}")
        seen[key] = value
    missing = [k for k in (*SHOPIFY_KEYS, "signature") if k not in seen]
    if missing:
        raise ProxyRejected(f"missing {', '.join(missing)}")
    signature = seen["signature"].strip().lower()
    if not _HEX.match(signature):
        raise ProxyRejected("signature is not a hex SHA-256 digest")
    message = proxy_message(pairs).encode("utf-8")
    keys = [s.encode("utf-8") for s in (secrets or ()) if isinstance(s, str) and s]
    if not keys:
        raise ProxyRejected("no client secret configured")
    matched = False
    for key in keys:
        # Every secret is tried, so the time taken does not say which one matched.
        matched |= hmac.compare_digest(hmac.new(key, message, hashlib.sha256).hexdigest(), signature)
    if not matched:
        raise ProxyRejected("signature does not match")
    # Checked after the signature, and strictly: these shapes are what make the signed text unambiguous.
    if seen["shop"] != shop:
        raise ProxyRejected("signed for another shop")
    if seen["path_prefix"] != path_prefix:
        raise ProxyRejected("signed for another proxy path")
    if not _DIGITS.match(seen["timestamp"]):
        raise ProxyRejected("timestamp is not a number")
    cid = seen["logged_in_customer_id"]
    if cid and not _DIGITS.match(cid):
        raise ProxyRejected("logged_in_customer_id is not a number")
    for key, check in (extra or {}).items():
        if key in seen and not check(seen[key]):
            raise ProxyRejected(f"bad value for {key}")
    when = datetime.fromtimestamp(int(seen["timestamp"]), tz=timezone.utc)
    if abs((now - when).total_seconds()) > max_age:
        raise ProxyRejected("stale timestamp")
    return ProxyRequest(shop=shop, customer_id=int(cid) if cid else None, path_prefix=path_prefix,
                        timestamp=when, extra={k: v for k, v in seen.items() if k in (extra or {})})

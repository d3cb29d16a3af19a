"""Signed links: HMAC-signed tokens with an expiry, for every link in customer messages.

Every link a message carries that does something when clicked is made and
checked here, each with its own ``purpose`` bound into the signature, so a
token made for one purpose is refused for any other:

- ``rate``: a follow-up's rating buttons, ``{base_url}/r/rate?t=...&a=good``,
  payload ``{"o": order id, "c": customer id}`` (the followups plugin);
- ``recall_ack``: a recall notice's acknowledgment link, ``{base_url}/r/ack?t=...``,
  payload ``{"r": recall id, "c": customer id}`` (the recalls plugin);
- ``unsubscribe``: the ``{token}`` of ``[email] unsubscribe_url``, payload
  ``{"c": customer id}`` (messaging).

::

    token = sign("rate", {"o": 1001, "c": 7}, secret, expires_at=now + timedelta(days=60))
    payload = verify("rate", token, secret, now)   # {"o": 1001, "c": 7}, or raises LinkError

The token is ``v1.<body>.<mac>``: ``body`` is base64url of the compact JSON
``{"p": purpose, "e": expiry (Unix seconds), "d": payload}`` and ``mac`` the
base64url HMAC-SHA256 of ``"retention-link:v1:" + body``. The payload is
readable by whoever holds the link (it is signed, not encrypted): put ids in
it, never an email address or anything secret.

Configuration (``[links]``, registered by this module as the built-in plugin
``links``)::

    [links]
    secret = "${RETENTION_LINK_SECRET}"          # or ["${NEW}", "${OLD}"] while rotating
    base_url = "https://retention.example.com"   # where `retention serve` is reachable

``secret`` signs every link; ``base_url`` is where rating and recall links
point (an unsubscribe link's address is ``[email] unsubscribe_url``). With a
list of secrets the first signs and every one verifies, so a secret is rotated
without breaking the links already in inboxes.

Links sent before there was one scheme (a recall acknowledgment
``<recall>.<customer>.<mac>`` signed with ``[recalls] signing_secret``; an
unsubscribe token, the customer id's HMAC with ``[email] unsubscribe_secret``)
still verify through :func:`verify_legacy`, as long as those secrets stay
configured. Nothing new is signed with them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence
from urllib.parse import urlencode

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from . import hookimpl
from .config import section_or_defaults

SECTION = "links"
VERSION = "v1"
_DOMAIN = b"retention-link:v1:"
#: Longer tokens are refused before any decoding (a link's token is ~150 characters).
MAX_TOKEN_CHARS = 2048
MIN_SECRET_CHARS = 16


class LinkError(ValueError):
    """A token that is not valid; ``reason`` is one of ``missing``, ``malformed``,
    ``signature``, ``purpose``, ``expired``, ``not_configured``. The message is
    safe to show to the person who clicked (it never contains the secret)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class LinkExpired(LinkError):
    def __init__(self, expired_at: datetime):
        super().__init__("expired", f"this link expired on {expired_at.date().isoformat()}")
        self.expired_at = expired_at


# --- tokens --------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise binascii.Error("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secrets(secret: str | Sequence[str] | None) -> list[str]:
    if secret is None:
        return []
    if isinstance(secret, str):
        return [secret] if secret else []
    return [s for s in secret if isinstance(s, str) and s]


def _mac(secret: str, body: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _DOMAIN + body.encode("ascii"), hashlib.sha256).digest()


def _check_purpose(purpose: str) -> None:
    if not isinstance(purpose, str) or not purpose or len(purpose) > 64:
        raise ValueError(f"purpose must be a non-empty string of at most 64 characters, got {purpose!r}")


def _epoch(when: datetime, name: str) -> int:
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime, got {when!r}")
    return int(when.timestamp())


def sign(purpose: str, payload: Mapping[str, Any], secret: str | Sequence[str], expires_at: datetime) -> str:
    """A token for ``payload`` (a JSON-serialisable mapping), valid for ``purpose`` until ``expires_at``.

    :param secret: the key, or a list whose first entry signs.
    :raises ValueError: no secret, a naive ``expires_at``, or a payload JSON cannot carry.
    """
    _check_purpose(purpose)
    keys = _secrets(secret)
    if not keys:
        raise LinkError("not_configured", "no link secret is configured ([links] secret)")
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload must be a mapping, got {type(payload).__name__}")
    try:
        body_json = json.dumps({"p": purpose, "e": _epoch(expires_at, "expires_at"), "d": dict(payload)},
                               separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"payload must be plain JSON (str, int, bool, None, lists, dicts): {e}") from None
    body = _b64(body_json.encode("utf-8"))
    return f"{VERSION}.{body}.{_b64(_mac(keys[0], body))}"


def verify(purpose: str, token: str | None, secret: str | Sequence[str], now: datetime) -> dict:
    """The payload of a genuine, unexpired token made for ``purpose``.

    The signature is checked (constant-time, against every configured secret)
    before anything in the token is trusted.

    :raises LinkExpired: genuine but past its expiry.
    :raises LinkError: anything else wrong, with ``reason`` and a message fit for the clicker.
    """
    _check_purpose(purpose)
    keys = _secrets(secret)
    if not keys:
        raise LinkError("not_configured", "links cannot be checked: no [links] secret is configured")
    if token is None or (isinstance(token, str) and not token.strip()):
        raise LinkError("missing", "the link has no token (was it cut off?)")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise LinkError("malformed", "the link is not one of ours (malformed token)")
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise LinkError("malformed", "the link is not one of ours (malformed token; was it cut off?)")
    _, body, mac_text = parts
    try:
        mac = _unb64(mac_text)
        _unb64(body)
    except (binascii.Error, ValueError):
        raise LinkError("malformed", "the link is not one of ours (malformed token; was it cut off?)") from None
    if not any(hmac.compare_digest(_mac(k, body), mac) for k in keys):
        raise LinkError("signature", "the link is not valid (its signature does not match; was it changed?)")
    try:
        data = json.loads(_unb64(body).decode("utf-8"))
        got_purpose, expiry, payload = data["p"], data["e"], data["d"]
        if not isinstance(expiry, int) or not isinstance(payload, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):  # signed by us, yet unreadable: a bug, not an attack
        raise LinkError("malformed", "the link is not readable (malformed token)") from None
    if got_purpose != purpose:
        raise LinkError("purpose", f"this link is for {got_purpose!r}, not {purpose!r}")
    expires_at = datetime.fromtimestamp(expiry, tz=timezone.utc)
    if _epoch(now, "now") >= expiry:
        raise LinkExpired(expires_at)
    return payload


# --- configuration ------------------------------------------------------------------------


class SecretField(fields.Field):
    """A secret, or a list of secrets (the first signs, all verify)."""

    def _deserialize(self, value, attr, data, **kwargs):
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise ValidationError("expected a string, or a list of strings (newest first)")
        for v in values:
            if len(v) < MIN_SECRET_CHARS:
                raise ValidationError(f"use at least {MIN_SECRET_CHARS} characters (e.g. `openssl rand -hex 32`)")
        return list(values)


class LinksSchema(Schema):
    class Meta:
        unknown = RAISE

    #: HMAC key(s); named ``secret`` so `retention config check` masks it.
    secret = SecretField(load_default=None)
    #: Public base URL of `retention serve` (links are {base_url}/r/...).
    base_url = fields.String(load_default=None, validate=validate.Regexp(
        r"^https?://[^\s/?#]+(/[^\s?#]*)?$", error="expected a base URL like https://retention.example.com"))


@hookimpl
def register_config_sections(register):
    register(SECTION, LinksSchema())


def settings_of(settings) -> dict:
    """The loaded ``[links]`` section (defaults when absent or this plugin is disabled)."""
    return section_or_defaults(settings, SECTION, LinksSchema)


def configured(settings) -> str | None:
    """None when links can be made, else what is missing, worded for the admin."""
    s = settings_of(settings)
    missing = [k for k in ("secret", "base_url") if not s.get(k)]
    if missing:
        return (f"[links] {missing[0]} is not set: signed links (rating, recall acknowledgment) "
                f"cannot be made")
    return None


def make_url(settings, path: str, purpose: str, payload: Mapping[str, Any], expires_at: datetime,
             **params: Any) -> str:
    """``{base_url}{path}?t=<token>&<params>`` with a token signed by ``[links] secret``.

    :raises LinkError: (``not_configured``) when ``[links]`` lacks ``secret`` or ``base_url``.
    """
    problem = configured(settings)
    if problem:
        raise LinkError("not_configured", problem)
    s = settings_of(settings)
    token = sign(purpose, payload, s["secret"], expires_at)
    query = urlencode({"t": token, **{k: v for k, v in params.items() if v is not None}})
    return f"{s['base_url'].rstrip('/')}/{path.lstrip('/')}?{query}"


def secret_of(settings) -> str | list[str] | None:
    """``[links] secret`` from the ``Settings`` (or what has them), a plain mapping of sections, or None."""
    settings = getattr(settings, "settings", settings)
    if settings is None:
        return None
    if hasattr(settings, "section"):
        return settings_of(settings).get("secret")
    if isinstance(settings, Mapping):
        return (settings.get(SECTION) or {}).get("secret")
    return None


def sign_with_settings(settings, purpose: str, payload: Mapping[str, Any], expires_at: datetime) -> str:
    """:func:`sign` with ``[links] secret``.

    :raises LinkError: (``not_configured``) without ``[links] secret``.
    """
    return sign(purpose, payload, settings_of(settings).get("secret"), expires_at)


def verify_with_settings(settings, purpose: str, token: str | None, now: datetime, *,
                         legacy_secret: str | None = None, customer_id: str | None = None) -> dict:
    """:func:`verify` with ``[links] secret`` (every configured secret).

    With ``legacy_secret`` a token of the scheme this purpose had before
    (see :func:`verify_legacy`) is accepted too, checked with that secret.
    """
    try:
        return verify(purpose, token, settings_of(settings).get("secret"), now)
    except LinkExpired:
        raise
    except LinkError as e:
        if legacy_secret and e.reason in ("malformed", "not_configured"):
            payload = verify_legacy(purpose, token, legacy_secret, customer_id=customer_id)
            if payload is not None:
                return payload
        raise


# --- links sent before there was one scheme -------------------------------------------------------
# Recall notices and marketing mail already in inboxes carry these; they never expire, as they never did.

_LEGACY_ACK = re.compile(r"^(\d{1,18})\.(\d{1,18})\.([A-Za-z0-9_-]{24})$")
_LEGACY_UNSUBSCRIBE = re.compile(r"^[0-9a-f]{32}$")


def _legacy_ack_mac(secret: str, recall_id: int, customer_id: int) -> str:
    mac = hmac.new(secret.encode(), f"retention-recall-ack:{recall_id}:{customer_id}".encode(), hashlib.sha256)
    return _b64(mac.digest()[:18])


def _legacy_unsubscribe_mac(secret: str, customer_id: int) -> str:
    return hmac.new(secret.encode(), f"unsubscribe:{customer_id}".encode(), hashlib.sha256).hexdigest()[:32]


def verify_legacy(purpose: str, token: str | None, secret: str | None, *,
                  customer_id: str | None = None) -> dict | None:
    """The payload, in today's shape, of a genuine token of a scheme that came before; else None.

    - ``recall_ack``: ``<recall id>.<customer id>.<mac>`` (``[recalls] signing_secret``) -> ``{"r", "c"}``.
    - ``unsubscribe``: 32 hex digits of the customer id's HMAC (``[email] unsubscribe_secret``); the
      id is the link's own ``c`` parameter, given as ``customer_id`` -> ``{"c"}``.

    Checked in constant time; any other purpose has no legacy scheme.
    """
    if not secret or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    token = token.strip()
    if purpose == "recall_ack":
        match = _LEGACY_ACK.match(token)
        if not match:
            return None
        rid, cid = int(match.group(1)), int(match.group(2))
        if hmac.compare_digest(_legacy_ack_mac(secret, rid, cid), match.group(3)):
            return {"r": rid, "c": cid}
        return None
    if purpose == "unsubscribe":
        if not _LEGACY_UNSUBSCRIBE.match(token) or not customer_id or not str(customer_id).isdigit():
            return None
        cid = int(customer_id)
        if len(str(customer_id)) <= 18 and hmac.compare_digest(_legacy_unsubscribe_mac(secret, cid), token):
            return {"c": cid}
        return None
    return None

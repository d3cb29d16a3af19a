"""Signed links: HMAC-signed tokens with an expiry, for links in customer messages.

A follow-up's rating buttons, a recall notice's acknowledgment link and
anything like them carry a token that proves *we* made the link, says what it
is for (``purpose``) and until when it is valid::

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

With a list of secrets the first signs and every one verifies, so a secret is
rotated without breaking the links already in inboxes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
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
        return f"[links] {missing[0]} is not set: signed links (rating, acknowledgment) cannot be made"
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


def verify_with_settings(settings, purpose: str, token: str | None, now: datetime) -> dict:
    """:func:`verify` with ``[links] secret`` (every configured secret)."""
    return verify(purpose, token, settings_of(settings).get("secret"), now)

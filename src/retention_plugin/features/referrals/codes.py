"""Referral codes: short, permanent, signed with ``[links] secret``.

A code is ``<customer id in base 36>-<12 base32 characters of HMAC-SHA256>``
over a domain string, so it cannot be forged or turned into another
customer's, and it never names the customer in words. Codes do not expire
(a link shared on a blog should keep working); rotating ``[links] secret``
keeps old codes valid while the old secret stays in the list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Mapping

from ... import links

_DOMAIN = b"retention-referral:v1:"
_CODE = re.compile(r"^([0-9a-z]{1,13})-([A-Z2-7]{12})$")


def _mac(secret: str, customer_id: int) -> str:
    digest = hmac.new(secret.encode(), _DOMAIN + str(customer_id).encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:12]


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _secrets(settings) -> list[str]:
    return list(links.settings_of(settings).get("secret") or [])


def code_for(settings, customer_id: int) -> str:
    """The customer's referral code.

    :raises links.LinkError: (``not_configured``) without ``[links] secret``.
    """
    keys = _secrets(settings)
    if not keys:
        raise links.LinkError("not_configured", "no [links] secret is configured: referral links cannot be made")
    return f"{_b36(customer_id)}-{_mac(keys[0], customer_id)}"


def customer_of(settings, code: str | None) -> int | None:
    """The referrer's customer id of a genuine code, else None (checked in constant time per secret)."""
    if not code or len(code) > 40:
        return None
    m = _CODE.match(code)
    if not m:
        return None
    cid = int(m.group(1), 36)
    ok = False
    for key in _secrets(settings):
        ok |= hmac.compare_digest(_mac(key, cid), m.group(2))
    return cid if ok else None


def referral_url(settings, customer: Mapping) -> str:
    """``{[links] base_url}/referrals/r/<code>``: the link a customer shares.

    :raises links.LinkError: (``not_configured``) without ``[links] secret`` and ``base_url``.
    """
    problem = links.configured(settings)
    if problem:
        raise links.LinkError("not_configured", problem)
    base = links.settings_of(settings)["base_url"].rstrip("/")
    return f"{base}/referrals/r/{code_for(settings, int(customer['id']))}"

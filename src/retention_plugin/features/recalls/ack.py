"""The acknowledgment link in a recall notice: ``<recall id>.<customer id>.<HMAC>``, signed with
``[recalls] signing_secret`` and checked in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Mapping


def _sig(secret: str, recall_id: int, customer_id: int) -> str:
    mac = hmac.new(secret.encode(), f"retention-recall-ack:{recall_id}:{customer_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode().rstrip("=")


def sign_ack(secret: str, recall_id: int, customer_id: int) -> str:
    """The token in a recall notice's acknowledgment link: ``<recall id>.<customer id>.<HMAC>``."""
    if not secret:
        raise ValueError("no signing secret")
    return f"{int(recall_id)}.{int(customer_id)}.{_sig(secret, int(recall_id), int(customer_id))}"


_TOKEN = re.compile(r"^(\d{1,18})\.(\d{1,18})\.([A-Za-z0-9_-]{24})$")


def verify_ack(secret: str, token: str | None) -> tuple[int, int] | None:
    """``(recall_id, customer_id)`` when the token is genuine, else None (constant-time check)."""
    if not secret or not isinstance(token, str):
        return None
    match = _TOKEN.match(token.strip())
    if not match:
        return None
    rid, cid = int(match.group(1)), int(match.group(2))
    if not hmac.compare_digest(_sig(secret, rid, cid), match.group(3)):
        return None
    return rid, cid


def ack_url(cfg: Mapping, recall_id: int, customer_id: int) -> str:
    return f"{cfg['public_url'].rstrip('/')}/r/ack?t={sign_ack(cfg['signing_secret'], recall_id, customer_id)}"

"""The signing code of the links sent before there was one signed-link scheme, copied as it was.

Links already in inboxes were made by exactly these functions (``features/recalls/ack.py``'s
``sign_ack`` and ``messaging/channels.py``'s ``unsubscribe_token``); tests make tokens with them to
prove such links keep working. Do not "fix" or share code with the product here: the point is that
this is the old code, frozen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def _sig(secret: str, recall_id: int, customer_id: int) -> str:
    mac = hmac.new(secret.encode(), f"retention-recall-ack:{recall_id}:{customer_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode().rstrip("=")


def sign_ack(secret: str, recall_id: int, customer_id: int) -> str:
    """The token in a recall notice's acknowledgment link: ``<recall id>.<customer id>.<HMAC>``."""
    if not secret:
        raise ValueError("no signing secret")
    return f"{int(recall_id)}.{int(customer_id)}.{_sig(secret, int(recall_id), int(customer_id))}"


def unsubscribe_token(secret: str, customer_id) -> str:
    """The ``{token}`` in unsubscribe links: the unsubscribe endpoint recomputes it to check a request."""
    return hmac.new(secret.encode(), f"unsubscribe:{customer_id}".encode(), hashlib.sha256).hexdigest()[:32]

"""The acknowledgment link in a recall notice: a :mod:`retention_plugin.links` token for ``recall_ack``.

Signed with ``[links] secret`` and pointing at ``[links] base_url``. Links
from before (``<recall id>.<customer id>.<mac>``, signed with ``[recalls]
signing_secret``) still verify while that secret stays configured.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from retention_plugin import links

from .settings import settings_of

PURPOSE = "recall_ack"
ACK_PATH = "/r/ack"
#: A recall can matter for years (a product stays in a cupboard), so its link does too.
ACK_VALID_DAYS = 10 * 365


def ack_url(settings, recall_id: int, customer_id: int, now: datetime) -> str:
    """``{[links] base_url}/r/ack?t=<token>``.

    :raises links.LinkError: (``not_configured``) without ``[links] secret`` and ``base_url``.
    """
    # The expiry is a whole day, so the same case gets the same link all day long.
    expires = (now + timedelta(days=ACK_VALID_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    return links.make_url(settings, ACK_PATH, PURPOSE, {"r": int(recall_id), "c": int(customer_id)}, expires)


def verify_ack(settings, token: str | None, now: datetime) -> tuple[int, int]:
    """``(recall_id, customer_id)`` of a genuine acknowledgment token, today's or a legacy one.

    :raises links.LinkError: naming what is wrong (``expired``, ``signature``, ``purpose``...).
    """
    payload = links.verify_with_settings(settings, PURPOSE, token, now,
                                         legacy_secret=settings_of(settings).get("signing_secret"))
    try:
        return int(payload["r"]), int(payload["c"])
    except (KeyError, TypeError, ValueError):
        raise links.LinkError("malformed", "the link is not readable (malformed token)") from None

"""A stored delivery as domain events: its body parsed by the adapter of the platform that sent it.

The worker parses every delivery it claims; erasure parses stored bodies to
find those that name the person.
"""

from __future__ import annotations

import json

from .errors import UnsupportedTopic


def parse_delivery(row, configured_shop: str | None = None) -> list:
    """Payload bytes to domain events, by platform.

    :param configured_shop: ``[shopify] shop``; privacy requests must name it.
    """
    payload = json.loads(row["body"])
    if row["platform"] == "shopify":
        from .shopify.payloads import parse_shopify

        return parse_shopify(row["topic"], payload, shop=row["shop"], configured_shop=configured_shop)
    if row["platform"] == "zendesk":
        from .zendesk.payloads import parse_zendesk

        return parse_zendesk(payload)
    raise UnsupportedTopic(f"unknown platform {row['platform']!r}")

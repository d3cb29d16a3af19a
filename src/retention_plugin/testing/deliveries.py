"""Deliveries as the receiver stores them after verifying them, and the worker that processes them.

No HTTP server and no signatures: a test stores the delivery directly, runs the worker once, and
asserts on what its plugin stored or enqueued.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import Retention
    from ..worker import Counts


def deliver_shopify(app: Retention, topic: str, payload: dict[str, Any], *, webhook_id: str | None = None,
                    event_id: str | None = None, shop: str | None = None) -> int | None:
    """Store a Shopify delivery of ``topic``; returns its inbox id, or None for a duplicate webhook id.

    ``shop``: which installed shop sent it (unset: ``[shopify] shop``).
    """
    from ..inbox import store_delivery

    shop = shop or app.settings.section("shopify").get("shop", "example.myshopify.com")
    return store_delivery(app.engine, platform="shopify", shop=shop, delivery_id=webhook_id or str(uuid.uuid4()),
                          topic=topic, body=json.dumps(payload).encode(), now=app.now(),
                          headers={"topic": topic}, event_id=event_id)


def deliver_zendesk(app: Retention, payload: dict[str, Any], *, invocation_id: str | None = None) -> int | None:
    """Store a Zendesk webhook delivery (an event envelope or a trigger body); returns its inbox id."""
    from ..inbox import store_delivery

    sub = app.settings.section("zendesk").get("subdomain", "example")
    topic = payload.get("type") or payload.get("retention_event") or "unknown"
    return store_delivery(app.engine, platform="zendesk", shop=sub,
                          delivery_id=invocation_id or str(payload.get("id") or uuid.uuid4()),
                          topic=topic, body=json.dumps(payload).encode(), now=app.now(), headers={})


def run_worker(app: Retention, *, name: str = "test-worker") -> Counts:
    """Process everything due now (deliveries, tasks, actions, messages); returns the counts."""
    from ..worker import Worker

    return Worker(app, name=name).run(burst=True)

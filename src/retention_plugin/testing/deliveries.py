"""Helpers for testing plugins against a real database, without an HTTP server.

A plugin author writes::

    from retention_plugin.testing import deliver_shopify, run_worker

    deliver_shopify(app, "orders/paid", payload)
    run_worker(app)

and then asserts on what the plugin stored or enqueued.
"""

from __future__ import annotations

import json
import uuid

from .inbox import store_delivery
from .worker import Worker


def deliver_shopify(app, topic: str, payload: dict, *, webhook_id: str | None = None,
                    event_id: str | None = None) -> int | None:
    """Store a Shopify delivery as the receiver would after verifying it."""
    shop = app.settings.section("shopify").get("shop", "example.myshopify.com")
    return store_delivery(app.engine, platform="shopify", shop=shop, delivery_id=webhook_id or str(uuid.uuid4()),
                          topic=topic, body=json.dumps(payload).encode(), now=app.now(),
                          headers={"topic": topic}, event_id=event_id)


def deliver_zendesk(app, payload: dict, *, invocation_id: str | None = None) -> int | None:
    sub = app.settings.section("zendesk").get("subdomain", "example")
    topic = payload.get("type") or payload.get("retention_event") or "unknown"
    return store_delivery(app.engine, platform="zendesk", shop=sub,
                          delivery_id=invocation_id or str(payload.get("id") or uuid.uuid4()),
                          topic=topic, body=json.dumps(payload).encode(), now=app.now(), headers={})


def run_worker(app, *, name: str = "test-worker"):
    """Process everything due now (deliveries, tasks, actions, messages); returns the counts."""
    return Worker(app, name=name).run(burst=True)

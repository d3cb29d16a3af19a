"""Testing plugins against a real database, the way the built-in features are tested.

A plugin author writes::

    from retention_plugin.testing import deliver_shopify, run_worker

    def test_my_plugin(retention_make_app, retention_channel):
        app = retention_make_app(extra_plugins=[MyPlugin(), retention_channel],
                                 messages={"default_channel": "test"})
        deliver_shopify(app, "orders/paid", payload)
        run_worker(app)
        ...assert on what the plugin stored, enqueued or sent...

The fixtures come from :mod:`retention_plugin.testing.pytest_plugin`, which pytest loads by itself
(entry point ``pytest11``); the helpers here work without pytest too. Importing this package is cheap:
SQLAlchemy and the app load when a helper first needs them.
"""

from __future__ import annotations

from .apps import SHOP, SHOPIFY_SECRET, ZENDESK_SECRET, AppFactory, base_config
from .channel import RecordingChannel, Sent
from .clock import Clock
from .deliveries import deliver_shopify, deliver_zendesk, run_worker

__all__ = [
    "SHOP", "SHOPIFY_SECRET", "ZENDESK_SECRET", "AppFactory", "Clock", "RecordingChannel", "Sent", "base_config",
    "deliver_shopify", "deliver_zendesk", "run_worker",
]

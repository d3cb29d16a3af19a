"""Setting the platforms up to call retention-plugin: Shopify webhook subscriptions, the Zendesk webhook and triggers.

``retention shopify subscribe`` and ``retention zendesk install`` (see
:mod:`.commands`); both create only what is missing and, in dry-run, print
the exact requests instead of sending them.
"""

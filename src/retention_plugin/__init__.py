"""retention-plugin: loyalty, offers, reminders, recalls, service recovery and
lost-customer analysis for Shopify and Zendesk stores, extensible with pluggy."""

import pluggy

__version__ = "0.1.0"

#: Decorate hook implementations with this marker.
hookimpl = pluggy.HookimplMarker("retention_plugin")

__all__ = ["hookimpl", "__version__"]

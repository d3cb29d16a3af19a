"""retention-plugin: loyalty, offers, reminders, recalls, service recovery and
lost-customer analysis for Shopify and Zendesk stores, extensible with pluggy."""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["hookimpl", "__version__"]

if TYPE_CHECKING:
    import pluggy

    #: Decorate hook implementations with this marker.
    hookimpl: pluggy.HookimplMarker


def __getattr__(name: str):
    # pluggy (with inspect, about 0.02 s) is imported when a plugin first asks for the marker,
    # not by every `retention_plugin.*` import: `retention analyze fit` loads no plugin.
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker("retention_plugin")
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

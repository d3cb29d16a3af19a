"""Platform adapters: turn Shopify and Zendesk webhooks into domain events, and call their APIs.

Each platform package has the same parts: ``verify`` (signatures),
``payloads`` (marshmallow schemas -> :mod:`retention_plugin.events`),
``client`` (requests + tenacity) and request builders (``shopify.mutations``,
``zendesk.requests``). Errors shared by both live in :mod:`.errors`.
"""

from typing import Any, Mapping

from .errors import (
    AlreadyExists,
    ApiError,
    PayloadError,
    PermanentError,
    PlatformError,
    TransientError,
    UnsupportedTopic,
    UserErrors,
)


def perform(client: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """Run a stored request dict with the matching client (the action runner's entry point).

    Shopify requests are ``{"query", "variables"}``; Zendesk requests are
    ``{"method", "path", "json"}``. Raises what the client's ``perform`` raises.
    """
    return client.perform(request)


__all__ = [
    "AlreadyExists",
    "ApiError",
    "PayloadError",
    "PermanentError",
    "PlatformError",
    "TransientError",
    "UnsupportedTopic",
    "UserErrors",
    "perform",
]

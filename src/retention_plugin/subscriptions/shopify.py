"""``retention shopify subscribe``: the webhook subscriptions retention-plugin needs, created once.

Lists the app's subscriptions (``webhookSubscriptions``, every page) and
creates ``webhookSubscriptionCreate`` only for the (topic, callback URL)
pairs that are missing, so running it twice creates nothing the second time.

The three mandatory compliance topics (``customers/data_request``,
``customers/redact``, ``shop/redact``) cannot be subscribed through the API:
they are set in the app's configuration (``shopify.app.toml``, or the app's
settings in the Partner / Dev Dashboard).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..platforms.shopify import mutations

#: The topics the product reacts to (``WebhookSubscriptionTopic`` enum names).
TOPICS: tuple[str, ...] = (
    "ORDERS_CREATE",
    "ORDERS_UPDATED",
    "ORDERS_PAID",
    "ORDERS_CANCELLED",
    "ORDERS_FULFILLED",
    "FULFILLMENTS_CREATE",
    "FULFILLMENTS_UPDATE",
    "FULFILLMENT_EVENTS_CREATE",
    "REFUNDS_CREATE",
    "CUSTOMERS_CREATE",
    "CUSTOMERS_UPDATE",
    "CUSTOMERS_DELETE",
    "APP_UNINSTALLED",
)

#: The access scopes the topics need (the WebhookSubscriptionTopic descriptions of the pinned schema):
#: Shopify refuses to subscribe a topic whose scope the app was not granted.
TOPIC_SCOPES: dict[str, str] = {
    "ORDERS_CREATE": "read_orders", "ORDERS_UPDATED": "read_orders", "ORDERS_PAID": "read_orders",
    "ORDERS_CANCELLED": "read_orders", "ORDERS_FULFILLED": "read_orders", "REFUNDS_CREATE": "read_orders",
    "FULFILLMENTS_CREATE": "read_fulfillments", "FULFILLMENTS_UPDATE": "read_fulfillments",
    "FULFILLMENT_EVENTS_CREATE": "read_fulfillments",
    "CUSTOMERS_CREATE": "read_customers", "CUSTOMERS_UPDATE": "read_customers", "CUSTOMERS_DELETE": "read_customers",
}


def required_scopes(topics: tuple[str, ...] = TOPICS) -> list[str]:
    return sorted({TOPIC_SCOPES[x] for x in topics if x in TOPIC_SCOPES})


#: Configured in the app, not through the API.
COMPLIANCE_TOPICS: tuple[str, ...] = ("customers/data_request", "customers/redact", "shop/redact")

RECEIVER_PATH = "/webhooks/shopify"


#: Resources whose own name has an underscore (``FULFILLMENT_EVENTS_CREATE`` -> ``fulfillment_events/create``).
_TWO_WORD_RESOURCES = ("fulfillment_events", "fulfillment_orders", "inventory_items", "inventory_levels")


def topic_name(enum: str) -> str:
    """``ORDERS_PAID`` -> ``orders/paid`` (the ``X-Shopify-Topic`` spelling)."""
    low = enum.lower()
    for resource in _TWO_WORD_RESOURCES:
        if low.startswith(resource + "_"):
            return f"{resource}/{low[len(resource) + 1:]}"
    head, _, rest = low.partition("_")
    return f"{head}/{rest}"


def callback_url(url: str, path: str = RECEIVER_PATH) -> str:
    """Check an https URL; a bare origin (no path) gets the receiver's path.

    :raises ValueError: not an absolute https URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"expected an https:// URL, got {url!r}")
    if parts.path in ("", "/"):
        parts = parts._replace(path=path)
    return urlunsplit(parts)


def graphql_url(shop: str, api_version: str) -> str:
    return f"https://{shop}/admin/api/{api_version}/graphql.json"


@dataclass
class SubscribeResult:
    callback_url: str
    existing: list[dict[str, Any]] = field(default_factory=list)  # every subscription found
    created: list[dict[str, Any]] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # topics already subscribed to this URL
    updated: list[dict[str, Any]] = field(default_factory=list)  # given the metafields they lacked

    def as_dict(self) -> dict[str, Any]:
        return {"callback_url": self.callback_url, "existing": self.existing, "created": self.created,
                "already_subscribed": self.already, "updated": self.updated,
                "compliance_topics": list(COMPLIANCE_TOPICS), "required_scopes": required_scopes()}


_METAFIELD = re.compile(mutations.METAFIELD_NAME)


def wanted_metafields(pm, settings, topics: tuple[str, ...] = TOPICS) -> dict[str, list[str]]:
    """Topic -> the ``namespace.key`` names the plugins read from its bodies (``shopify_webhook_metafields``).

    :raises ValueError: a plugin named a topic not in ``topics`` or a malformed name.
    """
    wanted: dict[str, set[str]] = {}
    for pairs in pm.hook.shopify_webhook_metafields(settings=settings):
        for topic, name in pairs or ():
            if topic not in topics:
                raise ValueError(f"shopify_webhook_metafields: {topic!r} is not a subscribed topic "
                                 f"(one of {', '.join(topics)})")
            if not isinstance(name, str) or not _METAFIELD.fullmatch(name):
                raise ValueError(f"shopify_webhook_metafields: {name!r} for {topic}: expected namespace.key")
            wanted.setdefault(topic, set()).add(name)
    return {topic: sorted(names) for topic, names in wanted.items()}


def _named(subscription: dict[str, Any]) -> set[str]:
    return {f"{m.get('namespace')}.{m.get('key')}" for m in subscription.get("metafields") or []
            if isinstance(m, dict)}


def list_subscriptions(client, page_size: int = 100) -> list[dict[str, Any]]:
    """Every webhook subscription of the app on this shop (all pages)."""
    out: list[dict[str, Any]] = []
    after = None
    while True:
        data = client.perform(mutations.webhook_subscriptions_list(first=page_size, after=after))
        conn = data.get("webhookSubscriptions") or {}
        out.extend(n for n in conn.get("nodes") or [] if isinstance(n, dict))
        info = conn.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            return out
        after = info["endCursor"]


def _same_url(a: str | None, b: str) -> bool:
    return bool(a) and a.rstrip("/") == b.rstrip("/")


def subscribe(client, url: str, topics: tuple[str, ...] = TOPICS,
              metafields: dict[str, list[str]] | None = None) -> SubscribeResult:
    """Create the missing subscriptions of ``topics`` to ``url``, naming ``metafields`` (topic -> names).

    A subscription that exists but lacks some of its topic's metafields is updated to name them,
    with the ones it already names kept: another tool may read those.
    """
    metafields = metafields or {}
    result = SubscribeResult(callback_url=url)
    result.existing = list_subscriptions(client)
    have = {s.get("topic"): s for s in result.existing if _same_url(s.get("uri") or s.get("callbackUrl"), url)}
    for topic in topics:
        wanted = metafields.get(topic) or []
        current = have.get(topic)
        if current is None:
            payload = client.perform(mutations.webhook_subscription_create(topic, url, wanted))
            result.created.append(payload.get("webhookSubscription") or {"topic": topic, "uri": url})
            continue
        result.already.append(topic)
        named = _named(current)
        if set(wanted) <= named or not current.get("id"):
            continue
        payload = client.perform(mutations.webhook_subscription_update(current["id"],
                                                                       metafields=sorted(named | set(wanted))))
        result.updated.append(payload.get("webhookSubscription") or {"topic": topic, "id": current["id"]})
    return result


def planned_requests(url: str, topics: tuple[str, ...] = TOPICS,
                     metafields: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """What :func:`subscribe` sends to a shop without subscriptions: the list query, then a create per topic."""
    metafields = metafields or {}
    return [mutations.webhook_subscriptions_list(first=100),
            *(mutations.webhook_subscription_create(t, url, metafields.get(t)) for t in topics)]


def compliance_guidance(url: str) -> str:
    topics = ", ".join(COMPLIANCE_TOPICS)
    return (f"The access token needs the scopes {', '.join(required_scopes())} for these topics "
            f"(fulfillment_events/create needs read_fulfillments).\n"
            f"The compliance topics ({topics}) cannot be subscribed through the API. Set them in the app's "
            f"configuration, e.g. in shopify.app.toml:\n"
            f"  [[webhooks.subscriptions]]\n"
            f"  compliance_topics = [\"customers/data_request\", \"customers/redact\", \"shop/redact\"]\n"
            f"  uri = \"{url}\"\n"
            f"then `shopify app deploy` (or set the URLs in the app's settings in the Partner/Dev Dashboard).")

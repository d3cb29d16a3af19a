"""Zendesk API request builders: pure functions returning ``{"method", "path", "json"}``.

The action runner stores these dicts in ``actions.request`` and hands them to
:meth:`ZendeskClient.perform` later, so everything in them is plain JSON.
An optional ``"idempotency_key"`` asks Zendesk to deduplicate a retried
ticket creation (the ``Idempotency-Key`` header); ``"params"`` carries query
parameters.

Paths follow the Support API reference: ``PUT /api/v2/tickets/{id}`` with a
``comment`` adds a comment; ``additional_tags`` / ``remove_tags`` change tags
without overwriting the ticket's whole tag list (unlike ``tags``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

PRIORITIES = ("low", "normal", "high", "urgent")

#: Added to every ticket the product opens, so its own words are never read as a customer's complaint
#: (the tag arrives with the ticket's webhooks; see docs/recovery.md).
PRODUCT_TAG = "retention_created"


def _id(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _tag_list(tags: Iterable[str] | None, name: str) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        raise ValueError(f"{name} must be a list of tags, not a string")
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or any(c.isspace() for c in tag.strip()):
            raise ValueError(f"{name}: tags are single words, got {tag!r}")
        out.append(tag.strip())
    return out


def ticket_comment(ticket_id: int, body: str, public: bool) -> dict[str, Any]:
    """Add a comment; ``public=False`` makes it an internal note agents only see."""
    _id(ticket_id, "ticket_id")
    if not isinstance(body, str) or not body.strip():
        raise ValueError("comment body must be non-empty text")
    return {
        "method": "PUT",
        "path": f"/api/v2/tickets/{ticket_id}",
        "json": {"ticket": {"comment": {"body": body, "public": bool(public)}}},
    }


def ticket_update(
    ticket_id: int,
    priority: str | None = None,
    group_id: int | None = None,
    add_tags: Sequence[str] | None = None,
    remove_tags: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Change priority, group and/or tags of a ticket in one ``PUT``."""
    _id(ticket_id, "ticket_id")
    ticket: dict[str, Any] = {}
    if priority is not None:
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}, got {priority!r}")
        ticket["priority"] = priority
    if group_id is not None:
        ticket["group_id"] = _id(group_id, "group_id")
    added = _tag_list(add_tags, "add_tags")
    removed = _tag_list(remove_tags, "remove_tags")
    if added:
        ticket["additional_tags"] = added
    if removed:
        ticket["remove_tags"] = removed
    if not ticket:
        raise ValueError("ticket_update needs at least one change")
    return {"method": "PUT", "path": f"/api/v2/tickets/{ticket_id}", "json": {"ticket": ticket}}


def ticket_create(
    requester_email: str,
    requester_name: str | None,
    subject: str,
    body: str,
    tags: Sequence[str] = (),
    external_id: str | None = None,
    *,
    public: bool = True,
    idempotency_key: str | None = None,
    followup_source_id: int | None = None,
) -> dict[str, Any]:
    """Open a ticket on behalf of a customer (e.g. a recall notice or follow-up).

    The ticket is tagged :data:`PRODUCT_TAG` besides ``tags``.

    :param idempotency_key: sent as ``Idempotency-Key`` so a retried create
        returns the first ticket instead of opening a second; pass the
        action's key.
    :param followup_source_id: a *closed* ticket this one follows up
        (``via_followup_source_id``: a closed ticket cannot be updated or
        reopened, and Zendesk ignores the field for any other status). The
        tags given replace the ones the follow-up would inherit.
    """
    if not isinstance(requester_email, str) or "@" not in requester_email:
        raise ValueError(f"requester_email is not an email address: {requester_email!r}")
    if not subject or not body:
        raise ValueError("subject and body are required")
    requester: dict[str, Any] = {"email": requester_email.strip().lower()}
    if requester_name:
        requester["name"] = requester_name
    ticket: dict[str, Any] = {
        "subject": subject,
        "comment": {"body": body, "public": bool(public)},
        "requester": requester,
        "tags": list(dict.fromkeys(_tag_list(tags, "tags") + [PRODUCT_TAG])),
    }
    if external_id:
        ticket["external_id"] = external_id
    if followup_source_id is not None:
        ticket["via_followup_source_id"] = _id(followup_source_id, "followup_source_id")
    request: dict[str, Any] = {"method": "POST", "path": "/api/v2/tickets", "json": {"ticket": ticket}}
    if idempotency_key:
        request["idempotency_key"] = idempotency_key
    return request


def webhook_create(
    name: str,
    endpoint: str,
    signing_secret: str | None = None,
    *,
    subscriptions: Sequence[str] = ("conditional_ticket_events",),
    description: str | None = None,
) -> dict[str, Any]:
    """Create a webhook (``POST /api/v2/webhooks``).

    The default subscription ``conditional_ticket_events`` connects it to
    triggers; pass ``zen:event-type:...`` names to subscribe to events
    instead (a webhook cannot do both). Without ``signing_secret`` Zendesk
    generates one: read it with :func:`webhook_signing_secret`.
    """
    if not endpoint.startswith("https://"):
        raise ValueError("webhook endpoint must be an https:// URL")
    webhook: dict[str, Any] = {
        "name": name,
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": list(subscriptions),
    }
    if description:
        webhook["description"] = description
    if signing_secret:
        webhook["signing_secret"] = {"algorithm": "sha256", "secret": signing_secret}
    return {"method": "POST", "path": "/api/v2/webhooks", "json": {"webhook": webhook}}


def webhooks_list(name_contains: str | None = None) -> dict[str, Any]:
    """List webhooks, optionally filtered by name."""
    request: dict[str, Any] = {"method": "GET", "path": "/api/v2/webhooks", "json": None}
    if name_contains:
        request["params"] = {"filter[name_contains]": name_contains}
    return request


def webhook_signing_secret(webhook_id: str) -> dict[str, Any]:
    """Fetch a webhook's signing secret (``{"signing_secret": {"secret": ...}}``)."""
    if not webhook_id:
        raise ValueError("webhook_id is required")
    return {"method": "GET", "path": f"/api/v2/webhooks/{webhook_id}/signing_secret", "json": None}


def trigger_create(
    title: str,
    conditions: Mapping[str, Any],
    actions: Sequence[Mapping[str, Any]],
    *,
    description: str | None = None,
    active: bool = True,
    category_id: str | int | None = None,
) -> dict[str, Any]:
    """Create a ticket trigger (``POST /api/v2/triggers``).

    :param conditions: ``{"all": [...], "any": [...]}`` per the conditions reference.
    :param actions: e.g. ``{"field": "notification_webhook", "value": [webhook_id, body_json]}``.
    """
    if not title:
        raise ValueError("trigger title is required")
    if not isinstance(conditions, Mapping) or not (conditions.get("all") or conditions.get("any")):
        raise ValueError("trigger conditions need an 'all' or 'any' list")
    if not actions:
        raise ValueError("a trigger needs at least one action")
    trigger: dict[str, Any] = {
        "title": title,
        "active": bool(active),
        "conditions": {
            "all": list(conditions.get("all") or []),
            "any": list(conditions.get("any") or []),
        },
        "actions": [dict(a) for a in actions],
    }
    if description:
        trigger["description"] = description
    if category_id is not None:
        trigger["category_id"] = str(category_id)
    return {"method": "POST", "path": "/api/v2/triggers", "json": {"trigger": trigger}}


def triggers_list(active: bool | None = None) -> dict[str, Any]:
    """List triggers (``GET /api/v2/triggers``)."""
    request: dict[str, Any] = {"method": "GET", "path": "/api/v2/triggers", "json": None}
    if active is not None:
        request["params"] = {"active": "true" if active else "false"}
    return request

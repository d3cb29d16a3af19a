"""``retention zendesk install``: the webhook and the triggers that post the shipped bodies, created once.

1. ``GET /api/v2/webhooks``: a webhook whose endpoint is the callback URL is
   reused; otherwise one named ``retention-plugin`` is created
   (``POST /api/v2/webhooks``, subscribed to ``conditional_ticket_events`` so
   triggers can notify it). Zendesk generates its signing secret;
   ``GET /api/v2/webhooks/{id}/signing_secret`` reads it, and the command
   checks it against ``[zendesk].webhook_secret`` (it prints the secret only
   when asked to).
2. ``GET /api/v2/triggers``: every shipped trigger (``config/zendesk/triggers.json``:
   ticket created, ticket solved, satisfaction rated, complaint tagged) whose
   title is not there yet is created, its action notifying the webhook with
   the shipped body.

Running it twice creates nothing the second time.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from ..platforms.zendesk import requests as zd
from ..shops import ZENDESK_PATH
from ..platforms.zendesk.triggers import install_requests, load_trigger_definitions, webhook_settings

RECEIVER_PATH = ZENDESK_PATH  # the receiver serves it (web.py); a shop of its own adds /<shop>
WEBHOOK_ID_PLACEHOLDER = "<id of the retention-plugin webhook>"


class InstallConflict(Exception):
    """Something in the account is in the way; nothing more was created."""


@dataclass
class InstallResult:
    callback_url: str
    webhook: dict[str, Any] = field(default_factory=dict)
    webhook_created: bool = False
    secret_matches: bool | None = None  # None: no [zendesk].webhook_secret to compare, or not readable
    signing_secret: str | None = None  # only when asked to show it
    triggers_created: list[str] = field(default_factory=list)
    triggers_existing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = {"callback_url": self.callback_url, "webhook": {k: self.webhook.get(k) for k in
                                                              ("id", "name", "endpoint", "status")},
             "webhook_created": self.webhook_created, "secret_matches_config": self.secret_matches,
             "triggers_created": self.triggers_created, "triggers_existing": self.triggers_existing,
             "warnings": self.warnings}
        if self.signing_secret is not None:
            d["signing_secret"] = self.signing_secret
        return d


def _pages(client, request: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Every item of a list endpoint: cursor (``meta.has_more`` + ``links.next``) or offset (``next_page``)."""
    items: list[dict[str, Any]] = []
    body = client.perform(request)
    seen = set()
    while True:
        items.extend(x for x in body.get(key) or [] if isinstance(x, dict))
        meta, links = body.get("meta") or {}, body.get("links") or {}
        nxt = links.get("next") if meta.get("has_more") else None
        nxt = nxt or body.get("next_page")
        if not nxt or nxt in seen:
            return items
        seen.add(nxt)
        body = client.request("GET", nxt)


def _same_url(a: str | None, b: str) -> bool:
    return bool(a) and a.rstrip("/") == b.rstrip("/")


def _notifies(trigger: dict[str, Any]) -> list[str]:
    """The webhook ids a trigger's actions notify."""
    out = []
    for action in trigger.get("actions") or []:
        if isinstance(action, dict) and action.get("field") == "notification_webhook":
            value = action.get("value")
            if isinstance(value, list) and value:
                out.append(str(value[0]))
    return out


def install(client, url: str, *, expected_secret: str | None = None, show_secret: bool = False,
            category_id: str | int | None = None, directory=None) -> InstallResult:
    """Create what is missing; returns what was found and done.

    :raises InstallConflict: a webhook with our name points somewhere else.
    """
    result = InstallResult(callback_url=url)
    settings = webhook_settings(directory)
    name = settings.get("name") or "retention-plugin"
    webhooks = _pages(client, zd.webhooks_list(), "webhooks")
    mine = [w for w in webhooks if _same_url(w.get("endpoint"), url)]
    if mine:
        result.webhook = mine[0]
    else:
        named = [w for w in webhooks if w.get("name") == name]
        if named:
            raise InstallConflict(
                f"a webhook named {name!r} (id {named[0].get('id')}) already sends to {named[0].get('endpoint')}, "
                f"not to {url}. Change its endpoint in Admin Center (Apps and integrations > Webhooks) or delete "
                "it, then run this again.")
        body = client.perform(zd.webhook_create(name, url, description=settings.get("description")))
        result.webhook = body.get("webhook") or {}
        result.webhook_created = True
    webhook_id = result.webhook.get("id")
    if not webhook_id:
        raise InstallConflict("Zendesk answered without a webhook id")
    if result.webhook.get("status") not in (None, "active"):
        result.warnings.append(f"webhook {webhook_id} is {result.webhook.get('status')}: activate it in Admin Center")
    secret = (client.perform(zd.webhook_signing_secret(webhook_id)).get("signing_secret") or {}).get("secret")
    if secret:
        if expected_secret:
            result.secret_matches = hmac.compare_digest(secret.encode(), expected_secret.encode())
        if show_secret:
            result.signing_secret = secret
    triggers = _pages(client, zd.triggers_list(), "triggers")
    by_title = {tr.get("title"): tr for tr in triggers}
    definitions = load_trigger_definitions(directory)
    requests = install_requests(webhook_id, directory=directory, category_id=category_id)
    for definition, request in zip(definitions, requests):
        found = by_title.get(definition.title)
        if found is not None:
            result.triggers_existing.append(definition.title)
            targets = _notifies(found)
            if str(webhook_id) not in targets:
                result.warnings.append(
                    f"trigger {definition.title!r} (id {found.get('id')}) notifies "
                    f"{', '.join(targets) or 'no webhook'}, not {webhook_id}: fix or delete it, then run again")
            if found.get("active") is False:
                result.warnings.append(f"trigger {definition.title!r} is inactive")
            continue
        client.perform(request)
        result.triggers_created.append(definition.title)
    return result


def planned_requests(url: str, *, category_id: str | int | None = None, directory=None) -> list[dict[str, Any]]:
    """What :func:`install` sends when nothing exists yet, with the webhook id as a placeholder."""
    settings = webhook_settings(directory)
    name = settings.get("name") or "retention-plugin"
    return [
        zd.webhooks_list(),
        zd.webhook_create(name, url, description=settings.get("description")),
        zd.webhook_signing_secret(WEBHOOK_ID_PLACEHOLDER),
        zd.triggers_list(),
        *install_requests(WEBHOOK_ID_PLACEHOLDER, directory=directory, category_id=category_id),
    ]


def secret_guidance(result: InstallResult, subdomain: str) -> str:
    wid = result.webhook.get("id")
    where = (f"GET https://{subdomain}.zendesk.com/api/v2/webhooks/{wid}/signing_secret, or Admin Center > "
             f"Apps and integrations > Webhooks > {result.webhook.get('name') or wid} > Reveal secret")
    if result.secret_matches is True:
        return "the webhook's signing secret matches [zendesk].webhook_secret"
    if result.secret_matches is False:
        return ("the webhook's signing secret differs from [zendesk].webhook_secret: put Zendesk's value there "
                f"(`retention zendesk install --show-secret` prints it; or {where}), then restart `retention serve`")
    return f"set [zendesk].webhook_secret to the webhook's signing secret ({where})"


def describe(request: dict[str, Any], subdomain: str) -> dict[str, Any]:
    """A request dict as the HTTP request it becomes."""
    out: dict[str, Any] = {"method": request["method"],
                           "url": f"https://{subdomain}.zendesk.com{request['path']}"}
    if request.get("params"):
        out["params"] = request["params"]
    if request.get("json") is not None:
        out["json"] = request["json"]
    return out


def to_text(requests: list[dict[str, Any]], subdomain: str) -> str:
    return "\n".join(json.dumps(describe(r, subdomain), indent=2, ensure_ascii=False) for r in requests)

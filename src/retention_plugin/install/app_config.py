"""``shopify.app.toml``: the app's configuration as Shopify CLI deploys it (``shopify app deploy``).

Written from ``[shopify]`` by ``retention shopify app-config``, following
Shopify's "App configuration" reference:

- top level: ``client_id``, ``name``, ``application_url``, ``embedded``
  (false: the product has no page inside the Shopify admin);
- ``[access_scopes] scopes``: a comma-separated string (``[shopify] scopes``);
- ``[auth] redirect_urls``: the install callback, ``<app_url>/auth/shopify/callback``;
- ``[webhooks] api_version`` and one ``[[webhooks.subscriptions]]`` with every
  topic the product reacts to (:data:`~retention_plugin.subscriptions.shopify.TOPICS`)
  and the three mandatory ``compliance_topics``, which can only be declared
  here (or in the Dev Dashboard), never through the API;
- ``[app_proxy] url, subpath, prefix``: storefront requests to
  ``/<prefix>/<subpath>`` go to ``<app_url><[storefront] path>``, where the
  rewards page answers (``/proxy/rewards`` unless configured; Shopify's
  "About app proxies"; the prefix is one of ``apps``, ``a``, ``community``, ``tools``).

Subscriptions declared here are the app's, for every shop it is installed on.
"""

from __future__ import annotations

import json
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..subscriptions.shopify import COMPLIANCE_TOPICS, RECEIVER_PATH, TOPICS, topic_name
from .scopes import configured_scopes

CALLBACK_PATH = "/auth/shopify/callback"
INSTALL_PATH = "/auth/shopify/install"
#: ``[storefront] path`` unless configured: where the rewards page answers the proxy.
PROXY_PATH = "/proxy/rewards"
PROXY_PREFIXES = ("apps", "a", "community", "tools")


class AppConfigError(ValueError):
    """What ``[shopify]`` lacks for the file, worded for the person who edits it."""


def app_config(shopify: Mapping[str, Any], *, name: str = "retention-plugin", app_proxy: bool = True,
               proxy_path: str | None = None) -> dict:
    """The configuration as a mapping (what :func:`render` writes).

    :param proxy_path: ``[storefront] path``, where the proxy's requests go (default :data:`PROXY_PATH`).
    """
    problems = []
    if not shopify:
        raise AppConfigError("no [shopify] section in the configuration")
    if not shopify.get("client_id"):
        problems.append("[shopify].client_id is not set (Dev Dashboard > your app > Settings > Client ID)")
    app_url = (shopify.get("app_url") or "").rstrip("/")
    if not app_url:
        problems.append("[shopify].app_url is not set (the public https URL of `retention serve`)")
    elif urlsplit(app_url).scheme != "https":
        problems.append(f"[shopify].app_url must be an https URL for Shopify, got {app_url!r}")
    if problems:
        raise AppConfigError("; ".join(problems))
    scopes = configured_scopes(shopify)
    if app_proxy and "write_app_proxy" not in scopes:
        scopes.append("write_app_proxy")  # Shopify refuses an app proxy without it
    installs = shopify.get("grant") == "authorization_code" and not shopify.get("access_token")
    doc: dict[str, Any] = {
        "client_id": shopify["client_id"],
        "name": name,
        # Opening the app from the admin starts an install where installs are ours to make.
        "application_url": app_url + INSTALL_PATH if installs else app_url,
        "embedded": False,
        "access_scopes": {"scopes": ",".join(scopes)},
        "auth": {"redirect_urls": [app_url + CALLBACK_PATH]},
        "webhooks": {
            "api_version": shopify["api_version"],
            "subscriptions": [{
                "topics": [topic_name(x) for x in TOPICS],
                "compliance_topics": list(COMPLIANCE_TOPICS),
                "uri": app_url + RECEIVER_PATH,
            }],
        },
    }
    if app_proxy:
        doc["app_proxy"] = {"url": app_url + (proxy_path or PROXY_PATH),
                            "subpath": shopify.get("app_proxy_subpath") or "rewards",
                            "prefix": shopify.get("app_proxy_prefix") or "apps"}
    return doc


def render(doc: Mapping[str, Any]) -> str:
    """TOML text for :func:`app_config`'s mapping (scalars and string lists; tables; arrays of tables)."""
    lines = ["# Written by `retention shopify app-config` from the retention-plugin configuration.",
             "# Deploy it with `shopify app deploy` (docs/install.md). Edit retention.toml, not this file.", ""]
    _table(lines, [], doc)
    return "\n".join(lines).rstrip() + "\n"


def _table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping) and not _tables(v)}
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    if scalars:
        lines.append("")
    for key, value in table.items():
        if isinstance(value, Mapping):
            lines.append(f"[{'.'.join(_key(k) for k in path + [key])}]")
            _table(lines, path + [key], value)
        elif _tables(value):
            for item in value:
                lines.append(f"[[{'.'.join(_key(k) for k in path + [key])}]]")
                _table(lines, path + [key], item)


def _tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string: the same quotes and escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to shopify.app.toml")

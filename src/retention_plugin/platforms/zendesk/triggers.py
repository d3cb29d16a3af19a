"""The Zendesk triggers retention-plugin ships: loading, rendering and install requests.

``config/zendesk/triggers.json`` lists the triggers; each names a body file
(``ticket_solved.json``, ...) whose JSON, full of Zendesk placeholders such
as ``{{ticket.id}}``, becomes the trigger's "notify webhook" payload. Every
body carries ``"retention_event"`` so :func:`parse_zendesk` knows which one
arrived.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import requests as zd_requests

#: Shipped inside the package (so an installed wheel has them); ``config/zendesk`` in a
#: source checkout is a link to the same directory, for admins reading the examples.
DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "data" / "zendesk"

PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z0-9_.]+)\s*\}\}")


@dataclass
class TriggerDefinition:
    """One shipped trigger: what fires it, and the body it sends."""

    key: str
    title: str
    description: str
    conditions: dict[str, Any]
    body_file: str
    body: dict[str, Any]
    extra_actions: list[dict[str, Any]] = field(default_factory=list)

    def placeholders(self) -> set[str]:
        """Every ``{{name}}`` the body uses."""
        return set(PLACEHOLDER.findall(json.dumps(self.body)))


def load_trigger_definitions(directory: str | Path | None = None) -> list[TriggerDefinition]:
    """Read ``triggers.json`` and the body files it names.

    :raises FileNotFoundError: when the directory or a named body is missing.
    :raises ValueError: when a file is not valid JSON or a body lacks
        ``retention_event``.
    """
    base = Path(directory) if directory is not None else DEFAULT_DIRECTORY
    spec = _read_json(base / "triggers.json")
    definitions = []
    for item in spec.get("triggers", []):
        body = _read_json(base / item["body"])
        if "retention_event" not in body:
            raise ValueError(f"{item['body']}: a trigger body needs a 'retention_event' field")
        definitions.append(
            TriggerDefinition(
                key=item["key"],
                title=item["title"],
                description=item.get("description", ""),
                conditions=item["conditions"],
                body_file=item["body"],
                body=body,
                extra_actions=list(item.get("extra_actions") or []),
            )
        )
    return definitions


def webhook_settings(directory: str | Path | None = None) -> dict[str, Any]:
    """The ``webhook`` block of ``triggers.json`` (name, description)."""
    base = Path(directory) if directory is not None else DEFAULT_DIRECTORY
    return dict(_read_json(base / "triggers.json").get("webhook") or {})


def install_requests(
    webhook_id: str,
    *,
    directory: str | Path | None = None,
    category_id: str | int | None = None,
) -> list[dict[str, Any]]:
    """``trigger_create`` requests for every shipped trigger, wired to ``webhook_id``."""
    requests = []
    for definition in load_trigger_definitions(directory):
        body_text = json.dumps(definition.body, indent=2, ensure_ascii=False)
        actions = [{"field": "notification_webhook", "value": [webhook_id, body_text]}]
        actions.extend(definition.extra_actions)
        requests.append(
            zd_requests.trigger_create(
                definition.title,
                definition.conditions,
                actions,
                description=definition.description,
                category_id=category_id,
            )
        )
    return requests


def render_body(body: Mapping[str, Any] | str, values: Mapping[str, str]) -> dict[str, Any]:
    """Substitute placeholders the way Zendesk would, and parse the result.

    Values are JSON-escaped, as Zendesk escapes placeholder output in JSON
    webhook bodies; a placeholder without a value renders empty. Used by
    tests and by ``retention zendesk preview``-style tooling.
    """
    text = body if isinstance(body, str) else json.dumps(body)

    def substitute(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        return json.dumps(str(value))[1:-1]

    return json.loads(PLACEHOLDER.sub(substitute, text))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data

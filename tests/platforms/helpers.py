"""Small helpers for the platform adapter tests (no fixtures here; plain functions)."""

from __future__ import annotations

import copy
import functools
import gzip
import json
from pathlib import Path
from typing import Any

from shared_dir import SHARED, shared_path  # noqa: F401  (SHARED: for the platform tests)

REPO = Path(__file__).resolve().parents[2]


def shared_file(*parts: str) -> Path:
    """A file under ../shared, or skip the test saying why it is missing."""
    return shared_path(*parts)


def shared_json(*parts: str) -> Any:
    with shared_file(*parts).open(encoding="utf-8") as handle:
        return json.load(handle)


def fixture_payload(*parts: str) -> Any:
    """A shared fixture's payload: Zendesk files wrap it in {"payload": ...}, Shopify files do not."""
    data = shared_json(*parts)
    if isinstance(data, dict) and "payload" in data and "_source" in data:
        return data["payload"]
    return data


class SleepRecorder:
    """Stands in for time.sleep: remembers the waits, never waits."""

    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@functools.lru_cache(maxsize=None)
def _admin_schema(version: str):
    from graphql import build_client_schema

    path = shared_file("shopify-admin-schema", f"admin_{version}.json.gz")
    data = json.loads(gzip.decompress(path.read_bytes()))
    # Shopify's schema trips graphql-core's own schema checks; the documents are what is checked here.
    return build_client_schema(data["data"], assume_valid=True)


def shopify_request_errors(request: dict, version: str = "2026-07") -> list[str]:
    """What is wrong with a ``{"query", "variables"}`` request for Shopify's Admin API ``version`` (``[]``: valid)."""
    from graphql import parse, validate
    from graphql.execution.values import get_variable_values

    schema = _admin_schema(version)
    doc = parse(request["query"])
    errors = [e.message for e in validate(schema, doc)]
    if errors:
        return errors
    values = get_variable_values(schema, doc.definitions[0].variable_definitions or [], request["variables"])
    return [e.message for e in values] if isinstance(values, list) else []


def positions(value: Any, prefix: tuple = ()):
    """Every position in a JSON value, as its path of keys and indexes (a list's first two items tell)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from positions(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:2]):
            yield from positions(v, prefix + (i,))


def broken(body: dict, bad_values: list, read: set[str] | None = None):
    """``body`` broken in place at each position, once per bad value and once without the key.

    With ``read``, only positions whose keys a schema reads (keys no schema reads change nothing).
    The body is put back after each; yields the position.
    """
    for where in list(positions(body)):
        if not where:
            continue
        if read is not None and not all(isinstance(step, int) or step in read for step in where):
            continue
        parent = body
        for step in where[:-1]:
            parent = parent[step]
        key = where[-1]
        original = parent[key]
        for bad in bad_values:
            parent[key] = copy.deepcopy(bad)
            yield where
        if isinstance(parent, dict):
            del parent[key]
            yield where
        parent[key] = original  # a dict keeps the key's place only for the reader's eye

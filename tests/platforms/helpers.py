"""Small helpers for the platform adapter tests (no fixtures here; plain functions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

#: ../shared beside the project checkout: fixtures every developer and CI has.
SHARED = (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()
REPO = Path(__file__).resolve().parents[2]


def shared_file(*parts: str) -> Path:
    """A file under ../shared, or skip the test saying why it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared (shared fixtures) only exists beside the project checkout")
    return path


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

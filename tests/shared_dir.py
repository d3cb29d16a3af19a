"""Where ../shared (fixtures and data every developer and CI has) is, and skipping without it.

``RETENTION_SHARED_DIR`` points elsewhere, or at an empty folder to run the suite as a fresh clone
without ../shared would: every test that needs a file from it then skips, naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    override = os.environ.get("RETENTION_SHARED_DIR")
    return Path(override).resolve() if override else (REPO / ".." / "shared").resolve()


SHARED = shared_dir()


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test saying why it is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent: ../shared (fixtures and data) is only beside the project checkout "
                    "(or set RETENTION_SHARED_DIR)")
    return p

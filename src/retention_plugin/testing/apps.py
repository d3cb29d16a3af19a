"""Retention objects for tests: a known shop, known signing secrets, dry-run actions, a movable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import Retention

SHOP = "retention-test.myshopify.com"
SHOPIFY_SECRET = "shpss_test_secret"
ZENDESK_SECRET = "zendesk-signing-secret"


def base_config(db_url: str, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A configuration that validates: both platforms, dry-run actions, a quick worker backoff.

    Each keyword is a section whose keys are laid over these (``offers={"thank_you": False}``).
    """
    cfg: dict[str, dict[str, Any]] = {
        "database": {"url": db_url},
        "shopify": {"shop": SHOP, "access_token": "shpat_test", "api_version": "2026-07",
                    "webhook_secrets": [SHOPIFY_SECRET]},
        "zendesk": {"subdomain": "retention-test", "email": "agent@example.com", "api_token": "zd-token",
                    "webhook_secret": ZENDESK_SECRET, "max_clock_skew_seconds": 300},
        "actions": {"dry_run": True},
        "worker": {"backoff_base_seconds": 1, "lease_seconds": 60},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


class AppFactory:
    """``make(extra_plugins=(), *, entry_points=False, **sections)`` builds a Retention on one database.

    Use as a context manager: every app made is disposed of (its connection pool closed) on exit.
    ``entry_points=True`` also loads installed plugins, to test a package as users install it.
    """

    def __init__(self, db_url: str, clock: Callable[[], datetime], directory: Path):
        self.db_url = db_url
        self.clock = clock
        self.directory = Path(directory)
        self.made: list[Retention] = []

    def __call__(self, extra_plugins: Iterable[object] = (), *, entry_points: bool = False,
                 **sections: dict[str, Any]) -> Retention:
        from ..app import Retention

        app = Retention.from_dict(base_config(self.db_url, **sections), path=self.directory / "retention.toml",
                                  extra_plugins=extra_plugins, entry_points=entry_points, clock=self.clock)
        self.made.append(app)
        return app

    def __enter__(self) -> AppFactory:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        for app in self.made:
            app.dispose()
        self.made.clear()

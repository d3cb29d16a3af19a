"""A clock tests move by hand; nothing sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

#: Where every test clock starts: a Monday noon, UTC (2026-03-02 12:00).
START = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


class Clock:
    """Pass as ``Retention(clock=...)``; ``app.now()`` and ``ctx.now`` then read it.

    Set ``clock.now`` or call ``clock.advance(days=30)``, then run the worker again to fire what came due.
    """

    def __init__(self, start: datetime | None = None):
        start = start or START
        if start.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        """Move forward by ``timedelta(**kw)`` (``days=``, ``hours=``, ``minutes=``...); returns the new now."""
        self.now += timedelta(**kw)
        return self.now

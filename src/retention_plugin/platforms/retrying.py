"""The retry loop both API clients share, built on tenacity.

A client's single attempt raises :class:`RetrySignal` for a failure worth
another try (it carries the wait the platform asked for, if any); anything
else propagates at once. When attempts run out the signal becomes a
:class:`~retention_plugin.platforms.errors.TransientError`, so the action
runner can reschedule the whole action later.

A client raises RetrySignal only for a request that may be repeated: one
that never left (:func:`never_sent`), or one the caller declared safe to
repeat even if it was applied. So the TransientError it turns into is never
``ambiguous``: the runner may schedule it again. A request that is not safe
to repeat after it may have been applied fails with ``ambiguous=True``
straight from the client, without a RetrySignal.

The sleep function is injected so tests record waits instead of sleeping.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
from urllib3.exceptions import ConnectTimeoutError

from .errors import TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """How hard a client tries before handing the failure back.

    :param max_attempts: total attempts, including the first.
    :param sleep: called with seconds to wait; tests pass a recorder.
    :param backoff_base: first wait when the platform gave no hint; doubles.
    :param backoff_max: cap for that exponential wait.
    :param max_retry_after: a ``Retry-After`` longer than this is not waited
        out in-process (it would pin a worker); the call fails with
        :class:`TransientError` carrying ``retry_after`` so the runner can
        reschedule.
    """

    max_attempts: int = 5
    sleep: Callable[[float], None] = time.sleep
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 60.0

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


class RetrySignal(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.ambiguous = ambiguous


def call_with_retries(
    attempt: Callable[[], T], *, policy: RetryPolicy, platform: str, what: str
) -> T:
    """Run ``attempt`` until it returns, raises something final, or attempts run out.

    :param what: a short description for messages, e.g. ``POST /graphql.json``.
    """

    def wait(retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception()
        if isinstance(exc, RetrySignal) and exc.retry_after is not None:
            return max(0.0, exc.retry_after)
        return min(policy.backoff_max, policy.backoff_base * 2 ** (retry_state.attempt_number - 1))

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception()
        log.info(
            "%s %s: attempt %d failed (%s); retrying in %.2fs",
            platform,
            what,
            retry_state.attempt_number,
            getattr(exc, "reason", exc),
            retry_state.next_action.sleep if retry_state.next_action else 0.0,
        )

    def guarded_attempt() -> T:
        try:
            return attempt()
        except RetrySignal as signal:
            # A wait longer than we are willing to block for ends the call now;
            # the action runner reschedules using retry_after.
            if signal.retry_after is not None and signal.retry_after > policy.max_retry_after:
                raise TransientError(
                    f"{platform}: {what} asked to wait {signal.retry_after:.0f}s ({signal.reason})",
                    status=signal.status,
                    platform=platform,
                    retry_after=signal.retry_after,
                ) from None
            raise

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=tenacity.retry_if_exception_type(RetrySignal),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(guarded_attempt)
    except RetrySignal as last:
        raise TransientError(
            f"{platform}: {what} failed after {policy.max_attempts} attempt(s): {last.reason}",
            status=last.status,
            platform=platform,
            retry_after=last.retry_after,
            attempts=policy.max_attempts,
        ) from last


#: Low-level errors that can only happen before a request is on the wire:
#: name resolution, a refused or unreachable connection, a connect timeout
#: (urllib3's NewConnectionError and NameResolutionError are ConnectTimeoutErrors).
_BEFORE_SENDING = (ConnectTimeoutError, socket.gaierror, ConnectionRefusedError, requests.ConnectTimeout,
                   requests.exceptions.SSLError)


def never_sent(exc: BaseException) -> bool:
    """Whether a requests failure happened before the request left this machine.

    requests reports DNS failures and refused connections as the same
    ``ConnectionError`` as a connection dropped mid-response; the cause chain
    (``MaxRetryError.reason``, a proxy's original error) says which. Such a
    failure is never ambiguous: nothing can have been applied.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        err = stack.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, _BEFORE_SENDING):
            return True
        linked = [err.__cause__, err.__context__, getattr(err, "reason", None), getattr(err, "original_error", None),
                  *err.args]
        stack.extend(e for e in linked if isinstance(e, BaseException))
    return False


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def check_base_url(url: str) -> str:
    """A base URL for API calls, without a trailing slash.

    https anywhere; plain http only to this machine (a local test double or
    an egress proxy beside the worker), so a token never crosses a network
    unencrypted.

    :raises ValueError: naming what is wrong.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s)://host[:port][/path] URL, got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"a base URL has no query, fragment or credentials: {url!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"plain http is only allowed to this machine (127.0.0.1, ::1, localhost), got {url!r}")
    return url.strip().rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False

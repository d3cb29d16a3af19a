"""Exceptions the platform adapters raise, shared by Shopify and Zendesk.

Two families:

- parsing (:class:`PayloadError`, :class:`UnsupportedTopic`): the worker
  dead-letters the first and marks the second ignored;
- API calls (:class:`TransientError`, :class:`PermanentError`,
  :class:`UserErrors`, :class:`AlreadyExists`): the action runner retries the
  first later, fails the others, and counts :class:`AlreadyExists` as done.

No message built here ever contains a token, a signing secret or a request
body: they end up in ``inbox.last_error`` and ``action_attempts.error``.
"""

from __future__ import annotations

from typing import Any


class PlatformError(Exception):
    """Base class of everything the platform adapters raise on purpose."""


# --- parsing -----------------------------------------------------------------


class PayloadError(PlatformError, ValueError):
    """A webhook payload (or API record) is missing a field or holds a bad value.

    :param field: dotted path of the offending field, e.g. ``line_items.0.price``.
    :param message: what is wrong with it.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class UnsupportedTopic(PlatformError):
    """The topic or event type is not one retention-plugin turns into events."""

    def __init__(self, topic: str, platform: str = ""):
        self.topic = topic
        self.platform = platform
        where = f"{platform} " if platform else ""
        super().__init__(f"unsupported {where}topic {topic!r}")


class DeadLetter(PlatformError):
    """A delivery that must not be retried: the worker dead-letters it at once with this reason.

    Raised by the parser or by a hook (inside the delivery's transaction, which
    then rolls back) when retrying cannot change the outcome, e.g. a destructive
    request held until an admin confirms it.
    """


# --- API calls ---------------------------------------------------------------


class ApiError(PlatformError):
    """A platform API call failed.

    :param status: HTTP status, or ``None`` when no response arrived.
    """

    def __init__(self, message: str, *, status: int | None = None, platform: str = ""):
        self.status = status
        self.platform = platform
        super().__init__(message)


class TransientError(ApiError):
    """Worth retrying later: rate limits, 5xx, timeouts, connection errors.

    :param retry_after: seconds the platform asked us to wait, when it said.
    :param attempts: how many attempts this call made before giving up.
    :param ambiguous: the request may have been applied (a timeout or 5xx
        after it was sent) and it is not safe to repeat blindly; the caller
        should check the platform's state before trying again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        platform: str = "",
        retry_after: float | None = None,
        attempts: int = 1,
        ambiguous: bool = False,
    ):
        super().__init__(message, status=status, platform=platform)
        self.retry_after = retry_after
        self.attempts = attempts
        self.ambiguous = ambiguous


class PermanentError(ApiError):
    """Retrying will not help: auth failures, 4xx, GraphQL errors, bad input."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        platform: str = "",
        errors: list[Any] | None = None,
    ):
        super().__init__(message, status=status, platform=platform)
        self.errors = list(errors or [])


class UserErrors(PermanentError):
    """A Shopify mutation answered with a non-empty ``userErrors`` list.

    :param operation: the mutation's root field, e.g. ``discountCodeBasicCreate``.
    :param errors: the ``userErrors`` dicts (``field``, ``message``, maybe ``code``).
    """

    def __init__(self, operation: str, errors: list[dict[str, Any]]):
        self.operation = operation
        parts = []
        for err in errors:
            field = ".".join(str(p) for p in (err.get("field") or [])) or "-"
            code = f" [{err['code']}]" if err.get("code") else ""
            parts.append(f"{field}: {err.get('message', '?')}{code}")
        super().__init__(
            f"{operation} returned user errors: " + "; ".join(parts),
            status=200,
            platform="shopify",
            errors=errors,
        )


class AlreadyExists(UserErrors):
    """The thing we asked to create exists already (e.g. a discount code).

    Because code texts are derived from idempotency keys, this means an
    earlier attempt succeeded: the action runner counts it as done.
    """


def mask_secret(value: str | None) -> str:
    """Show at most the last four characters of a secret, for repr and logs."""
    if not value:
        return "<none>"
    if len(value) <= 8:
        return "****"
    return "****" + value[-4:]

"""Shopify GraphQL Admin API client on requests + tenacity.

What is retried, and how long we wait:

- HTTP 429 and 5xx, honouring ``Retry-After``;
- a GraphQL ``THROTTLED`` error (Shopify's cost-based limit, answered with
  HTTP 200): wait ``(requestedQueryCost - currentlyAvailable) / restoreRate``
  seconds from ``extensions.cost.throttleStatus``;
- timeouts and connection errors.

A failure before the request left (DNS, a refused connection, a connect
timeout: :func:`~..retrying.never_sent`) is always safe to repeat, and so is
a 429 or 503 (the request was refused, not handled). Another 5xx, a read
timeout or a connection dropped after sending is *ambiguous*: the
mutation may have run. For mutations Shopify cannot deduplicate
(:data:`~.mutations.NON_IDEMPOTENT_MUTATIONS`) :meth:`ShopifyClient.perform`
does not repeat those, and raises :class:`TransientError` with
``ambiguous=True`` instead; every other request is repeated, in process and
then by the action runner's schedule.

Never retried: 4xx other than 429 (:class:`PermanentError`), GraphQL errors
(:class:`PermanentError`), ``userErrors`` (:class:`UserErrors`). The one
exception is a 401 with a token that can be renewed (client credentials, an
install's expiring token: :mod:`retention_plugin.shop_tokens`): the token is
renewed once and the request repeated once; it was refused, not applied.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Mapping, Protocol

import requests

from ... import __version__
from ..errors import AlreadyExists, PermanentError, TransientError, UserErrors
from ..retrying import RetryPolicy, RetrySignal, call_with_retries, check_base_url, never_sent, parse_retry_after
from .mutations import NON_IDEMPOTENT_MUTATIONS, is_mutation, root_field

PLATFORM = "shopify"
_SHOP = re.compile(r"^[a-z0-9][a-z0-9.-]*\.[a-z]{2,}$")
_API_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")

#: GraphQL ``extensions.code`` values that mean "try again later".
_TRANSIENT_GRAPHQL_CODES = frozenset({"THROTTLED", "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"})

#: A duplicate discount code: Shopify's ``DiscountErrorCode`` TAKEN/DUPLICATE
#: on the ``code`` field, or these words where a code is absent.
_DUPLICATE_CODES = frozenset({"TAKEN", "DUPLICATE"})
_DUPLICATE_MESSAGE = re.compile(r"must be unique|already (been )?taken|already exists", re.I)
_TAKEN_ADDRESS = re.compile(r"address .*already been taken", re.I)


def raise_for_user_errors(data: Mapping[str, Any], operation: str) -> dict[str, Any]:
    """Return ``data[operation]``, raising if its ``userErrors`` list is non-empty.

    A duplicate discount code (``discountCode*`` mutations) raises
    :class:`AlreadyExists`: codes are derived from idempotency keys, so the
    code existing means an earlier attempt succeeded. So does a webhook
    subscription whose address is taken for the topic.

    :raises PermanentError: when ``data`` has no ``operation`` payload.
    :raises UserErrors: for any other user error.
    """
    payload = data.get(operation) if isinstance(data, Mapping) else None
    if not isinstance(payload, Mapping):
        raise PermanentError(
            f"response has no {operation!r} payload", status=200, platform=PLATFORM
        )
    errors = payload.get("userErrors") or []
    if not errors:
        return dict(payload)
    if operation.startswith("discountCode") and all(_is_duplicate_code(e) for e in errors):
        raise AlreadyExists(operation, list(errors))
    if operation == "webhookSubscriptionCreate" and all(
            _TAKEN_ADDRESS.search(str(e.get("message") or "")) for e in errors):
        # "Address for this topic has already been taken": the subscription exists (an earlier attempt).
        raise AlreadyExists(operation, list(errors))
    raise UserErrors(operation, list(errors))


def _is_duplicate_code(error: Mapping[str, Any]) -> bool:
    fields = [str(f) for f in (error.get("field") or [])]
    on_code = not fields or fields[-1] == "code"
    if error.get("code") in _DUPLICATE_CODES and on_code:
        return True
    return bool(on_code and _DUPLICATE_MESSAGE.search(str(error.get("message") or "")))


class TokenSource(Protocol):
    """Where a client's token comes from (:mod:`retention_plugin.shop_tokens`)."""

    refreshable: bool

    def token(self) -> tuple[str, int]: ...

    def refresh(self, stale_version: int | None) -> tuple[str, int]: ...


class Unauthorized(PermanentError):
    """HTTP 401: the token was refused. ``version`` is the token's, for a renewal."""

    def __init__(self, message: str, version: int):
        super().__init__(message, status=401, platform=PLATFORM)
        self.version = version


class ShopifyClient:
    """Calls one shop's GraphQL Admin API with an offline access token.

    :param shop: the shop's ``*.myshopify.com`` domain.
    :param access_token: sent as ``X-Shopify-Access-Token``; never logged. A
        string (a legacy custom app's token), or a token source with
        ``token() -> (token, version)``, ``refresh(version)`` and
        ``refreshable`` (:class:`~retention_plugin.shop_tokens.ShopTokenSource`).
    :param api_version: e.g. ``2026-07``.
    :param session: a ``requests.Session`` (tests pass one; default a new one).
    :param timeout: seconds for connect and for read.
    :param max_attempts: attempts per call, first included.
    :param sleep: how to wait between attempts (tests record instead).
    :param base_url: where the Admin API is, instead of ``https://{shop}``
        (``[shopify] admin_base_url``: an egress proxy, a local test double).
    """

    def __init__(
        self,
        shop: str,
        access_token: str | TokenSource,
        api_version: str,
        session: requests.Session | None = None,
        timeout: float = 10,
        max_attempts: int = 5,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_retry_after: float = 60.0,
        backoff_base: float = 1.0,
        base_url: str | None = None,
    ):
        shop = (shop or "").strip().lower()
        if not _SHOP.match(shop):
            raise ValueError(f"shop must be a bare domain like example.myshopify.com, got {shop!r}")
        if not access_token:
            raise ValueError("access_token is required")
        if isinstance(access_token, str):
            from .oauth import StaticToken

            access_token = StaticToken(access_token)
        if not _API_VERSION.match(api_version or ""):
            raise ValueError(f"api_version must look like 2026-07, got {api_version!r}")
        self.shop = shop
        self.base_url = check_base_url(base_url) if base_url else f"https://{shop}"
        self.api_version = api_version
        self._tokens = access_token
        self.session = session or requests.Session()
        self.timeout = timeout
        self.policy = RetryPolicy(
            max_attempts=max_attempts,
            sleep=sleep,
            max_retry_after=max_retry_after,
            backoff_base=backoff_base,
        )

    def __repr__(self) -> str:
        return (
            f"ShopifyClient(shop={self.shop!r}, api_version={self.api_version!r}, "
            f"access_token={self._tokens!r})"
        )

    @property
    def url(self) -> str:
        return f"{self.base_url}/admin/api/{self.api_version}/graphql.json"

    # --- public API -------------------------------------------------------------------

    def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        retry_ambiguous: bool = True,
    ) -> dict[str, Any]:
        """Run a query or mutation and return its ``data``.

        :param retry_ambiguous: repeat after a 5xx or read timeout even though
            the request may have been applied; ``perform`` turns this off for
            non-idempotent mutations.
        :raises TransientError: retries exhausted (or the wait asked for is too long).
        :raises PermanentError: 4xx, GraphQL errors, a non-JSON answer.
        """
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        operation = root_field(query) or "graphql"
        token = self._tokens.token()
        try:
            return self._call(body, retry_ambiguous, operation, token)
        except Unauthorized as refused:
            if not self._tokens.refreshable:
                raise
            # Refused, not applied: renew the token (once, for all workers) and ask once more.
            token = self._tokens.refresh(refused.version)
        return self._call(body, retry_ambiguous, operation, token)

    def _call(self, body, retry_ambiguous: bool, operation: str, token: tuple[str, int]) -> dict[str, Any]:
        return call_with_retries(
            lambda: self._attempt(body, retry_ambiguous, token),
            policy=self.policy,
            platform=PLATFORM,
            what=f"{operation} on {self.shop}",
        )

    def perform(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Run a request built by :mod:`.mutations` and check its ``userErrors``.

        :returns: the mutation's payload (e.g. ``{"codeDiscountNode": ...}``),
            or the whole ``data`` for a query.
        :raises AlreadyExists: the discount code exists already (count as done).
        :raises UserErrors: any other user error; never retried.
        """
        query = request.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ValueError("request has no GraphQL query")
        operation = root_field(query)
        mutation = is_mutation(query)
        data = self.graphql(
            query,
            request.get("variables"),
            retry_ambiguous=not (mutation and operation in NON_IDEMPOTENT_MUTATIONS),
        )
        if mutation and operation:
            return raise_for_user_errors(data, operation)
        return data

    # --- one attempt ------------------------------------------------------------------------

    @staticmethod
    def _headers(token: str) -> dict[str, str]:
        return {
            "X-Shopify-Access-Token": token,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"retention-plugin/{__version__}",
        }

    def _attempt(self, body: dict[str, Any], retry_ambiguous: bool, token: tuple[str, int]) -> dict[str, Any]:
        try:
            response = self.session.post(
                self.url,
                data=json.dumps(body, default=_json_default),
                headers=self._headers(token[0]),
                timeout=self.timeout,
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            if never_sent(exc):
                # Never connected: nothing was applied, always safe to repeat.
                raise RetrySignal(f"{type(exc).__name__} before sending (could not connect)") from exc
            raise self._ambiguous(f"{type(exc).__name__} after sending", None, retry_ambiguous) from exc
        status = response.status_code
        if status == 429:
            raise RetrySignal(
                "HTTP 429 rate limited",
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status == 503:
            # "Unavailable": the request was not handled (RFC 9110 15.6.4; Shopify's response-codes
            # page), so repeating it cannot apply it twice, even for a non-idempotent mutation.
            raise RetrySignal(
                "HTTP 503 unavailable",
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500:
            raise self._ambiguous(
                f"HTTP {status}",
                status,
                retry_ambiguous,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status == 401:
            raise Unauthorized(f"shopify: HTTP 401 from {self.shop}: {_error_text(response)}", token[1])
        if status >= 400:
            raise PermanentError(
                f"shopify: HTTP {status} from {self.shop}: {_error_text(response)}",
                status=status,
                platform=PLATFORM,
            )
        try:
            payload = response.json()
        except ValueError:
            raise PermanentError(
                f"shopify: HTTP {status} from {self.shop} was not JSON", status=status, platform=PLATFORM
            ) from None
        if not isinstance(payload, Mapping):
            raise PermanentError("shopify: response was not a JSON object", status=status, platform=PLATFORM)
        errors = payload.get("errors")
        if errors:
            self._graphql_errors(errors, payload, status, retry_ambiguous)
        data = payload.get("data")
        if not isinstance(data, Mapping):
            raise PermanentError("shopify: response has no data", status=status, platform=PLATFORM)
        return dict(data)

    def _ambiguous(
        self, reason: str, status: int | None, retry_ambiguous: bool, retry_after: float | None = None
    ) -> Exception:
        """The exception for a failure after which the request may have been applied."""
        if retry_ambiguous:
            return RetrySignal(reason, status=status, retry_after=retry_after, ambiguous=True)
        return TransientError(
            f"shopify: {reason} from {self.shop}; the mutation may have been applied, "
            "not repeating it blindly",
            status=status,
            platform=PLATFORM,
            retry_after=retry_after,
            ambiguous=True,
        )

    def _graphql_errors(self, errors, payload, status, retry_ambiguous) -> None:
        if isinstance(errors, str):  # e.g. {"errors": "[API] Invalid API key ..."}
            raise PermanentError(f"shopify: {errors}", status=status, platform=PLATFORM)
        codes = {
            ((e.get("extensions") or {}).get("code") if isinstance(e, Mapping) else None)
            for e in errors
        }
        messages = "; ".join(
            str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors
        )
        if "THROTTLED" in codes:
            raise RetrySignal(
                f"GraphQL THROTTLED: {messages}", status=status, retry_after=throttle_wait(payload)
            )
        if codes & _TRANSIENT_GRAPHQL_CODES:
            raise self._ambiguous(
                f"GraphQL {sorted(c for c in codes if c)}: {messages}", status, retry_ambiguous
            )
        raise PermanentError(
            f"shopify: GraphQL errors: {messages}", status=status, platform=PLATFORM, errors=list(errors)
        )


def _json_default(value: Any) -> Any:
    # Money stays exact: Decimal goes out as its string, as Shopify's Decimal scalar accepts.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def throttle_wait(payload: Mapping[str, Any], default: float = 1.0) -> float:
    """Seconds until enough query cost has been restored to retry.

    ``(requestedQueryCost - currentlyAvailable) / restoreRate`` from
    ``extensions.cost``; ``default`` when the numbers are missing.
    """
    cost = ((payload.get("extensions") or {}).get("cost")) or {}
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost["requestedQueryCost"])
        available = float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return default
    if rate <= 0:
        return default
    return max(0.0, (requested - available) / rate)


def _error_text(response: requests.Response) -> str:
    """A short, secret-free description of an error response body."""
    try:
        body = response.json()
    except ValueError:
        return (response.reason or "").strip() or "no details"
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if isinstance(errors, str):
        return errors[:300]
    if isinstance(errors, list):
        return "; ".join(
            str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors
        )[:300]
    if isinstance(errors, Mapping):
        return json.dumps(errors)[:300]
    return (response.reason or "").strip() or "no details"

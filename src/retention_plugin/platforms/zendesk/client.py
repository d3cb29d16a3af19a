"""Zendesk Support API client on requests + tenacity.

Basic auth as ``{email}/token`` with the API token, or ``Authorization:
Bearer`` with an OAuth access token (for accounts that switch API tokens off;
Zendesk's "Creating and using OAuth access tokens with the API"). Retried: 429 (honouring
``Retry-After``), 409 (update collision), 5xx, timeouts and connection
errors. Permanent: other 4xx, with the error body's message.

A request that failed before it left (DNS, a refused connection, a connect
timeout) is always repeated, and so is one answered 429, 409 or 503 (refused,
not handled). One that may have been applied before it failed (another 5xx,
a read timeout or a dropped connection after sending) is only
repeated when repeating is harmless: reads, tag and field updates, and
ticket creation with an ``Idempotency-Key`` (the only create the Support
API deduplicates: developer.zendesk.com/api-reference/ticketing/introduction,
"Idempotency"). A comment or an unkeyed create raises
:class:`TransientError` with ``ambiguous=True``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from ... import __version__
from ..errors import PermanentError, TransientError, mask_secret
from ..retrying import RetryPolicy, RetrySignal, call_with_retries, check_base_url, never_sent, parse_retry_after

PLATFORM = "zendesk"
_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class _Bearer(AuthBase):
    """``Authorization: Bearer <OAuth token>`` (an auth object, so requests never swaps in ~/.netrc)."""

    def __init__(self, token: str):
        self._token = token

    def __repr__(self) -> str:
        return "_Bearer(****)"

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


@dataclass
class IncrementalPage:
    """One page of the cursor-based incremental ticket export.

    Persist ``after_cursor`` to resume later; ``end_of_stream`` says the
    export has caught up (ask again later with the same cursor).
    """

    tickets: list[dict[str, Any]]
    after_cursor: str | None
    end_of_stream: bool


class ZendeskClient:
    """Calls one Zendesk account's Support API.

    :param subdomain: ``acme`` for ``acme.zendesk.com``.
    :param email: the agent whose API token this is.
    :param api_token: never logged or put in exception messages.
    :param oauth_token: instead of ``email`` and ``api_token``: an OAuth access
        token, sent as ``Authorization: Bearer``; never logged either.
    :param base_url: where the API is, instead of ``https://{subdomain}.zendesk.com``
        (``[zendesk] base_url``: an egress proxy, a local test double).
    """

    def __init__(
        self,
        subdomain: str,
        email: str,
        api_token: str,
        session: requests.Session | None = None,
        timeout: float = 10,
        max_attempts: int = 5,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_retry_after: float = 60.0,
        backoff_base: float = 1.0,
        base_url: str | None = None,
        oauth_token: str | None = None,
    ):
        subdomain = (subdomain or "").strip().lower()
        if subdomain.endswith(".zendesk.com"):
            subdomain = subdomain[: -len(".zendesk.com")]
        if not _SUBDOMAIN.match(subdomain):
            raise ValueError(f"subdomain must be like 'acme' (for acme.zendesk.com), got {subdomain!r}")
        if oauth_token and api_token:
            raise ValueError("give api_token (with email) or oauth_token, not both")
        if not oauth_token:
            if not email or "@" not in email:
                raise ValueError("email of the API token's agent is required")
            if not api_token:
                raise ValueError("api_token is required")
        self.subdomain = subdomain
        self.email = email
        self._token = api_token
        self._oauth = oauth_token or None
        self.base_url = check_base_url(base_url) if base_url else f"https://{subdomain}.zendesk.com"
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
            f"ZendeskClient(subdomain={self.subdomain!r}, email={self.email!r}, "
            + (f"oauth_token={mask_secret(self._oauth)!r})" if self._oauth else
               f"api_token={mask_secret(self._token)!r})")
        )

    # --- public API -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        retry_ambiguous: bool | None = None,
    ) -> dict[str, Any]:
        """Call ``https://{subdomain}.zendesk.com/api/v2/...`` and return the JSON body.

        :param path: ``/api/v2/tickets/1``, ``tickets/1`` or a same-host URL
            (pagination links); other hosts are refused so credentials never
            leave the account.
        :param idempotency_key: sent as ``Idempotency-Key``.
        :param retry_ambiguous: repeat after a 5xx or read timeout; by default
            only for safe methods and keyed requests.
        :raises TransientError: retries exhausted, or an ambiguous failure not repeated.
        :raises PermanentError: 4xx, with Zendesk's error text.
        """
        method = method.upper()
        url = self._url(path)
        if retry_ambiguous is None:
            retry_ambiguous = method in _SAFE_METHODS or bool(idempotency_key)
        what = f"{method} {urlsplit(url).path}"
        return call_with_retries(
            lambda: self._attempt(method, url, json, params, idempotency_key, retry_ambiguous, what),
            policy=self.policy,
            platform=PLATFORM,
            what=what,
        )

    def perform(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Run a request dict built by :mod:`.requests` (``method``, ``path``, ``json``)."""
        method = request.get("method")
        path = request.get("path")
        if not method or not path:
            raise ValueError("request needs 'method' and 'path'")
        return self.request(
            method,
            path,
            json=request.get("json"),
            params=request.get("params"),
            idempotency_key=request.get("idempotency_key"),
            retry_ambiguous=_retry_safe(request),
        )

    def incremental_ticket_pages(
        self,
        start_time: int | datetime | None = None,
        *,
        cursor: str | None = None,
        include: str | None = None,
    ) -> Iterator[IncrementalPage]:
        """Pages of ``GET /api/v2/incremental/tickets/cursor.json``, oldest changes first.

        Start from ``start_time`` (epoch seconds or an aware datetime) or
        resume from a saved ``cursor``; stops after the page that reports
        ``end_of_stream``.
        """
        if cursor:
            params: dict[str, Any] = {"cursor": cursor}
        elif start_time is not None:
            params = {"start_time": _epoch(start_time)}
        else:
            raise ValueError("give start_time or cursor")
        if include:
            params["include"] = include
        while True:
            body = self.request("GET", "/api/v2/incremental/tickets/cursor.json", params=params)
            page = IncrementalPage(
                tickets=list(body.get("tickets") or []),
                after_cursor=body.get("after_cursor"),
                end_of_stream=bool(body.get("end_of_stream")),
            )
            yield page
            if page.end_of_stream or not page.after_cursor:
                return
            params = {"cursor": page.after_cursor}
            if include:
                params["include"] = include

    def satisfaction_ratings(
        self,
        *,
        score: str | None = None,
        start_time: int | datetime | None = None,
        end_time: int | datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Every page of ``GET /api/v2/satisfaction_ratings`` (cursor pagination).

        Yields raw response pages; :func:`parse_satisfaction_ratings` turns
        each into ratings.
        """
        params: dict[str, Any] = {"page[size]": page_size}
        if score:
            params["score"] = score
        if start_time is not None:
            params["start_time"] = _epoch(start_time)
        if end_time is not None:
            params["end_time"] = _epoch(end_time)
        while True:
            body = self.request("GET", "/api/v2/satisfaction_ratings", params=params)
            yield body
            meta = body.get("meta") or {}
            if not meta.get("has_more") or not meta.get("after_cursor"):
                return
            params = {**params, "page[after]": meta["after_cursor"]}

    # --- one attempt ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if not isinstance(path, str) or not path:
            raise ValueError("path is required")
        if path.startswith(("http://", "https://")):
            parts, base = urlsplit(path), urlsplit(self.base_url)
            if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
                raise ValueError(f"refusing to send credentials to {parts.scheme}://{parts.netloc}")
            return path
        path = path.lstrip("/")
        if not path.startswith("api/v2/"):
            path = "api/v2/" + path
        return f"{self.base_url}/{path}"

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": f"retention-plugin/{__version__}",
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def _attempt(self, method, url, body, params, idempotency_key, retry_ambiguous, what):
        try:
            response = self.session.request(
                method,
                url,
                data=None if body is None else json.dumps(body, default=str),
                params=params,
                headers=self._headers(idempotency_key),
                auth=_Bearer(self._oauth) if self._oauth else (f"{self.email}/token", self._token),
                timeout=self.timeout,
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            if never_sent(exc):
                raise RetrySignal(f"{type(exc).__name__} before sending (could not connect)") from exc
            raise self._ambiguous(what, f"{type(exc).__name__} after sending", None, retry_ambiguous) from exc
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            raise RetrySignal("HTTP 429 rate limited", status=status, retry_after=retry_after)
        if status == 409:
            # Another update to the same ticket won the race; nothing was applied.
            raise RetrySignal("HTTP 409 conflict", status=status, retry_after=retry_after)
        if status == 503:
            # "Unavailable": not handled (RFC 9110 15.6.4), so safe to repeat even for a comment.
            raise RetrySignal("HTTP 503 unavailable", status=status, retry_after=retry_after)
        if status >= 500:
            raise self._ambiguous(what, f"HTTP {status}", status, retry_ambiguous, retry_after)
        if status >= 400:
            raise PermanentError(
                f"zendesk: {what} failed with HTTP {status}: {error_message(response)}",
                status=status,
                platform=PLATFORM,
            )
        if status == 204 or not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise PermanentError(
                f"zendesk: {what} answered HTTP {status} with non-JSON", status=status, platform=PLATFORM
            ) from None
        return data if isinstance(data, dict) else {"data": data}

    def _ambiguous(self, what, reason, status, retry_ambiguous, retry_after=None) -> Exception:
        if retry_ambiguous:
            return RetrySignal(reason, status=status, retry_after=retry_after, ambiguous=True)
        return TransientError(
            f"zendesk: {what}: {reason}; it may have been applied, not repeating it blindly",
            status=status,
            platform=PLATFORM,
            retry_after=retry_after,
            ambiguous=True,
        )


def _retry_safe(request: Mapping[str, Any]) -> bool:
    """Whether repeating this request after an ambiguous failure is harmless."""
    method = str(request.get("method", "")).upper()
    if method in _SAFE_METHODS or request.get("idempotency_key"):
        return True
    if method == "PUT":
        ticket = ((request.get("json") or {}).get("ticket")) or {}
        # Setting fields or adding/removing tags twice is the same as once;
        # posting a comment twice shows the customer two comments.
        return "comment" not in ticket
    return False


def error_message(response: requests.Response) -> str:
    """Zendesk's explanation from an error response, in one line.

    Handles ``{"error", "description", "details"}`` (Support API),
    ``{"error": {"title", "message"}}`` and ``{"errors": [{"title",
    "detail"}]}`` (Webhooks API).
    """
    try:
        body = response.json()
    except ValueError:
        return (response.reason or "").strip() or "no details"
    if not isinstance(body, Mapping):
        return str(body)[:300]
    parts: list[str] = []
    error = body.get("error")
    if isinstance(error, str):
        parts.append(error)
    elif isinstance(error, Mapping):
        parts.extend(str(error[k]) for k in ("title", "message") if error.get(k))
    if body.get("description"):
        parts.append(str(body["description"]))
    details = body.get("details")
    if isinstance(details, Mapping):
        for field, problems in details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                text = problem.get("description") if isinstance(problem, Mapping) else problem
                parts.append(f"{field}: {text}")
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, Mapping):
                parts.append(
                    " ".join(str(item[k]) for k in ("code", "title", "detail") if item.get(k))
                )
            else:
                parts.append(str(item))
    text = "; ".join(p for p in parts if p) or (response.reason or "no details")
    return text[:500]


def _epoch(value: int | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("start_time must be an aware datetime")
        return int(value.astimezone(timezone.utc).timestamp())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"start_time must be epoch seconds or a datetime, got {value!r}")
    return value

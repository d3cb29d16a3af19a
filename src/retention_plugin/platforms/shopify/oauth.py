"""Shopify's token endpoint and authorize URL: getting Admin API access tokens.

Every grant is a form POST to ``https://{shop}/admin/oauth/access_token``
(``[shopify] admin_base_url`` replaces the origin) answered with JSON:

- **client credentials** (an app of the merchant's own organisation, made in
  the Dev Dashboard): ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` -> ``access_token``, ``scope``, ``expires_in`` (86399 s,
  about a day); asked for again when it runs out. Shopify's pages "Using the
  client credentials grant" and "Get API access tokens for Dev Dashboard apps".
- **authorization code** (an install on a merchant's store): ``client_id``,
  ``client_secret``, ``code`` and, for an expiring offline token,
  ``expiring=1`` -> ``access_token``, ``scope`` and then ``expires_in``
  (3600 s), ``refresh_token``, ``refresh_token_expires_in``. Shopify's pages
  "Implement authorization code grant manually" and "About offline access
  tokens".
- **refresh** of an expiring offline token: ``grant_type=refresh_token``,
  ``client_id``, ``client_secret``, ``refresh_token`` -> the same fields; the
  refresh token is replaced on each use.

Errors come back as ``{"error": "...", "error_description": "..."}`` with a
4xx (``invalid_client``, ``app_not_installed``, ``shop_not_permitted`` for a
shop where client credentials are not allowed, ``invalid_grant``):
:class:`TokenRefused`, never retried. 429, 5xx and connection failures are
retried a few times, then :class:`~..errors.TransientError`. Nothing here
logs or raises a secret, a code or a token.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlencode

import requests

from ... import __version__
from ..errors import PermanentError, mask_secret
from ..retrying import RetryPolicy, RetrySignal, call_with_retries, check_base_url, parse_retry_after

PLATFORM = "shopify"

#: A shop's permanent domain, as Shopify's OAuth pages require the ``shop`` parameter to be.
SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


def valid_shop(shop: object) -> bool:
    return isinstance(shop, str) and len(shop) <= 255 and bool(SHOP_DOMAIN.fullmatch(shop))


class TokenRefused(PermanentError):
    """Shopify's token endpoint said no (a 4xx): retrying will not help.

    :param error: Shopify's ``error`` code (``invalid_client``, ``shop_not_permitted``, ...).
    """

    def __init__(self, message: str, *, status: int | None, error: str | None):
        super().__init__(message, status=status, platform=PLATFORM)
        self.error = error


@dataclass(frozen=True)
class TokenGrant:
    """One answer of the token endpoint. ``repr`` hides the tokens."""

    access_token: str = field(repr=False)
    scope: str = ""
    expires_in: int | None = None  # None: an offline token that does not expire
    refresh_token: str | None = field(default=None, repr=False)
    refresh_token_expires_in: int | None = None

    @property
    def scopes(self) -> set[str]:
        return {s.strip() for s in self.scope.split(",") if s.strip()}


def authorize_url(shop: str, client_id: str, scopes: Iterable[str], redirect_uri: str, state: str) -> str:
    """Where the merchant approves the install (an offline token: no ``grant_options[]``).

    Shopify's "Implement authorization code grant manually", step 2: ``client_id``,
    ``scope`` (comma-separated), ``redirect_uri`` (one of the app's allowed
    redirection URLs) and ``state`` (a nonce checked on the way back).
    """
    if not valid_shop(shop):
        raise ValueError(f"shop must be a domain like example.myshopify.com, got {shop!r}")
    query = urlencode({"client_id": client_id, "scope": ",".join(scopes), "redirect_uri": redirect_uri,
                       "state": state})
    return f"https://{shop}/admin/oauth/authorize?{query}"


class TokenEndpoint:
    """Asks one shop's token endpoint for tokens on behalf of one app.

    :param base_url: instead of ``https://{shop}`` (``[shopify] admin_base_url``).
    :param timeout, max_attempts: short, since a renewal holds the shop's lock (on SQLite the
        database's write lock): two attempts of at most 8 s stay inside SQLite's 30 s busy timeout.
    """

    def __init__(
        self,
        shop: str,
        client_id: str,
        client_secret: str,
        *,
        base_url: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 8,
        max_attempts: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 0.5,
    ):
        if not valid_shop(shop):
            raise ValueError(f"shop must be a domain like example.myshopify.com, got {shop!r}")
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required to ask for a token")
        self.shop = shop
        self.client_id = client_id
        self._secret = client_secret
        self.base_url = check_base_url(base_url) if base_url else f"https://{shop}"
        self.session = session or requests.Session()
        self.timeout = timeout
        self.policy = RetryPolicy(max_attempts=max_attempts, sleep=sleep, backoff_base=backoff_base,
                                  max_retry_after=30.0)

    def __repr__(self) -> str:
        return f"TokenEndpoint(shop={self.shop!r}, client_id={self.client_id!r})"

    @property
    def url(self) -> str:
        return f"{self.base_url}/admin/oauth/access_token"

    def client_credentials(self) -> TokenGrant:
        return self._post({"grant_type": "client_credentials"}, "client credentials grant")

    def exchange_code(self, code: str, *, expiring: bool = True) -> TokenGrant:
        if not code:
            raise ValueError("code is required")
        form = {"code": code}
        if expiring:
            form["expiring"] = "1"
        return self._post(form, "authorization code exchange")

    def refresh(self, refresh_token: str) -> TokenGrant:
        if not refresh_token:
            raise ValueError("refresh_token is required")
        return self._post({"grant_type": "refresh_token", "refresh_token": refresh_token}, "token refresh")

    # --- one request ------------------------------------------------------------------------

    def _post(self, form: dict[str, str], what: str) -> TokenGrant:
        body = {"client_id": self.client_id, "client_secret": self._secret, **form}
        return call_with_retries(lambda: self._attempt(body, what), policy=self.policy, platform=PLATFORM,
                                 what=f"{what} for {self.shop}")

    def _attempt(self, body: dict[str, str], what: str) -> TokenGrant:
        try:
            response = self.session.post(self.url, data=body, timeout=self.timeout, allow_redirects=False,
                                         headers={"Accept": "application/json",
                                                  "User-Agent": f"retention-plugin/{__version__}"})
        except (requests.Timeout, requests.ConnectionError) as exc:
            # Asking again only mints another token (a code is refused the second time), so any
            # network failure may be retried.
            raise RetrySignal(f"{type(exc).__name__} talking to the token endpoint") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetrySignal(f"HTTP {status}", status=status,
                              retry_after=parse_retry_after(response.headers.get("Retry-After")))
        payload = _json(response)
        if status != 200:
            error, description = _error_fields(payload)
            text = f"{error}: {description}" if description else (error or response.reason or "no details")
            for value in body.values():  # an echoing proxy must not put the secret or a code in an error
                if len(value) >= 6 and value not in ("client_credentials", "refresh_token", self.client_id):
                    text = text.replace(value, "****")
            raise TokenRefused(f"shopify: {what} for {self.shop} refused (HTTP {status}): {text}",
                               status=status, error=error)
        token = payload.get("access_token") if isinstance(payload, Mapping) else None
        if not isinstance(token, str) or not token:
            raise TokenRefused(f"shopify: {what} for {self.shop} answered without an access_token",
                               status=status, error=None)
        return TokenGrant(
            access_token=token,
            scope=str(payload.get("scope") or ""),
            expires_in=_seconds(payload.get("expires_in")),
            refresh_token=payload.get("refresh_token") if isinstance(payload.get("refresh_token"), str) else None,
            refresh_token_expires_in=_seconds(payload.get("refresh_token_expires_in")),
        )


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_fields(payload: Any) -> tuple[str | None, str | None]:
    """Shopify's ``error`` and ``error_description`` (or ``errors``), short and printable."""
    if not isinstance(payload, Mapping):
        return None, None
    error = payload.get("error")
    description = payload.get("error_description") or payload.get("errors")
    clean = [re.sub(r"[^\w .,:;'()/-]", "", str(v))[:200] if v else None for v in (error, description)]
    return clean[0] or None, clean[1] or None


def _seconds(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


class NoToken(PermanentError):
    """No usable token for the shop, and none can be fetched without a person (install it again)."""

    def __init__(self, message: str):
        super().__init__(message, status=None, platform="shopify")


class StaticToken:
    """A legacy custom app's ``shpat_`` token: nothing to refresh."""

    refreshable = False

    def __init__(self, token: str):
        if not token:
            raise ValueError("access_token is required")
        self._token = token

    def __repr__(self) -> str:
        return repr(mask_secret(self._token))

    def token(self) -> tuple[str, int]:
        return self._token, 0

    def refresh(self, stale_version: int | None) -> tuple[str, int]:
        raise NoToken("shopify: the configured access_token was refused (401); replace it")

"""Admin API tokens per shop: fetched when needed, kept in the database, refreshed once for everyone.

A Dev Dashboard app gets its tokens programmatically (platforms/shopify/oauth.py):
the client credentials grant gives a token for about a day, an install
(authorization code grant) an offline token that, when expiring, lasts an hour
and comes with a refresh token. One ``shop_tokens`` row per shop holds the
current token, its expiry and a version number.

- **Before expiry.** A token is used until a margin before it runs out (five
  minutes, or a tenth of its life if that is shorter), then replaced.
- **On a 401.** The client asks :meth:`ShopTokens.refresh` with the version it
  used; a newer version stored by someone else is taken as it is, otherwise a
  new token is fetched. The client repeats its request once.
- **No stampede.** A new token is fetched only with the shop's row locked:
  ``SELECT ... FOR UPDATE`` on PostgreSQL, the write transaction (``BEGIN
  IMMEDIATE``) on SQLite. Whoever waits re-reads the row afterwards and finds
  the fresh token, so any number of workers and processes make one request.
  (On SQLite that lock is the database's write lock: other writers, the
  receiver among them, wait for the one token request, two attempts of at
  most 8 s, about once a day.)
- **At rest.** Tokens are encrypted with Fernet under the key(s) in
  ``RETENTION_TOKEN_KEY`` (several, comma-separated, while rotating: the first
  encrypts). An install's tokens are never stored without it; a
  client-credentials token is stored in clear when no key is set, since it is
  re-fetched in a day anyway (``retention config check`` says so).
- Tokens never reach a log line, an exception message or ``repr``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Mapping

from sqlalchemy import select, update

from .platforms.shopify.oauth import NoToken, TokenEndpoint, TokenGrant
from .storage import tables as t
from .storage.db import for_update, insert_ignore, is_sqlite

log = logging.getLogger("retention_plugin.shop_tokens")

KEY_ENV = "RETENTION_TOKEN_KEY"
CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"
GRANTS = (CLIENT_CREDENTIALS, AUTHORIZATION_CODE)

#: Replace a token this long before it expires (or at nine tenths of its life, if that comes first).
REFRESH_MARGIN = timedelta(minutes=5)


class TokenKeyError(ValueError):
    """``RETENTION_TOKEN_KEY`` is unusable (the message never contains it)."""


def cipher_from_env(env: Mapping[str, str] | None = None):
    """A ``MultiFernet`` from ``RETENTION_TOKEN_KEY``, or None when it is unset.

    :raises TokenKeyError: a key that is not a Fernet key.
    """
    from cryptography.fernet import Fernet, MultiFernet

    raw = (os.environ if env is None else env).get(KEY_ENV, "").strip()
    if not raw:
        return None
    try:
        return MultiFernet([Fernet(k.strip().encode()) for k in raw.split(",") if k.strip()])
    except (ValueError, TypeError):
        raise TokenKeyError(
            f"{KEY_ENV} must hold Fernet keys (44 URL-safe base64 characters each, comma-separated while "
            "rotating); make one with: python -c \"from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())\"") from None


@dataclass(frozen=True)
class Current:
    """A usable token and when to stop using it (``refresh_after`` None: until refused)."""

    token: str
    version: int
    refresh_after: datetime | None

    def __repr__(self) -> str:
        return f"Current(version={self.version}, refresh_after={self.refresh_after})"


def refresh_after(obtained_at: datetime | None, expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    life = expires_at - (obtained_at or expires_at)
    return expires_at - min(REFRESH_MARGIN, max(life, timedelta(0)) / 10)


class ShopTokens:
    """The ``shop_tokens`` table and the grants that fill it.

    :param grant: how this install gets tokens, ``client_credentials`` or
        ``authorization_code`` (rows of the other kind are not used).
    :param endpoint: makes the :class:`TokenEndpoint` for a shop.
    :param cipher: from :func:`cipher_from_env`; None stores client-credentials tokens in clear.
    """

    def __init__(self, engine, *, grant: str, endpoint: Callable[[str], TokenEndpoint], cipher=None,
                 clock: Callable[[], datetime]):
        if grant not in GRANTS:
            raise ValueError(f"grant must be one of {GRANTS}, got {grant!r}")
        self.engine = engine
        self.grant = grant
        self.endpoint = endpoint
        self.cipher = cipher
        self.clock = clock

    def __repr__(self) -> str:
        return f"ShopTokens(grant={self.grant!r}, encrypted={self.cipher is not None})"

    # --- reading ---------------------------------------------------------------------------

    def current(self, shop: str) -> Current:
        """A token to use now: the stored one while it is fresh, else a new one."""
        with self.engine.connect() as conn:
            row = self._row(conn, shop)
        found = self._usable(row, self.clock())
        if found is not None:
            return found
        return self._renew(shop, stale_version=None)

    def refresh(self, shop: str, stale_version: int | None) -> Current:
        """After Shopify refused the token of ``stale_version`` (401): a newer one, fetched once."""
        return self._renew(shop, stale_version=stale_version)

    def describe(self, shop: str) -> dict | None:
        """What is stored for the shop, without the tokens."""
        with self.engine.connect() as conn:
            row = self._row(conn, shop)
        if row is None or row["access_token"] is None:
            return None
        return {"shop": shop, "grant": row["grant_type"], "scope": row["scope"], "version": row["version"],
                "obtained_at": row["obtained_at"], "expires_at": row["expires_at"],
                "refresh_token": row["refresh_token"] is not None, "encrypted": row["encrypted"]}

    # --- an install's token ---------------------------------------------------------------------

    def save_install(self, conn, shop: str, grant: TokenGrant, now: datetime) -> int:
        """Store the offline token an authorization code bought (in the caller's transaction).

        :returns: the row's new version.
        :raises TokenKeyError: no encryption key: an install's token is never stored in clear.
        """
        if self.cipher is None:
            raise TokenKeyError(f"{KEY_ENV} is not set: an installed shop's token is only stored encrypted")
        insert_ignore(conn, t.shop_tokens, self._placeholder(shop, AUTHORIZATION_CODE, now), ["shop"])
        row = conn.execute(for_update(select(t.shop_tokens).where(t.shop_tokens.c.shop == shop), conn)).mappings().one()
        return self._write(conn, row, grant, AUTHORIZATION_CODE, now, keep_refresh=False)

    # --- renewing, once ----------------------------------------------------------------------------

    def _renew(self, shop: str, stale_version: int | None) -> Current:
        now = self.clock()
        with self.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock
            if self.grant == CLIENT_CREDENTIALS and not is_sqlite(conn):
                # FOR UPDATE locks only a row that exists: the first fetch for a shop locks a placeholder.
                insert_ignore(conn, t.shop_tokens, self._placeholder(shop, self.grant, now), ["shop"])
            row = conn.execute(for_update(select(t.shop_tokens).where(t.shop_tokens.c.shop == shop),
                                          conn)).mappings().first()
            now = self.clock()
            found = self._usable(row, now)
            if found is not None and found.version != stale_version:
                return found  # someone else renewed it while we waited for the lock
            grant, keep_refresh = self._obtain(shop, row, now)
            if row is None:  # SQLite, first fetch: the write lock is already ours
                insert_ignore(conn, t.shop_tokens, self._placeholder(shop, self.grant, now), ["shop"])
                row = conn.execute(select(t.shop_tokens).where(t.shop_tokens.c.shop == shop)).mappings().one()
            version = self._write(conn, row, grant, self.grant, now, keep_refresh=keep_refresh)
        expires = now + timedelta(seconds=grant.expires_in) if grant.expires_in else None
        log.info("shopify: new access token for %s (%s, version %d, expires %s)", shop, self.grant, version,
                 expires.isoformat() if expires else "never")
        return Current(grant.access_token, version, refresh_after(now, expires))

    def _obtain(self, shop: str, row, now: datetime) -> tuple[TokenGrant, bool]:
        """A new token from Shopify; ``keep_refresh``: keep the stored refresh token if none came back."""
        if self.grant == CLIENT_CREDENTIALS:
            return self.endpoint(shop).client_credentials(), False
        install = f"open /auth/shopify/install?shop={shop} to install the app again"
        if row is None or row["access_token"] is None or row["grant_type"] != AUTHORIZATION_CODE:
            raise NoToken(f"shopify: {shop} has not been installed (no stored token); {install}")
        refresh_token = self._decrypt(row["refresh_token"], row["encrypted"])
        if not refresh_token:
            raise NoToken(f"shopify: the stored token for {shop} was refused or has expired and there is no "
                          f"refresh token; {install}")
        if row["refresh_expires_at"] is not None and row["refresh_expires_at"] <= now:
            raise NoToken(f"shopify: the refresh token for {shop} expired at {row['refresh_expires_at'].isoformat()}; "
                          f"{install}")
        return self.endpoint(shop).refresh(refresh_token), True

    # --- rows ---------------------------------------------------------------------------------------

    @staticmethod
    def _row(conn, shop: str):
        return conn.execute(select(t.shop_tokens).where(t.shop_tokens.c.shop == shop)).mappings().first()

    @staticmethod
    def _placeholder(shop: str, grant: str, now: datetime) -> dict:
        return {"shop": shop, "grant_type": grant, "encrypted": False, "version": 0, "created_at": now,
                "updated_at": now}

    def _usable(self, row, now: datetime) -> Current | None:
        if row is None or row["access_token"] is None or row["grant_type"] != self.grant:
            return None
        after = refresh_after(row["obtained_at"], row["expires_at"])
        if after is not None and now >= after:
            return None
        token = self._decrypt(row["access_token"], row["encrypted"])
        return Current(token, row["version"], after) if token else None

    def _write(self, conn, row, grant: TokenGrant, grant_type: str, now: datetime, *, keep_refresh: bool) -> int:
        version = (row["version"] or 0) + 1
        refresh = self._encrypt(grant.refresh_token) if grant.refresh_token else None
        values = {
            "grant_type": grant_type, "access_token": self._encrypt(grant.access_token),
            "encrypted": self.cipher is not None, "scope": grant.scope, "obtained_at": now,
            "expires_at": now + timedelta(seconds=grant.expires_in) if grant.expires_in else None,
            "version": version, "updated_at": now,
        }
        if refresh is not None or not keep_refresh:  # Shopify replaces the refresh token on each use
            values["refresh_token"] = refresh
            values["refresh_expires_at"] = (now + timedelta(seconds=grant.refresh_token_expires_in)
                                            if refresh is not None and grant.refresh_token_expires_in else None)
        conn.execute(update(t.shop_tokens).where(t.shop_tokens.c.id == row["id"]).values(**values))
        return version

    def _encrypt(self, value: str) -> str:
        if self.cipher is None:
            return value
        return self.cipher.encrypt(value.encode()).decode()

    def _decrypt(self, value: str | None, encrypted: bool) -> str | None:
        if value is None:
            return None
        if not encrypted:
            return value
        if self.cipher is None:
            return None
        from cryptography.fernet import InvalidToken

        try:
            return self.cipher.decrypt(value.encode()).decode()
        except InvalidToken:
            log.warning("shopify: a stored token cannot be decrypted with %s (was the key replaced?)", KEY_ENV)
            return None


class ShopTokenSource:
    """One shop's token for a :class:`~.platforms.shopify.client.ShopifyClient`, remembered between calls."""

    refreshable = True

    def __init__(self, store: ShopTokens, shop: str):
        self.store = store
        self.shop = shop
        self._current: Current | None = None

    def __repr__(self) -> str:
        return f"ShopTokenSource(shop={self.shop!r})"

    def token(self) -> tuple[str, int]:
        cur = self._current
        if cur is None or (cur.refresh_after is not None and self.store.clock() >= cur.refresh_after):
            cur = self._current = self.store.current(self.shop)
        return cur.token, cur.version

    def refresh(self, stale_version: int | None) -> tuple[str, int]:
        cur = self._current = self.store.refresh(self.shop, stale_version)
        return cur.token, cur.version

"""Installing the app on a shop with the authorization code grant: ``/auth/shopify/install`` and ``/callback``.

Served by ``retention serve`` when ``[shopify] grant = "authorization_code"``
(an app installed on another merchant's store; a merchant's own store uses the
client credentials grant and needs none of this). Shopify's "Implement
authorization code grant manually":

1. ``GET /auth/shopify/install?shop=example.myshopify.com`` — the shop must be
   a ``*.myshopify.com`` domain (step 3's rule) and one this install serves.
   When Shopify itself sends the merchant here (the app URL), the request is
   signed: its ``hmac`` and ``timestamp`` are checked as the callback's are.
   A random ``state`` is stored (its SHA-256, the shop, ten minutes to live)
   and the browser is sent to ``https://{shop}/admin/oauth/authorize`` with
   ``client_id``, ``scope``, ``redirect_uri`` and ``state`` (step 2).
2. ``GET /auth/shopify/callback?code=…&hmac=…&host=…&shop=…&state=…&timestamp=…``
   (step 3) is refused with a 4xx, storing nothing, unless: the ``hmac``
   verifies under the client secret by Shopify's query rules
   (:func:`~retention_plugin.platforms.shopify.verify.verify_oauth_query`),
   the shop is a valid domain this install serves, ``timestamp`` is within
   ten minutes of now, and ``state`` is a stored one for that shop, not yet
   used and not expired (it is deleted as it is checked, so a replay fails).
3. The code is exchanged for an offline token (step 4; ``expiring=1`` unless
   ``[shopify] expiring_offline_tokens = false``), which is stored encrypted
   (:mod:`retention_plugin.shop_tokens`, key in ``RETENTION_TOKEN_KEY``), and
   the webhook subscriptions of the shop are queued as actions
   (``[shopify] subscribe_on_install``).

Without ``RETENTION_TOKEN_KEY``, ``client_id``, ``client_secret`` or
``app_url`` the routes refuse to start: ``retention serve`` exits naming what
is missing.
"""

from __future__ import annotations

import hashlib
import html
import logging
import secrets
from datetime import timedelta
from urllib.parse import parse_qsl

import falcon
from sqlalchemy import delete

from ..context import HookContext
from ..routes import Route
from ..platforms.errors import PlatformError, TransientError
from ..platforms.shopify import mutations
from ..platforms.shopify.oauth import TokenEndpoint, authorize_url, valid_shop
from ..platforms.shopify.verify import verify_oauth_query
from .. import shops
from ..shop_scope import scope
from ..shop_tokens import KEY_ENV, TokenKeyError, cipher_from_env
from ..storage import tables as t
from ..subscriptions.shopify import RECEIVER_PATH, TOPICS
from .app_config import CALLBACK_PATH, INSTALL_PATH
from .scopes import configured_scopes

log = logging.getLogger("retention_plugin.install")

STATE_TTL = timedelta(minutes=10)
#: How far a signed request's ``timestamp`` may be from now (either way) before it counts as a replay.
TIMESTAMP_WINDOW = timedelta(minutes=10)
MAX_QUERY = 4096


class InstallNotReady(RuntimeError):
    """The install routes cannot run: the message names every missing setting."""


def enabled(settings) -> bool:
    """Whether this configuration installs through the authorization code grant."""
    s = settings.section("shopify")
    return bool(s) and not s.get("access_token") and s.get("grant") == "authorization_code"


#: Where each setting comes from, for the messages that say it is missing.
WHERE = {"client_id": "Dev Dashboard > your app > Settings > Client ID",
         "client_secret": "Dev Dashboard > your app > Settings > Secret",
         "app_url": "the public https URL of `retention serve`"}


def unset(shopify, keys) -> list[str]:
    return [f"[shopify].{key} is not set ({WHERE[key]})" for key in keys if not shopify.get(key)]


def key_status(env=None) -> tuple[bool, str | None]:
    """Whether ``RETENTION_TOKEN_KEY`` is set, and what is wrong with it (never its value)."""
    try:
        return cipher_from_env(env) is not None, None
    except TokenKeyError as e:
        return True, str(e)


def problems(settings, env=None) -> list[str]:
    """What the install routes need and the configuration lacks (empty: ready)."""
    out = unset(settings.section("shopify"), ("client_id", "client_secret", "app_url"))
    is_set, problem = key_status(env)
    if problem:
        out.append(problem)
    elif not is_set:
        out.append(f"environment variable {KEY_ENV} is not set (installed shops' tokens are stored encrypted under it)")
    return out


def install_routes(retention) -> list[Route]:
    """The install routes when the configuration installs (none otherwise); refuse to start when it cannot.

    :raises InstallNotReady: naming every missing setting.
    """
    if not enabled(retention.settings):
        return []
    missing = problems(retention.settings)
    if missing:
        raise InstallNotReady("the Shopify install routes cannot start: " + "; ".join(missing))
    routes = InstallRoutes(retention)
    return [Route(INSTALL_PATH, routes, suffix="install"), Route(CALLBACK_PATH, routes, suffix="callback")]


class Refused(Exception):
    def __init__(self, status: str, reason: str, detail: str):
        self.status, self.reason, self.detail = status, reason, detail


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


class InstallRoutes:
    def __init__(self, retention):
        self.retention = retention
        self.shopify = retention.settings.section("shopify")
        self.app_url = self.shopify["app_url"].rstrip("/")

    # --- shared checks ------------------------------------------------------------------------

    @staticmethod
    def _query(req) -> dict[str, str | list[str]]:
        """The query as decoded values, a list where a key repeats (what verify_oauth_query reads)."""
        raw = req.query_string or ""
        if len(raw) > MAX_QUERY:
            raise Refused(falcon.HTTP_414, "too_long", "query string too long")
        params: dict[str, str | list[str]] = {}
        for key, value in parse_qsl(raw, keep_blank_values=True):
            have = params.get(key)
            if have is None:
                params[key] = value
            else:
                params[key] = [*have, value] if isinstance(have, list) else [have, value]
        return params

    @staticmethod
    def _one(params, name: str) -> str | None:
        value = params.get(name)
        if isinstance(value, list):
            raise Refused(falcon.HTTP_400, "bad_request", f"{name} appears more than once")
        return value

    def _shop(self, params) -> str:
        shop = self._one(params, "shop")
        if not shop or not valid_shop(shop):
            raise Refused(falcon.HTTP_400, "bad_shop", "shop must be a domain like example.myshopify.com")
        # The shops this install is meant to serve: [shopify] shop, a [shops."<shop>"] table (an agency
        # lists its clients' shops there), or one installed before (installing again renews its token).
        with self.retention.engine.connect() as conn:
            known = shops.is_installed(self.retention, conn, shop)
        if not known:
            raise Refused(falcon.HTTP_403, "unknown_shop", f"this installation does not serve {shop}: "
                                                           f"add a [shops.\"{shop}\"] table to its configuration")
        return shop

    def _signed(self, params) -> None:
        if not verify_oauth_query(params, self.shopify["client_secret"]):
            raise Refused(falcon.HTTP_401, "bad_signature", "the hmac does not match the query")
        stamp = self._one(params, "timestamp")
        try:
            when = int(stamp or "")
        except ValueError:
            raise Refused(falcon.HTTP_400, "bad_timestamp", "timestamp is missing or not a number") from None
        skew = abs(self.retention.now().timestamp() - when)
        if skew > TIMESTAMP_WINDOW.total_seconds():
            raise Refused(falcon.HTTP_400, "stale_timestamp",
                          f"the request was signed {int(skew)} s from now (replay protection)")

    def _answer(self, resp, handler, req) -> None:
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Referrer-Policy", "no-referrer")  # the callback's URL holds the code
        try:
            handler(req, resp)
        except Refused as r:
            log.warning("shopify install %s refused: %s", req.path, r.detail)
            resp.status = r.status
            resp.content_type = "text/html; charset=utf-8"
            resp.text = _page("Not installed", f"{r.detail} ({r.reason}).")

    # --- /auth/shopify/install ---------------------------------------------------------------------

    def on_get_install(self, req, resp):
        self._answer(resp, self._install, req)

    def _install(self, req, resp) -> None:
        params = self._query(req)
        if "hmac" in params:  # sent by Shopify (the app URL): it must verify
            self._signed(params)
        shop = self._shop(params)
        state = secrets.token_urlsafe(32)
        now = self.retention.now()
        with self.retention.engine.begin() as conn:
            conn.execute(delete(t.oauth_states).where(t.oauth_states.c.expires_at < now))
            conn.execute(t.oauth_states.insert().values(state_hash=_state_hash(state), shop=shop, created_at=now,
                                                        expires_at=now + STATE_TTL))
        resp.status = falcon.HTTP_302
        resp.set_header("Location", authorize_url(shop, self.shopify["client_id"],
                                                  configured_scopes(self.shopify),
                                                  self.app_url + CALLBACK_PATH, state))

    # --- /auth/shopify/callback -----------------------------------------------------------------------

    def on_get_callback(self, req, resp):
        self._answer(resp, self._callback, req)

    def _callback(self, req, resp) -> None:
        params = self._query(req)
        self._signed(params)  # before anything is looked up or stored
        shop = self._shop(params)
        code, state = self._one(params, "code"), self._one(params, "state")
        if not code or not state:
            raise Refused(falcon.HTTP_400, "bad_request", "code and state are required")
        now = self.retention.now()
        with self.retention.engine.begin() as conn:
            used = conn.execute(delete(t.oauth_states).where(
                t.oauth_states.c.state_hash == _state_hash(state), t.oauth_states.c.shop == shop,
                t.oauth_states.c.expires_at >= now)).rowcount
        if used != 1:
            raise Refused(falcon.HTTP_400, "bad_state",
                          "unknown, used or expired state: start again at " + INSTALL_PATH + f"?shop={shop}")
        endpoint = TokenEndpoint(shop, self.shopify["client_id"], self.shopify["client_secret"],
                                 base_url=self.shopify.get("admin_base_url"))
        try:
            grant = endpoint.exchange_code(code, expiring=self.shopify.get("expiring_offline_tokens", True))
        except TransientError as e:
            raise Refused(falcon.HTTP_503, "shopify_unavailable", f"{e}; start again in a minute") from None
        except PlatformError as e:
            raise Refused(falcon.HTTP_502, "code_refused", str(e)) from None
        missing = sorted(set(configured_scopes(self.shopify)) - grant.scopes)
        # The subscriptions queued are the new shop's actions, made with its token.
        with self.retention.engine.begin() as conn, scope(shop):
            version = self.retention.shop_tokens.save_install(conn, shop, grant, now)
            queued = self._subscribe(conn, shop, version, now)
        log.info("shopify: installed on %s (token version %d, %d webhook subscriptions queued)", shop, version,
                 queued)
        resp.status = falcon.HTTP_200
        resp.content_type = "text/html; charset=utf-8"
        notes = [f"Installed on {shop}."]
        if queued:
            notes.append(f"{queued} webhook subscriptions are queued; `retention worker` makes them.")
        if missing:
            notes.append("Shopify did not grant these scopes: " + ", ".join(missing) +
                         ". Add them to the app's version in the Dev Dashboard and install again.")
        notes.append("Next: `retention config check`.")
        resp.text = _page("Installed", " ".join(notes))

    def _subscribe(self, conn, shop: str, version: int, now) -> int:
        url = self.app_url + RECEIVER_PATH
        if not self.shopify.get("subscribe_on_install", True) or not url.startswith("https://"):
            return 0  # Shopify delivers webhooks to https only (a plain-http app_url is a local test set-up)
        ctx = HookContext(self.retention, conn, now=now, source="web")
        for topic in TOPICS:
            ctx.enqueue_action("shopify", "webhook_subscription_create", f"install:{shop}:{version}:webhook:{topic}",
                               mutations.webhook_subscription_create(topic, url))
        return len(TOPICS)


def _page(title: str, text: str) -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")

"""The Retention object: settings, storage, plugin manager and clients in one place."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Callable

from . import config as config_mod
from . import shop_scope
from .plugins import collect, make_plugin_manager

log = logging.getLogger("retention_plugin")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Retention:
    """What every command, the receiver and the worker share.

    Built from a config file with :meth:`from_config`, or from a mapping with
    :meth:`from_dict` (tests and the demo). ``clock`` is injectable so tests
    can move time without sleeping.
    """

    def __init__(self, settings: config_mod.Settings, *, extra_plugins=(), entry_points=True,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.clock = clock
        shop_scope.set_process_default(settings.configured_shop)
        self.pm = make_plugin_manager(
            disabled=settings.section("plugins").get("disabled", []),
            dirs=settings.plugin_dirs(),
            entry_points=entry_points,
            extra=extra_plugins,
        )
        sections = dict(collect(self.pm, "register_config_sections"))
        config_mod.apply_plugin_sections(settings, sections)

    @classmethod
    def from_config(cls, path=None, **kw) -> "Retention":
        p = config_mod.resolve_path(path)
        raw = config_mod.read_raw(p)
        return cls(config_mod.load_core(raw, p.resolve()), **kw)

    @classmethod
    def from_dict(cls, raw: dict, *, path: Path | None = None, **kw) -> "Retention":
        return cls(config_mod.from_dict(raw, path), **kw)

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def engine(self):
        from .storage.db import make_engine

        db = self.settings.section("database")
        engine = make_engine(self.settings.database_url, pool_size=db["pool_size"],
                             sqlite_synchronous=db.get("sqlite_synchronous", "full"))
        # Work outside a shop scope (a one-shop install: all of it) is the configured shop's.
        # With several shops, a row written outside a scope takes its parent's shop (shop_scope.column_default).
        many = bool(self.settings.per_shop) or self.settings.section("shopify").get("grant") == "authorization_code"
        return engine.execution_options(**{shop_scope.OPTION: self.default_shop, shop_scope.MANY: many})

    @property
    def default_shop(self) -> str:
        """``[shopify] shop``: the shop of work no delivery or ``--shop`` names ("" without Shopify)."""
        return self.settings.configured_shop

    def shops(self, conn=None) -> list[str]:
        """Every installed shop (:func:`.shops.installed`)."""
        from .shops import installed

        if conn is not None:
            return installed(self, conn)
        with self.engine.connect() as c:
            return installed(self, c)

    @property
    def dry_run(self) -> bool:
        return self.settings.section("actions")["dry_run"]

    @cached_property
    def message_kinds(self) -> dict[str, str]:
        return dict(collect(self.pm, "register_message_kinds"))

    @cached_property
    def channels(self) -> dict:
        from .messaging.channels import LogChannel, channels_from_pm

        channels = channels_from_pm(self.pm)  # rejects two channels claiming one name
        if self.dry_run and "email" in channels:
            # Dry-run sends no mail: the message is rendered and recorded (provider id "log:<key>").
            # The zendesk and shopify channels only enqueue actions, which dry-run records anyway.
            channels["email"] = LogChannel()
        return channels

    @cached_property
    def tasks(self) -> list[tuple]:
        return collect(self.pm, "register_tasks")

    def shopify_client(self, **options):
        """A Shopify Admin API client from ``[shopify]``; ``options`` go to the client (timeout, attempts)."""
        from .platforms.shopify.client import ShopifyClient

        s = self.settings.section("shopify")
        if not s:
            raise RuntimeError("no [shopify] section in the configuration")
        # The shop in scope (a delivery's, or --shop), with its [shops."<shop>".shopify] overrides.
        shop = shop_scope.scoped() or s["shop"]
        if s.get("access_token"):
            token = s["access_token"]  # a legacy custom app's static token
        elif s.get("client_id") and s.get("client_secret"):
            from .shop_tokens import ShopTokenSource

            token = ShopTokenSource(self.shop_tokens, shop)
        else:
            raise RuntimeError("[shopify] needs client_id and client_secret (a Dev Dashboard app, docs/install.md) "
                               "or access_token (a legacy custom app)")
        return ShopifyClient(shop, token, s["api_version"], base_url=s.get("admin_base_url"), **options)

    @cached_property
    def shop_tokens(self):
        """The Admin API tokens of ``[shopify]``'s app, per shop (:mod:`.shop_tokens`).

        :raises TokenKeyError: ``RETENTION_TOKEN_KEY`` holds something that is not a Fernet key.
        """
        from .platforms.shopify.oauth import TokenEndpoint
        from .shop_tokens import ShopTokens, cipher_from_env

        s = self.settings.section("shopify")

        def endpoint(shop: str) -> TokenEndpoint:
            return TokenEndpoint(shop, s.get("client_id") or "", s.get("client_secret") or "",
                                 base_url=s.get("admin_base_url"))

        return ShopTokens(self.engine, grant=s.get("grant") or "client_credentials", endpoint=endpoint,
                          cipher=cipher_from_env(), clock=self.now)

    def zendesk_client(self, **options):
        """A Zendesk API client from ``[zendesk]``; ``options`` go to the client (timeout, attempts)."""
        from .platforms.zendesk.client import ZendeskClient

        s = self.settings.section("zendesk")
        if not s:
            raise RuntimeError("no [zendesk] section in the configuration")
        return ZendeskClient(s["subdomain"], s.get("email") or "", s.get("api_token") or "",
                             oauth_token=s.get("oauth_token"), base_url=s.get("base_url"), **options)

    def dispose(self):
        if "engine" in self.__dict__:
            self.engine.dispose()  # an option engine shares (and disposes) its parent's pool

"""What every ``retention`` command needs, for the core's commands and every plugin's alike.

Plugins add commands through ``register_commands``; they import these
helpers from here, never from :mod:`retention_plugin.cli`, which assembles the
command line from the plugins and so sits above every one of them.
"""

from __future__ import annotations

import json
import logging

import click

from .config import ConfigError
from .plugins import PluginLoadError


class ConfigProblem(click.ClickException):
    """A configuration error: exit status 2, like any other usage error."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"Error: {self.format_message()}", err=True)


class LazyApp:
    """``ctx.obj``: builds the Retention object on first use, so ``--help`` needs no config."""

    def __init__(self, config_path, shop: str | None = None):
        self.config_path = config_path
        #: ``--shop``: the shop the command acts for (None: ``[shopify] shop``).
        self.shop = shop
        self._app = None

    @property
    def app(self):
        if self._app is None:
            from .app import Retention

            try:
                self._app = Retention.from_config(self.config_path)
            except (ConfigError, PluginLoadError) as e:
                raise ConfigProblem(str(e)) from None
            level = self._app.settings.section("logging").get("level", "INFO")
            logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            if self.shop is not None:
                self._check_shop(self._app)
        return self._app

    def _check_shop(self, app) -> None:
        from .shops import is_installed

        with app.engine.connect() as conn:
            known = is_installed(app, conn, self.shop)
        if not known:
            self._app = None
            raise click.BadParameter(f"{self.shop} is not installed (see `retention shops list`)",
                                     param_hint="--shop")

    def __getattr__(self, name):
        return getattr(self.app, name)


pass_app = click.make_pass_decorator(LazyApp)


class ShopListing:
    """How a listing command shows shops: ``--shop`` given, that shop's rows only; else, with more than
    one shop installed, every shop's rows with a shop column; with one shop, every row as always."""

    def __init__(self, app):
        from .shops import installed

        self.only = app.shop
        if self.only is None:
            with app.engine.connect() as conn:
                self.many = len(installed(app.app, conn)) > 1
        else:
            self.many = False

    def where(self, table):
        """The rows to list (None: all); ``table``'s rows without a shop of their own follow their parent's."""
        if self.only is None:
            return None
        from .shops import rows_of

        return rows_of(table, self.only)

    def filter(self, query, table):
        where = self.where(table)
        return query if where is None else query.where(where)

    def column(self, shop: str | None) -> str:
        """The shop column of a text row ("" unless several shops are listed)."""
        return f"{(shop or '-'):<32} " if self.many else ""


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def require_schema(app) -> None:
    from .storage.db import SchemaOutdated, check_schema

    try:
        check_schema(app.engine)
    except SchemaOutdated as e:
        raise click.ClickException(str(e)) from None


def resolve_customer_arg(app, ref) -> dict:
    from .customers import find_customer

    with app.engine.connect() as conn:
        c = find_customer(conn, ref)
    if c is None:
        raise click.BadParameter(f"no customer matches {ref!r} (try an email, a Shopify id, an internal id, "
                                 "or id:/shopify:/zendesk:/email: before it)",
                                 param_hint="CUSTOMER")
    return c

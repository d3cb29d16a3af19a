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


class RetentionGroup(click.Group):
    """The root command: a database mistake in any command, a plugin's too, is one line with its fix.

    A missing folder, database, host or driver, or a schema that ``retention db upgrade`` would
    create, raise deep inside SQLAlchemy; the traceback says nothing a store admin can act on.
    Errors this cannot word plainly keep their traceback.
    """

    def invoke(self, ctx):
        from sqlalchemy.exc import SQLAlchemyError

        from .storage.db import explain_error

        try:
            return super().invoke(ctx)
        except (SQLAlchemyError, ImportError, ValueError) as e:
            lazy = ctx.obj if isinstance(ctx.obj, LazyApp) else None
            app = lazy._app if lazy is not None else None
            url = app.settings.database_url if app is not None else None
            engine = app.__dict__.get("engine") if app is not None else None  # only an engine already made
            message = explain_error(e, url, engine)
            if message is None:
                raise
            raise click.ClickException(message) from None


class LazyApp:
    """``ctx.obj``: builds the Retention object on first use, so ``--help`` needs no config."""

    def __init__(self, config_path, shop: str | None = None, verbose: bool = False):
        self.config_path = config_path
        #: ``--shop``: the shop the command acts for (None: ``[shopify] shop``).
        self.shop = shop
        self.verbose = verbose
        self._app = None
        self._schema_checked = False

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
            quiet_alembic(self.verbose)
        return self._app

    def _check_shop(self, app) -> None:
        from .shops import is_installed

        with app.engine.connect() as conn:
            known = is_installed(app, conn, self.shop)
        if not known:
            self._app = None
            raise click.BadParameter(f"{self.shop} is not installed (see `retention shops list`)",
                                     param_hint="--shop")

    @property
    def engine(self):
        """The database, once its schema is known to be this version's.

        A command reading an older schema would fail on a missing table, or quietly miss rows a
        newer table holds; so every command that asks for the engine first compares the
        database's Alembic revision with the code's head. ``db upgrade`` and ``db status`` use
        ``app.app.engine``, which does not check.
        """
        engine = self.app.engine
        if not self._schema_checked:
            require_schema(self.app)
            self._schema_checked = True
        return engine

    def __getattr__(self, name):
        return getattr(self.app, name)


pass_app = click.make_pass_decorator(LazyApp)


def quiet_alembic(verbose: bool) -> None:
    """Alembic narrates every migration context at INFO; an admin sees that only with ``-v``."""
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)


def table(rows: list[dict], columns: list[str] | None = None, *, headers: dict[str, str] | None = None,
          empty: str = "(none)", max_width: int = 60) -> str:
    """Rows as a plain-text table with a header line; ``columns`` picks and orders the keys.

    Values print as text (None as "-"); a value longer than ``max_width`` characters is cut with
    "…", so one long error message does not push every other column off the screen (``--json``
    has every value whole).
    """
    if not rows:
        return empty
    columns = columns or list(rows[0])
    headers = headers or {}

    def cell(v) -> str:
        text = "-" if v is None or v == "" else str(v).replace("\n", " ")
        return text if len(text) <= max_width else text[:max_width - 1] + "…"

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    head = [headers.get(c, c.replace("_", " ")) for c in columns]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    numeric = [all(row[i].lstrip("-").replace(".", "", 1).isdigit() or row[i] == "-" for row in body)
               for i in range(len(columns))]

    def line(values) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(row) for row in body)])


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
    """Refuse a database whose schema is not this version's (one line naming ``retention db upgrade``)."""
    if isinstance(app, LazyApp):
        app.engine  # noqa: B018 (the property checks, once per command, for every command that reads)
        return
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

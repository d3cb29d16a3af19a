"""``retention shopify app-config``: write the ``shopify.app.toml`` that Shopify CLI deploys."""

from __future__ import annotations

from pathlib import Path

import click

from ..clihelp import ConfigProblem, pass_app


@click.group("shopify")
def shopify_group():
    """Shopify set-up."""


@shopify_group.command("app-config")
@click.option("--out", default="shopify.app.toml", show_default=True, metavar="PATH",
              help="Where to write it (- for standard output).")
@click.option("--name", default="retention-plugin", show_default=True, help="The app's name in Shopify.")
@click.option("--app-proxy/--no-app-proxy", default=True, show_default=True,
              help="Declare the storefront app proxy "
                   "([shopify] app_proxy_prefix/app_proxy_subpath -> <app_url><[storefront] path>).")
@pass_app
def app_config_cmd(app, out, name, app_proxy):
    """Write the app configuration (scopes, redirect URL, webhook topics, compliance topics, app proxy)."""
    from .app_config import AppConfigError, app_config, render

    try:
        # The storefront plugin's own section, read as settings: install does not import a feature.
        proxy_path = app.settings.section("storefront").get("path")
        text = render(app_config(app.settings.section("shopify"), name=name, app_proxy=app_proxy,
                                 proxy_path=proxy_path))
    except AppConfigError as e:
        raise ConfigProblem(str(e)) from None
    if out == "-":
        click.echo(text, nl=False)
        return
    Path(out).write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}; deploy it from the app's directory with `shopify app deploy` (docs/install.md)")

"""``retention shopify subscribe`` and ``retention zendesk install``."""

from __future__ import annotations

import json

import click

from ..clihelp import ConfigProblem, echo_json, pass_app
from ..platforms.errors import PlatformError


def _url(value: str, path: str) -> str:
    from .shopify import callback_url

    try:
        return callback_url(value, path)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--callback-url") from None


def _client(factory):
    try:
        return factory()
    except (RuntimeError, ValueError) as e:  # missing section, token, email
        raise ConfigProblem(str(e)) from None


@click.group("shopify")
def shopify_group():
    """Shopify set-up."""


@shopify_group.command("subscribe")
@click.option("--callback-url", "url", required=True, metavar="URL",
              help="Public https URL of the receiver (a bare origin gets /webhooks/shopify appended).")
@click.option("--dry-run", is_flag=True, help="Print the requests, send nothing (also when [actions].dry_run = true).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_app
def shopify_subscribe(app, url, dry_run, as_json):
    """Create the webhook subscriptions retention-plugin needs (only the missing ones) and list them all."""
    from . import shopify as sub

    s = app.settings.section("shopify")
    if not s:
        raise ConfigProblem("no [shopify] section in the configuration")
    url = _url(url, sub.RECEIVER_PATH)
    try:
        metafields = sub.wanted_metafields(app.pm, app.settings)
    except ValueError as e:
        raise ConfigProblem(str(e)) from None
    if dry_run or app.dry_run:
        endpoint = sub.graphql_url(s["shop"], s["api_version"])
        requests = [{"method": "POST", "url": endpoint, "json": r}
                    for r in sub.planned_requests(url, metafields=metafields)]
        if as_json:
            echo_json({"dry_run": True, "callback_url": url, "requests": requests})
            return
        click.echo(f"dry run: nothing was sent to {s['shop']}. `retention shopify subscribe` sends the list query, "
                   f"then one create for each topic not yet subscribed to {url}:")
        for r in requests:
            click.echo(json.dumps(r, indent=2, ensure_ascii=False))
        click.echo(sub.compliance_guidance(url))
        return
    client = _client(app.shopify_client)
    try:
        result = sub.subscribe(client, url, metafields=metafields)
    except PlatformError as e:
        raise click.ClickException(f"Shopify: {e}") from None
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(f"{s['shop']}: callback {url}")
    click.echo(f"created {len(result.created)}: {', '.join(x.get('topic', '?') for x in result.created) or '-'}")
    click.echo(f"already subscribed {len(result.already)}: {', '.join(result.already) or '-'}")
    if result.updated:
        click.echo(f"given the metafields they lacked {len(result.updated)}: "
                   f"{', '.join(x.get('topic', '?') for x in result.updated)}")
    for topic, names in metafields.items():
        click.echo(f"  {topic} bodies carry the metafields {', '.join(names)}")
    click.echo(f"subscriptions before this run ({len(result.existing)}):")
    for x in result.existing:
        click.echo(f"  {x.get('topic', '?'):<24} {x.get('uri') or x.get('callbackUrl') or '?'}  {x.get('id', '')}")
    click.echo(sub.compliance_guidance(url))


@click.group("zendesk")
def zendesk_group():
    """Zendesk set-up."""


@zendesk_group.command("install")
@click.option("--callback-url", "url", required=True, metavar="URL",
              help="Public https URL of the receiver (a bare origin gets /webhooks/zendesk appended).")
@click.option("--category-id", help="Trigger category for the new triggers (default: Zendesk's default).")
@click.option("--show-secret", is_flag=True, help="Print the webhook's signing secret.")
@click.option("--dry-run", is_flag=True, help="Print the requests, send nothing (also when [actions].dry_run = true).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_app
def zendesk_install(app, url, category_id, show_secret, dry_run, as_json):
    """Create the webhook and the triggers that post the shipped bodies (only what is missing)."""
    from . import zendesk as zi

    from .. import shop_scope, shops

    s = app.settings.section("zendesk")
    if not s:
        raise ConfigProblem("no [zendesk] section in the configuration")
    # Under --shop, a shop with a Zendesk account of its own posts to its own path (docs/install.md).
    shop = shop_scope.scoped()
    own = shop is not None and shops.own_zendesk(app.settings, shop)
    url = _url(url, shops.zendesk_path(shop) if own else zi.RECEIVER_PATH)
    if dry_run or app.dry_run:
        requests = [zi.describe(r, s["subdomain"]) for r in zi.planned_requests(url, category_id=category_id)]
        if as_json:
            echo_json({"dry_run": True, "callback_url": url, "requests": requests})
            return
        click.echo(f"dry run: nothing was sent to {s['subdomain']}.zendesk.com. `retention zendesk install` sends "
                   "these requests; the creates only for what does not exist yet:")
        for r in requests:
            click.echo(json.dumps(r, indent=2, ensure_ascii=False))
        return
    client = _client(app.zendesk_client)
    try:
        result = zi.install(client, url, expected_secret=s.get("webhook_secret"), show_secret=show_secret,
                            category_id=category_id)
    except zi.InstallConflict as e:
        raise click.ClickException(str(e)) from None
    except PlatformError as e:
        raise click.ClickException(f"Zendesk: {e}") from None
    if as_json:
        echo_json(result.as_dict())
    else:
        w = result.webhook
        click.echo(f"webhook {w.get('id')} ({w.get('name')}) -> {w.get('endpoint')}: "
                   f"{'created' if result.webhook_created else 'already there'}")
        click.echo(f"triggers created {len(result.triggers_created)}: {', '.join(result.triggers_created) or '-'}")
        click.echo(f"triggers already there {len(result.triggers_existing)}: "
                   f"{', '.join(result.triggers_existing) or '-'}")
        click.echo(zi.secret_guidance(result, s["subdomain"]))
        if result.signing_secret is not None:
            click.echo(f"signing secret: {result.signing_secret}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)

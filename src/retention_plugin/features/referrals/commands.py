"""``retention referrals ...``: the report, and a customer's link."""

from __future__ import annotations

import click

from ...clihelp import echo_json, pass_app, require_schema, resolve_customer_arg
from ...links import LinkError


@click.group("referrals")
def referrals():
    """Referral links, invitations and what came of them."""


@referrals.command("report")
@click.option("--top", type=click.IntRange(0, 10000), default=20, show_default=True,
              help="How many referrers to list, most qualified referrals first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def report_cmd(app, top, as_json):
    """Referrals by status, rejections by reason, and the top referrers."""
    from .engine import STATUSES, report

    require_schema(app)
    with app.engine.connect() as conn:
        data = report(conn, top=top)
    if as_json:
        echo_json(data)
        return
    click.echo(f"referrals: {data['total']}")
    click.echo("  " + ", ".join(f"{s} {data['by_status'][s]}" for s in STATUSES))
    if data["rejected_by_reason"]:
        click.echo("rejected: " + ", ".join(f"{r} {n}" for r, n in data["rejected_by_reason"].items()))
    if data["referrers"]:
        click.echo(f"{'referrer':<40} " + " ".join(f"{s:>9}" for s in STATUSES))
        for r in data["referrers"]:
            who = f"{r['customer_id']} ({r['email'] or 'no email'})"
            click.echo(f"{who[:40]:<40} " + " ".join(f"{r[s]:>9}" for s in STATUSES))


@referrals.command("link")
@click.argument("customer")
@pass_app
def link_cmd(app, customer):
    """Print a customer's referral link.

    CUSTOMER is an email, a Shopify customer id (or GID) or an internal id.
    """
    from .codes import referral_url

    require_schema(app)
    c = resolve_customer_arg(app, customer)
    try:
        click.echo(referral_url(app.settings, c))
    except LinkError as e:
        raise click.ClickException(e.message) from None

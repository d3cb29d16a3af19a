"""``retention followups rate TOKEN ANSWER``: record an answer a customer sent back by mail."""

from __future__ import annotations

import click

from retention_plugin import links

from .engine import RatingError, record_rating_answer
from .settings import ANSWERS


@click.group("followups")
def followups_group():
    """Follow-up messages and their rating answers."""


@followups_group.command("rate")
@click.argument("token")
@click.argument("answer", type=click.Choice(ANSWERS, case_sensitive=False))
@click.option("--comment", help="What the customer said, if anything.")
@click.pass_obj
def rate_cmd(app, token, answer, comment):
    """Record a rating answer from a link's token (the t= value), e.g. one a customer sent back by mail."""
    try:
        result = record_rating_answer(app.app, token, answer, comment=comment)
    except links.LinkError as e:
        raise click.BadParameter(e.message, param_hint="TOKEN") from None
    except RatingError as e:
        raise click.ClickException(e.message) from None
    click.echo(f"order {result.order_id}: {result.score} ({result.value}) {result.status}"
               + (f"; ticket {result.ticket}" if result.ticket else ""))

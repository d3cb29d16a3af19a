"""``retention recovery ...``: the report, and classifying tickets stored before the feature."""

from __future__ import annotations

from datetime import datetime, timezone

import click
from sqlalchemy import select

from ...cli import echo_json, pass_app, require_schema
from ...context import HookContext
from ...storage import tables as t
from .settings import settings_of


def _day(value: str | None, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 time", param_hint=param) from None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


@click.group("recovery")
def recovery():
    """Service recovery: complaints, goodwill offers and what came of them."""


@recovery.command("report")
@click.option("--since", metavar="DATE", help="Only complaints created on or after this date (UTC).")
@click.option("--until", metavar="DATE", help="Only complaints created before this date (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every case and its outcome.")
@pass_app
def report_cmd(app, since, until, as_json):
    """Complaints, offers made, their cost, and the repeat-purchase rate with and without an offer."""
    from . import report

    require_schema(app)
    since_at, until_at = _day(since, "--since"), _day(until, "--until")
    if since_at and until_at and until_at <= since_at:
        raise click.BadParameter("must be after --since", param_hint="--until")
    settings = settings_of(app.app)
    with app.engine.connect() as conn:
        data = report.build(conn, settings, app.now(), since=since_at, until=until_at,
                            with_cases=as_json)
    if as_json:
        echo_json(data)
    else:
        click.echo(report.text(data), nl=False)


@recovery.command("classify")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many tickets.")
@pass_app
def classify_cmd(app, limit):
    """Classify stored tickets that were never classified (e.g. stored before the feature was on)."""
    from .classify import classify_and_store, ticket_from_row

    require_schema(app)
    tk = t.tickets
    q = select(tk).where(tk.c.complaint_reason.is_(None), tk.c.complaint.is_(False)).order_by(tk.c.id)
    if limit:
        q = q.limit(limit)
    counts = {"complaint": 0, "not_complaint": 0}
    with app.engine.begin() as conn:
        ctx = HookContext(app.app, conn, now=app.now(), source="cli")
        for row in conn.execute(q).mappings().all():
            got = classify_and_store(ctx, ticket_from_row(dict(row)), dict(row))
            counts["complaint" if got["complaint"] else "not_complaint"] += 1
    click.echo(f"classified {sum(counts.values())} ticket(s): {counts['complaint']} complaint(s), "
               f"{counts['not_complaint']} not")

"""``retention recovery ...``: the report, classifying (a text, or stored tickets), and approving offers."""

from __future__ import annotations

import getpass
from datetime import datetime, timezone

import click
from sqlalchemy import select

from ...clihelp import echo_json, pass_app, require_schema
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
@click.option("--subject", metavar="TEXT", help="Classify this subject (with --body) instead of stored tickets.")
@click.option("--body", metavar="TEXT", help="Classify this ticket description.")
@click.option("--lang", metavar="XX", help="Only this language's keywords (en, lt, sl, ru, ka, or a configured one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many stored tickets.")
@pass_app
def classify_cmd(app, subject, body, lang, as_json, limit):
    """Show why a text is (not) a complaint, or classify stored tickets that were never classified.

    With --subject/--body nothing is stored: the classify_ticket hook (plugins first, the built-in
    last) answers, and the keywords that counted and the ones ignored are shown with the reason.
    Without them, tickets stored before the feature was on are classified and stored.
    """
    from .classify import classify_and_store, ticket_from_row

    if subject is None and body is None:
        if lang:
            raise click.BadParameter("give --subject or --body to classify a text", param_hint="--lang")
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
        if as_json:
            echo_json({"classified": sum(counts.values()), **counts})
            return
        click.echo(f"classified {sum(counts.values())} ticket(s): {counts['complaint']} complaint(s), "
                   f"{counts['not_complaint']} not")
        return
    got = _classify_text(app, subject, body, lang)
    if as_json:
        echo_json(got)
        return
    click.echo(f"complaint: {'yes, severity ' + got['severity'] if got['complaint'] else 'no'}")
    click.echo(f"reason: {got['reason']}")
    for title, items in (("counted", got["matched"]), ("ignored", got["ignored"])):
        for x in items:
            what = _signal_text(x)
            click.echo(f"  {title}: {what}" + (f" -- {x['why']}" if x.get("why") else ""))


def _signal_text(x: dict) -> str:
    if x.get("signal") == "keyword":
        return f'"{x["text"]}" ({x["lang"]}, {x["severity"]}, keyword {x["keyword"]}, in the {x["where"]})'
    return ", ".join(f"{k}={v}" for k, v in x.items())


def _classify_text(app, subject: str | None, body: str | None, lang: str | None) -> dict:
    from ...events import Ticket
    from .classify import classify, keyword_table

    settings = settings_of(app.app)
    if lang is not None:
        lang = lang.strip().lower()
        known = sorted(keyword_table(settings["complaints"]))
        if lang not in known:
            raise click.BadParameter(f"{lang!r} has no complaint keywords; known: {', '.join(known)}",
                                     param_hint="--lang")
    ticket = Ticket(zendesk_id=0, subject=subject, description=body, status="new", priority=None, tags=[],
                    requester=None, created_at=None, updated_at=None)
    with app.engine.connect() as conn:  # read-only: a plugin's classifier may look things up
        ctx = HookContext(app.app, conn, now=app.now(), source="cli")
        ctx.classify_languages = [lang] if lang else None
        got = classify(ctx, ticket)
    return {"complaint": got["complaint"], "severity": got["severity"], "matched": got["matched"],
            "reason": got["reason"], "ignored": got["ignored"], "evidence": got["evidence"]}


# --- approval ----------------------------------------------------------------------------------


def _case_json(row: dict) -> dict:
    out = {k: row[k] for k in ("id", "key", "customer_id", "trigger", "severity", "decision", "reason", "hold",
                               "incident", "evidence", "reviewed_by", "review_note")}
    out["amount"] = f"{row['amount']:.2f}" if row["amount"] is not None else None
    out["currency"] = row["currency"]
    out["created_at"] = row["created_at"].isoformat()
    out["reviewed_at"] = row["reviewed_at"].isoformat() if row["reviewed_at"] else None
    return out


@recovery.command("pending")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def pending_cmd(app, as_json):
    """Goodwill offers waiting for approval, and why each waits."""
    from .offers import pending_cases

    require_schema(app)
    with app.engine.connect() as conn:
        cases = [_case_json(r) for r in pending_cases(conn)]
    if as_json:
        echo_json(cases)
        return
    if not cases:
        click.echo("no offers waiting for approval")
    for c in cases:
        click.echo(f"{c['id']:>6}  {c['created_at'][:10]}  {c['amount']} {c['currency']}  {c['key']}  "
                   f"customer {c['customer_id']}\n        waits: {c['hold']}")


def _review(app, case_id: int, action: str, by: str | None, text: str | None):
    from .offers import ApprovalError, approve, decline

    require_schema(app)
    by = (by or "").strip() or getpass.getuser()
    settings = settings_of(app.app)
    try:
        with app.engine.begin() as conn:
            ctx = HookContext(app.app, conn, now=app.now(), source="cli")
            if action == "approve":
                return approve(ctx, settings, case_id, by=by, note=text)
            return decline(ctx, case_id, by=by, reason=text)
    except ApprovalError as e:
        raise click.ClickException(str(e)) from None


@recovery.command("approve")
@click.argument("case_id", metavar="ID", type=click.IntRange(1))
@click.option("--by", metavar="NAME", help="Who approves (default: the login name).")
@click.option("--note", metavar="TEXT", help="Why, for the record.")
@click.option("--json", "as_json", is_flag=True, help="Print the case as JSON.")
@pass_app
def approve_cmd(app, case_id, by, note, as_json):
    """Send a pending goodwill offer: the code or credit and the apology, exactly once."""
    row, now = _review(app, case_id, "approve", by, note)
    if as_json:
        echo_json({**_case_json(row), "issued_now": now})
        return
    if now:
        click.echo(f"case {case_id} approved by {row['reviewed_by']}: {row['amount']:.2f} {row['currency']} "
                   "issued (see `retention actions list`)")
    else:
        click.echo(f"case {case_id} was already approved by {row['reviewed_by']} at "
                   f"{row['reviewed_at']:%Y-%m-%d %H:%M} UTC; nothing issued again")


@recovery.command("decline")
@click.argument("case_id", metavar="ID", type=click.IntRange(1))
@click.option("--reason", required=True, metavar="TEXT", help="Why no offer is made (recorded).")
@click.option("--by", metavar="NAME", help="Who declines (default: the login name).")
@click.option("--json", "as_json", is_flag=True, help="Print the case as JSON.")
@pass_app
def decline_cmd(app, case_id, reason, by, as_json):
    """Drop a pending goodwill offer, recording who declined it and why."""
    if not reason.strip():
        raise click.BadParameter("must not be empty", param_hint="--reason")
    row, now = _review(app, case_id, "decline", by, reason.strip())
    if as_json:
        echo_json({**_case_json(row), "declined_now": now})
        return
    click.echo(f"case {case_id} declined by {row['reviewed_by']}: {row['review_note']}"
               + ("" if now else " (already declined; unchanged)"))

"""``retention messages ...``: explain the contact policy, list messages, preview templates, retry failures.

The click context's ``obj`` is the application: ``.engine``, ``.settings``, ``.pm``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import click

from ..customers import find_customer
from .kinds import BUILTIN_KINDS, CLASSES, KindRegistry
from .outbox import STATUSES, dumps, explain, list_messages, renderer_for, retry_message
from .policy import PolicySettings
from .templates import RenderError


def _app():
    obj = click.get_current_context().obj
    if obj is None or not hasattr(obj, "engine"):
        raise click.UsageError("no application (engine, settings, pm) in the click context")
    return obj


def parse_at(value: str | None, param: str = "--at") -> datetime:
    """ISO 8601; without an offset it is UTC. ``None`` is now."""
    if value is None:
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time, e.g. 2026-03-02T06:00:00+02:00",
                                 param_hint=param) from None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _customer(conn, ref: str) -> dict:
    found = find_customer(conn, ref)
    if found is None:
        raise click.BadParameter(f"no customer {ref!r} (give an internal id, a Shopify id or an email)",
                                 param_hint="--customer")
    return found


@click.group("messages")
def messages():
    """Scheduled messages: what went out, what was held back, and why."""


@messages.command("explain")
@click.option("--customer", "customer_ref", required=True, help="Internal id, Shopify id or email.")
@click.option("--kind", required=True, help="Message kind, e.g. voucher.")
@click.option("--class", "message_class", type=click.Choice(CLASSES), help="Default: the kind's class.")
@click.option("--at", "at", metavar="DATETIME",
              help="When the message would be due (ISO 8601; UTC if no offset). Default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def explain_cmd(customer_ref, kind, message_class, at, as_json):
    """Show what the contact policy would decide for a message."""
    app = _app()
    when = parse_at(at)
    kinds = KindRegistry.from_pm(app.pm)
    if kind not in kinds:
        raise click.BadParameter(f"unknown message kind {kind!r} (known: {', '.join(kinds.names())})",
                                 param_hint="--kind")
    with app.engine.connect() as conn:
        customer = _customer(conn, customer_ref)
        d = explain(conn, customer["id"], kind, message_class, when, app.settings, app.pm)
    if as_json:
        click.echo(json.dumps(d.to_dict(), ensure_ascii=False))
    else:
        click.echo(f"{d.decision}" + (f" at {d.send_at.isoformat()}" if d.send_at else ""))
        click.echo(f"reason: {d.reason}")


@messages.command("list")
@click.option("--customer", "customer_ref", help="Internal id, Shopify id or email.")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one array).")
def list_cmd(customer_ref, status, limit, as_json):
    """List messages, newest first, with their status and its reason."""
    app = _app()
    with app.engine.connect() as conn:
        cid = _customer(conn, customer_ref)["id"] if customer_ref else None
        rows = list_messages(conn, customer_id=cid, status=status, limit=limit)
    if as_json:
        click.echo(dumps([{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
                          for r in rows]))
        return
    if not rows:
        click.echo("no messages")
        return
    for r in rows:
        when = (r["sent_at"] or r["send_at"]).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{r['id']:>6}  {r['status']:<10} {when}Z  customer {r['customer_id']}  "
                   f"{r['kind']} ({r['message_class']}, {r['channel']})")
        if r["reason"]:
            click.echo(f"        {r['reason']}")


@messages.command("preview")
@click.option("--kind", required=True, help="Message kind (built-in kinds have sample data).")
@click.option("--locale", default="en", show_default=True)
@click.option("--data", "data_file", type=click.File("r", encoding="utf-8"),
              help="JSON file with the template variables (default: the kind's sample data).")
@click.option("--part", type=click.Choice(["text", "html", "all"]), default="text", show_default=True)
def preview_cmd(kind, locale, data_file, part):
    """Render a template (after editing an override, say) without sending anything."""
    app = _app()
    if data_file is not None:
        try:
            data = json.load(data_file)
        except ValueError as e:
            raise click.BadParameter(f"not JSON: {e}", param_hint="--data") from None
    elif kind in BUILTIN_KINDS:
        data = dict(BUILTIN_KINDS[kind].sample)
    else:
        raise click.BadParameter(f"{kind!r} has no sample data; pass --data", param_hint="--kind")
    kinds = KindRegistry.from_pm(app.pm)
    offers = kind in kinds and PolicySettings.from_settings(app.settings).offers_unsubscribe(kinds.class_of(kind), kind)
    unsubscribe = "https://example.invalid/unsubscribe" if offers else None
    try:
        r = renderer_for(app.settings).render(kind, locale, data, unsubscribe_url=unsubscribe,
                                              message_class=kinds.class_of(kind) if kind in kinds else None)
    except RenderError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"Subject: {r.subject}\nLocale: {r.locale}\n")
    if part in ("text", "all"):
        click.echo(r.text)
    if part in ("html", "all"):
        click.echo(r.html)


@messages.command("retry")
@click.argument("message_ids", nargs=-1, type=int, required=True)
def retry_cmd(message_ids):
    """Requeue failed messages (after fixing what made them fail)."""
    app = _app()
    now = datetime.now(timezone.utc)
    with app.engine.begin() as conn:
        done = [mid for mid in message_ids if retry_message(conn, mid, now)]
    for mid in message_ids:
        click.echo(f"{mid}: " + ("requeued" if mid in done else "not failed (or no such message), left alone"))
    if len(done) != len(message_ids):
        sys.exit(1)

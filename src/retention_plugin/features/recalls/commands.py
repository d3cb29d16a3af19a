"""``retention recall ...``: create a recall, follow its cases, resolve them, record acknowledgments."""

from __future__ import annotations

from typing import Mapping

import click
from sqlalchemy import select, update

from retention_plugin import links
from retention_plugin.clihelp import ShopListing, echo_json, pass_app, require_schema, resolve_customer_arg
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import read_only

from .ack import verify_ack
from .engine import (
    acknowledge,
    create_recall,
    link_tickets,
    recall_cases,
    recall_row,
    recall_status,
    resolve,
    sync_notified,
)
from .settings import SEVERITIES, STATES, RecallError
from .texts import TEXT_FIELDS, TEXT_LANGUAGES, load_texts

rc, rl, m = t.recall_cases, t.recalls, t.messages


def _fail(e: Exception):
    raise click.ClickException(str(e)) from None


def _print_status(s: Mapping) -> None:
    window = f"{(s['ordered_from'] or '…')[:10]} – {(s['ordered_to'] or '…')[:10]}"
    what = " / ".join(x for x in (f"SKU {s['sku']}" if s["sku"] else "",
                                  f"product {s['product_id']}" if s["product_id"] is not None else "") if x)
    click.echo(f"recall {s['id']} ({s['severity']}, {s['status']}): {s['title']}")
    click.echo(f"  {what}, ordered {window}")
    click.echo(f"  {s['total']} customer(s): affected {s['affected']}, notified {s['notified']}, "
               f"acknowledged {s['acknowledged']}, resolved {s['resolved']}")
    click.echo(f"  notices: {', '.join(f'{k} {v}' for k, v in sorted(s['notices'].items())) or 'none'}; "
               f"tickets: {s['tickets']}")


def _text_options(f):
    """``--title-lt``, ``--instructions-lt``, ``--remedy-lt`` ... for every shipped language but English."""
    for lang in reversed(TEXT_LANGUAGES):
        for name in reversed(TEXT_FIELDS):
            f = click.option(f"--{name}-{lang}", f"{name}_{lang}", metavar="TEXT",
                             help=f"The {name} in {lang}." if name != "title" else
                             f"--title, --instructions, --remedy in {lang} (and -sl, -ru, -ka ...).")(f)
    return f


@click.group("recall")
def recall_group():
    """Product recalls: notify every buyer and track each case."""


@recall_group.command("create")
@click.option("--sku", help="The recalled SKU.")
@click.option("--product-id", type=int, help="The recalled Shopify product id (any variant).")
@click.option("--ordered-from", metavar="DATE", help="First order date affected (YYYY-MM-DD, UTC).")
@click.option("--ordered-to", metavar="DATE", help="Last order date affected, inclusive.")
@click.option("--severity", type=click.Choice(SEVERITIES), default="safety", show_default=True)
@click.option("--title", help="What is wrong, as the notice says it to customers (required for a new recall).")
@click.option("--instructions", help="What the customer should do now (default: the template's wording).")
@click.option("--remedy", help="What the store will do (refund, repair, replacement).")
@click.option("--texts", "texts_file", metavar="FILE", help="The notice's text per language, TOML or JSON: "
              "{lt = {title = \"...\", instructions = \"...\", remedy = \"...\"}, ru = {...}}.")


@_text_options
@click.option("--tickets/--no-tickets", default=None, help="Open a Zendesk ticket per customer "
              "(default: [recalls].zendesk_tickets).")


@click.option("--preview", is_flag=True, help="Only count who would be affected; change nothing.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def recall_create(app, sku, product_id, ordered_from, ordered_to, severity, title, instructions, remedy,
                  texts_file, tickets, preview, as_json, **per_language):
    """Find every buyer, open a case each, send each a transactional notice.

    Safe to run again: it finds the same recall and only adds what is missing.
    --title, --instructions and --remedy are the default (English) text; --title-lt and the
    like, or --texts FILE, give other languages theirs. The output says which languages fall
    back to the default text.
    """
    require_schema(app)
    try:
        texts = load_texts(texts_file) if texts_file else {}
        for option, value in per_language.items():
            name, _, lang = option.rpartition("_")
            if value:
                texts.setdefault(lang, {})[name] = value
        out = create_recall(app.app, sku=sku, product_id=product_id, ordered_from=ordered_from,
                            ordered_to=ordered_to, severity=severity, title=title, instructions=instructions,
                            remedy=remedy, tickets=tickets, preview=preview, texts=texts)
    except RecallError as e:
        _fail(e)
    if as_json:
        echo_json(out)
        return
    if preview:
        src = ", ".join(f"{k} {v}" for k, v in sorted(out["by_source"].items()))
        click.echo(f"{out['customers']} customer(s) would be affected ({src or 'none'}); "
                   f"{out['unreachable_orders']} matching order(s) have no customer to contact")
        return
    for note in out["notes"]:
        click.echo(f"note: {note}", err=True)
    langs = out["languages"]
    given = "; ".join(f"{loc} ({', '.join(f)})" for loc, f in langs["given"].items()) or "none"
    click.echo(f"texts in other languages: {given}")
    if langs["fallback"]:
        click.echo("falls back to the default (--title/--instructions/--remedy, English) text: "
                   + "; ".join(f"{loc} ({', '.join(f)})" for loc, f in langs["fallback"].items()))
    click.echo(f"recall {out['id']} {'created' if out['created'] else 'already existed'}: "
               f"{out['new_cases']} new case(s), {out['notices_scheduled']} notice(s) and "
               f"{out['tickets_queued']} ticket(s) queued; {out['unreachable_orders']} matching order(s) "
               "without a customer")
    _print_status(out)


@recall_group.command("status")
@click.argument("recall_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def recall_status_cmd(app, recall_id, as_json):
    """Cases per state (they add up to the total), notice outcomes, tickets."""
    with app.engine.begin() as conn:
        link_tickets(conn, recall_id)
        try:
            s = recall_status(conn, recall_id)
        except RecallError as e:
            raise click.BadParameter(str(e), param_hint="ID") from None
    if as_json:
        echo_json(s)
    else:
        _print_status(s)


@recall_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def recall_list(app, as_json):
    """Every recall with its counts, newest first (with --shop, that shop's)."""
    shops = ShopListing(app)
    with read_only(app.engine) as conn:
        found = conn.execute(shops.filter(select(rl.c.id, rl.c.shop).order_by(rl.c.id.desc()), rl)).all()
        shop_of = dict(found)
        rows = [recall_status(conn, i) for i in shop_of]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no recalls")
    for s in rows:
        click.echo(f"{s['id']:>5}  {s['created_at'][:10]}  {shops.column(shop_of[s['id']])}"
                   f"{s['severity']:<7} {s['status']:<6} "
                   f"{s['sku'] or s['product_id']}  total {s['total']}: affected {s['affected']}, "
                   f"notified {s['notified']}, acknowledged {s['acknowledged']}, resolved {s['resolved']}  "
                   f"{s['title']}")


@recall_group.command("cases")
@click.argument("recall_id", metavar="ID", type=int)
@click.option("--state", type=click.Choice(STATES))
@click.option("--json", "as_json", is_flag=True)
@pass_app
def recall_cases_cmd(app, recall_id, state, as_json):
    """Each affected customer and where their case stands."""
    with read_only(app.engine) as conn:
        if recall_row(conn, recall_id) is None:
            raise click.BadParameter(f"no recall with id {recall_id}", param_hint="ID")
        rows = recall_cases(conn, recall_id, state)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['customer_id']:>7}  {r['status']:<12} {r['email'] or '(no email)':<32} "
                   f"notice {r['notice'] or '-'}  ticket {r['zendesk_ticket_id'] or '-'}")


@recall_group.command("resolve")
@click.argument("recall_id", metavar="ID", type=int)
@click.argument("customer")
@click.option("--reason", default="resolved by command", show_default=True)
@pass_app
def recall_resolve(app, recall_id, customer, reason):
    """Mark a customer's case resolved (the return or repair is done)."""
    cust = resolve_customer_arg(app, customer)
    with app.engine.begin() as conn:
        if recall_row(conn, recall_id) is None:
            raise click.BadParameter(f"no recall with id {recall_id}", param_hint="ID")
        sync_notified(conn, recall_id)
        outcome = resolve(conn, recall_id, cust["id"], app.now(), reason)
    if outcome == "unknown":
        raise click.BadParameter(f"customer {cust['id']} is not affected by recall {recall_id}",
                                 param_hint="CUSTOMER")
    click.echo(f"recall {recall_id}, customer {cust['id']}: "
               f"{'resolved' if outcome == 'resolved' else 'was already resolved'}")


@recall_group.command("ack")
@click.argument("token")
@pass_app
def recall_ack(app, token):
    """Record an acknowledgment from a link's token (the t= value), e.g. one a customer sent back by mail."""
    try:
        got = verify_ack(app.settings, token, app.now())
    except links.LinkError as e:
        raise click.BadParameter(f"not a valid acknowledgment token: {e.message}", param_hint="TOKEN") from None
    with app.engine.begin() as conn:
        outcome = acknowledge(conn, got[0], got[1], app.now())
    if outcome == "unknown":
        raise click.ClickException(f"recall {got[0]} has no case for customer {got[1]}")
    text = {"acknowledged": "acknowledged", "already": "was already acknowledged",
            "resolved": "is already resolved (acknowledgment time recorded)"}[outcome]
    click.echo(f"recall {got[0]}, customer {got[1]}: {text}")


@recall_group.command("close")
@click.argument("recall_id", metavar="ID", type=int)
@pass_app
def recall_close(app, recall_id):
    """Stop adding new buyers to a recall (its cases stay as they are)."""
    with app.engine.begin() as conn:
        n = conn.execute(update(rl).where(rl.c.id == recall_id).values(status="closed")).rowcount
    if not n:
        raise click.BadParameter(f"no recall with id {recall_id}", param_hint="ID")
    click.echo(f"recall {recall_id} closed")

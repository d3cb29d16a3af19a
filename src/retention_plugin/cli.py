"""The ``retention`` command. Plugins add their own commands through ``register_commands``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from sqlalchemy import select

from . import __version__, shop_scope
from .clihelp import (  # noqa: F401 (re-exported: the names scripts and tests know cli by)
    ConfigProblem,
    LazyApp,
    RetentionGroup,
    ShopListing,
    echo_json,
    pass_app,
    require_schema,
    resolve_customer_arg,
    table,
)
from .config import ConfigError
from .plugins import PluginLoadError, make_plugin_manager, plugin_info
from .storage import tables as t


@click.group(cls=RetentionGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="RETENTION_CONFIG",
              help="Configuration file (default: $RETENTION_CONFIG, then ./retention.toml).")
@click.option("--shop", "shop", envvar="RETENTION_SHOP", metavar="DOMAIN",
              help="The installed shop a command acts for (default: [shopify] shop); see `retention shops list`.")
@click.option("-v", "--verbose", is_flag=True, help="Also log what the schema migrations (Alembic) do.")
@click.version_option(__version__, prog_name="retention")
@click.pass_context
def cli(ctx, config_path, shop, verbose):
    """retention-plugin: loyalty, offers, reminders, recalls, service recovery and
    lost-customer analysis for Shopify and Zendesk stores."""
    domain = None
    if shop is not None:
        domain = shop_scope.normalise(shop)
        if domain is None:
            raise click.BadParameter(f"{shop!r} is not a shop domain like example.myshopify.com", param_hint="--shop")
        # For the whole command: rows it writes are the shop's, and its settings are [shops."<shop>"]'s.
        ctx.with_resource(shop_scope.scope(domain))
    ctx.obj = LazyApp(config_path, domain, verbose=verbose)


# --- shops ------------------------------------------------------------------------------------


@cli.group("shops")
def shops_group():
    """The shops this install serves."""


@shops_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def shops_list(app, as_json):
    """Every shop: configured or installed through OAuth, its token, and whether it uninstalled the app."""
    from .shops import listing

    require_schema(app)
    with app.engine.connect() as conn:
        found = listing(app.app, conn)
    if as_json:
        echo_json(found)
        return
    from .clihelp import table

    rows = [{**s, "state": f"stopped (uninstalled {s['uninstalled_at']:%Y-%m-%d %H:%M} UTC)" if s["stopped"]
             else "active"} for s in found]
    click.echo(table(rows, ["shop", "source", "token", "state"]))


# --- config and plugins --------------------------------------------------------------


@cli.group("config")
def config_group():
    """Inspect the configuration."""


@config_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@pass_app
def config_check(app, as_json):
    """Validate the configuration and print it with secrets masked.

    Also lists every setting the platforms still need and, unless in dry-run,
    checks live that Shopify and Zendesk accept the credentials (exit 1 if not).
    """
    from .install import first_run

    settings = app.settings
    masked = settings.masked()
    checks = first_run.run(app.app)
    if as_json:
        echo_json({"path": str(settings.path), "settings": masked, "checks": checks})
        if not first_run.ok(checks):
            sys.exit(1)
        return
    click.echo(f"{settings.path}: OK")
    for section, values in masked.items():
        if not values:
            continue
        click.echo(f"[{section}]")
        for k, v in values.items():
            click.echo(f"  {k} = {json.dumps(v, default=str)}")
    platforms = [p for p in ("shopify", "zendesk") if settings.has(p)]
    click.echo(f"platforms: {', '.join(platforms) or 'none'}; dry_run: {app.dry_run}")
    first_run.show(checks, click.echo)
    if not first_run.ok(checks):
        sys.exit(1)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def plugins_cmd(app, as_json):
    """List plugins, where each came from, and the hooks it implements."""
    info = plugin_info(app.pm)
    if as_json:
        echo_json(info)
        return
    click.echo(table([{**p, "hooks": ", ".join(p["hooks"])} for p in info], ["name", "source", "hooks"],
                     headers={"name": "plugin", "source": "from"}, max_width=10_000))


# --- database ------------------------------------------------------------------------------


@cli.group("db")
def db_group():
    """Database schema."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app):
    """Create or migrate the schema to this version."""
    from .storage.db import current_revision, head_revision, upgrade

    before = current_revision(app.app.engine)  # app.engine would refuse the schema this is here to upgrade
    # Rows stored before shops were recorded (0004) belong to the configured shop.
    upgrade(app.app.engine, default_shop=app.default_shop or None)
    click.echo(f"schema: {before or 'empty'} -> {head_revision()}")


@db_group.command("status")
@pass_app
def db_status(app):
    """Show the schema revision and whether it is current."""
    from .storage.db import current_revision, head_revision

    cur, head = current_revision(app.app.engine), head_revision()
    click.echo(f"database: {app.app.engine.url.render_as_string(hide_password=True)}")
    click.echo(f"revision: {cur or 'empty'} (code needs {head}) {'OK' if cur == head else 'OUTDATED'}")
    if cur != head:
        sys.exit(1)


# --- serve and work --------------------------------------------------------------------------


@cli.command("serve")
@click.option("--host", default=None, help="Address to bind (default from [server]).")
@click.option("--port", type=int, default=None, help="Port (default from [server]).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="gunicorn worker processes.")
@click.option("--threads", type=click.IntRange(1, 64), default=None,
              help="Threads per worker (default from [server]; else 4).")
@click.option("--metrics-bind", default=None, metavar="HOST:PORT",
              help='Where /metrics is served (default [server] metrics_bind; "" for nowhere).')
@pass_app
def serve(app, host, port, workers, threads, metrics_bind):
    """Run the webhook receiver under gunicorn."""
    from .install.shopify_oauth import enabled, problems
    from .server import run_gunicorn

    require_schema(app)
    if enabled(app.settings) and problems(app.settings):  # the install routes would refuse to start
        raise click.ClickException("the Shopify install routes cannot start: " + "; ".join(problems(app.settings)))
    s = app.settings.section("server")
    threads = threads or s["threads"] or 4
    try:
        run_gunicorn(str(app.settings.path), host or s["host"], port or s["port"], workers or s["workers"], threads,
                     s["metrics_bind"] if metrics_bind is None else metrics_bind)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Process until nothing is due, then exit.")
@pass_app
def worker_cmd(app, burst):
    """Process deliveries, outbound actions, messages and periodic tasks."""
    from .worker import Worker

    require_schema(app)
    totals = Worker(app.app).run(burst=burst)
    if burst:
        click.echo(f"processed {totals.processed}, ignored {totals.ignored}, retried {totals.retried}, "
                   f"dead {totals.dead}; actions {totals.actions or {}}; messages {totals.messages or {}}")


# --- events ----------------------------------------------------------------------------------------


@cli.group("events")
def events_group():
    """Received webhook deliveries."""


def _event_json(row, *, body=False) -> dict:
    d = {"id": row["id"], "platform": row["platform"], "shop": row["shop"], "topic": row["topic"],
         "delivery_id": row["delivery_id"], "status": row["status"], "attempts": row["attempts"],
         "received_at": row["received_at"].isoformat(), "next_attempt_at": row["next_attempt_at"].isoformat(),
         "processed_at": row["processed_at"].isoformat() if row["processed_at"] else None,
         "last_error": row["last_error"]}
    if body:
        raw = bytes(row["body"])
        try:
            d["body"] = json.loads(raw)
        except (ValueError, RecursionError):  # stored as received; show the text it is
            d["body"] = raw.decode("utf-8", "replace")
        d["headers"] = row["headers"]
    return d


STATUSES = click.Choice(["pending", "processing", "done", "dead", "ignored"])


@events_group.command("list")
@click.option("--status", type=STATUSES)
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def events_list(app, status, limit, as_json):
    """List deliveries, newest first (with --shop, that shop's Shopify deliveries)."""
    shops = ShopListing(app)
    cols = [c for c in t.inbox.c if c.name != "body"]
    q = shops.filter(select(*cols).order_by(t.inbox.c.id.desc()).limit(limit), t.inbox)
    if status:
        q = q.where(t.inbox.c.status == status)
    with app.engine.connect() as conn:
        rows = [_event_json(r) for r in conn.execute(q).mappings()]
    if as_json:
        echo_json(rows)
        return
    click.echo(table([{**r, "received_at": r["received_at"][:19].replace("T", " ")} for r in rows],
                     ["id", "received_at", *(["shop"] if shops.many else []), "platform", "topic", "status",
                      "attempts", "last_error"],
                     headers={"received_at": "received (UTC)", "last_error": "last error"},
                     empty="no deliveries" + (f" with status {status}" if status else "")))


@events_group.command("show")
@click.argument("event_id", type=int)
@pass_app
def events_show(app, event_id):
    """Show one delivery with its body."""
    with app.engine.connect() as conn:
        row = conn.execute(select(t.inbox).where(t.inbox.c.id == event_id)).mappings().first()
    if row is None:
        raise click.BadParameter(f"no delivery with id {event_id}", param_hint="ID")
    shown = _event_json(row, body=True)
    text = json.dumps(shown, indent=2, default=str, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A body may hold a lone surrogate ("\\ud83d", half an emoji): valid JSON, but no
        # encoding can print it as a character. Escaped, it prints, and reads back the same.
        text = json.dumps(shown, indent=2, default=str, ensure_ascii=True)
    click.echo(text)


@events_group.command("replay")
@click.argument("event_ids", type=int, nargs=-1)
@click.option("--status", type=click.Choice(["dead", "ignored", "done"]), help="Replay every delivery in this state.")
@pass_app
def events_replay(app, event_ids, status):
    """Queue deliveries again (safe: effects are idempotent)."""
    from .worker import replay

    if not event_ids and not status:
        raise click.UsageError("give delivery IDs or --status")
    n = replay(app.app, ids=list(event_ids) or None, status=status)
    if event_ids and n == 0:
        raise click.BadParameter("no such delivery (or it is being processed right now)", param_hint="ID")
    click.echo(f"queued {n} deliver{'y' if n == 1 else 'ies'} again")


# --- actions ---------------------------------------------------------------------------------------


@cli.group("actions")
def actions_group():
    """Outbound calls to Shopify and Zendesk."""


def _action_json(r) -> dict:
    return {"id": r["id"], "platform": r["platform"], "kind": r["kind"], "key": r["key"], "status": r["status"],
            "attempts": r["attempts"], "request": r["request"], "result": r["result"], "last_error": r["last_error"],
            "created_at": r["created_at"].isoformat(), "updated_at": r["updated_at"].isoformat()}


@actions_group.command("list")
@click.option("--status", type=click.Choice(["pending", "running", "done", "failed", "dry_run", "cancelled"]))
@click.option("--kind")
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def actions_list(app, status, kind, limit, as_json):
    """List actions, newest first, with the request each makes (with --shop, that shop's)."""
    shops = ShopListing(app)
    q = shops.filter(select(t.actions).order_by(t.actions.c.id.desc()).limit(limit), t.actions)
    if status:
        q = q.where(t.actions.c.status == status)
    if kind:
        q = q.where(t.actions.c.kind == kind)
    with app.engine.connect() as conn:
        rows = [{**_action_json(r), **({"shop": r["shop"]} if shops.many else {})}
                for r in conn.execute(q).mappings()]
    if as_json:
        echo_json(rows)
        return
    click.echo(table([{**r, "created_at": r["created_at"][:19].replace("T", " ")} for r in rows],
                     ["id", "created_at", *(["shop"] if shops.many else []), "platform", "kind", "status",
                      "attempts", "last_error"],
                     headers={"created_at": "created (UTC)", "kind": "call", "last_error": "last error"},
                     empty="no actions" + (f" with status {status}" if status else "")))


@actions_group.command("retry")
@click.argument("action_ids", type=int, nargs=-1)
@click.option("--status", type=click.Choice(["failed"]))
@pass_app
def actions_retry(app, action_ids, status):
    """Queue failed actions again."""
    from .actions import retry

    if not action_ids and not status:
        raise click.UsageError("give action IDs or --status failed")
    click.echo(f"queued {retry(app.app, ids=list(action_ids) or None, status=status)} action(s) again")


# --- customers and privacy ---------------------------------------------------------------------


@cli.group("customers")
def customers_group():
    """Who the customers are and what happened to them."""


@customers_group.command("show")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def customers_show(app, customer, as_json):
    """Identity links, orders, tickets, ratings and what each feature knows."""
    from .customers import customer_profile

    c = resolve_customer_arg(app, customer)
    profile = customer_profile(app.app, c["id"])
    if as_json:
        echo_json(profile)
        return
    ident = profile["customer"]
    click.echo(f"customer {ident['id']}: {ident.get('email') or '(no email)'}  "
               f"shopify={ident.get('shopify_id')} zendesk={ident.get('zendesk_user_id')}")
    click.echo(f"orders: {len(profile['orders'])}, lifetime spend: {profile['lifetime_spend']}")
    for o in profile["orders"][:10]:
        click.echo(f"  {o['name'] or o['shopify_id']}  {o['created_at'][:10]}  {o['total']} {o['currency']}  "
                   f"{o['financial_status'] or ''} {'cancelled' if o['cancelled_at'] else ''}")
    click.echo(f"tickets: {len(profile['tickets'])}, ratings: {len(profile['ratings'])}")
    for name, facts in profile["features"].items():
        click.echo(f"{name}: {json.dumps(facts, default=str)}")


@cli.group("privacy")
def privacy_group():
    """Export or erase a customer's personal data."""


@privacy_group.command("export")
@click.argument("customer")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write to a file instead of stdout.")
@pass_app
def privacy_export(app, customer, out):
    """Everything stored about a customer, as JSON."""
    from .context import HookContext
    from .privacy import collect_export

    c = resolve_customer_arg(app, customer)
    with app.engine.begin() as conn:
        ctx = HookContext(app.app, conn, now=app.now(), source="cli")
        data = collect_export(ctx, c["id"])
        conn.execute(t.privacy_requests.insert().values(kind="manual_export", customer_id=c["id"],
                                                        export=data, created_at=ctx.now))
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")
    else:
        click.echo(text)


@privacy_group.command("erase")
@click.argument("customer")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def privacy_erase(app, customer, yes):
    """Erase a customer's personal data (ledgers and totals are kept)."""
    from .context import HookContext
    from .privacy import erase_customer

    c = resolve_customer_arg(app, customer)
    if not yes:
        click.confirm(f"Erase personal data of customer {c['id']} ({c.get('email')})?", abort=True)
    with app.engine.begin() as conn:
        result = erase_customer(HookContext(app.app, conn, now=app.now(), source="cli"), c)
    click.echo(f"erased customer {result['customer_id']}; "
               f"{result['inbox_rows_scrubbed']} stored webhook bodies scrubbed")


@privacy_group.command("shop-redact")
@click.option("--confirm", is_flag=True, help="Erase; without it, only show what would be erased.")
@pass_app
def privacy_shop_redact(app, confirm):
    """Delete all of the shop's data, releasing any held shop/redact.

    A shop/redact is held (dead, nothing erased) when no app/uninstalled came from
    the shop first; Shopify sends it 48 hours after an uninstall.
    """
    from . import shop_erasure

    shop = app.settings.section("shopify").get("shop") or ""
    with app.engine.connect() as conn:
        plan = shop_erasure.plan(conn, shop)
    click.echo(f"shop: {shop or '(no [shopify] shop configured)'}")
    if plan["uninstalls"]:
        for u in plan["uninstalls"]:
            click.echo(f"app/uninstalled received {u['received_at'].isoformat()} (shop id {u['shop_id']})")
    else:
        click.echo("no app/uninstalled received from this shop")
    for h in plan["held"]:
        click.echo(f"held shop/redact: delivery {h['id']} for {h['shop']}, received {h['received_at'].isoformat()}")
    if not plan["held"]:
        click.echo("no held shop/redact delivery")
    click.echo("would erase:" if not confirm else "erasing:")
    for name, n in sorted(plan["rows"].items()):
        click.echo(f"  {name:<20} {n}")
    if not confirm:
        click.echo("nothing was erased; run `retention privacy shop-redact --confirm` to erase all of it")
        return
    result = shop_erasure.confirm(app.app, shop, app.now())
    click.echo(f"erased {sum(result['deleted'].values())} rows from {len(result['deleted'])} tables; "
               f"{len(result['held'])} held shop/redact deliveries released")
# --- discount codes ---------------------------------------------------------------------------------


@cli.group("discounts")
def discounts_group():
    """Discount codes: those held for approval, and the secret codes are derived under."""


def _held_json(row: dict) -> dict:
    hold = row["hold"] or {}
    return {"id": row["id"], "key": row["key"], "customer_id": row["customer_id"], "feature": row["feature"],
            "kind": row["kind"], "status": row["status"], "code": row["code"],
            "percent": format(row["percent"].normalize(), "f") if row["percent"] is not None else None,
            "amount": f"{row['amount']:.2f}" if row["amount"] is not None else None, "currency": row["currency"],
            "source_ref": row["source_ref"], "created_at": row["created_at"].isoformat(),
            "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
            "reason": hold.get("reason"), "decision": hold.get("decision"), "decided_by": hold.get("decided_by"),
            "decided_at": hold.get("decided_at"), "note": hold.get("note")}


def _held_value(h: dict) -> str:
    if h["amount"] is not None:
        return f"{h['amount']} {h['currency']}"
    return f"{h['percent']}%"


@discounts_group.command("held")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def discounts_held(app, as_json):
    """Codes held for approval: their customer has no Shopify id, so nothing was created or sent."""
    from .discounts import held_rewards

    require_schema(app)
    with app.engine.connect() as conn:
        held = [_held_json(r) for r in held_rewards(conn)]
    if as_json:
        echo_json(held)
        return
    if not held:
        click.echo("no discount codes held for approval")
        return
    for h in held:
        click.echo(f"{h['id']:>6}  {h['feature']:<8} {_held_value(h):<14} customer {h['customer_id']}  "
                   f"{h['source_ref'] or h['key']}  held {h['created_at'][:16]}: {h['reason']}")


def _decide_held(app, reward_id: int, action: str, by: str | None, text: str | None):
    import getpass

    from .context import HookContext
    from .discounts import HoldError, approve_held, decline_held

    require_schema(app)
    by = (by or "").strip() or getpass.getuser()
    try:
        with app.engine.begin() as conn:
            ctx = HookContext(app.app, conn, now=app.now(), source="cli")
            if action == "approve":
                return approve_held(ctx, reward_id, by=by, note=text)
            return decline_held(ctx, reward_id, by=by, reason=text or "")
    except HoldError as e:
        raise click.ClickException(str(e)) from None


@discounts_group.command("approve")
@click.argument("reward_id", metavar="ID", type=click.IntRange(1))
@click.option("--by", metavar="NAME", help="Who approves (default: the login name).")
@click.option("--note", metavar="TEXT", help="Why, for the record.")
@click.option("--json", "as_json", is_flag=True, help="Print the reward as JSON.")
@pass_app
def discounts_approve(app, reward_id, by, note, as_json):
    """Create a held code, once its customer has a Shopify id, and send the message that carries it."""
    row, now = _decide_held(app, reward_id, "approve", by, note)
    h = _held_json(row)
    if as_json:
        echo_json({**h, "created_now": now})
        return
    if now:
        click.echo(f"reward {reward_id} approved by {h['decided_by']}: code {row['code']} ({_held_value(h)}) "
                   "queued for Shopify (see `retention actions list`)")
    else:
        click.echo(f"reward {reward_id} was already approved by {h['decided_by']} at {h['decided_at'][:16]}; "
                   "nothing created again")


@discounts_group.command("decline")
@click.argument("reward_id", metavar="ID", type=click.IntRange(1))
@click.option("--reason", required=True, metavar="TEXT", help="Why no code is made (recorded).")
@click.option("--by", metavar="NAME", help="Who declines (default: the login name).")
@click.option("--json", "as_json", is_flag=True, help="Print the reward as JSON.")
@pass_app
def discounts_decline(app, reward_id, reason, by, as_json):
    """Drop a held code, recording who declined it and why."""
    if not reason.strip():
        raise click.BadParameter("must not be empty", param_hint="--reason")
    row, now = _decide_held(app, reward_id, "decline", by, reason.strip())
    h = _held_json(row)
    if as_json:
        echo_json({**h, "declined_now": now})
        return
    click.echo(f"reward {reward_id} declined by {h['decided_by']}: {h['note']}"
               + ("" if now else " (already declined; unchanged)"))


@discounts_group.command("rotate-secret")
@click.option("--yes", is_flag=True, help="Do it without asking.")
@pass_app
def discounts_rotate_secret(app, yes):
    """Replace the per-install code secret; codes already issued keep working."""
    from .discounts import rotate_secret

    require_schema(app)
    if not yes:
        click.confirm("New discount codes will be derived under a new secret. Continue?", abort=True)
    with app.engine.begin() as conn:
        rotate_secret(conn, app.now())
    click.echo("code secret replaced; codes issued before stay valid (each is stored with its reward)")


# --- demo -------------------------------------------------------------------------------------------


@cli.command("demo")
@click.option("--keep", is_flag=True, help="Keep the temporary directory and print its path.")
def demo_cmd(keep):
    """Run the whole product on a throwaway SQLite database, in dry-run, with signed sample webhooks."""
    from .demo import run_demo

    run_demo(keep=keep)


# --- assembly ------------------------------------------------------------------------------------


def _plugin_manager_for_commands(argv):
    """Plugins may add commands, so load them before click parses; a bad config is reported later."""
    path = None
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif a.startswith("--config="):
            path = a.split("=", 1)[1]
    from . import config as cfg

    try:
        settings = cfg.load_core(cfg.read_raw(cfg.resolve_path(path)), cfg.resolve_path(path).resolve())
        return make_plugin_manager(disabled=settings.section("plugins")["disabled"], dirs=settings.plugin_dirs())
    except (ConfigError, PluginLoadError, OSError):
        return make_plugin_manager()


_registered = False


def register_plugin_commands(argv=None) -> None:
    global _registered
    if _registered:
        return
    pm = _plugin_manager_for_commands(sys.argv[1:] if argv is None else argv)
    pm.hook.register_commands(cli=cli)
    _registered = True


def main(argv=None):
    register_plugin_commands(argv)
    cli.main(args=argv, prog_name="retention")


if __name__ == "__main__":  # pragma: no cover
    main()

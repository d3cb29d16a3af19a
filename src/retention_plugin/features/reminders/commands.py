"""``retention reminders ...``: list reminders, and the repeat interval learned for a SKU."""

from __future__ import annotations

import click
from sqlalchemy import select

from retention_plugin.clihelp import ShopListing, echo_json, pass_app, resolve_customer_arg
from retention_plugin.context import HookContext
from retention_plugin.storage import tables as t

from .engine import learn_interval, sync_statuses
from .settings import settings_of


@click.group("reminders")
def reminders_group():
    """Replenishment and service reminders."""


@reminders_group.command("list")
@click.option("--customer", help="Only this customer (email, Shopify id or internal id).")
@click.option("--status", type=click.Choice(["scheduled", "cancelled", "sent", "suppressed", "failed"]))
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def reminders_list(app, customer, status, limit, as_json):
    """List reminders, soonest due first (with --shop, that shop's)."""
    shops = ShopListing(app)
    r = t.reminders
    q = shops.filter(select(r).order_by(r.c.due_at, r.c.id).limit(limit), r)
    if customer:
        q = q.where(r.c.customer_id == resolve_customer_arg(app, customer)["id"])
    if status:
        q = q.where(r.c.status == status)
    with app.engine.begin() as conn:
        sync_statuses(HookContext(app.app, conn, now=app.now(), source="cli"))
        rows = [{"id": x["id"], "key": x["key"], "customer_id": x["customer_id"], "rule": x["rule"],
                 "sku": x["sku"], "order_id": x["order_id"], "due_at": x["due_at"].isoformat(),
                 "status": x["status"], "message_id": x["message_id"], **({"shop": x["shop"]} if shops.many else {})}
                for x in conn.execute(q).mappings()]
    if as_json:
        echo_json(rows)
        return
    for x in rows:
        click.echo(f"{x['id']:>7}  {x['due_at'][:16]}  {shops.column(x.get('shop'))}"
                   f"{x['status']:<10} customer {x['customer_id']:<7} "
                   f"{x['rule']}  {x['sku']}")


@reminders_group.command("interval")
@click.argument("sku")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def reminders_interval(app, sku, as_json):
    """The repeat interval learned for SKU from order history (what learn = true uses)."""
    s = settings_of(app)
    with app.engine.connect() as conn:
        per_order, pairs = learn_interval(conn, sku, per_unit=False, max_gap_days=s["learn_max_gap_days"])
        per_unit, _ = learn_interval(conn, sku, per_unit=True, max_gap_days=s["learn_max_gap_days"])
    out = {"sku": sku, "pairs": pairs, "median_days_per_order": per_order,
           "median_days_per_unit": per_unit, "min_pairs": s["learn_min_pairs"],
           "enough_history": pairs >= s["learn_min_pairs"]}
    if as_json:
        echo_json(out)
        return
    if not pairs:
        click.echo(f"{sku}: no repeat purchases in the stored history")
        return
    click.echo(f"{sku}: median {per_order:.1f} days between orders, {per_unit:.1f} days per unit, "
               f"from {pairs} repeat pair(s) ({'enough' if out['enough_history'] else 'not enough'}: "
               f"learn_min_pairs = {s['learn_min_pairs']})")

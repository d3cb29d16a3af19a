"""`retention demo`: the whole product, end to end, with nothing to configure.

In a temporary directory it writes a configuration (SQLite, dry-run, demo
secrets), upgrades the schema, starts the real receiver under gunicorn on a
free local port, posts signed Shopify and Zendesk webhooks over HTTP
(duplicates and a forged one included), runs the worker, moves the clock
forward so that follow-ups and reminders come due, and reports what each
feature did or would have sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import click
import requests
from sqlalchemy import func, select

from .storage import tables as t

SHOP = "demo-store.myshopify.com"
SHOPIFY_SECRET = "demo-shopify-webhook-secret"
ZENDESK_SECRET = "demo-zendesk-signing-secret"

CONFIG = f"""
[database]
url = "sqlite:///retention.db"

[shopify]
shop = "{SHOP}"
access_token = "demo-token"
api_version = "2026-07"
webhook_secrets = ["{SHOPIFY_SECRET}"]

[zendesk]
subdomain = "demo-store"
email = "agent@demo-store.example"
api_token = "demo-token"
webhook_secret = "{ZENDESK_SECRET}"

[actions]
dry_run = true

[worker]
poll_seconds = 0.05

[logging]
level = "WARNING"

[messages]
shop_name = "Demo Store"
shop_url = "https://demo-store.example"

[email]
unsubscribe_url = "http://127.0.0.1/r/unsubscribe?c={{customer_id}}&t={{token}}"
unsubscribe_secret = "demo-unsubscribe-secret"

[links]
secret = "demo-link-secret-0123456789abcdef"
base_url = "http://127.0.0.1"

[loyalty]
pending_days = 0

[[loyalty.tiers]]
name = "silver"
min_spend = "250.00"
points_multiplier = "1.25"

[[loyalty.tiers]]
name = "gold"
min_spend = "600.00"
points_multiplier = "2"
perks = {{ support_priority = "high" }}

[[loyalty.rewards]]
points = 500
amount = "5.00"
automatic = true

[[reminders.rules]]
name = "ink"
skus = ["INK-CART-XL"]
interval_days = 60

[[recovery.routing]]
name = "vip"
tiers = ["gold"]
priority = "urgent"
tags = ["vip"]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _money(amount: str, currency: str = "EUR") -> dict:
    m = {"amount": amount, "currency_code": currency}
    return {"shop_money": m, "presentment_money": m}


def _customer(cid: int, email: str, first: str, last: str, country: str, locale: str, consent: str, when):
    return {"id": cid, "email": email, "first_name": first, "last_name": last, "phone": None, "locale": locale,
            "tags": "", "created_at": _iso(when), "updated_at": _iso(when),
            "email_marketing_consent": {"state": consent, "opt_in_level": "single_opt_in"},
            "default_address": {"country_code": country, "province_code": None}}


def _order(oid: int, customer: dict, when: datetime, lines: list[tuple], status="paid") -> dict:
    subtotal = sum(float(price) * qty for _, _, _, qty, price in lines)
    sub = f"{subtotal:.2f}"
    return {
        "id": oid, "admin_graphql_api_id": f"gid://shopify/Order/{oid}", "name": f"#{oid % 10000}",
        "email": customer["email"], "currency": "EUR", "presentment_currency": "EUR",
        "subtotal_price": sub, "current_subtotal_price": sub, "subtotal_price_set": _money(sub),
        "current_subtotal_price_set": _money(sub), "total_price": sub, "total_price_set": _money(sub),
        "total_discounts": "0.00", "total_discounts_set": _money("0.00"), "total_tax": "0.00",
        "total_tax_set": _money("0.00"), "total_shipping_price_set": _money("0.00"),
        "financial_status": status, "fulfillment_status": None, "created_at": _iso(when), "updated_at": _iso(when),
        "processed_at": _iso(when), "cancelled_at": None, "customer_locale": customer["locale"], "test": False,
        "tags": "", "discount_codes": [], "customer": customer,
        "line_items": [{"id": oid * 10 + i, "sku": sku, "product_id": pid, "variant_id": vid, "title": sku,
                        "name": sku, "quantity": qty, "price": price, "price_set": _money(price),
                        "total_discount": "0.00", "total_discount_set": _money("0.00"), "discount_allocations": []}
                       for i, (sku, pid, vid, qty, price) in enumerate(lines)],
    }


def build_stream(now: datetime) -> list[dict]:
    """A store's morning: customers, orders, a duplicate, a refund, tickets, a bad rating, a forgery."""
    ann = _customer(7001, "ann@example.com", "Ann", "Jonaitė", "LT", "lt", "subscribed", now - timedelta(days=400))
    ben = _customer(7002, "ben@example.com", "Ben", "Novak", "SI", "sl", "unsubscribed", now - timedelta(days=30))
    cat = _customer(7003, "cat@example.com", "Cat", "Smith", "US", "en", "subscribed", now - timedelta(days=2))
    ink = ("INK-CART-XL", 9001, 9101)  # a reminder rule covers it (60 days)
    pump = ("COFFEE-MACHINE", 9002, 9102)
    stream: list[dict] = []

    def shopify(topic, payload, wid=None):
        stream.append({"platform": "shopify", "topic": topic, "payload": payload, "id": wid or str(uuid.uuid4())})

    shopify("customers/create", cat)
    # Ann is a regular: earlier orders, then one today.
    for k, days in enumerate((330, 260, 190, 120, 60)):
        o = _order(50_000 + k, ann, now - timedelta(days=days), [(*ink, 2, "34.50")])
        shopify("orders/paid", o)
    big = _order(50_010, ann, now - timedelta(minutes=30), [(*ink, 2, "34.50"), (*pump, 1, "420.00")])
    shopify("orders/create", big)
    wid = str(uuid.uuid4())
    shopify("orders/paid", big, wid)
    shopify("orders/paid", big, wid)  # the same delivery again: dropped at the door
    shopify("orders/paid", big)  # the same event under a new webhook id (Shopify does this)
    shipped = dict(big, fulfillment_status="fulfilled", updated_at=_iso(now - timedelta(minutes=25)),
                   fulfillments=[{"id": 70_001, "order_id": 50_010, "status": "success",
                                  "created_at": _iso(now - timedelta(minutes=25)),
                                  "updated_at": _iso(now - timedelta(minutes=25)), "line_items": []}])
    shopify("orders/fulfilled", shipped)  # a follow-up asking how it went comes due days later
    shopify("orders/paid", _order(50_020, ben, now - timedelta(minutes=20), [(*ink, 1, "34.50")]))
    first = _order(50_030, cat, now - timedelta(minutes=10), [(*pump, 1, "420.00")])
    shopify("orders/paid", first)
    stream.append({"platform": "shopify", "topic": "refunds/create", "id": str(uuid.uuid4()), "payload": {
        "id": 60_001, "order_id": 50_010, "created_at": _iso(now - timedelta(minutes=5)),
        "note": "one cartridge leaked",
        "refund_line_items": [{"id": 1, "line_item_id": 50_010 * 10, "quantity": 1, "subtotal": 34.5,
                               "subtotal_set": _money("34.50")}], "transactions": []}})
    # Zendesk: Ann writes in, unhappy; later she rates the ticket badly. Bodies as the shipped
    # triggers (config/zendesk) render them.
    from .platforms.zendesk.triggers import DEFAULT_DIRECTORY, render_body

    def trigger(name, **extra):
        values = {"ticket.id": "4242", "ticket.title": "Cartridge leaked all over my desk",
                  "ticket.description": "The new XL cartridge leaked. Very disappointed.",
                  "ticket.status": "New", "ticket.priority": "Normal", "ticket.tags": "", "ticket.via": "Mail",
                  "ticket.created_at_with_timestamp": _iso(now - timedelta(minutes=4)),
                  "ticket.updated_at_with_timestamp": _iso(now - timedelta(minutes=4)),
                  "ticket.requester.id": "8801", "ticket.requester.email": "ann@example.com",
                  "ticket.requester.first_name": "Ann", "ticket.requester.last_name": "Jonaitė",
                  "ticket.requester.external_id": "", **extra}
        return render_body(json.loads((DEFAULT_DIRECTORY / f"{name}.json").read_text()), values)

    created = {"platform": "zendesk", "payload": trigger("ticket_created"), "id": str(uuid.uuid4())}
    stream.append(created)
    stream.append(dict(created))  # Zendesk retries the same invocation: dropped at the door
    stream.append({"platform": "zendesk", "id": str(uuid.uuid4()), "payload": trigger(
        "satisfaction_rated", **{"ticket.status": "Solved",
                                 "ticket.updated_at_with_timestamp": _iso(now - timedelta(minutes=1)),
                                 "satisfaction.current_rating": "Bad, I'm unsatisfied",
                                 "satisfaction.current_comment": "Still waiting for a replacement."})})
    # A forgery: right shape, wrong secret.
    stream.append({"platform": "shopify", "topic": "orders/paid", "id": str(uuid.uuid4()), "forged": True,
                   "payload": _order(66_666, cat, now, [(*pump, 10, "420.00")])})
    return stream


def _post(base: str, item: dict, now: datetime) -> int:
    body = json.dumps(item["payload"]).encode()
    if item["platform"] == "shopify":
        secret = "not-the-secret" if item.get("forged") else SHOPIFY_SECRET
        sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        headers = {"X-Shopify-Topic": item["topic"], "X-Shopify-Shop-Domain": SHOP,
                   "X-Shopify-Webhook-Id": item["id"], "X-Shopify-Hmac-Sha256": sig,
                   "X-Shopify-Api-Version": "2026-07", "Content-Type": "application/json"}
        url = base + "/webhooks/shopify"
    else:
        ts = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        sig = base64.b64encode(hmac.new(ZENDESK_SECRET.encode(), ts.encode() + body, hashlib.sha256).digest()).decode()
        headers = {"X-Zendesk-Webhook-Signature": sig, "X-Zendesk-Webhook-Signature-Timestamp": ts,
                   "X-Zendesk-Webhook-Invocation-Id": item["id"], "Content-Type": "application/json"}
        url = base + "/webhooks/zendesk"
    return requests.post(url, data=body, headers=headers, timeout=10).status_code


class _OffsetClock:
    def __init__(self):
        self.offset = timedelta(0)

    def __call__(self):
        return datetime.now(timezone.utc) + self.offset


def run_demo(keep: bool = False) -> dict:
    from .app import Retention
    from .storage.db import upgrade
    from .worker import Worker

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="retention-demo-"))
    config_path = tmp / "retention.toml"
    config_path.write_text(CONFIG)
    clock = _OffsetClock()
    app = Retention.from_config(config_path, clock=clock)
    upgrade(app.engine)
    port = _free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp)}
    server_log = open(tmp / "receiver.log", "wb")  # a file: an unread pipe could fill and stall the server
    server = subprocess.Popen([sys.executable, "-m", "retention_plugin", "--config", str(config_path), "serve",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=server_log, env=env)
    base = f"http://127.0.0.1:{port}"
    report: dict = {}
    try:
        _wait_healthy(base, server, tmp / "receiver.log")
        click.secho(f"receiver: gunicorn on {base} (SQLite at {tmp / 'retention.db'}, dry-run)", bold=True)
        now = app.now()
        statuses = Counter(_post(base, item, now) for item in build_stream(now))
        with app.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(t.inbox)).scalar()
        posted = sum(statuses.values())
        report["webhooks"] = {"posted": posted, "stored": stored, "duplicates_dropped": statuses[200] - stored,
                              "rejected": {str(k): v for k, v in statuses.items() if k != 200}}
        click.echo(f"webhooks: {posted} posted, {stored} stored, {statuses[200] - stored} duplicate deliveries "
                   f"dropped, {posted - statuses[200]} rejected (forged: HTTP 401)")
        worker = Worker(app, name="demo")
        first = worker.run(burst=True)
        click.echo(f"worker: {first.processed} processed, {first.ignored} ignored, {first.dead} dead")
        clock.offset = timedelta(days=70)  # fast-forward: follow-ups, reminders and expiry warnings come due
        later = worker.run(burst=True)
        click.echo(f"70 days later: worker ran again ({later.tasks} periodic task runs)")
        report["features"] = describe(app)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()
        app.dispose()
        if keep:
            click.echo(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    show_next(tmp if keep else None)
    click.secho(f"\ndone in {time.monotonic() - started:.1f} s", bold=True)
    return report


def _wait_healthy(base: str, proc, log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"the receiver did not start: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # refused, reset or slow while it starts: not yet
            pass
        time.sleep(0.05)
    raise click.ClickException("the receiver did not become healthy within 30 s")


def describe(app) -> dict:
    """What each feature did, read back from storage."""
    out: dict = {}
    with app.engine.connect() as conn:
        ledger = conn.execute(select(t.customers.c.email, func.sum(t.ledger.c.points)).join(
            t.customers, t.customers.c.id == t.ledger.c.customer_id).group_by(t.customers.c.email)).all()
        out["loyalty_points"] = {email: int(p) for email, p in ledger}
        tiers = conn.execute(select(t.customers.c.email, t.customer_tiers.c.tier).join(
            t.customers, t.customers.c.id == t.customer_tiers.c.customer_id)).all()
        out["tiers"] = {email: tier for email, tier in tiers}
        out["rewards"] = [dict(r) for r in conn.execute(select(
            t.rewards.c.feature, t.rewards.c.kind, t.rewards.c.code, t.rewards.c.percent, t.rewards.c.amount,
            t.rewards.c.currency)).mappings()]
        msgs = conn.execute(select(t.messages.c.kind, t.messages.c.status, t.messages.c.reason, t.messages.c.locale,
                                   t.customers.c.email).join(t.customers, t.customers.c.id == t.messages.c.customer_id,
                                                             isouter=True).order_by(t.messages.c.id)).all()
        out["messages"] = [{"kind": k, "status": s, "reason": r, "locale": loc, "to": e} for k, s, r, loc, e in msgs]
        acts = conn.execute(select(t.actions.c.platform, t.actions.c.kind, t.actions.c.status, t.actions.c.key)
                            .order_by(t.actions.c.id)).all()
        out["actions"] = [{"platform": p, "kind": k, "status": s, "key": key} for p, k, s, key in acts]
        out["reminders"] = [dict(r) for r in conn.execute(select(t.reminders.c.rule, t.reminders.c.sku,
                                                                 t.reminders.c.status)).mappings()]
        out["recoveries"] = [dict(r) for r in conn.execute(select(
            t.recoveries.c.trigger, t.recoveries.c.decision, t.recoveries.c.amount, t.recoveries.c.reason)).mappings()]
    show(out)
    return out


def _words(key: str | None) -> str:
    return (key or "-").replace("_", " ")


def show(out: dict) -> None:
    """The summary an admin reads: one headed table per feature, then what to do next."""
    from .clihelp import table

    def section(title: str, rows: list[dict], columns: list[str], headers: dict[str, str] | None = None):
        click.secho(f"\n{title}", bold=True)
        click.echo(table(rows, columns, headers=headers, max_width=110))

    click.secho("\nWhat the features did (dry-run: nothing left this machine)", bold=True)
    tiers = out["tiers"]
    section("Loyalty", [{"customer": email, "points": points, "tier": tiers.get(email)}
                        for email, points in sorted(out["loyalty_points"].items())], ["customer", "points", "tier"])
    section("Rewards issued", [{
        "feature": r["feature"],
        "value": (f"{r['percent'].normalize():f}% off" if r["percent"] is not None
                  else f"{r['amount'].quantize(Decimal('0.01'))} {r['currency']} off"),
        "code": r["code"]} for r in out["rewards"]], ["feature", "value", "code"])
    section("Messages", [{"message": _words(m["kind"]), "to": m["to"], "language": m["locale"], "status": m["status"],
                          "why": m["reason"]} for m in out["messages"]],
            ["message", "to", "language", "status", "why"])
    calls = Counter((a["platform"], _words(a["kind"])) for a in out["actions"])
    section("Calls to Shopify and Zendesk, recorded instead of made (dry-run)",
            [{"platform": p, "call": k, "times": n} for (p, k), n in sorted(calls.items())],
            ["platform", "call", "times"])
    section("Reminders", [{"reminder": r["rule"], "product": r["sku"], "status": r["status"]}
                          for r in out["reminders"]], ["reminder", "product", "status"])
    section("Service recovery", [{
        "after": _words(r["trigger"]), "decision": r["decision"],
        "goodwill": r["amount"].quantize(Decimal("0.01")) if r["amount"] is not None else None,
        "why": r["reason"]} for r in out["recoveries"]], ["after", "decision", "goodwill", "why"])


def show_next(kept: Path | None) -> None:
    config = f" --config {kept / 'retention.toml'}" if kept else ""
    click.secho("\nNext", bold=True)
    if kept:
        click.echo(f"  sign-in:       retention{config} admin create-user you@example.com")
        click.echo(f"  look around:   retention{config} serve, then open http://127.0.0.1:8000/admin")
    else:
        click.echo("  look around:   retention demo --keep, then with --config <the kept folder>/retention.toml: "
                   "admin create-user EMAIL, serve, and open http://127.0.0.1:8000/admin")
    click.echo("  your store:    cp config/retention.example.toml retention.toml, edit it, then retention config check")
    click.echo("  the commands:  retention --help (docs/cli-reference.md)")

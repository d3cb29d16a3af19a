"""``retention loyalty ...``: show an account, adjust it (audited), redeem points, sync punch-card products."""

from __future__ import annotations

import getpass
import json
import uuid

import click

from ...clihelp import echo_json, pass_app, require_schema, resolve_customer_arg
from ...context import HookContext
from ...platforms.shopify.mutations import COLLECTION_PRODUCTS, TAGGED_PRODUCTS
from .ledger import LoyaltyError
from .rewards import money_text


def _actor(given: str | None) -> str:
    if given:
        return given
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a container: still say where it came from
        return "cli"


def _customer(app, ref: str) -> dict:
    require_schema(app)
    return resolve_customer_arg(app, ref)


@click.group("loyalty")
def loyalty():
    """Loyalty points, tiers, punch cards and rewards."""


@loyalty.command("show")
@click.argument("customer")
@click.option("--history", "history_limit", type=click.IntRange(0, 10000), default=50, show_default=True,
              help="How many ledger entries to list, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app, customer, history_limit, as_json):
    """Where a customer's loyalty stands: points, tier, punch cards, rewards, history.

    CUSTOMER is an email, a Shopify customer id (or GID) or an internal id.
    """
    from .engine import summary
    from .settings import settings_of

    c = _customer(app, customer)
    with app.engine.connect() as conn:
        ctx = HookContext(app.app, conn, now=app.now(), source="cli")
        data = summary(conn, settings_of(ctx), c["id"], ctx.now, history_limit=history_limit)
    data["email"] = c.get("email")
    data["shopify_id"] = c.get("shopify_id")
    if as_json:
        echo_json(data)
        return
    click.echo(f"customer {c['id']} ({c.get('email') or 'no email'})")
    click.echo(f"points: {data['available']} available, {data['pending']} pending, {data['lifetime']} lifetime")
    click.echo(f"tier: {data['tier'] or '-'}" + (f" since {data['tier_since'][:10]}" if data["tier_since"] else ""))
    if data["perks"]:
        click.echo(f"perks: {json.dumps(data['perks'], default=str)}")
    for card in data["punch_cards"]:
        click.echo(f"punch card {card['name']}: {card['punches']}/{card['size']} ({card['filled']} filled)")
    for r in data["rewards"]:
        value = f"{r['amount']} {r['currency']}" if r["amount"] else f"{r['percent']}%"
        click.echo(f"reward {r['code']}: {value} off, {r['status']}, until {(r['expires_at'] or '-')[:10]}")
    for h in data["history"]:
        click.echo(f"  {h['created_at'][:19]}  {h['kind']:<7} {h['points']:>+8}  {h['reason'] or ''}"
                   + (f"  [{h['actor']}]" if h["actor"] else ""))


@loyalty.command("adjust")
@click.argument("customer")
@click.option("--points", type=int, required=True, help="Points to add (negative to take away).")
@click.option("--reason", required=True, help="Why; kept in the ledger with who did it.")
@click.option("--actor", help="Who is adjusting (default: cli:<login name>).")
@click.option("--key", help="Idempotency key: running the same command twice with it adjusts once.")
@click.option("--allow-negative", is_flag=True, help="Allow taking the available balance below zero.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def adjust_cmd(app, customer, points, reason, actor, key, allow_negative, as_json):
    """Add or take away points by hand (audited: reason and actor are stored)."""
    from .engine import adjust

    c = _customer(app, customer)
    key = f"loyalty:adjust:{key or uuid.uuid4()}"
    try:
        with app.engine.begin() as conn:
            ctx = HookContext(app.app, conn, now=app.now(), source="cli")
            result = adjust(ctx, c["id"], points, reason=reason, actor=_actor(actor), key=key,
                            allow_negative=allow_negative)
    except LoyaltyError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        echo_json(result)
    elif result["created"]:
        click.echo(f"adjusted customer {c['id']} by {points:+d}: {result['available']} available")
    else:
        click.echo(f"already applied ({key}): {result['available']} available")


@loyalty.command("redeem")
@click.argument("customer")
@click.option("--points", type=click.IntRange(1), required=True, help="Points to turn into a discount code.")
@click.option("--key", help="Idempotency key: the same key redeems once and shows the same code.")
@click.option("--actor", help="Who is redeeming (default: cli:<login name>).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def redeem_cmd(app, customer, points, key, actor, as_json):
    """Turn points into a single-use discount code for this customer.

    A configured reward costing exactly --points is used; otherwise
    [loyalty] point_value prices the points.
    """
    from .engine import redeem

    c = _customer(app, customer)
    key_base = f"redeem:{key or uuid.uuid4()}"
    try:
        with app.engine.begin() as conn:
            ctx = HookContext(app.app, conn, now=app.now(), source="cli")
            result = redeem(ctx, c["id"], points, key_base=key_base, actor=_actor(actor))
    except LoyaltyError as e:
        raise click.ClickException(str(e)) from None
    r = result["reward"]
    amount = money_text(r["amount"]) if r["amount"] is not None else None
    percent = f"{r['percent'].normalize():f}" if r["percent"] is not None else None
    if as_json:
        echo_json({"code": r["code"], "points": r["points"], "amount": amount, "percent": percent,
                   "currency": r["currency"] if amount else None, "expires_at": r["expires_at"],
                   "available": result["available"]})
        return
    value = f"{amount} {r['currency']}" if amount is not None else f"{percent}%"
    click.echo(f"code {r['code']}: {value} off, until {r['expires_at'].date().isoformat()}; "
               f"{result['available']} points left")


def _pages(client, query: str, variables: dict, path: tuple[str, ...]) -> set[int]:
    found: set[int] = set()
    after = None
    while True:
        data = client.graphql(query, {**variables, "after": after})
        node = data
        for p in path:
            node = (node or {}).get(p)
        if not node:
            return found
        found.update(int(n["id"].rsplit("/", 1)[1]) for n in node.get("nodes") or [])
        info = node.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            return found
        after = info.get("endCursor")


def fetch_card_products(client, card: dict) -> set[int]:
    """Products in the card's collections or carrying its tags, read from the Admin API."""
    products: set[int] = set()
    for coll in card["match"]["collections"]:
        gid = coll if coll.startswith("gid://") else f"gid://shopify/Collection/{coll}"
        products |= _pages(client, COLLECTION_PRODUCTS, {"id": gid}, ("collection", "products"))
    for tag in card["match"]["tags"]:
        products |= _pages(client, TAGGED_PRODUCTS, {"query": f"tag:'{tag}'"}, ("products",))
    return products


@loyalty.command("sync-products")
@click.option("--card", "card_name", help="Only this punch card.")
@pass_app
def sync_products(app, card_name):
    """Read which products are in the punch cards' collections (and carry their tags) from Shopify.

    Order webhooks do not say which collections a product is in, or its tags;
    run this after changing a collection (a cron job, daily, is plenty).
    """
    from .punch import STATE_PLUGIN, products_state_key
    from .settings import settings_of

    require_schema(app)
    s = settings_of(app)
    cards = [c for c in s["punch_cards"] if (c["match"]["collections"] or c["match"]["tags"])
             and (card_name is None or c["name"] == card_name)]
    if card_name and not cards:
        raise click.BadParameter(f"no punch card {card_name!r} with collections or tags", param_hint="--card")
    client = app.shopify_client()
    for card in cards:
        products = sorted(fetch_card_products(client, card))
        with app.engine.begin() as conn:
            HookContext(app.app, conn, now=app.now(), source="cli").state_set(
                STATE_PLUGIN, products_state_key(card["name"]), products)
        click.echo(f"punch card {card['name']}: {len(products)} product(s)")


@loyalty.command("sync-metafields")
@pass_app
def sync_metafields(app):
    """Write every customer's points and tier to Shopify again (e.g. after an upgrade, or metafields = "off").

    Marks each customer with loyalty history; the worker's task loyalty.metafields
    writes them over its next runs, at most once per customer per
    [loyalty] sync_interval_minutes.
    """
    from .sync import mark_everyone

    require_schema(app)
    with app.engine.begin() as conn:
        n = mark_everyone(conn, app.now())
    click.echo(f"marked {n} customer(s); the worker writes their metafields")


@loyalty.command("award")
@click.option("--customer", "customer_ref", required=True,
              help="An email, a Shopify customer id (or GID) or an internal id.")
@click.option("--reason", type=click.Choice(["review", "admin"]), required=True,
              help="review: a product review (the [loyalty.earn] review rule unless --points); admin: a gift.")
@click.option("--points", type=int, help="Points to give (required with --reason admin).")
@click.option("--ref", help="What is rewarded, e.g. the review id: the same --reason and --ref award once.")
@click.option("--note", help="Why, in words (required with --reason admin); kept in the ledger.")
@click.option("--actor", help="Who is awarding (default: cli:<login name>).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def award_cmd(app, customer_ref, reason, points, ref, note, actor, as_json):
    """Give points for something other than an order: a review, or an admin's award (audited)."""
    from .activities import award

    c = _customer(app, customer_ref)
    if reason == "admin" and not ref:
        ref = str(uuid.uuid4())
    try:
        with app.engine.begin() as conn:
            ctx = HookContext(app.app, conn, now=app.now(), source="cli")
            result = award(ctx, c["id"], reason=reason, points=points, ref=ref, note=note, actor=_actor(actor))
    except LoyaltyError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        echo_json(result)
    elif result["created"]:
        click.echo(f"awarded customer {c['id']} {result['points']} points ({reason}): "
                   f"{result['available']} available")
    elif result["points"]:
        click.echo(f"already awarded ({result['key']}): {result['available']} available")
    else:
        click.echo(f"nothing awarded: the {reason} rule gives 0 points ([loyalty.earn] {reason})")


@loyalty.command("liability")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def liability_cmd(app, as_json):
    """Outstanding points and their money value, by tier and by age (for finance)."""
    from .liability import report
    from .settings import settings_of

    require_schema(app)
    with app.engine.connect() as conn:
        data = report(conn, settings_of(app), app.now())
    if as_json:
        echo_json(data)
        return
    cur = data["currency"] or ""
    click.echo(f"outstanding points as of {data['as_of'][:19]}Z: {data['points']}"
               + (f", worth {data['value']} {cur}" if data["value"] is not None else ""))
    click.echo(f"one point: {data['point_value'] or '?'} {cur} ({data['point_value_source']})")
    click.echo(f"{'tier':<16} {'customers':>9} {'available':>10} {'pending':>10} {'points':>10} {'value':>14}")
    for r in data["by_tier"]:
        click.echo(f"{r['tier']:<16} {r['customers']:>9} {r['available']:>10} {r['pending']:>10} {r['points']:>10} "
                   f"{(r['value'] or '-'):>14}")
    click.echo(f"{'age':<16} {'points':>10} {'value':>14}")
    for r in data["by_age"]:
        click.echo(f"{r['age']:<16} {r['points']:>10} {(r['value'] or '-'):>14}")

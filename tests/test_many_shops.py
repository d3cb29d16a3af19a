"""Two shops in one install and one database: each shop's deliveries, customers, ledger, recalls and
analysis stay its own, and erasing one shop leaves every row of the other byte-identical.

Shop A is ``[shopify] shop``; shop B is installed beside it through ``[shops."<b>"]`` (its own
loyalty rate). Both run on SQLite and PostgreSQL (``db_url``).
"""

from datetime import timedelta

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import SHOP, base_config, dumps, shopify_headers
from payloads import order
from retention_plugin import config as config_mod
from retention_plugin import hookimpl, shop_scope, shops
from retention_plugin.analysis.store import load_store_history
from retention_plugin.features.recalls.engine import create_recall
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker
from server_util import running_server, write_config

A, B = SHOP, "second-shop.myshopify.com"
A_ID, B_ID = 954889, 771234
RECALLS = {"public_url": "https://retention.example.com", "signing_secret": "recall-signing-secret"}
#: Recall notices carry signed acknowledgment links.
LINKS = {"secret": "many-shops-link-secret-0123456789", "base_url": "https://retention.example.com"}
PER_SHOP = {B: {"loyalty": {"points_per_currency_unit": 2}}}


def two_shop_app(make_app):
    return make_app(recalls=RECALLS, links=LINKS, messages={"default_channel": "log"}, shops=PER_SHOP)


def kettle(order_id, customer_id, email, when, sku="KETTLE-K1", subtotal="40.00"):
    return order(order_id, customer_id=customer_id, email=email, created=when, subtotal=subtotal,
                 lines=[{"id": order_id * 10 + 1, "sku": sku, "product_id": 7501, "quantity": 1, "price": subtotal}])


def seed_shop(app, shop, base, when):
    """Two buyers of the kettle, one of something else; the same Shopify customer id and email in every shop."""
    deliver_shopify(app, "orders/paid", kettle(base + 1, 6101, "ann@example.com", when), shop=shop)
    deliver_shopify(app, "orders/paid", kettle(base + 2, 6102, "ben@example.com", when, subtotal="60.00"), shop=shop)
    deliver_shopify(app, "orders/paid", kettle(base + 3, 6103, "cat@example.com", when, sku="TOASTER-T2"), shop=shop)
    counts = run_worker(app)
    assert counts.dead == 0


def rows(app, table, shop=None):
    with app.engine.connect() as conn:
        q = select(table)
        if shop is not None:
            q = q.where(table.c.shop == shop)
        return [dict(r) for r in conn.execute(q.order_by(*table.primary_key.columns)).mappings()]


def dump(app) -> dict[str, list[tuple]]:
    """Every row of every table (``task_runs``, the worker's bookkeeping, aside), exactly as stored."""
    out = {}
    with app.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            if table is t.task_runs:
                continue
            out[table.name] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                               for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
    return out


def balance(app, customer_id):
    with app.engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.sum(t.ledger.c.points), 0))
                            .where(t.ledger.c.customer_id == customer_id)).scalar()


# --- settings ------------------------------------------------------------------------------------------


def test_per_shop_settings_are_merged_over_the_global_section_and_validated(make_app):
    app = two_shop_app(make_app)
    assert shops.configured(app.settings) == [A, B]
    assert app.settings.section("loyalty")["points_per_currency_unit"] == 1
    with shop_scope.scope(B):
        assert app.settings.section("loyalty")["points_per_currency_unit"] == 2
        assert app.settings.section("loyalty")["basis"] == "subtotal"  # the rest from [loyalty]
        assert app.settings.section("shopify")["shop"] == B
    with shop_scope.scope(A):
        assert app.settings.section("loyalty")["points_per_currency_unit"] == 1

    with pytest.raises(config_mod.ConfigError) as bad:
        make_app(shops={B: {"loyalty": {"points_per_currency_unit": "lots"}}})
    assert f'[shops."{B}".loyalty].points_per_currency_unit' in str(bad.value)
    for shops_table, needle in (({"Not A Shop": {}}, "expected a shop domain"),
                                ({B: {"database": {"url": "sqlite://"}}}, "is the install's"),
                                ({B: {"shopify": {"shop": A}}}, "must be the shop the table is for")):
        with pytest.raises(config_mod.ConfigError) as bad:
            make_app(shops=shops_table)
        assert needle in str(bad.value)


# --- separation ---------------------------------------------------------------------------------------------


def test_two_shops_keep_their_deliveries_customers_ledgers_recalls_and_analysis_apart(make_app, clock):
    app = two_shop_app(make_app)
    when = clock.now - timedelta(days=10)
    seed_shop(app, A, 1000, when)
    seed_shop(app, B, 2000, when)

    inbox = rows(app, t.inbox)
    assert sorted({r["shop"] for r in inbox}) == [A, B]
    assert all(r["status"] == "done" for r in inbox)

    # One person per shop: Shopify customer 6101 of A is not customer 6101 of B.
    a_customers, b_customers = rows(app, t.customers, A), rows(app, t.customers, B)
    assert sorted(c["shopify_id"] for c in a_customers) == sorted(c["shopify_id"] for c in b_customers) == [
        6101, 6102, 6103]
    assert not {c["id"] for c in a_customers} & {c["id"] for c in b_customers}
    assert sorted(o["shopify_id"] for o in rows(app, t.orders, A)) == [1001, 1002, 1003]
    assert sorted(o["shopify_id"] for o in rows(app, t.orders, B)) == [2001, 2002, 2003]
    for o in rows(app, t.orders):
        owner = next(c for c in rows(app, t.customers) if c["id"] == o["customer_id"])
        assert owner["shop"] == o["shop"]

    # Ledgers: each shop's own rate (B doubles), entries on the shop's own customers.
    ann_a = next(c["id"] for c in a_customers if c["shopify_id"] == 6101)
    ann_b = next(c["id"] for c in b_customers if c["shopify_id"] == 6101)
    assert balance(app, ann_a) == 40
    assert balance(app, ann_b) == 80
    for entry in rows(app, t.ledger):
        assert entry["shop"] == next(c["shop"] for c in rows(app, t.customers) if c["id"] == entry["customer_id"])

    # A recall in shop B reaches B's two kettle buyers, not A's.
    with shop_scope.scope(B):
        result = create_recall(app, sku="KETTLE-K1", title="the lid can come loose")
    assert result["new_cases"] == 2
    (recall,) = rows(app, t.recalls)
    assert recall["shop"] == B
    cases = rows(app, t.recall_cases)
    assert {c["customer_id"] for c in cases} == {c["id"] for c in b_customers if c["shopify_id"] in (6101, 6102)}
    assert {c["shop"] for c in cases} == {B}
    assert {m["shop"] for m in rows(app, t.messages) if m["kind"].startswith("recall")} == {B}
    # The same recall in shop A is another recall, with A's buyers.
    with shop_scope.scope(A):
        again = create_recall(app, sku="KETTLE-K1", title="the lid can come loose")
    assert again["created"], again
    assert again["new_cases"] == 2
    assert len(rows(app, t.recalls)) == 2

    # Analysis reads one shop's history.
    with shop_scope.scope(A):
        history_a = load_store_history(app.engine, clock.now)
    with shop_scope.scope(B):
        history_b = load_store_history(app.engine, clock.now)
    assert set(history_a.orders.customer) == {c["id"] for c in a_customers}
    assert set(history_b.orders.customer) == {c["id"] for c in b_customers}
    assert sorted(history_b.orders.amount) == [40.0, 40.0, 60.0]


def test_redacting_one_shop_leaves_the_other_byte_identical(make_app, clock):
    app = two_shop_app(make_app)
    when = clock.now - timedelta(days=10)
    seed_shop(app, B, 2000, when)
    with shop_scope.scope(B):
        create_recall(app, sku="KETTLE-K1", title="the lid can come loose")
    run_worker(app)
    only_b = dump(app)

    seed_shop(app, A, 1000, when)
    with shop_scope.scope(A):
        create_recall(app, sku="KETTLE-K1", title="the lid can come loose")
    deliver_shopify(app, "app/uninstalled", {"id": A_ID, "name": "A", "domain": A, "myshopify_domain": A}, shop=A)
    run_worker(app)
    with app.engine.connect() as conn:
        assert shops.stopped(conn, A) and not shops.stopped(conn, B)
    request = deliver_shopify(app, "shop/redact", {"shop_id": A_ID, "shop_domain": A}, shop=A)
    run_worker(app)

    after = dump(app)
    # What shop A leaves: the request it sent, and the record that it was honoured.
    inbox_cols = [c.name for c in t.inbox.columns]
    kept = [r for r in after["inbox"] if r[inbox_cols.index("shop")] == A]
    assert [r[inbox_cols.index("id")] for r in kept] == [request]
    after["inbox"] = [r for r in after["inbox"] if r not in kept]
    pr_cols = [c.name for c in t.privacy_requests.columns]
    records = [r for r in after["privacy_requests"] if r[pr_cols.index("shop")] == A]
    assert [r[pr_cols.index("kind")] for r in records] == ["shop_redact"]
    after["privacy_requests"] = [r for r in after["privacy_requests"] if r not in records]
    # Everything else is shop B's, exactly as it was before shop A ever came.
    for name in only_b:
        assert after[name] == only_b[name], name


def test_a_delivery_of_an_uninstalled_shop_is_skipped_and_its_token_revoked(make_app, clock):
    app = two_shop_app(make_app)
    with app.engine.begin() as conn:
        conn.execute(t.shop_tokens.insert().values(
            shop=B, grant_type="client_credentials", access_token="tok", encrypted=False, version=1,
            created_at=clock.now, updated_at=clock.now))
    deliver_shopify(app, "app/uninstalled", {"id": B_ID, "name": "B", "domain": B, "myshopify_domain": B}, shop=B)
    run_worker(app)
    assert rows(app, t.shop_tokens) == []
    late = deliver_shopify(app, "orders/paid", kettle(2009, 6101, "ann@example.com", clock.now), shop=B)
    run_worker(app)
    (row,) = [r for r in rows(app, t.inbox) if r["id"] == late]
    assert row["status"] == "ignored" and "uninstalled" in row["last_error"]
    assert rows(app, t.orders) == []
    # Shop A goes on working.
    deliver_shopify(app, "orders/paid", kettle(1009, 6101, "ann@example.com", clock.now), shop=A)
    run_worker(app)
    assert [o["shop"] for o in rows(app, t.orders)] == [A]


# --- the receiver, over HTTP ------------------------------------------------------------------------------


def test_the_receiver_takes_every_installed_shop_and_refuses_others(db_url, tmp_path, clock):
    cfg = base_config(db_url, shops=PER_SHOP)
    path = write_config(tmp_path / "retention.toml", cfg)
    body = dumps({"id": 1, "email": "x@example.com"})
    installed_later = "third-shop.myshopify.com"
    with running_server(path) as base:
        def post(shop, topic="orders/paid"):
            return requests.post(base + "/webhooks/shopify", data=body, headers=shopify_headers(body, topic, shop=shop),
                                 timeout=10)

        assert post(A).status_code == 200
        assert post(B.upper()).status_code == 200  # domains compare normalised
        refused = post(installed_later)
        assert refused.status_code == 401 and refused.json()["error"] == "unknown_shop"

        from retention_plugin.storage.db import make_engine
        engine = make_engine(db_url)
        try:
            with engine.begin() as conn:
                # An install through OAuth stores the shop's token (install/shopify_oauth.py).
                conn.execute(t.shop_tokens.insert().values(
                    shop=installed_later, grant_type="authorization_code", access_token="enc", encrypted=True,
                    version=1, created_at=clock.now, updated_at=clock.now))
            assert post(installed_later).status_code == 200
            with engine.connect() as conn:
                stored = sorted(r[0] for r in conn.execute(select(t.inbox.c.shop)))
            assert stored == sorted([A, B, installed_later])
            # Uninstalled (token revoked): only the privacy topics are still taken, shop/redact among them.
            with engine.begin() as conn:
                shops.revoke(conn, installed_later)
                conn.execute(t.app_uninstalls.insert().values(shop=installed_later, shop_id=5, received_at=clock.now))
            assert post(installed_later).status_code == 401
            assert post(installed_later, "shop/redact").status_code == 200
        finally:
            engine.dispose()


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_shops_list_and_the_shop_option(db_url, tmp_path, clock):
    from retention_plugin.cli import cli

    path = write_config(tmp_path / "retention.toml", base_config(db_url, shops=PER_SHOP))
    runner = CliRunner()
    got = runner.invoke(cli, ["--config", str(path), "shops", "list", "--json"])
    assert got.exit_code == 0, got.output
    import json
    listed = json.loads(got.output)
    assert [(s["shop"], s["source"], s["stopped"]) for s in listed] == [(A, "config", False), (B, "config", False)]
    plain = runner.invoke(cli, ["--config", str(path), "shops", "list"])
    assert plain.exit_code == 0 and plain.output.split()[:4] == ["shop", "source", "token", "state"], plain.output
    assert A in plain.output and B in plain.output
    bad = runner.invoke(cli, ["--config", str(path), "--shop", "nobody.myshopify.com", "shops", "list"])
    assert bad.exit_code != 0 and "--shop" in bad.output and "not installed" in bad.output


# --- the migration ----------------------------------------------------------------------------------------


def test_a_one_shop_database_from_before_keeps_its_rows_given_to_the_configured_shop(db_url, clock):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from retention_plugin.storage.db import current_revision, downgrade, head_revision, make_engine, upgrade

    engine = make_engine(db_url)
    try:
        downgrade(engine, "0003_wt15a")
        n = {"n": clock.now}
        with engine.begin() as conn:  # rows as the schema before 0004 held them
            conn.execute(text("INSERT INTO customers (id, shopify_id, email, tags, created_at, updated_at) "
                              "VALUES (900, 6101, 'ann@example.com', '[]', :n, :n)"), n)
            conn.execute(text(
                "INSERT INTO orders (id, shopify_id, customer_id, currency, subtotal, total, total_discounts, "
                "total_tax, shipping, refunded, created_at, tags, discount_codes, test, source) "
                "VALUES (900, 1001, 900, 'USD', 40, 40, 0, 0, 0, 0, :n, '[]', '[]', false, 'webhook')"), n)
            conn.execute(text("INSERT INTO ledger (id, key, customer_id, kind, points, available_at, order_id, "
                              "created_at) VALUES (900, 'order:1001:earn', 900, 'earn', 40, :n, 900, :n)"), n)
        upgrade(engine, default_shop=A)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            for table in (t.customers, t.orders, t.ledger):
                assert conn.execute(select(table.c.shop)).scalars().all() == [A], table.name
        # Customers are now unique per shop: 6101 again in B is another person; in A it is refused.
        row = {"shopify_id": 6101, "tags": [], "created_at": clock.now, "updated_at": clock.now}
        with engine.begin() as conn:
            conn.execute(t.customers.insert().values(shop=B, **row))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(t.customers.insert().values(shop=A, **row))
    finally:
        upgrade(engine)  # the database is the session's on PostgreSQL: leave it at the head whatever happened
        engine.dispose()


# --- periodic tasks, once per shop ------------------------------------------------------------------------


GOLD = {"name": "gold", "min_spend": "300.00", "discount_percent": 5, "segment_id": "gid://shopify/Segment/1"}


def task_runs(app) -> dict[str, dict]:
    return {r["name"]: r for r in rows(app, t.task_runs)}


def test_a_shop_wide_task_runs_for_each_shop_with_its_own_settings_and_not_for_a_stopped_shop(make_app, clock):
    # B's tier gives 9 % through B's own customer segment; A's the global 5 %.
    app = make_app(loyalty={"tiers": [GOLD]}, messages={"default_channel": "log"},
                   shops={B: {"loyalty": {"tiers": [dict(GOLD, discount_percent=9,
                                                         segment_id="gid://shopify/Segment/2")]}}})
    run_worker(app)
    made = [a for a in rows(app, t.actions) if a["kind"] == "discount_automatic_basic_create"]
    by_shop = {a["shop"]: a["request"]["variables"]["automaticBasicDiscount"] for a in made}
    assert sorted(by_shop) == [A, B] and len(made) == 2
    assert by_shop[A]["customerGets"]["value"] == {"percentage": 0.05}
    assert by_shop[B]["customerGets"]["value"] == {"percentage": 0.09}
    assert by_shop[A]["context"] != by_shop[B]["context"]  # each shop's own segment
    assert len({a["key"] for a in made}) == 2
    runs = task_runs(app)
    assert runs["loyalty.tier_pricing"]["last_finished_at"] is not None
    assert runs[f"loyalty.tier_pricing@{B}"]["last_finished_at"] is not None
    # Running again changes nothing: neither shop's discount is switched off by the other's pass.
    clock.advance(hours=1)
    run_worker(app)
    assert [a["kind"] for a in rows(app, t.actions) if a["kind"].startswith("discount_automatic")] == [
        "discount_automatic_basic_create"] * 2

    # B uninstalls: its tasks stop; A's go on.
    deliver_shopify(app, "app/uninstalled", {"id": B_ID, "name": "B", "domain": B, "myshopify_domain": B}, shop=B)
    run_worker(app)
    before = task_runs(app)
    clock.advance(hours=1)
    run_worker(app)
    after = task_runs(app)
    assert after["loyalty.tier_pricing"]["last_started_at"] > before["loyalty.tier_pricing"]["last_started_at"]
    assert after[f"loyalty.tier_pricing@{B}"]["last_started_at"] == \
        before[f"loyalty.tier_pricing@{B}"]["last_started_at"]


class ProbeTask:
    """A task that notes the shop and the loyalty rate it sees, and fails for shop B."""

    def __init__(self):
        self.seen: list[tuple] = []

    @hookimpl
    def register_tasks(self, register):
        register("probe", self.run, 3600)

    def run(self, ctx):
        shop = shop_scope.current(ctx.conn)
        self.seen.append((shop, ctx.settings.section("loyalty")["points_per_currency_unit"]))
        if shop == B:
            raise RuntimeError("B's pass breaks")


def test_one_shops_failing_task_does_not_block_another_shops_pass(make_app, clock):
    probe = ProbeTask()
    app = make_app([probe], shops=PER_SHOP)
    run_worker(app)
    assert probe.seen == [(A, 1), (B, 2)]  # B's pass sees B's [shops."<b>".loyalty]
    runs = task_runs(app)
    assert runs["probe"]["last_error"] is None
    assert "B's pass breaks" in runs[f"probe@{B}"]["last_error"]
    clock.advance(hours=1, seconds=1)
    run_worker(app)
    assert probe.seen[2:] == [(A, 1), (B, 2)]  # both run again next period: B's failure held nothing up


# --- customers/redact, within the shop -------------------------------------------------------------------


def dump_shop(app, shop) -> dict[str, list[tuple]]:
    """Every row of ``shop`` (:func:`shops.rows_of`), exactly as stored."""
    out = {}
    with app.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            where = shops.rows_of(table, shop)
            if where is None or table is t.task_runs:
                continue
            out[table.name] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                               for r in conn.execute(select(table).where(where)
                                                     .order_by(*table.primary_key.columns))]
    return out


def test_a_customer_redaction_scrubs_the_redacting_shops_rows_only(make_app, clock):
    app = two_shop_app(make_app)
    when = clock.now - timedelta(days=10)
    seed_shop(app, A, 1000, when)
    seed_shop(app, B, 2000, when)  # B's Ann has the same email: she is B's customer, and B keeps her
    b_before = dump_shop(app, B)
    assert any(b"ann@example.com" in bytes(r["body"]) for r in rows(app, t.inbox, B))

    deliver_shopify(app, "customers/redact", {"shop_id": A_ID, "shop_domain": A,
                                              "customer": {"id": 6101, "email": "ann@example.com"},
                                              "orders_to_redact": [1001]}, shop=A)
    assert run_worker(app).dead == 0
    assert not any(b"ann@example.com" in bytes(r["body"]) for r in rows(app, t.inbox, A))
    (ann_a,) = [c for c in rows(app, t.customers, A) if c["shopify_id"] == 6101]
    assert ann_a["redacted_at"] is not None
    b_after = dump_shop(app, B)
    for name in b_before:
        assert b_after[name] == b_before[name], name


# --- the storefront page and the console's sign-in, for every shop served -------------------------------------


def test_each_served_shops_customer_sees_their_own_storefront_page_and_others_get_401(make_app, clock):
    import falcon.testing

    from retention_plugin.web import create_app
    from storefront_support import proxy_query

    app = two_shop_app(make_app)
    deliver_shopify(app, "orders/paid", order(1101, customer_id=1001, subtotal="250.00"), shop=A)
    deliver_shopify(app, "orders/paid", order(2101, customer_id=1001, subtotal="120.00"), shop=B)  # B earns double
    assert run_worker(app).dead == 0
    client = falcon.testing.TestClient(create_app(app))

    def page(shop):
        return client.simulate_get("/proxy/rewards", query_string=proxy_query(1001, clock.now, shop=shop))

    got_a, got_b = page(A), page(B)
    assert got_a.status == got_b.status == "200 OK"
    assert 'id="rp-available">250<' in got_a.text
    assert 'id="rp-available">240<' in got_b.text  # B's own customer 1001, at B's rate
    assert page("someone-else.myshopify.com").status == "401 Unauthorized"

    # B uninstalls: its page is refused like an unknown shop's; A's is served.
    deliver_shopify(app, "app/uninstalled", {"id": B_ID, "name": "B", "domain": B, "myshopify_domain": B}, shop=B)
    run_worker(app)
    assert page(B).status == "401 Unauthorized" and page(B).text == "Unauthorized"
    assert page(A).status == "200 OK"


def test_the_console_signs_in_any_served_shop_from_its_session_token_and_works_in_that_shop(make_app, clock):
    import jwt
    from urllib.parse import quote

    from test_console import Browser

    client_id, secret = "console-client-id", "console-client-secret-0123456789"
    app = make_app(shopify={"client_id": client_id, "client_secret": secret}, shops=PER_SHOP)
    seed_shop(app, A, 1000, clock.now - timedelta(days=3))
    seed_shop(app, B, 2000, clock.now - timedelta(days=3))

    def token(shop):
        now = int(app.now().timestamp())
        return jwt.encode({"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": client_id, "sub": "7",
                           "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": "j", "sid": "s"},
                          secret, algorithm="HS256")

    b = Browser(app)
    r = b.get("/admin", headers={"Authorization": f"Bearer {token(B)}"})
    assert r.status_code == 200 and "shopify:7" in r.text
    assert rows(app, t.console_sessions) == []  # the token signs in each request; nothing is stored
    # Signed in from B's admin: B's Ann, not A's (the same email in both shops).
    as_b = {"Authorization": f"Bearer {token(B)}"}
    found = b.get("/admin/customers?q=" + quote("ann@example.com"), headers=as_b)
    (b_ann,) = [c["id"] for c in rows(app, t.customers, B) if c["shopify_id"] == 6101]
    (a_ann,) = [c["id"] for c in rows(app, t.customers, A) if c["shopify_id"] == 6101]
    assert f'/admin/customers/{b_ann}"' in found.text and f'/admin/customers/{a_ann}"' not in found.text
    assert b.get(f"/admin/customers/{a_ann}", headers=as_b).status_code == 404
    assert b.get(f"/admin/customers/{b_ann}", headers=as_b).status_code == 200

    r = Browser(app).get("/admin", params={"id_token": token("someone-else.myshopify.com")})
    assert r.status_code == 401 and "dest" in r.text
    # B uninstalls: its admin signs in no more; A's still does.
    deliver_shopify(app, "app/uninstalled", {"id": B_ID, "name": "B", "domain": B, "myshopify_domain": B}, shop=B)
    run_worker(app)
    r = Browser(app).get("/admin", params={"id_token": token(B)})
    assert r.status_code == 401 and "uninstalled" in r.text
    assert Browser(app).get("/admin", params={"id_token": token(A)}).status_code == 200


def test_listings_show_every_shop_with_a_shop_column_or_one_shop_with_the_shop_option(make_app, db_url, tmp_path,
                                                                                     clock):
    import json

    from retention_plugin.cli import cli

    app = make_app(shops=PER_SHOP)
    for shop, oid in ((A, 1101), (B, 2101)):
        deliver_shopify(app, "orders/paid", order(oid, customer_id=1001, subtotal="10.00"), shop=shop)
        with shop_scope.scope(shop), app.engine.begin() as conn:
            conn.execute(t.actions.insert().values(key=f"probe:{shop}", platform="shopify", kind="tags_add",
                                                   request={}, status="pending", attempts=0,
                                                   next_attempt_at=clock.now, created_at=clock.now,
                                                   updated_at=clock.now))
    runner = CliRunner()
    path = write_config(tmp_path / "retention.toml", base_config(db_url, shops=PER_SHOP))

    def run(*args):
        got = runner.invoke(cli, ["--config", str(path), *args])
        assert got.exit_code == 0, got.output
        return got.output

    for command in (("events", "list"), ("actions", "list")):
        head, _, *lines = run(*command).splitlines()  # a headed table: header, rule, rows
        assert "shop" in head.split()
        assert len(lines) == 2 and {line.split()[3] for line in lines} == {A, B}  # id, date, time, shop
        only_b = json.loads(run("--shop", B, *command, "--json"))
        assert len(only_b) == 1
    assert json.loads(run("--shop", B, "events", "list", "--json"))[0]["shop"] == B
    assert json.loads(run("--shop", B, "actions", "list", "--json"))[0]["key"] == f"probe:{B}"
    assert {a["shop"] for a in json.loads(run("actions", "list", "--json"))} == {A, B}

    # One shop installed: the listing is as it always was, no shop column.
    one = write_config(tmp_path / "one.toml", base_config(db_url))
    got = runner.invoke(cli, ["--config", str(one), "actions", "list"])
    head, _, *lines = got.output.splitlines()
    assert got.exit_code == 0 and len(lines) == 2 and "shop" not in head.split()
    assert all(line.split()[3] == "shopify" for line in lines)  # id, date, time, platform
    assert all("shop" not in a for a in json.loads(runner.invoke(cli, ["--config", str(one), "actions", "list",
                                                                       "--json"]).output))


def test_the_daily_tier_review_judges_each_shops_customers_by_that_shops_tiers(make_app, clock):
    # Orders first, tiers configured afterwards: only the daily task (not an order) can place anyone.
    app = make_app(shops=PER_SHOP)
    for shop, oid in ((A, 1101), (B, 2101)):
        deliver_shopify(app, "orders/paid", order(oid, customer_id=1001, subtotal="100.00"), shop=shop)
    assert run_worker(app).dead == 0
    gold = {"name": "gold", "min_spend": "300.00"}
    app = make_app(loyalty={"tiers": [gold]},
                   shops={B: {"loyalty": {"points_per_currency_unit": 2,
                                          "tiers": [dict(gold, min_spend="50.00")]}}})
    clock.advance(days=1, hours=1)
    run_worker(app)
    with app.engine.connect() as conn:
        tier_of = {shop: conn.execute(select(t.customer_tiers.c.tier).join(
            t.customers, t.customers.c.id == t.customer_tiers.c.customer_id).where(t.customers.c.shop == shop)
        ).scalar() for shop in (A, B)}
    assert tier_of[B] == "gold"  # 100 spent, B's gold from 50
    assert tier_of[A] != "gold"  # 100 spent, A's gold from 300


def test_a_shop_with_its_own_zendesk_posts_to_its_own_path_and_its_tickets_are_its_own(make_app, db_url,
                                                                                         tmp_path, clock):
    """Shop B's support runs on a Zendesk account of its own: its webhook, signed with that account's
    secret, comes to /webhooks/zendesk/<B> and its tickets are B's. The shared path stays the configured
    shop's, no other secret opens B's path, and a shop without an account of its own has no path."""
    from datetime import datetime, timezone

    from conftest import zendesk_headers
    from payloads import zendesk_envelope

    b_secret = "shop-b-zendesk-secret-0123456789"
    per_shop = {B: {"zendesk": {"subdomain": "shop-b-support", "webhook_secret": b_secret}}}
    path = write_config(tmp_path / "retention.toml", base_config(db_url, shops=per_shop))
    app = make_app(shops=per_shop)
    with running_server(path) as base:
        def post(where, ticket_id, secret=None):
            body = dumps(zendesk_envelope("ticket.created", ticket_id, requester_id=8800 + ticket_id,
                                          email=f"t{ticket_id}@example.com"))
            headers = zendesk_headers(body, datetime.now(timezone.utc), str(ticket_id),
                                      **({"secret": secret} if secret else {}))
            return requests.post(base + where, data=body, headers=headers, timeout=10)

        assert post("/webhooks/zendesk", 1).status_code == 200  # the shared account: the configured shop's
        assert post(f"/webhooks/zendesk/{B.upper()}", 2, b_secret).status_code == 200
        refused = post(f"/webhooks/zendesk/{B}", 3)  # the shared secret does not open B's path
        assert refused.status_code == 401 and refused.json()["error"] == "bad_signature"
        for other in (A, "third-shop.myshopify.com", "not a shop"):
            refused = post(f"/webhooks/zendesk/{other}", 4, b_secret)
            assert refused.status_code == 401 and refused.json()["error"] == "unknown_shop", other
    clock.now = datetime.now(timezone.utc) + timedelta(minutes=1)  # the server stored them at the real time
    assert run_worker(app).dead == 0
    with app.engine.connect() as conn:
        tickets = dict(conn.execute(select(t.tickets.c.zendesk_id, t.tickets.c.shop)).all())
        requesters = dict(conn.execute(select(t.customers.c.zendesk_user_id, t.customers.c.shop)).all())
    assert tickets == {1: A, 2: B}
    assert requesters == {8801: A, 8802: B}  # each requester a customer of the ticket's shop

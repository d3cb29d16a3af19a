"""A plugin's rows take part in customer merges and erasure, the built-ins' and a third party's alike.

The core merges and erases its own tables and coordinates: ``customers_merged``
lets every plugin move its rows to the surviving customer, ``customer_redact``
(with ``ctx.erasure``) erase the person's, ``shop_redact`` delete its own; the
core then searches every column a plugin declared free text for the person's
words. Here a plugin with a table of its own (its own MetaData, created by the
test) does all three, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, Text, delete, func, select, update

from payloads import order
from retention_plugin import events as ev
from retention_plugin import hookimpl
from retention_plugin.records import MergeWithoutPlugins, resolve_customer
from retention_plugin.redaction import REDACTED, TextColumns, undeclared_columns
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

SHOP = "retention-test.myshopify.com"
NOTES = MetaData()
notes = Table("partner_notes", NOTES, Column("id", Integer, primary_key=True),
              Column("customer_id", Integer, nullable=False), Column("body", Text), Column("extra", JSON))


class NotesPlugin:
    """A third-party plugin keeping a note per customer in a table of its own."""

    TEXT_COLUMNS = TextColumns(free_text={"partner_notes": ("body", "extra")}, metadata=NOTES)

    def __init__(self):
        self.merges: list[tuple[int, int]] = []
        self.erased: list[set[int]] = []

    @hookimpl
    def customers_merged(self, survivor, merged, ctx):
        self.merges.append((survivor, merged))
        ctx.conn.execute(update(notes).where(notes.c.customer_id == merged).values(customer_id=survivor))

    @hookimpl
    def customer_redact(self, event, ctx):
        ids = ctx.erasure.person.customer_ids
        self.erased.append(set(ids))
        n = ctx.conn.execute(update(notes).where(notes.c.customer_id.in_(ids)).values(body=REDACTED)).rowcount
        ctx.erasure.count("partner_notes", n)

    @hookimpl
    def shop_redact(self, event, ctx):
        ctx.conn.execute(delete(notes))


@pytest.fixture
def with_notes(make_app):
    plugin = NotesPlugin()
    app = make_app(extra_plugins=[plugin])
    NOTES.create_all(app.engine)
    yield app, plugin
    NOTES.drop_all(app.engine)


def customer(app, **where):
    c = t.customers
    with app.engine.connect() as conn:
        return conn.execute(select(c).where(*(c.c[k] == v for k, v in where.items()))).mappings().one()


def two_rows_of_one_person(app):
    """A guest order (email only) and a Shopify customer's order: two customer rows, each with points."""
    deliver_shopify(app, "orders/paid", order(4102, customer_id=None, email="ann.home@example.com",
                                              subtotal="60.00"))
    deliver_shopify(app, "orders/paid", order(4101, customer_id=6101, email="ann@example.com", subtotal="40.00"))
    run_worker(app)
    return customer(app, email="ann.home@example.com")["id"], customer(app, shopify_id=6101)["id"]


def test_hook_customers_merged(with_notes):
    app, plugin = with_notes
    guest, account = two_rows_of_one_person(app)
    with app.engine.begin() as conn:
        conn.execute(notes.insert().values(customer_id=account, body="prefers the blue mug"))
    assert plugin.merges == []

    # The Shopify customer changes their email to the guest's: one person, two rows; the older one stays.
    deliver_shopify(app, "customers/update", {"id": 6101, "email": "ann.home@example.com",
                                              "updated_at": "2026-03-02T10:00:00+00:00"})
    run_worker(app)

    assert plugin.merges == [(guest, account)]
    assert customer(app, id=account)["merged_into"] == guest
    assert customer(app, id=guest)["shopify_id"] == 6101
    with app.engine.connect() as conn:
        assert conn.execute(select(notes.c.customer_id)).scalars().all() == [guest]
        # The built-ins moved theirs in the same transaction: the core's orders, loyalty's ledger, the messages.
        for table in (t.orders, t.ledger, t.messages):
            owners = set(conn.execute(select(table.c.customer_id)).scalars())
            assert owners == {guest}, table.name
        points = conn.execute(select(func.sum(t.ledger.c.points))).scalar()
    assert points == 100


def test_a_plugins_table_takes_part_in_erasure(with_notes):
    app, plugin = with_notes
    deliver_shopify(app, "orders/paid", order(4101, customer_id=6101, email="ann@example.com",
                                              first_name="Ann", last_name="Example"))
    deliver_shopify(app, "orders/paid", order(4103, customer_id=6103, email="bob@example.com", first_name="Bob"))
    run_worker(app)
    ann, bob = customer(app, shopify_id=6101)["id"], customer(app, shopify_id=6103)["id"]
    with app.engine.begin() as conn:
        conn.execute(notes.insert(), [
            {"customer_id": ann, "body": "Ann Example, ann@example.com: allergic to latex", "extra": None},
            {"customer_id": bob, "body": "Bob was referred by Ann Example (ann@example.com)",
             "extra": {"said": ["call Ann Example on +370 600 00000"]}},
        ])

    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": SHOP, "orders_to_redact": [4101],
                                              "customer": {"id": 6101, "email": "ann@example.com"}})
    run_worker(app)

    assert plugin.erased == [{ann}]
    with app.engine.connect() as conn:
        rows = {r.customer_id: r for r in conn.execute(select(notes))}
    assert rows[ann].body == REDACTED  # the plugin's own step: the person's row
    # The core's search, in the column the plugin declared free text: only the person's words went.
    assert rows[bob].body == f"Bob was referred by {REDACTED} ({REDACTED})"
    assert rows[bob].extra == {"said": [f"call {REDACTED} on {REDACTED}"]}


def test_a_plugins_table_is_deleted_with_the_shop(with_notes):
    app, plugin = with_notes
    deliver_shopify(app, "orders/paid", order(4101, customer_id=6101))
    run_worker(app)
    ann = customer(app, shopify_id=6101)["id"]
    with app.engine.begin() as conn:
        conn.execute(notes.insert().values(customer_id=ann, body="x"))
    deliver_shopify(app, "app/uninstalled", {"id": 77, "name": "Shop", "domain": SHOP, "myshopify_domain": SHOP})
    deliver_shopify(app, "shop/redact", {"shop_id": 77, "shop_domain": SHOP})
    run_worker(app)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(notes)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(t.customers)).scalar() == 0


def test_a_plugin_table_nobody_declared_is_named():
    assert undeclared_columns(NOTES, []) == {("partner_notes", "body"), ("partner_notes", "extra")}
    assert undeclared_columns(NOTES, [NotesPlugin.TEXT_COLUMNS]) == set()


def test_a_switched_off_plugins_rows_still_lose_the_persons_words_and_go_with_the_shop(make_app):
    """Loyalty off: nobody declares the ledger's columns, so the core searches all of its text."""
    app = make_app(plugins={"disabled": ["loyalty"]})
    deliver_shopify(app, "orders/paid", order(4101, customer_id=6101, email="ann@example.com",
                                              first_name="Ann", last_name="Example"))
    run_worker(app)
    ann = customer(app, shopify_id=6101)["id"]
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    with app.engine.begin() as conn:
        conn.execute(t.ledger.insert().values(key="loyalty:adjust:x", customer_id=ann, kind="adjust", points=5,
                                              available_at=now, reason="Ann Example asked (ann@example.com)",
                                              actor="admin", created_at=now))
    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": SHOP, "orders_to_redact": [],
                                              "customer": {"id": 6101, "email": "ann@example.com"}})
    run_worker(app)
    with app.engine.connect() as conn:
        reason = conn.execute(select(t.ledger.c.reason)).scalar()
    assert reason == f"{REDACTED} asked ({REDACTED})"

    deliver_shopify(app, "app/uninstalled", {"id": 77, "name": "Shop", "domain": SHOP, "myshopify_domain": SHOP})
    deliver_shopify(app, "shop/redact", {"shop_id": 77, "shop_domain": SHOP})
    run_worker(app)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.ledger)).scalar() == 0


def test_a_switched_off_plugins_rows_still_follow_a_merge(make_app):
    app = make_app(plugins={"disabled": ["loyalty"]})
    guest, account = two_rows_of_one_person(app)
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    with app.engine.begin() as conn:
        conn.execute(t.ledger.insert().values(key="loyalty:earn:order:4101", customer_id=account, kind="earn",
                                              points=40, available_at=now, created_at=now))
    deliver_shopify(app, "customers/update", {"id": 6101, "email": "ann.home@example.com",
                                              "updated_at": "2026-03-02T10:00:00+00:00"})
    run_worker(app)
    assert customer(app, id=account)["merged_into"] == guest
    with app.engine.connect() as conn:
        assert conn.execute(select(t.ledger.c.customer_id)).scalars().all() == [guest]


def test_a_merge_without_the_plugins_is_refused(app):
    """Recording without a HookContext (a script, an importer not given the app) must not merge behind the
    plugins' backs: their rows would stay with the merged row."""
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    with app.engine.begin() as conn:
        resolve_customer(conn, ev.CustomerInfo(shopify_id=1, email="a@example.com"), now)
        resolve_customer(conn, ev.CustomerInfo(zendesk_user_id=9, email="b@example.com"), now)
    with pytest.raises(MergeWithoutPlugins), app.engine.begin() as conn:
        resolve_customer(conn, ev.CustomerInfo(zendesk_user_id=9, email="a@example.com"), now)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(t.customers.c.merged_into.is_not(None))).scalar() == 0

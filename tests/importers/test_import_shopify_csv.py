"""`retention import shopify-csv`: Shopify's Orders export, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from conftest import SHOP, base_config
from payloads import order as order_payload
from server_util import write_config
from retention_plugin import events as ev
from retention_plugin.importers.commands import import_group
from retention_plugin.importers.shopify_csv import import_shopify_csv
from retention_plugin.records import resolve_customer
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine
from retention_plugin.testing import deliver_shopify, run_worker

from .conftest import SHOPIFY_COLUMNS, dump, invoke, rows_of, shopify_rows, write_csv

UTC = timezone.utc

ONA = {
    "Name": "#1001", "Email": " Ona@Example.com ", "Financial Status": "paid", "Paid at": "2024-01-15 10:23:45 -0500",
    "Fulfillment Status": "fulfilled", "Fulfilled at": "2024-01-16 09:00:00 -0500", "Accepts Marketing": "yes",
    "Currency": "EUR", "Subtotal": "53.91", "Shipping": "4.90", "Taxes": "9.36", "Total": "58.81",
    "Discount Code": "WELCOME10", "Discount Amount": "5.99", "Shipping Method": "Standard",
    "Created at": "2024-01-15 10:23:45 -0500", "Billing Name": "Ona Petraitė", "Billing Country": "LT",
    "Billing Phone": "+37060000001", "Refunded Amount": "0.00", "Id": "5000000000001", "Tags": "vip, wholesale",
    "lines": [
        {"Lineitem quantity": "1", "Lineitem name": "Coffee beans 1kg", "Lineitem price": "34.90",
         "Lineitem sku": "SKU-1", "Lineitem discount": "5.99", "Vendor": "Kavos Namai"},
        {"Lineitem quantity": "2", "Lineitem name": "Filter papers", "Lineitem price": "12.50",
         "Lineitem sku": "SKU-2", "Lineitem discount": "0.00", "Vendor": "Kavos Namai"},
    ],
}
JONAS = {
    "Name": "#1002", "Email": "jonas@example.com", "Financial Status": "refunded", "Currency": "EUR",
    "Subtotal": "15.00", "Total": "15.00", "Created at": "2024-01-31 20:00:00 +0200",
    "Cancelled at": "2024-02-01 08:00:00 +0200", "Refunded Amount": "20.00", "Accepts Marketing": "no",
    "lines": [{"Lineitem quantity": "1", "Lineitem name": "Mug", "Lineitem price": "15.00", "Lineitem sku": "SKU-3"}],
}
ONA_AGAIN = {
    "Name": "#1003", "Email": "ona@example.com", "Financial Status": "pending", "Currency": "USD",
    "Subtotal": "10.00", "Total": "10.00", "Created at": "2024-03-01 12:00:00 +0000",
    "lines": [{"Lineitem quantity": "1", "Lineitem name": "Sticker", "Lineitem price": "10.00"}],
}


def export(tmp_path, *orders, name="orders_export.csv"):
    return write_csv(tmp_path / name, SHOPIFY_COLUMNS, shopify_rows(*orders))


def test_imports_orders_lines_and_customers_once(config, engine, tmp_path):
    path = export(tmp_path, ONA, JONAS, ONA_AGAIN)
    r = invoke(import_group, config, "shopify-csv", path, "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "imported 3 orders (4 lines), skipped 0 already imported, rejected 0 rows"
    assert r.stderr == ""

    orders = {o["name"]: o for o in rows_of(engine, t.orders)}
    assert set(orders) == {"#1001", "#1002", "#1003"}
    o = orders["#1001"]
    assert o["source"] == "import" and o["import_key"] == f"shopify-csv:{SHOP}:#1001"
    assert o["shopify_id"] == 5000000000001
    assert (o["subtotal"], o["total"], o["total_discounts"], o["total_tax"], o["shipping"], o["refunded"]) == (
        Decimal("53.91"), Decimal("58.81"), Decimal("5.99"), Decimal("9.36"), Decimal("4.90"), Decimal("0"))
    assert o["currency"] == "EUR" and o["email"] == "ona@example.com"
    assert o["created_at"] == datetime(2024, 1, 15, 15, 23, 45, tzinfo=UTC)
    assert o["paid_at"] == datetime(2024, 1, 15, 15, 23, 45, tzinfo=UTC)
    assert o["fulfilled_at"] == datetime(2024, 1, 16, 14, 0, tzinfo=UTC)
    assert o["financial_status"] == "paid" and o["fulfillment_status"] == "fulfilled"
    assert o["tags"] == ["vip", "wholesale"] and o["discount_codes"] == ["WELCOME10"] and o["test"] is False

    j = orders["#1002"]
    assert j["cancelled_at"] == datetime(2024, 2, 1, 6, 0, tzinfo=UTC)
    assert j["refunded"] == Decimal("15.00")  # the export's 20.00 includes more than merchandise
    assert j["paid_at"] == j["created_at"] == datetime(2024, 1, 31, 18, 0, tzinfo=UTC)
    assert j["shopify_id"] is None

    a = orders["#1003"]
    assert a["paid_at"] is None and a["currency"] == "USD"
    assert a["customer_id"] == o["customer_id"] != j["customer_id"]

    customers = {c["email"]: c for c in rows_of(engine, t.customers)}
    assert set(customers) == {"ona@example.com", "jonas@example.com"}
    ona = customers["ona@example.com"]
    assert (ona["first_name"], ona["last_name"], ona["country"], ona["phone"], ona["marketing_consent"]) == (
        "Ona", "Petraitė", "LT", "+37060000001", "subscribed")
    assert customers["jonas@example.com"]["marketing_consent"] == "not_subscribed"

    lines = rows_of(engine, t.order_lines, t.order_lines.c.order_id == o["id"])
    assert [(ln["line_key"], ln["sku"], ln["title"], ln["quantity"], ln["price"], ln["total_discount"], ln["vendor"])
            for ln in lines] == [
        ("pos:0", "SKU-1", "Coffee beans 1kg", 1, Decimal("34.90"), Decimal("5.99"), "Kavos Namai"),
        ("pos:1", "SKU-2", "Filter papers", 2, Decimal("12.50"), Decimal("0"), "Kavos Namai")]

    before = dump(engine)
    r = invoke(import_group, config, "shopify-csv", path, "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "imported 0 orders (0 lines), skipped 3 already imported, rejected 0 rows"
    assert dump(engine) == before


def test_rejected_rows_are_named_by_line_and_reason_and_a_fixed_file_completes_the_import(config, engine, tmp_path):
    good = {"Name": "#2001", "Email": "a@example.com", "Currency": "EUR", "Subtotal": "5.00", "Total": "5.00",
            "Created at": "2024-05-01 10:00:00 +0000",
            "lines": [{"Lineitem quantity": "1", "Lineitem price": "5.00", "Lineitem name": "Tea"}]}
    two_lines = dict(good, Name="#2002", lines=[{"Lineitem quantity": "1", "Lineitem price": "2.00"},
                                                {"Lineitem quantity": "x", "Lineitem price": "3.00"}])
    bad_date = dict(good, Name="#2003", **{"Created at": "yesterday"})
    no_currency = dict(good, Name="#2004", Currency="")
    rows = shopify_rows(good, two_lines, bad_date, no_currency)
    nameless = list(rows[0])
    nameless[0] = ""
    path = write_csv(tmp_path / "orders.csv", SHOPIFY_COLUMNS, rows + [nameless])

    r = invoke(import_group, config, "shopify-csv", path, "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "imported 1 orders (1 lines), skipped 0 already imported, rejected 5 rows",
        "  line 4: Lineitem quantity: 'x' is not a whole number (order #2002, lines 3-4, not imported)",
        "  line 5: Created at: 'yesterday' is not a date and time (expected e.g. 2024-01-15 10:23:45 -0500)",
        "  line 6: Currency: missing",
        "  line 7: Name: missing (every row names its order)",
    ]
    assert "warning: 5 rows were rejected" in r.stderr
    assert [o["name"] for o in rows_of(engine, t.orders)] == ["#2001"]

    two_lines["lines"][1]["Lineitem quantity"] = "3"
    bad_date["Created at"] = "2024-05-02 10:00:00 +0000"
    no_currency["Currency"] = "EUR"
    write_csv(path, SHOPIFY_COLUMNS, shopify_rows(good, two_lines, bad_date, no_currency))
    r = invoke(import_group, config, "shopify-csv", path, "--no-progress", "--json")
    assert r.exit_code == 0, r.output
    assert '"imported": 3' in r.stdout and '"skipped": 1' in r.stdout and '"rejected_rows": 0' in r.stdout
    assert sorted(o["name"] for o in rows_of(engine, t.orders)) == ["#2001", "#2002", "#2003", "#2004"]
    o = rows_of(engine, t.orders, t.orders.c.name == "#2002")[0]
    assert [ln["quantity"] for ln in rows_of(engine, t.order_lines, t.order_lines.c.order_id == o["id"])] == [1, 3]


def test_strict_imports_nothing_when_a_row_is_bad(config, engine, tmp_path):
    bad = dict(ONA, lines=[dict(ONA["lines"][0], **{"Lineitem price": "abc"})])
    path = export(tmp_path, JONAS, bad)
    r = invoke(import_group, config, "shopify-csv", path, "--strict", "--no-progress")
    assert r.exit_code == 1
    assert "line 3: Lineitem price: 'abc' is not an amount" in r.stdout
    assert "--strict: 1 rows would be rejected, so nothing was imported" in r.stderr
    assert rows_of(engine, t.orders) == [] and rows_of(engine, t.customers) == []

    path = export(tmp_path, JONAS, ONA)
    r = invoke(import_group, config, "shopify-csv", path, "--strict", "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("imported 2 orders (3 lines)")


def test_a_file_that_is_not_an_orders_export_is_refused_whole(config, engine, tmp_path):
    path = write_csv(tmp_path / "products.csv", ["Handle", "Title", "Variant SKU"], [["mug", "Mug", "SKU-3"]])
    r = invoke(import_group, config, "shopify-csv", path, "--no-progress")
    assert r.exit_code == 2
    assert "is not a Shopify orders export: missing column(s) Name, Currency, Subtotal, Total" in r.output
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = invoke(import_group, config, "shopify-csv", empty, "--no-progress")
    assert r.exit_code == 2 and "is empty" in r.output
    assert rows_of(engine, t.orders) == []


def test_the_shop_in_the_keys_comes_from_the_option_or_the_config(db_url, engine, tmp_path):
    path = export(tmp_path, JONAS)
    cfg = base_config(db_url)
    del cfg["shopify"]
    config = write_config(tmp_path / "noshop.toml", cfg)
    r = invoke(import_group, config, "shopify-csv", path, "--no-progress")
    assert r.exit_code == 2 and "--shop" in r.output
    r = invoke(import_group, config, "shopify-csv", path, "--no-progress", "--shop", "other.myshopify.com")
    assert r.exit_code == 0, r.output
    assert rows_of(engine, t.orders)[0]["import_key"] == "shopify-csv:other.myshopify.com:#1002"


def test_imports_fire_no_feature_hooks(db_url, engine, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    calls = tmp_path / "calls.txt"
    (hooks / "spy.py").write_text(
        "from retention_plugin import hookimpl\n"
        "def _note(name):\n"
        f"    open({str(calls)!r}, 'a').write(name + '\\n')\n"
        + "".join(f"@hookimpl\ndef {h}(event, ctx):\n    _note({h!r})\n"
                  for h in ("order_created", "order_paid", "order_updated", "order_cancelled", "order_fulfilled",
                            "customer_updated", "refund_created")))
    config = write_config(tmp_path / "retention.toml", base_config(db_url, plugins={"dirs": [str(hooks)]},
                                                                   actions={"dry_run": False}))
    r = invoke(import_group, config, "shopify-csv", export(tmp_path, ONA, JONAS), "--no-progress")
    assert r.exit_code == 0, r.output
    assert not calls.exists()
    with engine.connect() as conn:
        for table in (t.ledger, t.messages, t.actions, t.inbox, t.rewards, t.reminders):
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0, table.name


def test_an_existing_customer_is_linked_by_email_and_only_gaps_are_filled(config, engine, tmp_path):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        cid = resolve_customer(conn, ev.CustomerInfo(shopify_id=77, email="ona@example.com", first_name="Onutė",
                                                     updated_at=now), now)
    r = invoke(import_group, config, "shopify-csv", export(tmp_path, ONA), "--no-progress")
    assert r.exit_code == 0, r.output
    (c,) = rows_of(engine, t.customers)
    assert c["id"] == cid and c["shopify_id"] == 77
    assert c["first_name"] == "Onutė"  # known already: kept
    assert c["phone"] == "+37060000001" and c["country"] == "LT"  # unknown: filled
    assert rows_of(engine, t.orders)[0]["customer_id"] == cid


def test_a_later_webhook_for_an_imported_order_updates_it_instead_of_adding_one(app, config, engine, tmp_path):
    r = invoke(import_group, config, "shopify-csv", export(tmp_path, ONA), "--no-progress")
    assert r.exit_code == 0, r.output
    payload = order_payload(5000000000001, email="ona@example.com", subtotal="53.91", currency="EUR",
                            created=datetime(2024, 1, 15, 15, 23, 45, tzinfo=UTC),
                            updated=datetime(2024, 2, 1, tzinfo=UTC),
                            lines=[{"id": 71, "sku": "SKU-1", "title": "Coffee beans 1kg", "quantity": 1,
                                    "price": "34.90"},
                                   {"id": 72, "sku": "SKU-2", "title": "Filter papers", "quantity": 2,
                                    "price": "12.50"}])
    deliver_shopify(app, "orders/updated", payload)
    run_worker(app)
    (o,) = rows_of(engine, t.orders)
    assert o["import_key"] == f"shopify-csv:{SHOP}:#1001" and o["shopify_id"] == 5000000000001
    lines = rows_of(engine, t.order_lines, t.order_lines.c.order_id == o["id"])
    assert sorted(ln["line_key"] for ln in lines) == ["71", "72"]  # the positional lines gave way


def test_parsing_in_a_second_process_gives_the_same_rows(sqlite_url, _sqlite_template, tmp_path):
    bad = dict(JONAS, Name="#1009", **{"Created at": "soon"})
    path = export(tmp_path, ONA, bad, JONAS, ONA_AGAIN)
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    other = tmp_path / "other.db"
    shutil.copy(_sqlite_template, other)
    results = []
    for url, parallel in ((sqlite_url, True), (f"sqlite:///{other}", False)):
        eng = make_engine(url)
        try:
            report = import_shopify_csv(eng, path, shop=SHOP, now=now, parallel=parallel, chunk_size=2)
            results.append((report.summary(), report.reject_messages(), dump(eng)))
        finally:
            eng.dispose()
    assert results[0] == results[1]
    assert results[0][0] == "imported 3 orders (4 lines), skipped 0 already imported, rejected 1 rows"
    assert results[0][1] == ["line 4: Created at: 'soon' is not a date and time "
                             "(expected e.g. 2024-01-15 10:23:45 -0500)"]


@pytest.mark.parametrize("cell, message", [
    ("Subtotal=-1.00", "Subtotal: '-1.00' is negative"),
    ("Currency=EURO", "Currency: 'EURO' is not an ISO 4217 currency code"),
    ("Id=abc", "Id: 'abc' is not a Shopify order id"),
    ("Paid at=2024-13-01 10:00:00 +0000", "Paid at: '2024-13-01 10:00:00 +0000' is not a date and time"),
    ("Created at=2024-01-01 10:00:00", "Created at: '2024-01-01 10:00:00' has no UTC offset"),
    ("Total=NaN", "Total: 'NaN' is not an amount"),
])
def test_order_level_values_are_checked(config, engine, tmp_path, cell, message):
    column, value = cell.split("=", 1)
    path = export(tmp_path, dict(JONAS, **{column: value}))
    r = invoke(import_group, config, "shopify-csv", path, "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1] == f"  line 2: {message}"
    assert rows_of(engine, t.orders) == []


def test_rows_of_one_order_must_be_together(config, engine, tmp_path):
    rows = shopify_rows(JONAS, ONA_AGAIN)
    again = list(rows[0])
    path = write_csv(tmp_path / "o.csv", SHOPIFY_COLUMNS, rows + [again])
    r = invoke(import_group, config, "shopify-csv", path, "--no-progress")
    assert "line 4: order #1002 appears again after other orders (the rows of one order must be together)" \
        in r.stdout
    assert sorted(o["name"] for o in rows_of(engine, t.orders)) == ["#1002", "#1003"]


def test_progress_bar_on_stderr_and_a_file_that_is_not_utf8(config, engine, tmp_path):
    path = export(tmp_path, ONA, JONAS)
    r = invoke(import_group, config, "shopify-csv", path)
    assert r.exit_code == 0, r.output
    assert "importing orders_export.csv" in r.stderr and r.stdout.startswith("imported 2 orders")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(path.read_bytes().replace("Petraitė".encode(), "Petrait\xe9".encode("latin-1")))
    r = invoke(import_group, config, "shopify-csv", latin, "--no-progress")
    assert r.exit_code == 2 and "is not UTF-8 text (invalid continuation byte at or after line 1)" in r.output

"""`retention import transactions`: any store's purchase log."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from retention_plugin.importers.commands import import_group
from retention_plugin.storage import tables as t

from .conftest import dump, invoke, rows_of, write_csv

UTC = timezone.utc
HEADER = ["customer", "date", "amount"]
ARGS = ("--customer-col", "customer", "--date-col", "date", "--amount-col", "amount")


def test_purchases_import_once_and_identical_purchases_stay_two(config, engine, tmp_path):
    path = write_csv(tmp_path / "log.csv", HEADER, [
        ["Ona@Example.com", "2024-01-05", "12.50"],
        ["ona@example.com", "2024-01-05", "12.5"],  # the same purchase again that day: a second purchase
        ["C-0042", "20240106", "7"],
        ["C-0042", "2024-01-07T18:30:00+02:00", "19.99"],
    ])
    r = invoke(import_group, config, "transactions", path, *ARGS, "--currency", "eur", "--timezone",
               "Europe/Vilnius", "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "imported 4 orders (0 lines), skipped 0 already imported, rejected 0 rows"
    orders = rows_of(engine, t.orders)
    assert [(o["currency"], o["subtotal"], o["total"], o["financial_status"], o["source"]) for o in orders] == [
        ("EUR", Decimal("12.50"), Decimal("12.50"), "paid", "import"),
        ("EUR", Decimal("12.5"), Decimal("12.5"), "paid", "import"),
        ("EUR", Decimal("7"), Decimal("7"), "paid", "import"),
        ("EUR", Decimal("19.99"), Decimal("19.99"), "paid", "import")]
    # a date is its midnight in --timezone
    assert orders[0]["created_at"] == datetime(2024, 1, 4, 22, 0, tzinfo=UTC) == orders[0]["paid_at"]
    assert orders[3]["created_at"] == datetime(2024, 1, 7, 16, 30, tzinfo=UTC)
    k1, k2 = orders[0]["import_key"], orders[1]["import_key"]
    assert k1.startswith("txn:") and k1.endswith(":1") and k2 == k1[:-1] + "2"
    customers = {c["id"]: c for c in rows_of(engine, t.customers)}
    assert len(customers) == 2
    assert customers[orders[0]["customer_id"]]["email"] == "ona@example.com"
    assert orders[1]["customer_id"] == orders[0]["customer_id"]
    assert customers[orders[2]["customer_id"]]["external_id"] == "C-0042"
    assert orders[3]["customer_id"] == orders[2]["customer_id"]

    before = dump(engine)
    r = invoke(import_group, config, "transactions", path, *ARGS, "--currency", "EUR", "--timezone",
               "Europe/Vilnius", "--no-progress")
    assert r.stdout.splitlines()[0] == "imported 0 orders (0 lines), skipped 4 already imported, rejected 0 rows"
    assert dump(engine) == before

    # a later export with the old rows (in another order and format) and one new purchase adds only that one
    later = write_csv(tmp_path / "later.csv", ["amount", "date", "customer", "note"], [
        ["7.00", "2024-01-06", "C-0042", "x"],
        ["12.50", "2024-01-05", "ona@example.com", ""],
        ["12.50", "2024-01-05", "ona@example.com", ""],
        ["19.99", "2024-01-07 18:30:00 +0200", "C-0042", ""],
        ["5.00", "2024-02-01", "ona@example.com", "new"],
    ])
    r = invoke(import_group, config, "transactions", later, *ARGS, "--currency", "EUR", "--timezone",
               "Europe/Vilnius", "--no-progress")
    assert r.stdout.splitlines()[0] == "imported 1 orders (0 lines), skipped 4 already imported, rejected 0 rows"


def test_order_column_groups_items_into_one_order_with_lines(config, engine, tmp_path):
    path = write_csv(tmp_path / "pos.csv", ["receipt", "client", "when", "sum", "cur", "sku", "qty", "item"], [
        ["R1", "ona@example.com", "2024-03-01", "10.00", "EUR", "SKU-1", "2", "Beans"],
        ["R1", "ona@example.com", "2024-03-01", "3.50", "EUR", "SKU-2", "1", "Filters"],
        ["R2", "jonas@example.com", "2024-03-02", "4.00", "USD", "SKU-1", "1", "Beans"],
    ])
    args = ("--customer-col", "client", "--date-col", "when", "--amount-col", "sum", "--currency-col", "cur",
            "--order-col", "receipt", "--sku-col", "sku", "--quantity-col", "qty", "--title-col", "item")
    r = invoke(import_group, config, "transactions", path, *args, "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "imported 2 orders (3 lines), skipped 0 already imported, rejected 0 rows"
    r1, r2 = rows_of(engine, t.orders)
    assert (r1["name"], r1["import_key"], r1["subtotal"], r1["currency"]) == ("R1", "txn:order:R1",
                                                                             Decimal("13.50"), "EUR")
    assert (r2["name"], r2["currency"]) == ("R2", "USD")
    lines = rows_of(engine, t.order_lines, t.order_lines.c.order_id == r1["id"])
    assert [(ln["sku"], ln["title"], ln["quantity"], ln["price"]) for ln in lines] == [
        ("SKU-1", "Beans", 2, Decimal("5.00")), ("SKU-2", "Filters", 1, Decimal("3.50"))]
    r = invoke(import_group, config, "transactions", path, *args, "--no-progress")
    assert r.stdout.splitlines()[0] == "imported 0 orders (0 lines), skipped 2 already imported, rejected 0 rows"


def test_bad_rows_are_rejected_with_line_and_reason(config, engine, tmp_path):
    path = write_csv(tmp_path / "log.csv", HEADER, [
        ["ona@example.com", "2024-01-05", "12.50"],
        ["", "2024-01-05", "1.00"],
        ["ona@example.com", "5 Jan 2024", "1.00"],
        ["ona@example.com", "2024-01-05", "-3.00"],
        ["ona@example.com", "2024-01-05", "1,00"],
        ["ona@example.com", "2024-01-05"],
    ])
    r = invoke(import_group, config, "transactions", path, *ARGS, "--currency", "EUR", "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "imported 1 orders (0 lines), skipped 0 already imported, rejected 5 rows",
        "  line 3: customer: missing",
        "  line 4: date: '5 Jan 2024' is not a date and time (expected e.g. 2024-01-15 10:23:45 -0500)",
        "  line 5: amount: '-3.00' is negative",
        "  line 6: amount: '1,00' is not an amount",
        "  line 7: has 2 fields, the header has 3",
    ]
    r = invoke(import_group, config, "transactions", path, *ARGS, "--currency", "EUR", "--no-progress",
               "--strict")
    assert r.exit_code == 1


def test_date_format_and_delimiter(config, engine, tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("who\tday\ttotal\nC-1\t05/01/2024\t3.00\n", encoding="utf-8")
    r = invoke(import_group, config, "transactions", path, "--customer-col", "who", "--date-col", "day",
               "--amount-col", "total", "--currency", "EUR", "--delimiter", "tab", "--date-format", "%d/%m/%Y",
               "--no-progress")
    assert r.exit_code == 0, r.output
    (o,) = rows_of(engine, t.orders)
    assert o["created_at"] == datetime(2024, 1, 5, tzinfo=UTC)


def test_usage_errors_name_the_option(config, engine, tmp_path):
    path = write_csv(tmp_path / "log.csv", HEADER, [["a@example.com", "2024-01-01", "1"]])
    r = invoke(import_group, config, "transactions", path, *ARGS, "--no-progress")
    assert r.exit_code == 2 and "--currency" in r.output
    r = invoke(import_group, config, "transactions", path, *ARGS, "--currency", "EURO", "--no-progress")
    assert r.exit_code == 2 and "--currency" in r.output
    r = invoke(import_group, config, "transactions", path, *ARGS, "--currency", "EUR", "--timezone", "Mars/Olympus",
               "--no-progress")
    assert r.exit_code == 2 and "--timezone" in r.output
    r = invoke(import_group, config, "transactions", path, "--customer-col", "client", "--date-col", "date",
               "--amount-col", "amount", "--currency", "EUR", "--no-progress")
    assert r.exit_code == 2 and "no column 'client' (--customer-col)" in r.output
    assert rows_of(engine, t.orders) == []


def test_the_second_process_parser_gives_the_same_result(sqlite_url, tmp_path):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from retention_plugin.importers.transactions_csv import TransactionColumns, import_transactions
    from retention_plugin.storage.db import make_engine

    path = write_csv(tmp_path / "log.csv", HEADER, [["a@example.com", "2024-01-05", "1.00"],
                                                    ["a@example.com", "2024-01-05", "1.00"],
                                                    ["b@example.com", "someday", "2.00"]])
    eng = make_engine(sqlite_url)
    try:
        report = import_transactions(eng, path, columns=TransactionColumns(customer="customer", date="date",
                                                                          amount="amount"),
                                     now=datetime(2026, 1, 1, tzinfo=UTC), currency="EUR", tz=ZoneInfo("UTC"),
                                     parallel=True)
        assert report.summary() == "imported 2 orders (0 lines), skipped 0 already imported, rejected 1 rows"
        assert len(rows_of(eng, t.orders)) == 2
    finally:
        eng.dispose()

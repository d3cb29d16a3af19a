"""Helpers for the importer tests: a config file on the test database, the CLI, CSV writers, table dumps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config
from server_util import write_config
from retention_plugin.cli import LazyApp
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

#: The Orders export's columns, in Shopify's order (79 of them).
SHOPIFY_COLUMNS = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at", "Accepts Marketing",
    "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount", "Shipping Method",
    "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem compare at price",
    "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable", "Lineitem fulfillment status",
    "Billing Name", "Billing Street", "Billing Address1", "Billing Address2", "Billing Company", "Billing City",
    "Billing Zip", "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes", "Cancelled at",
    "Payment Method", "Payment Reference", "Refunded Amount", "Vendor", "Outstanding Balance", "Employee",
    "Location", "Device ID", "Id", "Tags", "Risk Level", "Source", "Lineitem discount", "Tax 1 Name",
    "Tax 1 Value", "Tax 2 Name", "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value",
    "Tax 5 Name", "Tax 5 Value", "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At", "Payment References",
]


def shopify_rows(*orders: dict) -> list[list[str]]:
    """Rows of an export: each order dict has order-level fields and ``lines`` (dicts of Lineitem fields).

    Order-level fields go on the first row only, as Shopify writes them.
    """
    rows = []
    for o in orders:
        for i, line in enumerate(o["lines"]):
            cells = dict(line)
            cells["Name"] = o["Name"]
            cells["Email"] = o.get("Email", "")
            if i == 0:
                cells.update({k: v for k, v in o.items() if k != "lines"})
            rows.append([str(cells.get(c, "")) for c in SHOPIFY_COLUMNS])
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def config(db_url, tmp_path):
    return write_config(tmp_path / "retention.toml", base_config(db_url))


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def invoke(group, config, *args, **kw):
    """Run one of our click groups as the real CLI would (``ctx.obj`` is a LazyApp on the config file)."""
    lazy = LazyApp(str(config))
    try:
        return CliRunner().invoke(group, [str(a) for a in args], obj=lazy, **kw)
    finally:
        if lazy._app is not None:
            lazy._app.dispose()


def dump(engine, *tables) -> dict:
    """Every row of the tables (ids included), to compare states."""
    out = {}
    with engine.connect() as conn:
        for table in tables or (t.customers, t.orders, t.order_lines):
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
    return out


def rows_of(engine, table, *where, order_by=None):
    with engine.connect() as conn:
        q = select(table).where(*where).order_by(order_by if order_by is not None else table.c.id)
        return [dict(r) for r in conn.execute(q).mappings()]

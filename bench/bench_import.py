"""Importing a large Shopify orders export into a fresh SQLite database.

Generates a Shopify-style Orders CSV (the admin export's 79 columns, one row
per line item, order-level fields on the first row of each order only) with
--lines line items (default 1,000,000, about 300,000 orders of 1-6 lines by
100,000 customers), then times `retention import shopify-csv` on it as an
operator runs it: a subprocess with a config file, against a database made
by `retention db upgrade`. A second run of the same file shows the cost of
finding everything already imported. Prints one table.

    python bench/bench_import.py [--lines 1000000] [--parallel | --no-parallel] [--keep]

CPU s is the user+system time of the import process (and its parser process,
if any); on a shared machine it is the steadier figure, and the load average
says how shared the machine was.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

COLUMNS = [
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
IX = {c: i for i, c in enumerate(COLUMNS)}
PRODUCTS = [(f"SKU-{i:04d}", f"Product {i} {'coffee beans' if i % 3 else 'espresso machine part'}",
             f"{random.Random(i).randint(300, 9000) / 100:.2f}") for i in range(400)]
FIRST = ["Ona", "Jonas", "Marta", "Lukas", "Greta", "Paulius", "Ieva", "Tomas", "Sophie", "Jon"]
LAST = ["Petraitė", "Kazlauskas", "Smith", "García", "Müller", "Novak", "Rossi", "Dubois"]


def generate(path: Path, lines: int, seed: int = 7) -> tuple[int, int]:
    """Write the CSV; returns (orders, lines)."""
    rnd = random.Random(seed)
    customers = max(1, lines // 10)
    start = datetime(2021, 1, 1, tzinfo=timezone(timedelta(hours=-5)))
    written = orders = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        while written < lines:
            orders += 1
            n = min(rnd.randint(1, 6), lines - written)
            cust = rnd.randrange(customers)
            email = f"customer{cust}@example.com"
            created = start + timedelta(minutes=orders * 5 + rnd.randint(0, 4))
            items = [(PRODUCTS[rnd.randrange(len(PRODUCTS))], rnd.randint(1, 3)) for _ in range(n)]
            subtotal = sum(float(p[2]) * q for p, q in items)
            discount = round(subtotal * 0.1, 2) if orders % 7 == 0 else 0.0
            subtotal = round(subtotal - discount, 2)
            shipping = 4.90
            total = round(subtotal + shipping, 2)
            when = created.strftime("%Y-%m-%d %H:%M:%S %z")
            cancelled = orders % 53 == 0
            for k, (product, qty) in enumerate(items):
                row = [""] * len(COLUMNS)
                row[IX["Name"]] = f"#{1000 + orders}"
                row[IX["Email"]] = email
                row[IX["Created at"]] = when
                row[IX["Lineitem quantity"]] = str(qty)
                row[IX["Lineitem name"]] = product[1]
                row[IX["Lineitem price"]] = product[2]
                row[IX["Lineitem compare at price"]] = ""
                row[IX["Lineitem sku"]] = product[0]
                row[IX["Lineitem requires shipping"]] = "true"
                row[IX["Lineitem taxable"]] = "true"
                row[IX["Lineitem fulfillment status"]] = "fulfilled"
                row[IX["Vendor"]] = "Kavos Namai"
                row[IX["Lineitem discount"]] = "0.00"
                if k == 0:
                    name = f"{FIRST[cust % len(FIRST)]} {LAST[cust % len(LAST)]}"
                    row[IX["Financial Status"]] = "refunded" if cancelled else "paid"
                    row[IX["Paid at"]] = when
                    row[IX["Fulfillment Status"]] = "fulfilled"
                    row[IX["Fulfilled at"]] = (created + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S %z")
                    row[IX["Accepts Marketing"]] = "yes" if cust % 3 else "no"
                    row[IX["Currency"]] = "EUR"
                    row[IX["Subtotal"]] = f"{subtotal:.2f}"
                    row[IX["Shipping"]] = f"{shipping:.2f}"
                    row[IX["Taxes"]] = f"{total * 0.21 / 1.21:.2f}"
                    row[IX["Total"]] = f"{total:.2f}"
                    row[IX["Discount Code"]] = "WELCOME10" if discount else ""
                    row[IX["Discount Amount"]] = f"{discount:.2f}"
                    row[IX["Shipping Method"]] = "Standard"
                    for prefix in ("Billing", "Shipping"):
                        row[IX[f"{prefix} Name"]] = name
                        row[IX[f"{prefix} Street"]] = f"Gedimino pr. {cust % 90 + 1}"
                        row[IX[f"{prefix} Address1"]] = f"Gedimino pr. {cust % 90 + 1}"
                        row[IX[f"{prefix} City"]] = "Vilnius"
                        row[IX[f"{prefix} Zip"]] = f"'{cust % 9000 + 1000:05d}"
                        row[IX[f"{prefix} Country"]] = "LT"
                        row[IX[f"{prefix} Phone"]] = f"+3706{cust:07d}"
                        row[IX[f"{prefix} Province Name"]] = ""
                    row[IX["Cancelled at"]] = (created + timedelta(hours=2)).strftime(
                        "%Y-%m-%d %H:%M:%S %z") if cancelled else ""
                    row[IX["Payment Method"]] = "Shopify Payments"
                    row[IX["Payment Reference"]] = f"c{orders}.1"
                    row[IX["Refunded Amount"]] = f"{total:.2f}" if cancelled else "0.00"
                    row[IX["Outstanding Balance"]] = "0.00"
                    row[IX["Id"]] = str(5_000_000_000_000 + orders)
                    row[IX["Tags"]] = "wholesale, vip" if cust % 11 == 0 else ""
                    row[IX["Risk Level"]] = "Low"
                    row[IX["Source"]] = "web"
                    row[IX["Tax 1 Name"]] = "PVM 21%"
                    row[IX["Tax 1 Value"]] = row[IX["Taxes"]]
                    row[IX["Payment ID"]] = f"p{orders:010d}"
                    row[IX["Payment References"]] = f"p{orders:010d}"
                w.writerow(row)
                written += 1
    return orders, written


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_import(config: Path, csv_path: Path, extra: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, first output line) of one `retention import shopify-csv`."""
    cpu0 = _child_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "retention_plugin", "--config", str(config), "import",
                           "shopify-csv", str(csv_path), "--shop", "bench-shop.myshopify.com", "--no-progress",
                           *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds, _child_cpu() - cpu0, proc.stdout.strip().splitlines()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    ap.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=None,
                    help="pass --parallel/--no-parallel to the import (default: the command decides)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        csv_path = tmp / "orders_export.csv"
        t0 = time.perf_counter()
        n_orders, n_lines = generate(csv_path, args.lines)
        gen_s = time.perf_counter() - t0
        db = tmp / "retention.db"
        config = tmp / "retention.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{db}"\n\n[actions]\ndry_run = true\n', encoding="utf-8")
        up = subprocess.run([sys.executable, "-m", "retention_plugin", "--config", str(config), "db", "upgrade"],
                            capture_output=True, text=True)
        if up.returncode != 0:
            raise SystemExit(up.stderr)
        extra = [] if args.parallel is None else ["--parallel" if args.parallel else "--no-parallel"]
        load_before = os.getloadavg()[0]
        first_s, first_cpu, first_out = run_import(config, csv_path, extra)
        rss_first = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        again_s, again_cpu, again_out = run_import(config, csv_path, extra)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        load_after = os.getloadavg()[0]
        with sqlite3.connect(db) as conn:
            stored_orders = conn.execute("select count(*) from orders").fetchone()[0]
            stored_lines = conn.execute("select count(*) from order_lines").fetchone()[0]
            customers = conn.execute("select count(*) from customers").fetchone()[0]
        size_mb = csv_path.stat().st_size / 1e6
        print(f"file: {n_lines:,} lines, {n_orders:,} orders, {size_mb:.0f} MB (generated in {gen_s:.0f} s); "
              f"stored {stored_orders:,} orders, {stored_lines:,} lines, {customers:,} customers")
        print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.2f} before, {load_after:.2f} after; "
              f"parser in a second process: {'auto' if args.parallel is None else args.parallel}")
        print(f"{'run':<18}{'rows':>11}{'seconds':>9}{'CPU s':>8}{'rows/s':>9}{'peak RSS MB':>13}  output")
        for label, secs, cpu, mem, out in (("first import", first_s, first_cpu, rss_first, first_out),
                                           ("same file again", again_s, again_cpu, rss, again_out)):
            print(f"{label:<18}{n_lines:>11,}{secs:>9.1f}{cpu:>8.1f}{n_lines / secs:>9,.0f}{mem:>13.0f}  {out}")
        if args.keep:
            print(f"kept {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

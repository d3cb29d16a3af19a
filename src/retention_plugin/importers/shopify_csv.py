"""``retention import shopify-csv FILE``: the Orders CSV that Shopify admin exports.

The export has one row per line item. Order-level columns (Email,
Financial Status, Paid at, Currency, Subtotal, Total, Discount Amount,
Created at, Cancelled at, Refunded Amount, Id, Tags, Billing ...) are filled
on the first row of each order only; the rows of an order are together and
share its ``Name``. Times look like ``2024-01-15 10:23:45 -0500``.

Each order becomes one ``orders`` row with ``source = "import"`` and
``import_key = "shopify-csv:<shop>:<Name>"``; with an ``Id`` column it also
gets its ``shopify_id``, so a later webhook for the same order updates this
row instead of adding a second one. An order with any unusable value is
rejected whole (never half written); the others are imported.
"""

from __future__ import annotations

import csv
import decimal
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

from .. import events as ev
from ..platforms.schema_fields import split_tags
from ..records.customers import normalise_email
from .reading import open_text
from .report import ImportFileError, ImportReport, not_utf8
from .running import import_orders
from .values import ZERO, RowError, parse_currency, parse_money, parse_time, split_name, text_or_none
from .writer import ImportOrder

#: Columns without which a file is not an orders export.
REQUIRED_COLUMNS = ("Name", "Currency", "Subtotal", "Total", "Created at", "Lineitem quantity", "Lineitem price")

#: Every column the importer reads (the export has many more; they are ignored).
READ_COLUMNS = REQUIRED_COLUMNS + (
    "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at", "Accepts Marketing",
    "Shipping", "Taxes", "Discount Code", "Discount Amount", "Lineitem name", "Lineitem sku",
    "Lineitem discount", "Vendor", "Billing Name", "Billing Country", "Billing Province", "Billing Phone",
    "Phone", "Cancelled at", "Refunded Amount", "Id", "Tags",
)

_CONSENT = {"yes": "subscribed", "true": "subscribed", "no": "not_subscribed", "false": "not_subscribed"}


class _Columns:
    def __init__(self, header: list[str], path):
        names = [h.strip() for h in header]
        self.index = {}
        for i, name in enumerate(names):
            self.index.setdefault(name, i)
        missing = [c for c in REQUIRED_COLUMNS if c not in self.index]
        if missing:
            raise ImportFileError(
                f"{path} is not a Shopify orders export: missing column(s) {', '.join(missing)} "
                f"(found: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")
        self.width = len(names)

    def get(self, name: str) -> int | None:
        return self.index.get(name)


@dataclass
class _Pending:
    name: str
    first_line: int
    last_line: int
    order: ImportOrder | None = None
    rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


class _Reader:
    """Turns rows into orders. Rows get one extra empty cell appended, and a column the
    file lacks points at it, so every lookup is a plain index."""

    def __init__(self, cols: _Columns, shop: str):
        width = self.width = cols.width

        def g(name):
            i = cols.get(name)
            return width if i is None else i

        self.shop = shop
        self.i_name = g("Name")
        self.i_email, self.i_fin, self.i_paid = g("Email"), g("Financial Status"), g("Paid at")
        self.i_ful, self.i_fulat, self.i_acc = g("Fulfillment Status"), g("Fulfilled at"), g("Accepts Marketing")
        self.i_cur, self.i_sub, self.i_ship = g("Currency"), g("Subtotal"), g("Shipping")
        self.i_tax, self.i_total, self.i_code = g("Taxes"), g("Total"), g("Discount Code")
        self.i_disc, self.i_created = g("Discount Amount"), g("Created at")
        self.i_qty, self.i_lname, self.i_price = g("Lineitem quantity"), g("Lineitem name"), g("Lineitem price")
        self.i_sku, self.i_ldisc, self.i_vendor = g("Lineitem sku"), g("Lineitem discount"), g("Vendor")
        self.i_bname, self.i_bcountry = g("Billing Name"), g("Billing Country")
        self.i_bprov, self.i_bphone, self.i_phone = g("Billing Province"), g("Billing Phone"), g("Phone")
        self.i_cancel, self.i_refund, self.i_id, self.i_tags = (g("Cancelled at"), g("Refunded Amount"), g("Id"),
                                                                 g("Tags"))
        #: email -> what the first order naming it said (exports list the newest orders first)
        self.customers: dict[str, ev.CustomerInfo] = {}

    def order(self, row: list[str], name: str, line: int) -> ImportOrder:
        """Order-level fields from the first row of an order."""
        if len(name) > 64:
            raise RowError("Name", "longer than 64 characters")
        currency = parse_currency(row[self.i_cur], "Currency")
        created = parse_time(row[self.i_created], "Created at")
        subtotal = parse_money(row[self.i_sub], "Subtotal")
        total = parse_money(row[self.i_total], "Total")
        email = normalise_email(row[self.i_email])
        if email is not None and len(email) > 320:
            raise RowError("Email", "longer than 320 characters")
        paid = row[self.i_paid].strip()
        fulfilled = row[self.i_fulat].strip()
        cancelled = row[self.i_cancel].strip()
        shopify_id = None
        raw_id = row[self.i_id].strip()
        if raw_id:
            if not raw_id.isdigit():
                raise RowError("Id", f"{raw_id!r} is not a Shopify order id")
            shopify_id = int(raw_id)
        refunded = _money(row[self.i_refund], "Refunded Amount")
        code = row[self.i_code]
        customer = None
        if email:
            customer = self.customers.get(email)
            if customer is None:
                customer = self.customers[email] = self._customer(row, email)
        fin = row[self.i_fin].strip().lower() or None
        ful = row[self.i_ful].strip().lower() or None
        if fin is not None and len(fin) > 32:
            raise RowError("Financial Status", "longer than 32 characters")
        if ful is not None and len(ful) > 32:
            raise RowError("Fulfillment Status", "longer than 32 characters")
        tags = row[self.i_tags]
        return ImportOrder(
            import_key=f"shopify-csv:{self.shop}:{name}",
            created_at=created,
            currency=currency,
            subtotal=subtotal,
            total=total,
            first_line=line,
            last_line=line,
            rows=0,
            shopify_id=shopify_id,
            name=name,
            email=email,
            customer=customer,
            total_discounts=_money(row[self.i_disc], "Discount Amount"),
            total_tax=_money(row[self.i_tax], "Taxes"),
            shipping=_money(row[self.i_ship], "Shipping"),
            # orders.refunded is merchandise; the export's figure may include shipping and tax.
            refunded=min(refunded, subtotal),
            financial_status=fin,
            fulfillment_status=ful,
            paid_at=parse_time(paid, "Paid at") if paid else None,
            cancelled_at=parse_time(cancelled, "Cancelled at") if cancelled else None,
            fulfilled_at=parse_time(fulfilled, "Fulfilled at") if fulfilled else None,
            tags=split_tags(tags) if tags else [],
            discount_codes=[x.strip() for x in code.split(",") if x.strip()] if code else [],
        )

    def _customer(self, row: list[str], email: str) -> ev.CustomerInfo:
        first, last = split_name(text_or_none(row[self.i_bname]))
        country = text_or_none(row[self.i_bcountry])
        province = text_or_none(row[self.i_bprov])
        return ev.CustomerInfo(
            email=email, first_name=first, last_name=last,
            phone=text_or_none(row[self.i_phone]) or text_or_none(row[self.i_bphone]),
            country=country.upper() if country and len(country) == 2 else None,
            province=province if province and len(province) <= 16 else None,
            marketing_consent=_CONSENT.get(row[self.i_acc].strip().lower()))


def _money(text: str, column: str) -> Decimal:
    if not text or text == "0.00":
        return ZERO
    return parse_money(text, column, required=False)


def iter_orders(path, *, shop: str, report: ImportReport,
                on_read: Callable[[int], None] | None = None) -> Iterator[ImportOrder]:
    """Valid orders of the file, in file order; rejected rows go to ``report``.

    :raises ImportFileError: the file is empty or lacks a required column.
    """
    with open_text(path, on_read) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFileError(f"{path} is empty") from None
        except UnicodeDecodeError as e:
            raise not_utf8(path, 1, e) from None
        except csv.Error as e:
            raise ImportFileError(f"{path}: not a CSV file ({e})") from None
        cols = _Columns(header, path)
        rd = _Reader(cols, shop)
        width = rd.width
        i_name, i_qty, i_price, i_ldisc = rd.i_name, rd.i_qty, rd.i_price, rd.i_ldisc
        i_sku, i_lname, i_vendor = rd.i_sku, rd.i_lname, rd.i_vendor
        seen: set[str] = set()
        cur: _Pending | None = None
        cur_raw = None  # the current order's Name cell as written
        lines: list = []
        append = lines.append
        end = reader.line_num
        while True:
            start = end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                end = reader.line_num
                report.reject(start, f"not valid CSV ({e})")
                continue
            except UnicodeDecodeError as e:
                raise not_utf8(path, start, e) from None
            end = reader.line_num
            n = len(row)
            if n != width:
                if n == 0 or (n == 1 and not row[0].strip()):
                    continue  # blank line
                name = row[i_name].strip() if i_name < n else ""
                if not name:
                    report.reject(start, "Name: missing (every row names its order)")
                    continue
                if cur is None or name != cur.name:
                    if cur is not None:
                        yield from _finish(cur, report)
                    cur = _Pending(name=name, first_line=start, last_line=end)
                    cur_raw = None
                    seen.add(name)
                cur.errors.append((start, f"has {n} fields, the header has {width}"))
                cur.rows += 1
                cur.last_line = end
                continue
            row.append("")
            raw = row[i_name]
            if raw != cur_raw:
                name = raw.strip()
                if not name:
                    report.reject(start, "Name: missing (every row names its order)")
                    continue
                if cur is None or name != cur.name:
                    if cur is not None:
                        yield from _finish(cur, report)
                    cur = _Pending(name=name, first_line=start, last_line=end)
                    if name in seen:
                        cur.errors.append((start, f"order {name} appears again after other orders "
                                                  "(the rows of one order must be together)"))
                    seen.add(name)
                    try:
                        order = cur.order = rd.order(row, name, start)
                    except RowError as e:
                        cur.errors.append((start, str(e)))
                        lines = []
                    else:
                        lines = order.lines
                    append = lines.append
                cur_raw = raw
            cur.rows += 1
            cur.last_line = end
            # --- the line item: the hot path ---
            q = row[i_qty]
            p = row[i_price]
            try:
                if not q.isdigit():
                    raise RowError("Lineitem quantity", f"{q!r} is not a whole number" if q.strip() else "missing")
                try:
                    price = Decimal(p)
                except decimal.InvalidOperation:
                    price = None
                if price is None or not price.is_finite() or price < 0:
                    price = parse_money(p, "Lineitem price")
                d = row[i_ldisc]
                disc = ZERO if (not d or d == "0.00") else parse_money(d, "Lineitem discount", required=False)
                sku = row[i_sku].strip() or None
                if sku is not None and len(sku) > 255:
                    raise RowError("Lineitem sku", "longer than 255 characters")
            except RowError as e:
                cur.errors.append((start, str(e)))
                continue
            title = row[i_lname].strip() or None
            vendor = row[i_vendor].strip() or None
            if title is not None and len(title) > 512:
                title = title[:512]
            if vendor is not None and len(vendor) > 255:
                vendor = vendor[:255]
            append((sku, title, int(q), price, disc, vendor, None, None, None))
        if cur is not None:
            yield from _finish(cur, report)


def _finish(cur: _Pending, report: ImportReport) -> Iterator[ImportOrder]:
    if cur.errors or cur.order is None:
        suffix = ""
        if cur.rows > 1:
            suffix = f" (order {cur.name}, lines {cur.first_line}-{cur.last_line}, not imported)"
        for line, reason in cur.errors:
            report.reject(line, reason + suffix, rows=0)
        report.rejected_rows += cur.rows
        return
    order = cur.order
    order.rows = cur.rows
    order.last_line = cur.last_line
    yield order


def import_shopify_csv(engine, path, *, shop: str, now, strict: bool = False, parallel: bool | None = None,
                       chunk_size: int = 5000, on_read: Callable[[int], None] | None = None,
                       on_restart: Callable[[], None] | None = None, app=None) -> ImportReport:
    """Import a Shopify orders export; returns the report.

    :param strict: read the whole file first and write nothing if any row is rejected.
    :param parallel: parse in a second process (default: for files of 16 MB and more).
    :param on_read: called with the number of bytes read, for a progress bar.
    :param app: the app, whose plugins move their rows when the import merges two customers.
    :raises ImportFileError: when the file is not an orders export at all.
    """
    return import_orders(iter_orders, {"path": Path(path), "shop": shop}, engine, now, strict=strict,
                         parallel=parallel, chunk_size=chunk_size, on_read=on_read, on_restart=on_restart, app=app)

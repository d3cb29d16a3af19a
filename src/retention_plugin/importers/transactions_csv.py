"""``retention import transactions FILE.csv``: any store's purchase log.

One row per purchase (or per purchased item with ``--order-col``): who
bought (``--customer-col``: an email address, or any other customer id,
stored as the customer's ``external_id``), when (``--date-col``) and for how
much (``--amount-col``, in ``--currency`` or the currency in
``--currency-col``). Each purchase becomes a paid order with
``source = "import"``.

The import key does not depend on the file: it is derived from customer,
time, amount and currency plus the row's occurrence among identical rows of
the file (``txn:<digest>:<n>``), or from the order id when ``--order-col``
names one (``txn:order:<id>``). So the same file twice imports nothing new,
a later export that repeats older rows adds only the new ones, and two
identical purchases on the same day in one file stay two purchases.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

from .. import events as ev
from ..records.customers import normalise_email
from .reading import open_text
from .report import ImportFileError, ImportReport, not_utf8
from .running import import_orders
from .values import ZERO, RowError, parse_currency, parse_date_or_time, parse_money, parse_quantity
from .writer import ImportOrder

CUSTOMER_KINDS = ("auto", "email", "external-id")


class TransactionColumns:
    """Which column holds what; ``None`` for the optional ones a file does not have."""

    def __init__(self, *, customer: str, date: str, amount: str, currency: str | None = None,
                 order: str | None = None, sku: str | None = None, quantity: str | None = None,
                 title: str | None = None):
        self.customer, self.date, self.amount = customer, date, amount
        self.currency, self.order, self.sku, self.quantity, self.title = currency, order, sku, quantity, title

    def named(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}


def _index(header: list[str], columns: TransactionColumns, path) -> dict[str, int]:
    names = [h.strip() for h in header]
    where = {}
    missing = []
    for role, name in columns.named().items():
        if name in names:
            where[role] = names.index(name)
        else:
            missing.append(f"{name!r} (--{role}-col)")
    if missing:
        raise ImportFileError(f"{path} has no column {', '.join(missing)}; its columns are: {', '.join(names)}")
    return where


def _customer(value: str, kind: str) -> tuple[str | None, str | None]:
    """(email, external id) from the customer cell."""
    value = value.strip()
    if not value:
        raise RowError("customer", "missing")
    if kind == "email" or (kind == "auto" and "@" in value):
        mail = normalise_email(value)
        if "@" not in mail:
            raise RowError("customer", f"{value!r} is not an email address")
        if len(mail) > 320:
            raise RowError("customer", "longer than 320 characters")
        return mail, None
    if len(value) > 255:
        raise RowError("customer", "longer than 255 characters")
    return None, value


def iter_transactions(path, *, columns: TransactionColumns, currency: str | None, tz: tzinfo,
                      date_format: str | None = None, delimiter: str = ",", customer_kind: str = "auto",
                      namespace: str = "txn", report: ImportReport,
                      on_read: Callable[[int], None] | None = None) -> Iterator[ImportOrder]:
    """The file's purchases as orders; rejected rows go to ``report``."""
    with open_text(path, on_read) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFileError(f"{path} is empty") from None
        except UnicodeDecodeError as e:
            raise not_utf8(path, 1, e) from None
        where = _index(header, columns, path)
        col = {role: getattr(columns, role) for role in where}  # role -> column name, for messages
        width = len(header)
        occurrences: dict[str, int] = {}
        seen_orders: set[str] = set()
        cur: _Pending | None = None
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
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                report.reject(start, f"has {len(row)} fields, the header has {width}")
                continue
            order_id = row[where["order"]].strip() if "order" in where else None
            if order_id and cur is not None and order_id == cur.order_id:
                # another item of the same order
                cur.rows += 1
                cur.last_line = end
                try:
                    amount = parse_money(row[where["amount"]], col["amount"])
                    line = _line(row, where, col, amount)
                except RowError as e:
                    cur.errors.append((start, str(e)))
                    continue
                if cur.order is not None:
                    cur.order.subtotal += amount
                    cur.order.total += amount
                    if line is not None:
                        cur.order.lines.append(line)
                continue
            if cur is not None:
                yield from cur.finish(report)
            cur = _Pending(order_id=order_id, first_line=start, last_line=end)
            if order_id:
                if order_id in seen_orders:
                    cur.errors.append((start, f"order {order_id} appears again after other rows "
                                              "(the rows of one order must be together)"))
                seen_orders.add(order_id)
            try:
                cur.order = _purchase(row, where, col, start, end, currency=currency, tz=tz,
                                      date_format=date_format, customer_kind=customer_kind, namespace=namespace,
                                      order_id=order_id, occurrences=occurrences)
            except RowError as e:
                cur.errors.append((start, str(e)))
        if cur is not None:
            yield from cur.finish(report)


class _Pending:
    __slots__ = ("order_id", "first_line", "last_line", "rows", "errors", "order")

    def __init__(self, order_id, first_line, last_line):
        self.order_id, self.first_line, self.last_line = order_id, first_line, last_line
        self.rows = 1
        self.errors: list[tuple[int, str]] = []
        self.order: ImportOrder | None = None

    def finish(self, report: ImportReport) -> Iterator[ImportOrder]:
        if self.errors or self.order is None:
            suffix = ""
            if self.rows > 1:
                suffix = f" (order {self.order_id}, lines {self.first_line}-{self.last_line}, not imported)"
            for line, reason in self.errors:
                report.reject(line, reason + suffix, rows=0)
            report.rejected_rows += self.rows
            return
        self.order.rows = self.rows
        self.order.last_line = self.last_line
        yield self.order


def _purchase(row, where, col, start, end, *, currency, tz, date_format, customer_kind, namespace, order_id,
              occurrences) -> ImportOrder:
    email, external_id = _customer(row[where["customer"]], customer_kind)
    created = parse_date_or_time(row[where["date"]], col["date"], tz=tz, fmt=date_format)
    amount = parse_money(row[where["amount"]], col["amount"])
    cur = parse_currency(row[where["currency"]], col["currency"]) if "currency" in where else currency
    if "order" in where:
        if not order_id:
            raise RowError(col["order"], "missing")
        if len(order_id) > 64:
            raise RowError(col["order"], "longer than 64 characters")
        key = f"{namespace}:order:{order_id}"
    else:
        who = f"email:{email}" if email else f"external_id:{external_id}"
        digest = hashlib.sha1(
            f"{who}|{created.isoformat()}|{format(amount.normalize(), 'f')}|{cur}".encode()).hexdigest()[:20]
        n = occurrences[digest] = occurrences.get(digest, 0) + 1
        key = f"{namespace}:{digest}:{n}"
    line = _line(row, where, col, amount)
    customer = ev.CustomerInfo(email=email, external_id=external_id)
    return ImportOrder(
        import_key=key, created_at=created, currency=cur, subtotal=amount, total=amount, first_line=start,
        last_line=end, rows=1, name=order_id, email=email, customer=customer, financial_status="paid",
        paid_at=created, lines=[line] if line is not None else [])


def _line(row, where, col, amount: Decimal):
    if "sku" not in where and "title" not in where:
        return None
    quantity = parse_quantity(row[where["quantity"]], col["quantity"]) if "quantity" in where else 1
    sku = row[where["sku"]].strip() or None if "sku" in where else None
    title = row[where["title"]].strip() or None if "title" in where else None
    if sku is not None and len(sku) > 255:
        raise RowError(col["sku"], "longer than 255 characters")
    price = (amount / quantity).quantize(Decimal("0.0001")) if quantity else amount
    return (sku, title[:512] if title else None, quantity, price, ZERO, None, None, None, None)


def import_transactions(engine, path, *, columns: TransactionColumns, now, currency: str | None, tz: tzinfo,
                        date_format: str | None = None, delimiter: str = ",", customer_kind: str = "auto",
                        namespace: str = "txn", strict: bool = False, parallel: bool | None = None,
                        on_read: Callable[[int], None] | None = None,
                        on_restart: Callable[[], None] | None = None, app=None) -> ImportReport:
    """Import a purchase log; returns the report (see the module docstring).

    :param app: the app, whose plugins move their rows when the import merges two customers.
    """
    if currency is None and columns.currency is None:
        raise ValueError("give a currency or a currency column")
    kwargs = {"path": Path(path), "columns": columns, "currency": currency, "tz": tz, "date_format": date_format,
              "delimiter": delimiter, "customer_kind": customer_kind, "namespace": namespace}
    return import_orders(iter_transactions, kwargs, engine, now, strict=strict, parallel=parallel,
                         on_read=on_read, on_restart=on_restart, app=app)

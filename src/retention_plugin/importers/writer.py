"""The batch order writer every file importer shares.

Imported orders are plain rows in ``orders`` / ``order_lines`` with
``source = "import"`` and a stable ``import_key``; the same input imported
twice finds its keys stored and writes nothing. Importers never call feature
hooks (no points, no thank-you mails for last year's orders): features that
want history read the tables.

:class:`OrderWriter` is the fast path for large files. It writes the same
rows :func:`retention_plugin.records.record_order` would write for a new
order (customer linked by normalised email, Decimal money, aware UTC,
``line_key = "pos:<n>"``), but a chunk of orders at a time: one transaction
per chunk, ``executemany`` inserts, customers resolved through an in-memory
cache. Orders whose key (or Shopify id) is already stored are skipped, never
updated: webhooks keep stored orders current.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import func, select

from .. import events as ev
from ..context import HookContext
from ..records.customers import normalise_email, resolve_customer
from ..shop_scope import current
from ..storage import tables as t
from ..storage.db import is_sqlite
from .report import ImportReport

UTC = timezone.utc
ZERO = Decimal("0")

#: Financial states in which :func:`records.record_order` considers an order paid.
PAID_STATUSES = frozenset({"paid", "partially_refunded", "refunded", "partially_paid"})

#: An order line is a plain tuple (the hot path makes a million of them):
#: ``(sku, title, quantity, price, total_discount, vendor, product_id, variant_id, product_type)``.
ImportLine = tuple


def make_line(sku: str | None, title: str | None, quantity: int, price: Decimal, total_discount: Decimal = ZERO,
              vendor: str | None = None, product_id: int | None = None, variant_id: int | None = None,
              product_type: str | None = None) -> ImportLine:
    return (sku, title, quantity, price, total_discount, vendor, product_id, variant_id, product_type)


@dataclass(slots=True)
class ImportOrder:
    """One order as a file describes it, ready for :class:`OrderWriter`."""

    import_key: str
    created_at: datetime
    currency: str
    subtotal: Decimal
    total: Decimal
    first_line: int = 0
    last_line: int = 0
    rows: int = 1
    shopify_id: int | None = None
    name: str | None = None
    email: str | None = None  # normalised
    customer: ev.CustomerInfo | None = None
    total_discounts: Decimal = ZERO
    total_tax: Decimal = ZERO
    shipping: Decimal = ZERO
    refunded: Decimal = ZERO
    financial_status: str | None = None
    fulfillment_status: str | None = None
    processed_at: datetime | None = None
    paid_at: datetime | None = None
    cancelled_at: datetime | None = None
    fulfilled_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    discount_codes: list[str] = field(default_factory=list)
    lines: list[ImportLine] = field(default_factory=list)

    def customer_key(self) -> tuple[str, str] | None:
        """How the writer finds the customer: by email, else by external id."""
        info = self.customer
        mail = self.email or (normalise_email(info.email) if info else None)
        if mail:
            return ("email", mail)
        if info is not None and info.external_id:
            return ("external_id", info.external_id)
        return None


ORDER_COLUMNS = (
    "id", "shopify_id", "name", "customer_id", "email", "currency", "presentment_currency", "subtotal", "total",
    "total_discounts", "total_tax", "shipping", "presentment_subtotal", "refunded", "financial_status",
    "fulfillment_status", "created_at", "processed_at", "paid_at", "cancelled_at", "fulfilled_at",
    "source_updated_at", "locale", "tags", "discount_codes", "test", "source", "import_key", "shop",
)
LINE_COLUMNS = (
    "order_id", "line_key", "sku", "product_id", "variant_id", "title", "product_type", "vendor", "tags",
    "quantity", "price", "total_discount", "refunded_quantity",
)
CUSTOMER_COLUMNS = (
    "id", "shopify_id", "zendesk_user_id", "external_id", "email", "tags", "source_updated_at", "created_at",
    "updated_at", "first_name", "last_name", "phone", "locale", "country", "province", "marketing_consent", "shop",
)
_CUSTOMER_FILL = ("first_name", "last_name", "phone", "locale", "country", "province", "marketing_consent")
_IN_CHUNK = 500  # bound parameters per IN (...) list
SQLITE_CACHE_KIB = 128 * 1024  # page cache of the importing connection
SQLITE_CHECKPOINT_PAGES = 16384  # WAL pages (64 MB at 4 KiB) between checkpoints of the importing connection


class _Inserter:
    """``executemany`` of plain tuples.

    On SQLite the values go through the columns' own SQLAlchemy bind
    processors and straight to the driver (SQLAlchemy's per-row parameter
    handling costs more than the insert itself there); elsewhere through
    SQLAlchemy Core, which handles every dialect's types.
    """

    def __init__(self, conn, table, columns: tuple[str, ...]):
        self.table = table
        self.columns = columns
        self.sqlite = is_sqlite(conn)
        dialect = self.dialect = conn.dialect
        if self.sqlite:
            prep = dialect.identifier_preparer
            self.sql = (f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) "
                        f"VALUES ({', '.join('?' for _ in columns)})")
            self.procs = []
            for i, name in enumerate(columns):
                proc = self.processor(name)
                if proc is not None:
                    self.procs.append((i, proc))

    def processor(self, column: str):
        """What turns a column's Python value into what the SQLite driver stores (None: nothing to do)."""
        col_type = self.table.c[column].type
        proc = col_type.bind_processor(self.dialect)
        if proc is None:
            return None
        if isinstance(col_type, t.UTCDateTime):
            return _fast_utc(proc)
        if _accepts_list(proc):
            return _memo_empty(proc)
        return proc

    def insert_raw(self, conn, rows: list[tuple]) -> None:
        """SQLite only: rows already converted with :meth:`processor`."""
        if rows:
            conn.exec_driver_sql(self.sql, rows)

    def insert(self, conn, rows: list) -> None:
        if not rows:
            return
        if self.sqlite:
            procs = self.procs
            out = []
            for row in rows:
                row = list(row)
                for i, proc in procs:
                    v = row[i]
                    if v is not None:
                        row[i] = proc(v)
                out.append(tuple(row))
            conn.exec_driver_sql(self.sql, out)
        else:
            cols = self.columns
            conn.execute(self.table.insert(), [dict(zip(cols, row)) for row in rows])


def _fast_utc(proc):
    """Aware datetimes as SQLite stores them, in one step instead of three.

    Checked against SQLAlchemy's own processor (plus the driver's adapter for
    a datetime it hands on) at start-up; any difference and that one is used.
    """

    last = [None, None]  # the same datetime object often comes twice in a row (created/paid, customers' now)

    def fast(value):
        if value is last[0]:
            return last[1]
        text = (value if value.tzinfo is UTC else value.astimezone(UTC)).replace(tzinfo=None).isoformat(" ")
        last[0], last[1] = value, text
        return text

    for sample in (datetime(2024, 1, 15, 15, 23, 45, tzinfo=UTC),
                   datetime(2024, 7, 1, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=-5)))):
        expected = proc(sample)
        if isinstance(expected, datetime):
            expected = expected.isoformat(" ")  # what sqlite3 does with a datetime parameter
        if expected != fast(sample):
            return proc
    return fast


def _memo_empty(proc):
    """JSON processors: an empty list is by far the most common value; convert it once."""
    empty = proc([])

    def process(value, _proc=proc, _empty=empty):
        if type(value) is list and not value:
            return _empty
        return _proc(value)

    return process


def _accepts_list(proc) -> bool:
    try:
        return isinstance(proc([]), str)
    except Exception:  # not a JSON column
        return False


def import_context(app, conn, now: datetime) -> HookContext | None:
    """The HookContext an import's transaction gives the hooks it calls (a customer merge's), if it has the app.

    Without the app a merge cannot tell the plugins, and :func:`records.resolve_customer` refuses it.
    """
    return HookContext(app, conn, now=now, source="import") if app is not None else None


class CustomerCache:
    """Normalised email (or external id) -> customer id, for one import run.

    A key seen for the first time is looked up in the database: an existing
    customer goes through :func:`records.resolve_customer` (which fills what
    it did not know and merges duplicates, exactly as for a webhook); a new
    one is inserted in bulk with what the file says about it (first
    non-empty value wins, and files list the newest orders first).
    """

    def __init__(self):
        self.ids: dict[tuple[str, str], int] = {}

    def resolve(self, conn, wanted: dict[tuple[str, str], ev.CustomerInfo], now: datetime, ctx=None) -> None:
        missing = [k for k in wanted if k not in self.ids]
        if not missing:
            return
        c = t.customers
        found: set[tuple[str, str]] = set()
        for kind in ("email", "external_id"):
            values = [v for k, v in missing if k == kind]
            found.update((kind, v) for v in stored_values(conn, c.c[kind], values, unless=c.c.merged_into))
        for key in found:
            self.ids[key] = resolve_customer(conn, wanted[key], now, ctx=ctx)
        new = [k for k in missing if k not in found]
        if not new:
            return
        inserter = _Inserter(conn, c, CUSTOMER_COLUMNS)
        shop = current(conn)  # raw inserts: the column's default does not apply
        rows = []
        if inserter.sqlite:
            # BEGIN IMMEDIATE holds SQLite's only write lock: the ids after max(id) are ours.
            next_id = (conn.execute(select(func.max(c.c.id))).scalar() or 0) + 1
        for key in new:
            info = wanted[key]
            values = (None if not inserter.sqlite else next_id, info.shopify_id, info.zendesk_user_id,
                      info.external_id, key[1] if key[0] == "email" else normalise_email(info.email),
                      list(info.tags or []), info.updated_at, now, now,
                      *(getattr(info, f) for f in _CUSTOMER_FILL), shop)
            if inserter.sqlite:
                self.ids[key] = next_id
                next_id += 1
            rows.append(values)
        if inserter.sqlite:
            inserter.insert(conn, rows)
        else:
            cols = CUSTOMER_COLUMNS[1:]
            result = conn.execute(c.insert().returning(c.c.id, sort_by_parameter_order=True),
                                  [dict(zip(cols, r[1:])) for r in rows])
            for key, (cid,) in zip(new, result.all()):
                self.ids[key] = cid


def merge_info(into: ev.CustomerInfo, other: ev.CustomerInfo | None) -> None:
    """Fill what ``into`` does not know from ``other`` (the first non-empty value wins)."""
    if other is None:
        return
    for f in _CUSTOMER_FILL + ("external_id", "email"):
        if getattr(into, f) is None and getattr(other, f) is not None:
            setattr(into, f, getattr(other, f))


class OrderWriter:
    """Writes :class:`ImportOrder` s in chunks, one transaction per chunk.

    Call :meth:`close` (or use it as a context manager) to write the rest.
    """

    def __init__(self, engine, now: datetime, report: ImportReport, *, chunk_size: int = 5000, app=None):
        self.engine = engine
        self.app = app
        self.now = now
        self.report = report
        self.chunk_size = chunk_size
        self.customers = CustomerCache()
        self._chunk: list[ImportOrder] = []

    def add(self, order: ImportOrder) -> None:
        self._chunk.append(order)
        if len(self._chunk) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        chunk, self._chunk = self._chunk, []
        if chunk:
            self._write(chunk)

    def close(self) -> None:
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        return False

    # --- the writer's side -----------------------------------------------------------------

    def _write(self, chunk: list[ImportOrder]) -> None:
        with self.engine.begin() as conn:
            if is_sqlite(conn):
                # The default 2 MB page cache thrashes on the indexes of a large table
                # (a setting of this connection only).
                conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
                # Fewer, larger WAL checkpoints: hot index pages are copied back once, not per chunk.
                conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
            todo = self._not_stored(conn, chunk)
            wanted: dict[tuple[str, str], ev.CustomerInfo] = {}
            for order in todo:
                key = order.customer_key()
                if key is None:
                    continue
                info = wanted.get(key)
                if info is None:
                    info = order.customer or ev.CustomerInfo()
                    if key[0] == "email" and info.email is None:
                        info.email = key[1]
                    wanted[key] = info
                else:
                    merge_info(info, order.customer)
            self.customers.resolve(conn, wanted, self.now, import_context(self.app, conn, self.now))
            self._insert(conn, todo)
        self.report.skipped += len(chunk) - len(todo)
        self.report.imported += len(todo)
        self.report.lines += sum(len(o.lines) for o in todo)

    def _not_stored(self, conn, chunk: list[ImportOrder]) -> list[ImportOrder]:
        o = t.orders
        stored_keys = set(stored_values(conn, o.c.import_key, [x.import_key for x in chunk]))
        stored_ids = set(stored_values(conn, o.c.shopify_id, [x.shopify_id for x in chunk
                                                               if x.shopify_id is not None]))
        return [x for x in chunk if x.import_key not in stored_keys
                and (x.shopify_id is None or x.shopify_id not in stored_ids)]


    def _insert(self, conn, todo: list[ImportOrder]) -> None:
        if not todo:
            return
        o = t.orders
        orders_in = _Inserter(conn, o, ORDER_COLUMNS)
        lines_in = _Inserter(conn, t.order_lines, LINE_COLUMNS)
        cache = self.customers.ids
        if orders_in.sqlite:
            ids = self._insert_orders_sqlite(conn, orders_in, todo)
        else:
            shop = current(conn)
            rows = []
            for order in todo:
                key = order.customer_key()
                rows.append((order.shopify_id, order.name, cache.get(key) if key else None, order.email,
                             order.currency, None, order.subtotal, order.total, order.total_discounts,
                             order.total_tax, order.shipping, None, order.refunded, order.financial_status,
                             order.fulfillment_status, order.created_at, order.processed_at, _paid_at(order),
                             order.cancelled_at, order.fulfilled_at, None, None, list(order.tags),
                             list(order.discount_codes), False, "import", order.import_key, shop))
            cols = ORDER_COLUMNS[1:]
            result = conn.execute(o.insert().returning(o.c.id, sort_by_parameter_order=True),
                                  [dict(zip(cols, row)) for row in rows])
            ids = [r[0] for r in result.all()]
        line_rows = []
        append = line_rows.append
        if lines_in.sqlite:
            # The hot path: a million lines. Values already as the driver takes them.
            money, empty = lines_in.processor("price") or float, lines_in.processor("tags")([])
            for oid, order in zip(ids, todo):
                for pos, (sku, title, qty, price, disc, vendor, pid, vid, ptype) in enumerate(order.lines):
                    append((oid, f"pos:{pos}", sku, pid, vid, title, ptype, vendor, empty, qty, money(price),
                            money(disc), 0))
            lines_in.insert_raw(conn, line_rows)
        else:
            for oid, order in zip(ids, todo):
                for pos, (sku, title, qty, price, disc, vendor, pid, vid, ptype) in enumerate(order.lines):
                    append((oid, f"pos:{pos}", sku, pid, vid, title, ptype, vendor, [], qty, price, disc, 0))
            lines_in.insert(conn, line_rows)

    def _insert_orders_sqlite(self, conn, inserter: _Inserter, todo: list[ImportOrder]) -> list[int]:
        """Orders as the SQLite driver takes them; returns their ids."""
        o = t.orders
        cache = self.customers.ids
        money = inserter.processor("subtotal") or (lambda v: v)
        when = inserter.processor("created_at") or (lambda v: v)
        as_json = inserter.processor("tags") or (lambda v: v)
        false = (inserter.processor("test") or (lambda v: v))(False)
        # BEGIN IMMEDIATE holds SQLite's only write lock: the ids after max(id) are ours.
        next_id = (conn.execute(select(func.max(o.c.id))).scalar() or 0) + 1
        shop = current(conn)  # raw inserts: the column's default does not apply
        rows = []
        append = rows.append
        for i, order in enumerate(todo):
            key = order.customer_key()
            paid_at = _paid_at(order)
            append((next_id + i, order.shopify_id, order.name, cache.get(key) if key else None, order.email,
                    order.currency, None, money(order.subtotal), money(order.total),
                    money(order.total_discounts), money(order.total_tax), money(order.shipping), None,
                    money(order.refunded), order.financial_status, order.fulfillment_status,
                    when(order.created_at),
                    None if order.processed_at is None else when(order.processed_at),
                    None if paid_at is None else when(paid_at),
                    None if order.cancelled_at is None else when(order.cancelled_at),
                    None if order.fulfilled_at is None else when(order.fulfilled_at),
                    None, None, as_json(order.tags), as_json(order.discount_codes), false, "import",
                    order.import_key, shop))
        inserter.insert_raw(conn, rows)
        return [next_id + i for i in range(len(todo))]


def _paid_at(order: ImportOrder) -> datetime | None:
    """As :func:`records.record_order`: paid states without a payment time count from processing/creation."""
    if order.paid_at is None and order.financial_status in PAID_STATUSES:
        return order.processed_at or order.created_at
    return order.paid_at


def stored_values(conn, column, values: list, *, unless=None) -> list:
    """Which of ``values`` the column holds (an indexed lookup, a few hundred at a time).

    :param unless: a column of the same table that must be NULL in the rows counted.
    """
    found = []
    if not values:
        return found
    # Only the shop's own rows: the same platform id in another shop is another customer or order.
    shop = current(conn) if "shop" in column.table.c else None
    if is_sqlite(conn):
        # Plain SQL: SQLAlchemy's expanding IN costs more than the lookup itself here.
        q = conn.dialect.identifier_preparer.quote
        head = (f"SELECT DISTINCT {q(column.name)} FROM {q(column.table.name)} "
                f"WHERE {f'{q(unless.name)} IS NULL AND ' if unless is not None else ''}"
                f"{'shop = ? AND ' if shop is not None else ''}{q(column.name)} IN ")
        first = (shop,) if shop is not None else ()
        for i in range(0, len(values), _IN_CHUNK):
            part = tuple(values[i:i + _IN_CHUNK])
            found.extend(r[0] for r in conn.exec_driver_sql(head + f"({','.join('?' * len(part))})", first + part))
        return found
    for i in range(0, len(values), _IN_CHUNK):
        q = select(column).where(column.in_(values[i:i + _IN_CHUNK])).distinct()
        if shop is not None:
            q = q.where(column.table.c.shop == shop)
        if unless is not None:
            q = q.where(unless.is_(None))
        found.extend(r[0] for r in conn.execute(q))
    return found



"""Which shop the code running now acts for.

One install can serve several Shopify shops, so every row that belongs to a
shop carries its domain in a ``shop`` column. Rather than thread the shop
through every function that writes a row, the worker (and any command acting
on one shop) sets it here, around the work, with :func:`scope`; the ``shop``
columns take it as their default (:func:`column_default`), and queries that
look a shop's rows up filter on :func:`current`.

Outside a scope the shop is the engine's default: ``Retention.engine`` carries
the configured ``[shopify] shop`` as the execution option ``retention_shop``,
so a one-shop install needs no scope anywhere and behaves as before.

This module imports nothing of the package: ``storage/tables.py`` uses it.
"""

from __future__ import annotations

import contextlib
import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

#: The execution option (engine or connection) holding the shop of unscoped work.
OPTION = "retention_shop"

_current: ContextVar[str | None] = ContextVar("retention_shop", default=None)

#: The configured shop of the last Retention built in this process: the default of an engine that is
#: not ``Retention.engine`` (a script's or a test's own), so what it writes and reads agrees with the app.
_process_default: str | None = None


def set_process_default(shop: str | None) -> None:
    global _process_default
    _process_default = shop

_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


def normalise(domain: str | None) -> str | None:
    """``Example.myshopify.com `` -> ``example.myshopify.com``; None for anything that is not such a domain."""
    if not isinstance(domain, str):
        return None
    d = domain.strip().lower()
    if d.startswith("https://"):
        d = d[len("https://"):]
    d = d.rstrip("/")
    return d if len(d) <= 255 and _DOMAIN.fullmatch(d) else None


@contextmanager
def scope(shop: str | None) -> Iterator[str | None]:
    """Run the block for ``shop`` (None: back to the engine's default)."""
    token = _current.set(shop)
    try:
        yield shop
    finally:
        _current.reset(token)


def of_row(row) -> contextlib.AbstractContextManager:
    """The scope of a row's shop (a customer a periodic task works on), unless a scope is already set."""
    shop = row.get("shop") if row is not None and _current.get() is None else None
    return scope(shop) if shop else contextlib.nullcontext()


def scoped() -> str | None:
    """The shop set with :func:`scope`, or None outside one."""
    return _current.get()


def only(table):
    """A WHERE clause keeping ``table``'s rows of the shop in scope (a periodic task's pass for one shop);
    ``true()`` outside a scope, where a one-shop install's task works on every row as it always did."""
    from sqlalchemy import true

    shop = _current.get()
    return true() if shop is None else table.c.shop == shop


def only_customers(column):
    """:func:`only` for a table without a ``shop`` column: rows whose ``column`` (a customer id) is a
    customer of the shop in scope."""
    from sqlalchemy import column as col
    from sqlalchemy import select, table, true

    shop = _current.get()
    if shop is None:
        return true()
    customers = table("customers", col("id"), col("shop"))
    return column.in_(select(customers.c.id).where(customers.c.shop == shop))


def current(conn=None) -> str:
    """The shop the running work is for: the scope's, else ``conn``'s default, else the process's (or ``""``)."""
    shop = _current.get()
    if shop is not None:
        return shop
    if conn is not None:
        opt = conn.get_execution_options().get(OPTION)
        if opt is not None:
            return opt
    return _process_default or ""


#: The execution option that says the install may serve several shops (then unscoped rows look at their parent).
MANY = "retention_many_shops"

#: Columns that tie a row to a parent row which carries the shop, most telling first.
_PARENTS = (("customer_id", "customers"), ("order_id", "orders"), ("recall_id", "recalls"),
            ("message_id", "messages"), ("ticket_id", "tickets"), ("action_id", "actions"))


def column_default(context) -> str:
    """The ``shop`` column's insert default (SQLAlchemy passes the execution context).

    The shop in scope; outside one, on an install that may serve several shops, the shop of the
    row's parent (a periodic task's message goes to the shop of its customer); else the engine's
    default shop. An engine that is not ``Retention.engine`` carries none: its unscoped rows, and its
    unscoped reads (:func:`current`), are the process's default shop (``""`` before any Retention).
    """
    shop = _current.get()
    if shop is not None:
        return shop
    options = context.execution_options if context is not None else {}
    if options.get(MANY):
        params = context.get_current_parameters(isolate_multiinsert_groups=False) or {}
        for column, table in _PARENTS:
            parent = params.get(column)
            if isinstance(parent, int):
                found = context.connection.exec_driver_sql(
                    f"SELECT shop FROM {table} WHERE id = {int(parent)}").scalar()
                if found is not None:
                    return found
    opt = options.get(OPTION)
    return (_process_default or "") if opt is None else opt

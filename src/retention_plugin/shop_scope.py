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

import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

#: The execution option (engine or connection) holding the shop of unscoped work.
OPTION = "retention_shop"

_current: ContextVar[str | None] = ContextVar("retention_shop", default=None)

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


def scoped() -> str | None:
    """The shop set with :func:`scope`, or None outside one."""
    return _current.get()


def current(conn=None) -> str:
    """The shop the running work is for: the scope's, else ``conn``'s default (``""`` when neither is known)."""
    shop = _current.get()
    if shop is not None:
        return shop
    if conn is not None:
        opt = conn.get_execution_options().get(OPTION)
        if opt is not None:
            return opt
    return ""


def column_default(context) -> str:
    """The ``shop`` column's insert default (SQLAlchemy passes the execution context): as :func:`current`.

    An engine that is not ``Retention.engine`` carries no default shop: its unscoped rows get ``""``,
    and its unscoped reads (:func:`current`) look for ``""`` too, so such a caller stays consistent.
    """
    shop = _current.get()
    if shop is not None:
        return shop
    opt = context.execution_options.get(OPTION) if context is not None else None
    return "" if opt is None else opt

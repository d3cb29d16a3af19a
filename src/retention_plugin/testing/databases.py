"""Databases for tests: a migrated SQLite file copied per test, one PostgreSQL database per session.

The schema is migrated once (Alembic, as ``retention db upgrade`` does); each test then gets a clean
copy (SQLite) or the same database emptied (PostgreSQL), which is much faster than migrating per test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

#: The PostgreSQL server test databases are created on (its database is only used to run CREATE DATABASE).
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class DatabaseUnavailable(Exception):
    """The PostgreSQL server cannot be reached; the message names it without its password."""


def pg_admin_url() -> str:
    return os.environ.get("RETENTION_TEST_PG", DEFAULT_PG_ADMIN_URL)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def sqlite_template(directory: Path) -> Path:
    """Create ``template.db`` in ``directory`` with the schema migrated to the head revision."""
    from ..storage.db import make_engine, upgrade

    path = Path(directory) / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return path


def sqlite_copy(template: Path, directory: Path) -> str:
    """A fresh copy of the template as ``retention.db`` in ``directory``; returns its URL."""
    path = Path(directory) / "retention.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def create_pg_database(admin_url: str) -> str:
    """Create a uniquely named database on the server of ``admin_url``, migrate it, return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from ..storage.db import make_engine, upgrade

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"retention_test_{uuid.uuid4().hex[:10]}"
    try:
        try:
            conn = admin.connect()
        except Exception as e:  # any failure to connect: the caller skips or fails, saying why
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise DatabaseUnavailable(f"PostgreSQL at {_shown(admin_url)} is unreachable "
                                      f"({type(e).__name__}: {first_line})") from e
        with conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url


def drop_pg_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def empty_pg_database(url: str) -> None:
    """Empty every table but Alembic's, plugins' own tables included, and restart the id sequences."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            quoted = [f'"{n}"' for n in inspect(conn).get_table_names() if n != "alembic_version"]
            if quoted:
                conn.execute(text(f"TRUNCATE {', '.join(quoted)} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()

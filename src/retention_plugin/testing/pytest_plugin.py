"""pytest fixtures to test a retention-plugin plugin the way the built-in features are tested.

Installed with retention-plugin and loaded by pytest through the ``pytest11`` entry point: a plugin's
own test suite needs no conftest.py to use them. See docs/developing.md.

- ``retention_make_app``: ``make(extra_plugins=(), *, entry_points=False, **sections)`` builds a
  :class:`~retention_plugin.app.Retention` on a clean, migrated database; ``retention_app`` is one with
  no extra plugins.
- ``retention_db_url``: that database. SQLite by default; ``--retention-db=sqlite,postgresql`` (or the
  ini option ``retention_databases``) runs every test that uses it on each. PostgreSQL comes from
  ``--retention-pg-url`` / ``$RETENTION_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
  when it is unreachable those runs skip, saying why, or fail under ``CI=true``.
- ``retention_clock``: the app's clock; ``retention_clock.advance(days=30)`` moves time.
- ``retention_channel``: a :class:`~retention_plugin.testing.RecordingChannel` named ``"test"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from . import databases as dbs
from .apps import AppFactory
from .channel import RecordingChannel
from .clock import Clock

if TYPE_CHECKING:
    from ..app import Retention

BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("retention-plugin")
    group.addoption("--retention-db", default=None, metavar="NAMES",
                    help="databases the retention_db_url fixture runs each test on, comma-separated: "
                         "sqlite (the default), postgresql, or sqlite,postgresql")
    group.addoption("--retention-pg-url", default=None, metavar="URL",
                    help="PostgreSQL server to create test databases on "
                         f"(default: $RETENTION_TEST_PG, else {dbs.DEFAULT_PG_ADMIN_URL})")
    parser.addini("retention_databases", "as --retention-db: databases for retention_db_url", type="args",
                  default=["sqlite"])


def databases(config: pytest.Config) -> list[str]:
    """The databases chosen on the command line, else in the ini file."""
    raw = config.getoption("retention_db", default=None)
    tokens = [raw] if raw else list(config.getini("retention_databases"))
    names = [n.strip() for token in tokens for n in str(token).split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise pytest.UsageError(f"--retention-db / retention_databases: expected {' or '.join(BACKENDS)}, "
                                f"got {','.join(names) or 'nothing'}")
    return list(dict.fromkeys(names))


def pytest_configure(config: pytest.Config) -> None:
    databases(config)  # a misspelt database is a usage error before anything runs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "retention_db_url" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        if "retention_db_url" in str(mark.args[0] if mark.args else mark.kwargs.get("argnames", "")):
            return  # the test chose its databases itself
    names = databases(metafunc.config)
    metafunc.parametrize("retention_db_url", names, indirect=True, ids=names)


def unavailable(reason: str) -> NoReturn:
    """Skip, saying why; under ``CI=true`` fail instead, so a CI run never passes without PostgreSQL."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI=true the PostgreSQL tests must run")
    pytest.skip(f"{reason}: these tests run on SQLite only here")


@pytest.fixture(scope="session")
def retention_pg_admin_url(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("retention_pg_url", default=None) or dbs.pg_admin_url()


@pytest.fixture(scope="session")
def retention_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the head revision, copied for each test."""
    return dbs.sqlite_template(tmp_path_factory.mktemp("retention-template"))


@pytest.fixture(scope="session")
def retention_pg_url(retention_pg_admin_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test session, migrated; dropped at the end."""
    try:
        url = dbs.create_pg_database(retention_pg_admin_url)
    except dbs.DatabaseUnavailable as e:
        unavailable(str(e))
    yield url
    dbs.drop_pg_database(retention_pg_admin_url, url)


def fresh_database_url(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """A clean database of ``backend`` ("sqlite" or "postgresql"); SQLite files go in ``directory``."""
    if backend == "sqlite":
        return dbs.sqlite_copy(request.getfixturevalue("retention_sqlite_template"), directory)
    if backend == "postgresql":
        url: str = request.getfixturevalue("retention_pg_url")
        dbs.empty_pg_database(url)
        return url
    raise ValueError(f"unknown database backend {backend!r}")


@pytest.fixture
def retention_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database_url(request, getattr(request, "param", "sqlite"), tmp_path)


@pytest.fixture
def retention_clock() -> Clock:
    return Clock()


@pytest.fixture
def retention_channel() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
def retention_make_app(retention_db_url: str, retention_clock: Clock, tmp_path: Path) -> Iterator[AppFactory]:
    with AppFactory(retention_db_url, retention_clock, tmp_path) as make:
        yield make


@pytest.fixture
def retention_app(retention_make_app: AppFactory) -> Retention:
    return retention_make_app()

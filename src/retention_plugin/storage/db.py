"""Engines and dialect specifics: the one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ClauseElement

from .turns import READ_ONLY, take_turns
from .writes import watch

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaOutdated(Exception):
    pass


SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
POSTGRES_EXTRA = "pip install 'retention-plugin[postgres]'"


def make_engine(url: str, *, pool_size: int = 5, sqlite_synchronous: str = "full") -> Engine:
    """An engine for ``url``.

    :param sqlite_synchronous: ``full`` (every commit synced to disk before it
        returns) or ``normal`` (synced at checkpoints; faster, the last commits
        can be lost in a power cut). SQLite only; ``[database] sqlite_synchronous``.
    """
    scheme = url.split("://", 1)[0] if "://" in url else url
    if scheme not in SUPPORTED_SCHEMES:
        raise ValueError(unsupported_scheme(url))
    if url.startswith("sqlite"):
        if sqlite_synchronous not in ("full", "normal"):
            raise ValueError(f"sqlite_synchronous must be 'full' or 'normal', not {sqlite_synchronous!r}")
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        take_turns(engine)  # first: the turn is taken before _sqlite_setup's BEGIN IMMEDIATE
        _sqlite_setup(engine, sqlite_synchronous.upper())
        return watch(engine)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # A database host that does not answer must fail a connection in seconds, not hang the
    # request (the receiver then answers 503) or the worker's loop.
    timeout = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": 10}
    return watch(create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                               connect_args=timeout))


def _sqlite_setup(engine: Engine, synchronous: str = "FULL") -> None:
    # pysqlite's own transaction handling defers BEGIN and would upgrade a
    # read lock to a write lock mid-transaction, which fails with "database is
    # locked" without honouring the busy timeout. Taking the write lock at
    # BEGIN (IMMEDIATE) makes writers queue politely instead.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # ANALYZE (run by PRAGMA optimize, see refresh_statistics) samples this many rows per
        # index instead of reading whole tables, so it stays milliseconds on a large database.
        cur.execute("PRAGMA analysis_limit=1000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # A reader in WAL mode sees the last commit and waits for no writer: only writers queue.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def read_only(engine: Engine) -> Connection:
    """A connection for reads alone, e.g. ``with read_only(engine) as conn: ...``.

    On SQLite its transactions begin deferred and take no turn (``storage.turns``), so a
    receiver's lookup answers while a worker holds the write lock for its group, instead of
    waiting for the group. It must not write: a write would have to upgrade to the write lock
    mid-transaction, which SQLite refuses at once ("database is locked") when another writer got
    there first. On PostgreSQL it is an ordinary connection.
    """
    return engine.connect().execution_options(**{READ_ONLY: True})


def is_sqlite(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "sqlite"


#: ``insert_ignore``'s statements by dialect, table and conflict columns: built once, the values go
#: in as parameters (building the statement cost more than running it on the worker's hot path).
_INSERT_IGNORE: dict[tuple, Any] = {}


def _insert_ignore_stmt(dialect_name: str, table, conflict: list[str]):
    key = (dialect_name, table, tuple(conflict))
    stmt = _INSERT_IGNORE.get(key)
    if stmt is None:
        dialect = sqlite if dialect_name == "sqlite" else postgresql
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=conflict)
        if "id" in table.c:
            stmt = stmt.returning(table.c.id)
        _INSERT_IGNORE[key] = stmt
    return stmt


#: PostgreSQL: a table is analyzed once it holds at least this much and has grown this many times
#: over its size at its last ANALYZE (or VACUUM): the analogue of SQLite's ``PRAGMA optimize``.
PG_ANALYZE_LEAST_BYTES = 64 * 1024
PG_ANALYZE_GROWTH = 4

# pg_relation_size is the table's size now; relpages is its size when statistics were last taken
# (0 before the first ANALYZE or VACUUM). Only tables the role may analyze (it owns them, as the role
# that ran the migrations does): another's ANALYZE would be skipped with a warning, group after group.
# Schema-qualified and quoted by the server itself.
_PG_GROWN = text("""
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = current_schema()
  AND pg_has_role(c.relowner, 'USAGE')
  AND pg_relation_size(c.oid) >= :least
  AND pg_relation_size(c.oid) > :growth * greatest(c.relpages, 1)::bigint * current_setting('block_size')::bigint
ORDER BY name
""")


def refresh_statistics(conn: Connection) -> list[str]:
    """Let the query planner know the tables' shapes, in ``conn``'s transaction; returns what it analyzed.

    Without statistics the planner guesses, and for the worker's lookups it guesses wrong as
    soon as the tables fill: an order by Shopify id read every order, a customer by Shopify id
    or email read every customer of the shop, and a customer's lines of a SKU read every line of
    that SKU, so each event cost more than the one before (issue 19).

    SQLite: ``PRAGMA optimize`` analyzes only the tables this connection queried that have no
    statistics yet or have grown about 25-fold since, and is otherwise a no-op of microseconds.

    PostgreSQL: autovacuum analyzes a table only after it changed by a tenth, checking once a
    minute (``autovacuum_naptime``), and not at all where it is off. A fresh database (a new
    install, a test, a shop's first sale) ran its first minute of a burst unanalyzed, and with
    autovacuum off the whole burst: a customer's purchases of a SKU read every line of the SKU,
    2.6 ms at 2,000 events and growing. Here a table is analyzed once it reaches
    :data:`PG_ANALYZE_LEAST_BYTES` and has grown :data:`PG_ANALYZE_GROWTH` times since its last
    statistics, so a table growing from empty is analyzed a handful of times in its life. In
    alphabetical order, so two workers doing it at once wait for each other rather than
    deadlock (ANALYZE's lock conflicts with no row lock, only with another ANALYZE or VACUUM).
    """
    if is_sqlite(conn):
        conn.exec_driver_sql("PRAGMA optimize")
        return []
    grown = list(conn.execute(_PG_GROWN, {"least": PG_ANALYZE_LEAST_BYTES, "growth": PG_ANALYZE_GROWTH}).scalars())
    for name in grown:
        conn.exec_driver_sql(f"ANALYZE {name}")
    return grown


def insert_ignore(conn: Connection, table, values: dict, conflict: list[str]):
    """INSERT … ON CONFLICT DO NOTHING; returns the new primary key or None."""
    stmt = _insert_ignore_stmt(conn.dialect.name, table, conflict)
    if any(isinstance(v, ClauseElement) for v in values.values()):
        # An SQL expression is not a parameter value: it goes into this statement's VALUES.
        result = conn.execute(stmt.values(**values))
    else:
        result = conn.execute(stmt, values)
    if "id" in table.c:
        row = result.first()
        return row[0] if row else None
    return None


def upsert(conn: Connection, table, values: dict, conflict: list[str], update: dict):
    dialect = sqlite if is_sqlite(conn) else postgresql
    stmt = dialect.insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=conflict, set_=update)
    conn.execute(stmt)


def for_update(select_stmt, conn: Connection, *, skip_locked: bool = False):
    """Row locks where the engine has them; SQLite's BEGIN IMMEDIATE already serialises writers."""
    if is_sqlite(conn):
        return select_stmt
    return select_stmt.with_for_update(skip_locked=skip_locked)


# --- migrations ------------------------------------------------------------------


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # only a package shipped without its migrations
        raise RuntimeError(f"no Alembic revisions in {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", *, default_shop: str | None = None) -> None:
    """Migrate to ``revision``; ``default_shop``: the shop rows from before shops were recorded belong to."""
    cfg = alembic_config(engine)
    if default_shop:
        cfg.attributes["default_shop"] = default_shop
    _migrate(engine, cfg, lambda: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate back to ``revision`` (tests of a migration; an admin undoing an upgrade)."""
    cfg = alembic_config(engine)
    _migrate(engine, cfg, lambda: command.downgrade(cfg, revision))


def _migrate(engine: Engine, cfg: Config, run) -> None:
    if not is_sqlite(engine):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            run()
        return
    # SQLite changes a constraint by rebuilding the table (Alembic's batch mode): the old table is
    # dropped while other tables still point at it, which enforced foreign keys refuse. SQLite's
    # own procedure (https://www.sqlite.org/lang_altertable.html#otheralter): foreign keys off, outside
    # the transaction; rebuild; check that every reference still holds; commit; keys back on.
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None  # a live connection has its sqlite3 connection
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                run()
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration left rows pointing at nothing: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def check_schema(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not the code's."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty (no tables yet)" if current is None else f"at revision {current}"
        raise SchemaOutdated(
            f"the database schema is {state}, this version needs {head}: run `retention db upgrade`")


# --- database mistakes, one line each ----------------------------------------------------------------


def unsupported_scheme(url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else url
    return (f"[database] url: unsupported scheme {scheme!r}: use sqlite:///PATH (relative to the config file) "
            "or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")


def _describe_url(url) -> tuple[str, str]:
    """(database, host:port) of a URL, for messages; never the password."""
    try:
        u = make_url(str(url))
    except Exception:  # noqa: BLE001 - only wording a message
        return str(url), "?"
    return u.database or "", f"{u.host or 'localhost'}:{u.port or 5432}"


def explain_error(exc: BaseException, url=None, engine: Engine | None = None) -> str | None:
    """One line that names the mistake and its fix, or None when ``exc`` is not a known one.

    ``engine``, when given, lets a missing table be told apart from a schema that is merely old:
    both get "run `retention db upgrade`" when the database's revision is not the code's head.
    """
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in ("psycopg", "psycopg2"):
        return f"PostgreSQL needs the psycopg driver, which is not installed: {POSTGRES_EXTRA}"
    if isinstance(exc, sa_exc.NoSuchModuleError) or (
            isinstance(exc, ValueError) and str(exc).startswith("[database] url: unsupported scheme")):
        return unsupported_scheme(str(url)) if url is not None else str(exc)
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    text = str(exc.orig) if exc.orig is not None else str(exc)
    lowered = text.lower()
    name, where = _describe_url(url if url is not None else (engine.url if engine is not None else ""))
    if "unable to open database file" in lowered:
        folder = Path(name).parent if name else Path(".")
        if name and not folder.exists():
            return (f"cannot open the SQLite database {name}: the folder {folder} does not exist "
                    f"(create it: mkdir -p {folder}; or change [database] url)")
        return f"cannot open the SQLite database {name}: check that its folder is writable, or change [database] url"
    if "does not exist" in lowered and "database" in lowered and "relation" not in lowered:
        return (f"the PostgreSQL database {name!r} does not exist on {where}: create it "
                f"(createdb -h {where.split(':')[0]} {name}), then run `retention db upgrade`")
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return f"PostgreSQL at {where} refused the login: check the user and password in [database] url"
    if any(s in lowered for s in ("connection refused", "could not translate host name", "timeout expired",
                                   "name or service not known", "no route to host", "network is unreachable",
                                   "could not connect", "connection timed out")):
        return f"cannot reach PostgreSQL at {where}: is it running there, and is [database] url right?"
    if any(s in lowered for s in ("no such table", "no such column", "undefinedtable", "undefinedcolumn")) or (
            "relation" in lowered and "does not exist" in lowered) or (
            "column" in lowered and "does not exist" in lowered):
        if engine is None:
            return "the database schema is missing or old: run `retention db upgrade`"
        try:
            check_schema(engine)
        except SchemaOutdated as outdated:
            return str(outdated)
        except Exception:  # noqa: BLE001 - the revision cannot be read either: the schema is not there
            return "the database schema is missing or old: run `retention db upgrade`"
    return None

"""The worker's per-event lookups use an index, so an event costs the same late in a burst as early (issue 19)."""

from sqlalchemy import inspect, select, text

from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine


def test_ledger_rows_of_an_order_are_found_through_an_index(db_url):
    engine = make_engine(db_url)
    try:
        indexed = [ix["column_names"] for ix in inspect(engine).get_indexes("ledger")]
        assert ["order_id"] in indexed  # the migrated schema, as `retention db upgrade` leaves it
        if engine.dialect.name == "sqlite":
            L = t.ledger
            stmt = select(L.c.key, L.c.points).where(L.c.order_id == 1, L.c.kind == "reverse")
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
            with engine.connect() as conn:
                plan = " ".join(row[3] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "ix_ledger_order_id" in plan
    finally:
        engine.dispose()

"""Regenerate migration 0001 from storage/tables.py.

Only while nothing is released: once a version ships, schema changes get a
new revision (``alembic revision --autogenerate``) instead.
"""

import tempfile
from pathlib import Path

from alembic import command

from retention_plugin.storage.db import MIGRATIONS, alembic_config, make_engine

target = MIGRATIONS / "versions" / "0001_initial_schema.py"
target.unlink(missing_ok=True)
with tempfile.TemporaryDirectory() as d:
    engine = make_engine(f"sqlite:///{Path(d) / 'gen.db'}")
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    engine.dispose()
print(f"wrote {target}")

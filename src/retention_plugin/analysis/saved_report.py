"""The latest report kept in the database, for the console to show without computing it.

Building the report fits several models to every customer's history: seconds
for a small shop, minutes for a large one, and the memory of a few copies of
the order history. That is work for a command run on a schedule (cron, a
systemd timer), not for a web request that a proxy times out and that ties
up one of the server's threads. So ``retention analyze report`` keeps what it
wrote as an ``analysis_runs`` row of kind ``report`` and the console shows
the newest one with its date.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, insert, select

from ..shop_scope import only
from ..storage import tables as t
from ..storage.db import read_only

KIND = "report"
#: Each row holds the whole page (charts inline, a few hundred kB); older ones are only history.
KEEP = 5


def save_report(engine, out_dir, *, params: dict, now: datetime) -> int:
    """Keep the report that :func:`.report.build_report` wrote into ``out_dir``; returns the row's id."""
    out = Path(out_dir)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    html = (out / "report.html").read_text(encoding="utf-8")
    r = t.analysis_runs
    as_of = datetime.fromisoformat(summary["as_of"]).replace(tzinfo=timezone.utc)
    with engine.begin() as conn:
        run_id, shop = conn.execute(insert(r).values(kind=KIND, as_of=as_of, params=params,
                                                     summary={"summary": summary, "html": html}, created_at=now)
                                    .returning(r.c.id, r.c.shop)).one()
        # The newest KEEP of this report's shop: another shop's reports are not this one's to prune.
        old = conn.execute(select(r.c.id).where(r.c.kind == KIND, r.c.shop == shop).order_by(r.c.id.desc())
                           .offset(KEEP)).scalars().all()
        if old:
            conn.execute(delete(r).where(r.c.id.in_(old)))
    return run_id


def latest_report(engine) -> dict | None:
    """``{"id", "created_at", "as_of", "params", "summary", "html"}`` of the newest kept report, or None.

    In a shop's scope (an embedded console session) the newest of that shop's reports."""
    r = t.analysis_runs
    with read_only(engine) as conn:  # the console's analysis pages: no wait for a worker's group
        row = conn.execute(select(r).where(r.c.kind == KIND, only(r)).order_by(r.c.id.desc()).limit(1)
                           ).mappings().first()
    if row is None:
        return None
    kept = row["summary"] or {}
    return {"id": row["id"], "created_at": row["created_at"], "as_of": row["as_of"], "params": row["params"],
            "summary": kept.get("summary") or {}, "html": kept.get("html") or ""}

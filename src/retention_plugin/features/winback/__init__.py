"""Early warning and win-back: a built-in plugin on top of the lost-customer analysis.

Daily, the worker scores every customer (``analysis.early_warning``) and
fires ``customer_at_risk`` / ``customer_lost`` for those who crossed into
those segments since the last run. This plugin reacts to both: a random 90%
(deterministic per customer, see ``analysis.winback.assign_group``) get a
win-back message with a single-use code; 10% are kept as a holdout and get
nothing, so ``retention analyze winback`` can measure the real lift instead
of counting reorders that would have happened anyway.

The plugin (this module) holds the hook implementations; the rest is in
:mod:`.engine`, :mod:`.settings` and :mod:`.data` (its rows in merges and erasure).
"""

from __future__ import annotations

from sqlalchemy import select

from retention_plugin import hookimpl
from retention_plugin.storage import tables as t

from .data import TEXT_COLUMNS, customers_merged, shop_redact  # noqa: F401 (hook implementations)
from .engine import early_warning_task, win_back
from .settings import PLUGIN, WinbackSchema


@hookimpl
def register_config_sections(register):
    register(PLUGIN, WinbackSchema())


@hookimpl
def register_commands(cli):
    from retention_plugin.analysis import analyze

    cli.add_command(analyze)


@hookimpl
def register_tasks(register):
    register("analysis.early-warning", early_warning_task, 24 * 3600)


@hookimpl
def customer_at_risk(customer_id, score, ctx):
    win_back(ctx, customer_id, "at_risk")


@hookimpl
def customer_lost(customer_id, score, ctx):
    win_back(ctx, customer_id, "lost")


@hookimpl
def customer_facts(customer_id, ctx):
    if ctx is None:
        return None
    score = ctx.conn.execute(select(t.customer_scores).where(
        t.customer_scores.c.customer_id == customer_id)).mappings().first()
    wb = ctx.conn.execute(select(t.winback.c.group, t.winback.c.segment, t.winback.c.created_at).where(
        t.winback.c.customer_id == customer_id).order_by(t.winback.c.id.desc())).first()
    if score is None and wb is None:
        return None
    facts = {}
    if score is not None:
        facts["segment"] = score["segment"]
        facts["p_alive"] = float(score["p_alive"]) if score["p_alive"] is not None else None
        facts["scored_at"] = score["scored_at"].isoformat()
    if wb is not None:
        facts["winback"] = {"group": wb.group, "segment": wb.segment, "at": wb.created_at.isoformat()}
    return {PLUGIN: facts}

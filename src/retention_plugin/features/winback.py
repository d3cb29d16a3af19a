"""Early warning and win-back: a built-in plugin on top of the lost-customer analysis.

Daily, the worker scores every customer (``analysis.early_warning``) and
fires ``customer_at_risk`` / ``customer_lost`` for those who crossed into
those segments since the last run. This plugin reacts to both: a random 90%
(deterministic per customer, see ``analysis.winback.assign_group``) get a
win-back message with a single-use code; 10% are kept as a holdout and get
nothing, so ``retention analyze winback`` can measure the real lift instead
of counting reorders that would have happened anyway.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from retention_plugin import hookimpl
from retention_plugin.config import section_or_defaults
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import insert_ignore

PLUGIN = "winback"
log = logging.getLogger("retention_plugin.winback")


class WinbackSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(load_default=True)
    segments = fields.List(fields.String(validate=validate.OneOf(["at_risk", "lost"])),
                           load_default=lambda: ["at_risk", "lost"])
    holdout_percent = fields.Decimal(load_default=Decimal("10"), validate=validate.Range(min=0, max=50), as_string=False)
    discount_percent = fields.Decimal(load_default=Decimal("15"), validate=validate.Range(min=1, max=100))
    valid_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=365))
    #: one offer per customer per this many days, whatever the crossings
    cooldown_days = fields.Integer(load_default=180, validate=validate.Range(min=1))
    #: also report customers already at risk or lost on the very first run (after install)
    first_run_reports = fields.Boolean(load_default=False)
    seed = fields.String(load_default="winback")


def settings_of(ctx) -> dict:
    return section_or_defaults(ctx, PLUGIN, WinbackSchema)


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


def early_warning_task(ctx) -> None:
    """Score every customer (daily) and fire the crossing hooks."""
    from retention_plugin.analysis.early_warning import early_warning

    st = settings_of(ctx)
    try:
        # Fitting reads through the engine, before this task's transaction writes anything
        # (on SQLite the write lock is taken at the first write, so the fit does not hold it);
        # the scores, the crossings and the offers then commit together on ctx.conn.
        result = early_warning(ctx.app.engine, ctx.now, _score_settings(ctx),
                               first_run_reports=st["first_run_reports"], store_on=ctx.conn)
    except ValueError as e:  # too little history to fit anything yet: nothing to warn about
        log.info("early warning skipped: %s", e)
        return
    for customer_id, score in result.get("at_risk", []):
        ctx.hook.customer_at_risk(customer_id=int(customer_id), score=score, ctx=ctx)
    for customer_id, score in result.get("lost", []):
        ctx.hook.customer_lost(customer_id=int(customer_id), score=score, ctx=ctx)


def _score_settings(ctx):
    """The scoring defaults, with the predicted next purchase bounded as ``[offers]`` says."""
    from retention_plugin.analysis.scoring import ScoreSettings

    offers = ctx.section("offers")
    if not offers:
        return ScoreSettings()
    return ScoreSettings(next_purchase_min_days=offers["next_purchase_min_days"],
                         next_purchase_max_days=offers["next_purchase_max_days"])


@hookimpl
def customer_at_risk(customer_id, score, ctx):
    win_back(ctx, customer_id, "at_risk")


@hookimpl
def customer_lost(customer_id, score, ctx):
    win_back(ctx, customer_id, "lost")


def win_back(ctx, customer_id: int, segment: str) -> str | None:
    """Assign the customer to offer or holdout once per cooldown; offer → code + message."""
    from retention_plugin.analysis.winback import assign_group

    st = settings_of(ctx)
    if not st["enabled"] or segment not in st["segments"]:
        return None
    w = t.winback
    recent = ctx.conn.execute(select(w.c.id).where(
        w.c.customer_id == customer_id, w.c.created_at > ctx.now - timedelta(days=st["cooldown_days"]))).first()
    if recent is not None:
        return None
    group = assign_group(customer_id, seed=st["seed"], holdout_share=float(st["holdout_percent"]) / 100)
    # One assignment per customer per cooldown period, whichever worker gets there first.
    period = int(ctx.now.timestamp() // (st["cooldown_days"] * 86400))
    key = f"winback:{customer_id}:{period}"
    new = insert_ignore(ctx.conn, w, {"key": key, "customer_id": customer_id, "group": group,
                                      "segment": segment, "created_at": ctx.now}, ["key"])
    if new is None or group != "offer":
        return group
    customer = ctx.customer(customer_id)
    data = {}
    if customer and customer.get("shopify_id"):
        from retention_plugin.discounts import issue_discount, offer_data

        reward = issue_discount(ctx, key=f"{key}:code", action_key=f"{key}:discount", feature=PLUGIN,
                                customer=customer, percent=st["discount_percent"],
                                ends_at=ctx.now + timedelta(days=st["valid_days"]),
                                title=f"We miss you ({st['discount_percent']}% off)", prefix="MISSYOU",
                                source_ref=key)
        data = offer_data(reward)
    message_id = ctx.schedule_message(key=f"{key}:message", customer_id=customer_id, kind="win_back",
                                      due_at=ctx.now, data=data)
    from sqlalchemy import update

    ctx.conn.execute(update(w).where(w.c.key == key).values(message_id=message_id))
    return group


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

"""What win-back does: the daily scoring task, and the offer (or holdout) for a customer who crossed
into a segment."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from retention_plugin.storage import tables as t
from retention_plugin.storage.db import insert_ignore

from .settings import PLUGIN, settings_of

log = logging.getLogger("retention_plugin.winback")


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
    if customer is None:
        return group
    from retention_plugin.discounts import HELD, issue_discount

    # The offer is the message: without a Shopify customer both wait for `retention discounts approve`.
    reward = issue_discount(ctx, key=f"{key}:code", action_key=f"{key}:discount", feature=PLUGIN,
                            customer=customer, percent=st["discount_percent"],
                            ends_at=ctx.now + timedelta(days=st["valid_days"]),
                            title=f"We miss you ({st['discount_percent']}% off)", prefix="MISSYOU",
                            source_ref=key, message={"key": f"{key}:message", "kind": "win_back", "data": {}})
    if reward["status"] != HELD:
        message_id = ctx.conn.execute(select(t.messages.c.id).where(t.messages.c.key == f"{key}:message")).scalar()
        ctx.conn.execute(update(w).where(w.c.key == key).values(message_id=message_id))
    return group

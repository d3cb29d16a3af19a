"""``retention recovery report``: complaints, offers, cost, and who ordered again.

A *case* is a complaint ticket (``tickets.complaint``), or a recovery decided
without a ticket (a bad follow-up rating). Each case is in exactly one group:

- ``offered``: a goodwill offer was made (``recoveries.decision = offered``);
- no offer, by reason: the policy's decline code (``over_budget``,
  ``too_many_recoveries``, ``customer_cap``, ``vetoed``, ``no_customer``,
  ``same_incident``, ``declined_by_reviewer``, ...), ``pending_approval``
  (an offer waiting for ``retention recovery approve``),
  ``before_feature`` (solved without any recovery decision: before the
  feature was on, or with offers on solve switched off), or ``open`` (not
  solved yet, no decision yet).

The repeat-purchase outcome is computed from the stored orders each time:
a case counts as ``repeat`` when the customer placed an order (not
cancelled, not a test) within ``outcome_days`` after the decision (after the
ticket was solved, for cases without a decision); ``no_repeat`` once that
window is over without one; ``pending`` while it is open. Rates are
``repeat / (repeat + no_repeat)``; open cases have no outcome.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from ...storage import tables as t
from .settings import SEVERITIES
from .watch import outcome


def _in_period(when: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if when is None:
        return since is None and until is None
    return (since is None or when >= since) and (until is None or when < until)


def cases(conn, settings: dict, now: datetime, *, since: datetime | None = None,
          until: datetime | None = None) -> list[dict]:
    tk, r = t.tickets, t.recoveries
    tickets = {row["id"]: dict(row) for row in conn.execute(select(
        tk.c.id, tk.c.zendesk_id, tk.c.customer_id, tk.c.created_at, tk.c.solved_at, tk.c.status,
        tk.c.complaint, tk.c.complaint_severity).where(tk.c.complaint.is_(True))).mappings()}
    recs = [dict(row) for row in conn.execute(select(r).order_by(r.c.id)).mappings()]
    by_ticket = {x["ticket_id"]: x for x in recs if x["ticket_id"] is not None}
    # A decision on a ticket that is (no longer) flagged a complaint is still a case.
    missing = [tid for tid in by_ticket if tid not in tickets]
    if missing:
        for row in conn.execute(select(tk.c.id, tk.c.zendesk_id, tk.c.customer_id, tk.c.created_at, tk.c.solved_at,
                                       tk.c.status, tk.c.complaint, tk.c.complaint_severity)
                                .where(tk.c.id.in_(missing))).mappings():
            tickets[row["id"]] = dict(row)
    days = settings["outcome_days"]
    out = []
    for tid, tk_row in sorted(tickets.items()):
        if not _in_period(tk_row["created_at"], since, until):
            continue
        rec = by_ticket.get(tid)
        out.append(_case(conn, now, days, ticket=tk_row, rec=rec))
    for rec in recs:
        if rec["ticket_id"] is None and _in_period(rec["created_at"], since, until):
            out.append(_case(conn, now, days, ticket=None, rec=rec))
    return out


def _case(conn, now, days, *, ticket: dict | None, rec: dict | None) -> dict:
    customer_id = (rec or {}).get("customer_id") or (ticket or {}).get("customer_id")
    if rec is not None:
        group = "offered" if rec["decision"] == "offered" else "no_offer"
        if rec["decision"] == "pending":
            reason = "pending_approval"
        else:
            reason = None if group == "offered" else (rec["reason"] or "declined").split(":", 1)[0]
        anchor = rec["created_at"]
        severity = rec["severity"] or (ticket or {}).get("complaint_severity")
    else:
        group = "no_offer"
        solved = ticket["solved_at"] or (ticket["created_at"] if ticket["status"] in ("solved", "closed") else None)
        reason = "before_feature" if solved is not None else "open"
        anchor = solved
        severity = ticket["complaint_severity"]
    state, order_id = ("unknown", None) if reason == "open" else outcome(conn, customer_id, anchor, days, now)
    return {
        "zendesk_id": ticket["zendesk_id"] if ticket else None,
        "case": rec["key"] if rec else f"recovery:ticket:{ticket['zendesk_id']}",
        "customer_id": customer_id, "severity": severity, "group": group, "reason": reason,
        "trigger": rec["trigger"] if rec else None,
        "amount": rec["amount"] if rec and group == "offered" else None,
        "currency": rec["currency"] if rec and group == "offered" else None,
        "reward_id": rec["reward_id"] if rec else None,
        "decided_at": anchor, "outcome": state, "repeat_order_id": order_id,
    }


def _rate(items: list[dict]) -> dict:
    c = Counter(x["outcome"] for x in items)
    decided = c["repeat"] + c["no_repeat"]
    return {"cases": len(items), "repeat": c["repeat"], "no_repeat": c["no_repeat"], "pending": c["pending"],
            "unknown": c["unknown"], "rate": round(c["repeat"] / decided, 4) if decided else None}


def _redeemed(conn, offered: list[dict]) -> int:
    """Offered codes that appear in a stored order's discount codes."""
    reward_ids = [x["reward_id"] for x in offered if x["reward_id"]]
    if not reward_ids:
        return 0
    rw = t.rewards
    codes: dict[int, set[str]] = {}
    for row in conn.execute(select(rw.c.customer_id, rw.c.code).where(rw.c.id.in_(reward_ids), rw.c.code.is_not(None))):
        codes.setdefault(row.customer_id, set()).add(row.code.upper())
    if not codes:
        return 0
    o = t.orders
    used = set()
    for row in conn.execute(select(o.c.customer_id, o.c.discount_codes).where(o.c.customer_id.in_(list(codes)))):
        for code in row.discount_codes or []:
            text = str(code.get("code") if isinstance(code, dict) else code).upper()
            if text in codes[row.customer_id]:
                used.add(text)
    return len(used)


def build(conn, settings: dict, now: datetime, *, since: datetime | None = None, until: datetime | None = None,
          with_cases: bool = False) -> dict:
    items = cases(conn, settings, now, since=since, until=until)
    offered = [x for x in items if x["group"] == "offered"]
    no_offer = [x for x in items if x["group"] == "no_offer"]
    cost: dict[str, Decimal] = {}
    for x in offered:
        cost[x["currency"]] = cost.get(x["currency"], Decimal(0)) + Decimal(x["amount"])
    severity = Counter(x["severity"] or "unknown" for x in items)
    reasons = Counter(x["reason"] for x in no_offer)
    # Open complaints and offers still waiting for approval are not "without an offer" yet.
    closed_no_offer = [x for x in no_offer if x["reason"] not in ("open", "pending_approval")]
    report = {
        "as_of": now.isoformat(),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "outcome_days": settings["outcome_days"],
        "complaints": {
            "total": len(items),
            "open": reasons.get("open", 0),
            "by_severity": {k: severity[k] for k in (*SEVERITIES, "unknown") if severity[k]},
        },
        "offers": {
            "count": len(offered),
            "by_trigger": dict(Counter(x["trigger"] for x in offered)),
            "cost": {cur: f"{amount:.2f}" for cur, amount in sorted(cost.items())},
            "redeemed": _redeemed(conn, offered),
        },
        "no_offer": {"count": len(no_offer), "by_reason": dict(sorted(reasons.items()))},
        "repeat_purchase": {"offered": _rate(offered), "no_offer": _rate(closed_no_offer)},
    }
    if with_cases:
        report["cases"] = [{**x, "amount": f"{x['amount']:.2f}" if x["amount"] is not None else None,
                            "decided_at": x["decided_at"].isoformat() if x["decided_at"] else None}
                           for x in items]
    return report


def _pct(rate) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def text(report: dict) -> str:
    c, o, n, rp = report["complaints"], report["offers"], report["no_offer"], report["repeat_purchase"]
    period = ""
    if report["since"] or report["until"]:
        period = f" ({report['since'] or '…'} to {report['until'] or '…'})"
    lines = [f"Service recovery{period}", ""]
    sev = ", ".join(f"{k} {v}" for k, v in c["by_severity"].items()) or "-"
    lines.append(f"complaints        {c['total']:>6}   ({sev}; {c['open']} still open)")
    cost = ", ".join(f"{v} {k}" for k, v in o["cost"].items()) or "0"
    lines.append(f"offers made       {o['count']:>6}   cost {cost}; codes used in an order: {o['redeemed']}")
    why = ", ".join(f"{k} {v}" for k, v in n["by_reason"].items()) or "-"
    lines.append(f"no offer          {n['count']:>6}   ({why})")
    lines.append("")
    head = f"ordered again within {report['outcome_days']} days"
    lines.append(f"{head:<36}{'cases':>5}  {'repeat':>6}  {'no repeat':>9}  {'pending':>7}  rate")
    for label, key in (("after an offer", "offered"), ("without an offer", "no_offer")):
        g = rp[key]
        lines.append(f"  {label:<34}{g['cases']:>5}  {g['repeat']:>6}  {g['no_repeat']:>9}  "
                     f"{g['pending'] + g['unknown']:>7}  {_pct(g['rate'])}")
    return "\n".join(lines) + "\n"

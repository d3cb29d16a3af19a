"""Complaint detection: tags, ticket form fields and keywords in several languages.

The built-in classifier is the ``trylast`` implementation of the
``classify_ticket`` hook, so a plugin with a better one (a model, a
vendor's API result stored on the ticket) wins by returning a result.
What the hook decides is stored on the ticket row (``complaint``,
``complaint_severity``, ``complaint_reason``). A stored classification is
only ever raised (not a complaint -> complaint, low -> high), never lowered,
so a later update without the signal does not undo a complaint, and a
ticket that got a bad rating stays one.
"""

from __future__ import annotations

import re
from functools import lru_cache

from sqlalchemy import select, update

from ...events import CustomerInfo, Ticket
from ...storage import tables as t
from .settings import SEVERITIES

RANK = {None: 0, "low": 1, "medium": 2, "high": 3}

#: Stored as ``complaint_reason`` for a ticket classified as no complaint, so the
#: backfill (``retention recovery classify``) can tell "classified" from "never seen".
NOT_A_COMPLAINT = "no complaint signals"

#: Built-in keywords per language, matched case-insensitively as whole words; a trailing ``*``
#: makes a stem that matches any ending ("sugadint*" catches "sugadintas", "sugadinta").
BUILTIN_KEYWORDS: dict[str, dict[str, list[str]]] = {
    "en": {
        "high": ["broken", "damaged", "never arrived", "never received", "dangerous", "injur*", "chargeback*",
                 "lawyer*", "scam*", "fraud*"],
        "medium": ["complain*", "disappointed", "unacceptable", "refund", "refund me", "wrong item", "missing",
                   "defective", "faulty", "leak*"],
        "low": ["late", "delayed", "delay", "still waiting", "not happy", "unhappy"],
    },
    "lt": {
        "high": ["sugadint*", "sulūž*", "pažeist*", "negavau", "pavoj*", "sukčia*", "apgavyst*"],
        "medium": ["skund*", "nusivyl*", "nepriimtin*", "grąžinkite pinigus", "pinigų grąžinim*", "ne ta prekė",
                   "trūksta", "brokas", "broko", "brokuot*"],
        "low": ["vėluoja", "vėlavim*", "vis dar laukiu", "nepatenkint*"],
    },
    "sl": {
        "high": ["pokvarjen*", "poškodovan*", "nisem prejel*", "nevarn*", "prevar*"],
        "medium": ["pritožb*", "razočaran*", "nesprejemljiv*", "vračilo denarja", "napačen izdelek", "manjka",
                   "okvarjen*"],
        "low": ["zamuja", "zamud*", "še vedno čakam", "nezadovolj*"],
    },
    "ru": {
        "high": ["сломан*", "поврежд*", "не получил*", "опасн*", "мошенн*", "обман*"],
        "medium": ["жалоб*", "разочаров*", "неприемлем*", "верните деньги", "возврат денег", "не тот товар",
                   "не хватает", "брак"],
        "low": ["задерж*", "опаздыва*", "всё ещё жду", "все еще жду", "недовол*"],
    },
    "ka": {
        "high": ["გატეხილ*", "დაზიანებულ*", "არ მიმიღია", "საშიშ*", "თაღლით*"],
        "medium": ["საჩივ*", "იმედგაცრუებ*", "მიუღებელ*", "თანხის დაბრუნებ*", "არასწორი ნივთ*", "აკლია",
                   "წუნდებულ*"],
        "low": ["აგვიანებ*", "დაგვიანებ*", "ისევ ველოდები", "უკმაყოფილ*"],
    },
}


def keyword_table(complaints: dict) -> dict[str, dict[str, list[str]]]:
    """The keywords in force: built-ins (unless switched off), each language replaced by the config's."""
    table = {lang: dict(sevs) for lang, sevs in BUILTIN_KEYWORDS.items()} if complaints["builtin_keywords"] else {}
    for lang, sevs in (complaints.get("keywords") or {}).items():
        table[lang] = {sev: list(words) for sev, words in sevs.items()}
    return table


@lru_cache(maxsize=1024)
def _pattern(word: str) -> re.Pattern:
    # Whole words (a trailing * allows any ending); inner spaces match any run of whitespace.
    stem = word.endswith("*")
    body = r"\s+".join(re.escape(part) for part in word.rstrip("*").casefold().split())
    return re.compile(r"(?<!\w)" + body + ("" if stem else r"(?!\w)"))


def builtin_classify(ticket: Ticket, settings: dict) -> dict:
    """Classify by tags, form fields and keywords; the most severe signal wins."""
    cfg = settings["complaints"]
    signals: list[tuple[str, str]] = []
    tags = {tag.lower() for tag in ticket.tags or []}
    for tag, severity in cfg["tags"].items():
        if tag.lower() in tags:
            signals.append((severity, f"tag {tag}"))
    custom = {str(k): v for k, v in (ticket.custom_fields or {}).items()}
    for rule in cfg["form_fields"]:
        value = custom.get(str(rule["id"]))
        if value in (None, "", [], False):
            continue
        values = value if isinstance(value, list) else [value]
        matched = False
        for v in values:
            severity = rule["values"].get(str(v))
            if severity:
                signals.append((severity, f"field {rule['id']}={v}"))
                matched = True
        if not matched and rule.get("any_value"):
            signals.append((rule["any_value"], f"field {rule['id']} set"))
    text = " ".join(x for x in (ticket.subject, ticket.description) if x).casefold()
    if text:
        for lang, sevs in keyword_table(cfg).items():
            for severity in SEVERITIES:
                for word in sevs.get(severity, []):
                    if _pattern(word).search(text):
                        signals.append((severity, f'keyword "{word}" ({lang})'))
    if not signals:
        return {"complaint": False, "severity": None, "reason": NOT_A_COMPLAINT}
    top = max(RANK[s] for s, _ in signals)
    severity = next(s for s in SEVERITIES if RANK[s] == top)
    # The strongest signals first, each named once.
    ordered = [r for s, r in sorted(signals, key=lambda x: -RANK[x[0]])]
    reason = "; ".join(dict.fromkeys(ordered))
    return {"complaint": True, "severity": severity, "reason": reason[:1000]}


def normalise(result) -> dict | None:
    """A hook's answer as ``{"complaint", "severity", "reason"}``; None when it gave none."""
    if result is None:
        return None
    if not isinstance(result, dict):
        raise TypeError(f"classify_ticket must return a dict or None, got {type(result).__name__}")
    complaint = bool(result.get("complaint"))
    severity = result.get("severity") if complaint else None
    if complaint and severity not in SEVERITIES:
        severity = "medium"
    reason = str(result.get("reason") or ("complaint" if complaint else NOT_A_COMPLAINT))
    return {"complaint": complaint, "severity": severity, "reason": reason[:1000]}


def classify(ctx, ticket: Ticket) -> dict:
    """Ask the ``classify_ticket`` hook (plugins first, the built-in last)."""
    got = normalise(ctx.hook.classify_ticket(ticket=ticket, ctx=ctx))
    return got or {"complaint": False, "severity": None, "reason": NOT_A_COMPLAINT}


def store(conn, ticket_row_id: int, row: dict, result: dict) -> dict:
    """Store a classification, only ever raising it; returns what is stored now."""
    stored = {"complaint": bool(row["complaint"]), "severity": row["complaint_severity"],
              "reason": row["complaint_reason"]}
    if result["complaint"]:
        if not stored["complaint"] or RANK[result["severity"]] > RANK[stored["severity"]]:
            new = dict(result)
        else:
            return stored
    elif stored["reason"] is None:
        new = {"complaint": False, "severity": None, "reason": result["reason"]}
    else:
        return stored
    conn.execute(update(t.tickets).where(t.tickets.c.id == ticket_row_id).values(
        complaint=new["complaint"], complaint_severity=new["severity"], complaint_reason=new["reason"]))
    return new


def classify_and_store(ctx, ticket: Ticket, row: dict) -> dict:
    return store(ctx.conn, row["id"], row, classify(ctx, ticket))


def mark_complaint(conn, row: dict, severity: str, reason: str) -> dict:
    """Make a ticket a complaint (e.g. after a bad rating), keeping a higher stored severity."""
    return store(conn, row["id"], row, {"complaint": True, "severity": severity, "reason": reason})


def ticket_from_row(row: dict) -> Ticket:
    """An ``events.Ticket`` from a stored row, for classifying tickets stored before the feature."""
    requester = CustomerInfo(email=row.get("requester_email")) if row.get("requester_email") else None
    return Ticket(zendesk_id=row["zendesk_id"], subject=row.get("subject"), description=row.get("description"),
                  status=row.get("status"), priority=row.get("priority"), tags=list(row.get("tags") or []),
                  requester=requester, created_at=row.get("created_at"), updated_at=row.get("source_updated_at"),
                  group_id=row.get("group_id"), form_id=row.get("form_id"),
                  custom_fields=dict(row.get("custom_fields") or {}), via=row.get("via"))


def ticket_row(conn, zendesk_id: int) -> dict | None:
    row = conn.execute(select(t.tickets).where(t.tickets.c.zendesk_id == zendesk_id)).mappings().first()
    return dict(row) if row else None

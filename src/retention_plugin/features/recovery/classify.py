"""Complaint detection: tags, ticket form fields, and keywords read in their context, in five languages.

The built-in classifier is the ``trylast`` implementation of the
``classify_ticket`` hook, so a plugin with a better one (a model, a
vendor's API result stored on the ticket) wins by returning a result.
What the hook decides is stored on the ticket row (``complaint``,
``complaint_severity``, ``complaint_reason``, ``complaint_evidence``). A
stored classification is only ever raised (not a complaint -> complaint,
low -> high), never lowered, so a later update without the signal does not
undo a complaint, and a ticket that got a bad rating stays one.

A keyword alone is weak evidence: "Question about your refund policy" and
"Nothing was broken or damaged, thanks!" contain complaint words and are not
complaints. Each keyword found is judged in its sentence (see ``lexicon.py``
for the cue words of each language) and ignored when it is

- part of an enquiry about the shop's rules (policy, warranty, terms),
- in a question that is not a grievance ("is my order delayed?"; but "why did
  my parcel arrive damaged?" and "is this a scam?" count),
- hypothetical ("if an item arrives damaged, ..."),
- negated ("nothing was broken", "no delays this time", "ни один не
  повреждён"), or a low-severity word the customer shrugs off ("thanks for
  telling me about the delay, no problem"),
- in the subject of a reply ("Re: complaint 4410" quotes an older ticket).

Tickets the product opened itself (tag :data:`PRODUCT_TAG`) are classified
without their subject and description: the product never reads its own words
as a customer's complaint. ``bench/bench_classify.py`` measures the rules on the
labelled set in ``data/labelled_tickets.jsonl``.
"""

from __future__ import annotations

import dataclasses
import re
from functools import lru_cache

from sqlalchemy import select, update

from ...events import CustomerInfo, Ticket
from ...platforms.zendesk.requests import PRODUCT_TAG
from ...storage import tables as t
from .lexicon import LEXICON, REPLY_PREFIXES
from .settings import SEVERITIES

RANK = {None: 0, "low": 1, "medium": 2, "high": 3}

#: Stored as ``complaint_reason`` for a ticket classified as no complaint, so the
#: backfill (``retention recovery classify``) can tell "classified" from "never seen".
NOT_A_COMPLAINT = "no complaint signals"

#: Evidence kinds, stored comma-separated in ``tickets.complaint_evidence``. A complaint whose only
#: evidence is ``keyword`` makes a goodwill offer wait for approval.
EVIDENCE = ("tag", "field", "keyword", "rating", "plugin")

#: Built-in keywords per language (``lexicon.LEXICON``), as ``[recovery.complaints] keywords`` takes them.
BUILTIN_KEYWORDS: dict[str, dict[str, list[str]]] = {lang: lex["keywords"] for lang, lex in LEXICON.items()}

NEGATION_WINDOW = 5  # words before a keyword a negator reaches
POST_NEGATION_WINDOW = 2
SCOPE_WINDOW = 3  # "never received a damaged item": the negating keyword governs the next one


def keyword_table(complaints: dict, languages=None) -> dict[str, dict[str, list[str]]]:
    """The keywords in force: built-ins (unless switched off), each language replaced by the config's."""
    table = {lang: dict(sevs) for lang, sevs in BUILTIN_KEYWORDS.items()} if complaints["builtin_keywords"] else {}
    for lang, sevs in (complaints.get("keywords") or {}).items():
        table[lang] = {sev: list(words) for sev, words in sevs.items()}
    if languages:
        table = {lang: sevs for lang, sevs in table.items() if lang in languages}
    return table


@lru_cache(maxsize=2048)
def _pattern(word: str) -> re.Pattern:
    # Whole words (a trailing * allows any ending); inner spaces match any run of whitespace.
    stem = word.endswith("*")
    body = r"\s+".join(re.escape(part) for part in word.rstrip("*").casefold().split())
    return re.compile(r"(?<!\w)" + body + (r"\w*" if stem else r"(?!\w)"))


@lru_cache(maxsize=4096)
def _word_matches(cue: str, token: str) -> bool:
    cue = cue.casefold()
    return token.startswith(cue[:-1]) if cue.endswith("*") else token == cue


_TOKEN = re.compile(r"\w+(?:['’]\w+)*")
_PUNCT = re.compile(r"[,;:()\u2013\u2014]")
_NEGATIVE_VERBS = ("never", "not", "haven't", "hasn't", "didn't")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclasses.dataclass
class _Hit:
    lang: str
    severity: str
    keyword: str
    where: str
    start: int
    end: int
    text: str

    def signal(self, why: str | None = None) -> dict:
        out = {"signal": "keyword", "keyword": self.keyword, "lang": self.lang, "severity": self.severity,
               "where": self.where, "text": self.text}
        if why:
            out["why"] = why
        return out


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _any_phrase(cues, sentence: str, before: int | None = None) -> str | None:
    for cue in cues:
        m = _pattern(cue).search(sentence, 0, before if before is not None else len(sentence))
        if m and (before is None or m.end() <= before):
            return cue
    return None


def _is_negator(lex: dict, token: str) -> bool:
    if any(_word_matches(n, token) for n in lex.get("negators", ())):
        return True
    prefix = lex.get("negator_prefix")
    return bool(prefix and token.startswith(prefix) and len(token) > len(prefix) + 2
                and not any(_word_matches(n, token) for n in lex.get("not_negators", ())))


def _judge(hit: _Hit, hits: list[_Hit], sentence: str, tokens: list, lex: dict, question: bool,
           subject_reply: bool) -> str | None:
    """Why this keyword does not count, or None when it does."""
    if subject_reply:
        return "in the subject of a reply"
    cue = _any_phrase(lex.get("policy", ()), sentence)
    if cue:
        return f'an enquiry about the rules ("{cue}")'
    if question:
        first = tokens[0][2] if tokens else ""
        two = " ".join(tok[2] for tok in tokens[:2])
        accusatory = any(w == hit.keyword for w in lex.get("accusatory", ()))
        grievance = any(w in (first, two) for w in lex.get("why", ()))
        if not accusatory and not grievance:
            return "a question, not a report"
    cue = _any_phrase(lex.get("conditionals", ()), sentence, before=hit.start)
    if cue:
        return f'hypothetical ("{cue}")'
    at = next((i for i, tok in enumerate(tokens) if tok[0] >= hit.start), len(tokens))
    end_at = next((i for i, tok in enumerate(tokens) if tok[0] >= hit.end), len(tokens))
    first_word = hit.text.split()[0] if hit.text.split() else ""
    prefix = lex.get("negator_prefix")
    negative_keyword = (_is_negator(lex, first_word) or first_word in _NEGATIVE_VERBS
                        or bool(prefix and first_word.startswith(prefix) and len(first_word) > len(prefix) + 2))
    stops = tuple(lex.get("contrast", ())) + tuple(lex.get("and", ()))
    if negative_keyword:
        following = tokens[end_at:end_at + 2]
        if following and not _PUNCT.search(sentence[hit.end:following[-1][0]]):
            thing = next((tok[2] for tok in following if any(_word_matches(w, tok[2])
                                                              for w in lex.get("not_goods", ()))), None)
            if thing:
                return f'about "{thing}", not the goods'
        # "never received a damaged item": the negation is about the next complaint word, not a report.
        for other in hits:
            gap = sentence[hit.end:other.start]
            if other is not hit and other.start >= hit.end and not _PUNCT.search(gap):
                words = _TOKEN.findall(gap)
                if len(words) < SCOPE_WINDOW and not any(_word_matches(c, w) for w in words for c in stops):
                    return f'its negation governs "{other.text}"'
    for i in range(at - 1, max(at - 1 - NEGATION_WINDOW, -1), -1):
        word = tokens[i][2]
        after = tokens[i + 1][0] if i + 1 < len(tokens) else hit.start
        if _PUNCT.search(sentence[tokens[i][1]:min(after, hit.start)]) or any(_word_matches(c, word) for c in stops):
            break  # a negation stays in its clause: "No, it arrived broken", "not X, but it arrived broken"
        if not _is_negator(lex, word):
            continue
        if negative_keyword and any(_word_matches(c, word) for c in lex.get("concord", ())):
            continue  # "nieko negavau", "ничего не получил": agreeing with the negative keyword, not cancelling it
        return f'negated ("{word}")'
    for i in range(end_at, min(end_at + POST_NEGATION_WINDOW, len(tokens))):
        if _PUNCT.search(sentence[tokens[i - 1][1] if i > end_at else hit.end:tokens[i][0]]):
            break
        word = tokens[i][2]
        if any(_word_matches(n, word) for n in lex.get("post_negators", ())):
            return f'negated ("{word}")'
    if hit.severity == "low":
        cue = _any_phrase(lex.get("reassurance", ()), sentence)
        if cue:
            return f'not a problem for the customer ("{cue}")'
    return None


def text_signals(subject: str | None, body: str | None, complaints: dict, languages=None) -> tuple[list, list]:
    """Keyword signals of a subject and body: ``(counted, ignored)``, each a list of dicts."""
    table = keyword_table(complaints, languages)
    subject = (subject or "").strip()
    reply = subject.casefold().startswith(REPLY_PREFIXES)
    parts = {where: _part_signals(where, text, table, reply) for where, text in (("subject", subject),
                                                                                  ("body", body or ""))}
    body_counted, body_ignored = parts["body"]
    if not body_counted and any(x["why"].startswith(_ENQUIRY) for x in body_ignored):
        # "Returns of damaged goods" over a body asking "what if it arrives damaged?": the subject names
        # the topic of the enquiry.
        counted, ignored = parts["subject"]
        parts["subject"] = ([], ignored + [dict(x, why="the subject of an enquiry") for x in counted])
    return (parts["subject"][0] + body_counted, parts["subject"][1] + body_ignored)


_ENQUIRY = ("an enquiry", "a question", "hypothetical")


def _part_signals(where: str, text: str, table: dict, reply: bool) -> tuple[list, list]:
    counted: list[dict] = []
    ignored: list[dict] = []
    for sentence in _sentences(text.casefold()):
        tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(sentence)]
        stripped = sentence.rstrip()
        for lang, sevs in table.items():
            lex = LEXICON.get(lang, {})
            question = stripped.endswith("?") or (
                where == "subject" and any(_pattern(a).match(sentence.lstrip()) for a in lex.get("asking", ())))
            hits = []
            for severity in SEVERITIES:
                for word in sevs.get(severity, []):
                    for m in _pattern(word).finditer(sentence):
                        hits.append(_Hit(lang, severity, word, where, m.start(), m.end(), m.group()))
            for hit in hits:
                why = _judge(hit, hits, sentence, tokens, lex, question, where == "subject" and reply)
                (ignored if why else counted).append(hit.signal(why))
    return counted, ignored


def builtin_classify(ticket: Ticket, settings: dict, languages=None) -> dict:
    """Classify by tags, form fields and keywords in context; the most severe signal wins.

    :param languages: only these languages' keywords (all configured ones by default).
    :returns: ``{"complaint", "severity", "reason", "matched", "ignored", "evidence"}``.
    """
    cfg = settings["complaints"]
    matched: list[dict] = []
    tags = {tag.lower() for tag in ticket.tags or []}
    for tag, severity in cfg["tags"].items():
        if tag.lower() in tags:
            matched.append({"signal": "tag", "tag": tag, "severity": severity})
    custom = {str(k): v for k, v in (ticket.custom_fields or {}).items()}
    for rule in cfg["form_fields"]:
        value = custom.get(str(rule["id"]))
        if value in (None, "", [], False):
            continue
        values = value if isinstance(value, list) else [value]
        found = False
        for v in values:
            severity = rule["values"].get(str(v))
            if severity:
                matched.append({"signal": "field", "field": rule["id"], "value": v, "severity": severity})
                found = True
        if not found and rule.get("any_value"):
            matched.append({"signal": "field", "field": rule["id"], "value": None, "severity": rule["any_value"]})
    counted, ignored = text_signals(ticket.subject, ticket.description, cfg, languages)
    matched.extend(counted)
    if not matched:
        reason = NOT_A_COMPLAINT
        if ignored:
            reason += " (ignored: " + "; ".join(dict.fromkeys(
                f'{x["keyword"]} ({x["lang"]}): {x["why"]}' for x in ignored)) + ")"
        return {"complaint": False, "severity": None, "reason": reason[:1000], "matched": [],
                "ignored": ignored, "evidence": []}
    top = max(RANK[x["severity"]] for x in matched)
    severity = next(s for s in SEVERITIES if RANK[s] == top)
    # The strongest signals first, each named once.
    ordered = sorted(matched, key=lambda x: -RANK[x["severity"]])
    reason = "; ".join(dict.fromkeys(_label(x) for x in ordered))
    evidence = [e for e in EVIDENCE if any(x["signal"] == e for x in matched)]
    return {"complaint": True, "severity": severity, "reason": reason[:1000], "matched": ordered,
            "ignored": ignored, "evidence": evidence}


def _label(signal: dict) -> str:
    if signal["signal"] == "tag":
        return f"tag {signal['tag']}"
    if signal["signal"] == "field":
        return f"field {signal['field']}={signal['value']}" if signal["value"] is not None else \
            f"field {signal['field']} set"
    return f'keyword "{" ".join(signal["text"].split())}" ({signal["lang"]})'


def normalise(result) -> dict | None:
    """A hook's answer as ``{"complaint", "severity", "reason", "evidence", "matched"}``; None when it gave none.

    A plugin's answer without ``evidence`` counts as the plugin's own evidence (``plugin``), which is
    not keyword-only: a plugin that only matched words says ``"evidence": ["keyword"]``.
    """
    if result is None:
        return None
    if not isinstance(result, dict):
        raise TypeError(f"classify_ticket must return a dict or None, got {type(result).__name__}")
    complaint = bool(result.get("complaint"))
    severity = result.get("severity") if complaint else None
    if complaint and severity not in SEVERITIES:
        severity = "medium"
    reason = str(result.get("reason") or ("complaint" if complaint else NOT_A_COMPLAINT))
    evidence = result.get("evidence")
    if not isinstance(evidence, (list, tuple)) or not evidence:
        evidence = ["plugin"] if complaint else []
    evidence = [e for e in EVIDENCE if e in evidence] or (["plugin"] if complaint else [])
    matched = result.get("matched") if isinstance(result.get("matched"), list) else []
    ignored = result.get("ignored") if isinstance(result.get("ignored"), list) else []
    return {"complaint": complaint, "severity": severity, "reason": reason[:1000], "evidence": evidence,
            "matched": matched, "ignored": ignored}


def is_product_ticket(ticket: Ticket, row: dict | None = None) -> bool:
    """Whether the product opened this ticket itself (its tag, on the event or the stored row)."""
    tags = set(ticket.tags or []) | set((row or {}).get("tags") or [])
    return PRODUCT_TAG in tags


def classify(ctx, ticket: Ticket, row: dict | None = None) -> dict:
    """Ask the ``classify_ticket`` hook (plugins first, the built-in last).

    A ticket the product opened is asked about without its subject and description: that text is
    ours, not the customer's (its tags and form fields still count).
    """
    if is_product_ticket(ticket, row):
        ticket = dataclasses.replace(ticket, subject=None, description=None)
    got = normalise(ctx.hook.classify_ticket(ticket=ticket, ctx=ctx))
    return got or {"complaint": False, "severity": None, "reason": NOT_A_COMPLAINT, "evidence": [],
                   "matched": [], "ignored": []}


def evidence_of(row: dict) -> list[str]:
    return [e for e in (row.get("complaint_evidence") or "").split(",") if e]


def keyword_only(evidence) -> bool:
    """A complaint known from words alone (no tag, field, rating or plugin says so)."""
    return set(evidence) <= {"keyword"}


def store(conn, ticket_row_id: int, row: dict, result: dict) -> dict:
    """Store a classification, only ever raising it; returns what is stored now.

    Evidence only grows: an agent's tag on a ticket first found by keywords makes it more than words.
    """
    old_evidence = evidence_of(row)
    stored = {"complaint": bool(row["complaint"]), "severity": row["complaint_severity"],
              "reason": row["complaint_reason"], "evidence": old_evidence}
    if result["complaint"]:
        evidence = [e for e in EVIDENCE if e in set(old_evidence) | set(result.get("evidence") or ["plugin"])]
        if not stored["complaint"] or RANK[result["severity"]] > RANK[stored["severity"]]:
            new = {**result, "evidence": evidence}
        elif evidence != old_evidence:
            new = {**stored, "evidence": evidence}
        else:
            return stored
    elif stored["reason"] is None:
        new = {"complaint": False, "severity": None, "reason": result["reason"], "evidence": []}
    else:
        return stored
    conn.execute(update(t.tickets).where(t.tickets.c.id == ticket_row_id).values(
        complaint=new["complaint"], complaint_severity=new["severity"], complaint_reason=new["reason"],
        complaint_evidence=",".join(new["evidence"]) or None))
    return new


def classify_and_store(ctx, ticket: Ticket, row: dict) -> dict:
    return store(ctx.conn, row["id"], row, classify(ctx, ticket, row))


def mark_complaint(conn, row: dict, severity: str, reason: str) -> dict:
    """Make a ticket a complaint after a bad rating, keeping a higher stored severity."""
    return store(conn, row["id"], row, {"complaint": True, "severity": severity, "reason": reason,
                                        "evidence": ["rating"]})


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

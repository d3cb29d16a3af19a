"""Finding one person's words in text anyone may have written, and what each text column holds.

A name is matched only as a whole: "Wei Li" is replaced in "I spoke to Wei Li",
never in "Olivia" or "telling", and a single given name ("Li") on its own is
not matched at all, since it names many people. Emails and phone numbers are
matched as whole tokens too; a phone in any spacing (``+370 611 22333``,
``(370) 61122333``) is the same digits.

Every text-like column of the schema is declared, by whoever owns its table,
as one of three kinds (:class:`TextColumns`): the person's identity on their
own rows, free text anyone may have written, or text that names nobody. The
core declares its tables' (:data:`CORE_COLUMNS`); a plugin that keeps tables
declares theirs as ``TEXT_COLUMNS`` on the plugin (module or object), which
:func:`declared_columns` collects. ``tests/test_privacy.py`` fails when a
column of the schema is declared by nobody, or twice, so a column added later
cannot escape erasure unnoticed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import JSON, LargeBinary, MetaData, String, Table, Text, cast, or_, select, update

from .storage import tables as t

REDACTED = "[redacted]"

#: Payload keys that hold personal data wherever they appear in a body that is the person's own.
PII_KEYS = {
    "email", "contact_email", "phone", "first_name", "last_name", "name", "address1", "address2",
    "city", "zip", "latitude", "longitude", "company", "browser_ip", "note", "customer_locale",
    "description", "subject", "comment", "body", "html_body", "plain_body", "requester_email",
    "requester_name", "current_comment",
}

@dataclass(frozen=True)
class TextColumns:
    """What the text columns of some tables hold, table name -> column names, in three kinds.

    :param own_identity: the person's identity on their own rows: cleared on those rows, found by id.
    :param free_text: words anyone may have written or been sent. The person's own rows are blanked
        by the erasure steps; in every row, whole-token matches of their email, phone and full name go.
    :param no_words: text that names nobody: keys, ids, codes, statuses, enumerations, product data,
        and coarse attributes (locale, country) kept so sums and reports still add up.
    :param metadata: where the tables are; None: the core schema (``storage.tables.metadata``).
        A plugin that creates tables of its own metadata names it here, and the core searches them too.
    """

    own_identity: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    free_text: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    no_words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    metadata: MetaData | None = None

    def schema(self) -> MetaData:
        return self.metadata if self.metadata is not None else t.metadata

    def columns(self) -> list[tuple[str, str]]:
        """Every (table, column) declared, of any kind (a column declared twice appears twice)."""
        return [(table, col) for kind in (self.own_identity, self.free_text, self.no_words)
                for table, cols in kind.items() for col in cols]

    def tables(self) -> set[str]:
        return {table for table, _ in self.columns()}


#: The person's identity on their own rows: cleared on those rows, found by id.
OWN_IDENTITY: dict[str, tuple[str, ...]] = {
    "customers": ("email", "external_id", "first_name", "last_name", "phone", "province", "tags"),
    "orders": ("email",),
    "tickets": ("requester_email",),
}

#: Words anyone may have written or been sent. The person's own rows are blanked by the
#: erasure steps; in every row, whole-token matches of their email, phone and full name go.
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "inbox": ("body", "headers", "last_error"),
    "actions": ("request", "result", "last_error"),
    "action_attempts": ("response", "error"),
    "task_runs": ("last_error",),
    "analysis_runs": ("params", "summary"),
    "plugin_state": ("value",),
    "privacy_requests": ("export",),
    "orders": ("tags",),
    "refunds": ("note",),
    "tickets": ("subject", "description", "tags", "custom_fields", "complaint_reason"),
    "ratings": ("comment",),
    "rewards": ("hold",),  # a held code's message data and the reviewer's note
}

#: Text that names nobody: keys, ids, codes, statuses, enumerations, product data, and
#: coarse attributes (locale, country) kept so sums and reports still add up.
NO_WORDS: dict[str, tuple[str, ...]] = {
    "actions": ("shop", "key", "platform", "kind", "status"),
    "action_attempts": ("outcome",),
    "analysis_runs": ("shop", "kind",),
    "app_uninstalls": ("shop",),
    "customers": ("shop", "locale", "country", "timezone", "marketing_consent"),
    "customer_scores": ("segment",),
    "fulfillments": ("status",),
    "inbox": ("platform", "shop", "delivery_id", "topic", "event_id", "status", "claimed_by"),
    "order_lines": ("line_key", "sku", "title", "product_type", "vendor", "tags"),
    "orders": ("shop", "name", "currency", "presentment_currency", "financial_status", "fulfillment_status", "locale",
               "discount_codes", "source", "import_key"),
    "plugin_state": ("plugin", "key"),
    "privacy_requests": ("shop", "kind",),
    "ratings": ("shop", "source", "source_id", "score"),
    "rewards": ("shop", "key", "feature", "kind", "code", "currency", "status", "source_ref"),
    "task_runs": ("name",),
    "tickets": ("shop", "status", "priority", "via", "complaint_severity", "complaint_evidence"),
    "refunds": ("currency", "lines"),
    # The app's credentials for the shop, and install nonces: no person's words.
    "shop_tokens": ("shop", "grant_type", "access_token", "refresh_token", "scope"),
    "oauth_states": ("state_hash", "shop"),
}

#: The core's tables (the plugins declare theirs).
CORE_COLUMNS = TextColumns(own_identity=OWN_IDENTITY, free_text=FREE_TEXT, no_words=NO_WORDS)


def declared_columns(pm) -> list[TextColumns]:
    """The core's declaration, then every registered plugin's ``TEXT_COLUMNS``.

    :raises ValueError: a column declared twice (in one schema): which kind wins would be a guess.
    """
    found = [CORE_COLUMNS] + [p.TEXT_COLUMNS for p in (pm.get_plugins() if pm is not None else ())
                              if isinstance(getattr(p, "TEXT_COLUMNS", None), TextColumns)]
    seen: set[tuple[int, str, str]] = set()
    for declared in found:
        for table, col in declared.columns():
            key = (id(declared.schema()), table, col)
            if key in seen:
                raise ValueError(f"{table}.{col} is declared twice (redaction.py and the plugins' TEXT_COLUMNS)")
            seen.add(key)
    return found


def undeclared_columns(metadata: MetaData, declared: Iterable[TextColumns]) -> set[tuple[str, str]]:
    """Text columns (strings, JSON, raw bytes) of ``metadata``'s tables that no declaration names."""
    named = {pair for d in declared if d.schema() is metadata for pair in d.columns()}
    return {(table.name, c.name) for table in metadata.sorted_tables for c in table.columns
            if isinstance(c.type, (String, JSON, LargeBinary)) and (table.name, c.name) not in named}


def searched_columns(declared: Iterable[TextColumns]) -> list[tuple[Table, tuple[str, ...]]]:
    """Where the search for the person's words looks: every declared free-text column, and every text
    column of a core table nobody declared (a switched-off plugin's), which nobody said names nobody."""
    declared = list(declared)
    out = []
    for d in declared:
        schema = d.schema()
        out += [(schema.tables[name], tuple(cols)) for name, cols in d.free_text.items()]
    claimed = {name for d in declared if d.schema() is t.metadata for name in d.tables()}
    for table in t.metadata.sorted_tables:
        if table.name not in claimed:
            cols = tuple(c.name for c in table.columns if isinstance(c.type, (String, JSON)))
            if cols:
                out.append((table, cols))
    return out


#: Fewer digits than this are too likely to be something else (an order number, a year).
MIN_PHONE_DIGITS = 7
_PHONE_SEPARATORS = r"[\s().\-]{0,3}"


def phone_digits(phone: str | None) -> str | None:
    digits = re.sub(r"\D", "", phone or "")
    return digits if len(digits) >= MIN_PHONE_DIGITS else None


def name_tokens(*parts: str | None) -> tuple[str, ...] | None:
    """A full name as its tokens, or None when it is a single word (too common to match alone)."""
    tokens = tuple(tok for p in parts if p for tok in p.split())
    return tokens if len(tokens) >= 2 else None


class Matcher:
    """Whole-token matches of one person's emails, phones (as digits) and full names."""

    def __init__(self, emails: Iterable[str], phones: Iterable[str], names: Iterable[tuple[str, ...]]):
        self.emails = sorted({e.strip().lower() for e in emails if e and e.strip()}, key=len, reverse=True)
        self.phones = sorted(set(phones), key=len, reverse=True)
        self.names = sorted(set(names), key=lambda n: -sum(map(len, n)))
        self.pattern = self._compile(escaped=False)
        # A stored body Python cannot parse is searched as raw text, where JSON may
        # have written "Jūratė" as "J\u016brat\u0117".
        self.raw_pattern = self._compile(escaped=True)
        # The quick test that lets most rows skip the search (it runs on every stored body
        # and free-text value): plain substrings, which Python finds far faster than a
        # case-insensitive alternation with lookarounds, and a phone pattern with a literal start.
        anchors = set(self.emails) | {max(tokens, key=len) for tokens in self.names}
        self._anchors = {form.casefold() for a in anchors for form in (a, json.dumps(a)[1:-1])}
        self._phone_anchor = (re.compile("|".join(_PHONE_SEPARATORS.join(d) for d in self.phones))
                              if self.phones else None)

    def __bool__(self) -> bool:
        return self.pattern is not None

    def _compile(self, *, escaped: bool):
        def forms(s: str) -> set[str]:
            return {s, json.dumps(s)[1:-1]} if escaped else {s}

        # In raw JSON text a token may follow an escape ("\nWei"), which is a boundary too.
        start = r"(?:(?<!\w)|(?<=\\[nrt]))" if escaped else r"(?<!\w)"
        gap = r"(?:\s|\\[nrt])+" if escaped else r"\s+"
        parts = []
        for email in self.emails:
            parts += [rf"(?<![\w.+\-]){re.escape(v)}(?![\w\-]|\.\w)" for v in forms(email)]
        for digits in self.phones:
            parts.append(r"(?<![\w+])\+?" + _PHONE_SEPARATORS.join(digits) + r"(?!\d)")
        for tokens in self.names:
            for alt in {tokens, tuple(json.dumps(x)[1:-1] for x in tokens) if escaped else tokens}:
                parts.append(start + gap.join(re.escape(x) for x in alt) + r"(?!\w)")
        return re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def sub(self, text: str) -> str:
        return self.pattern.sub(REDACTED, text) if self.pattern is not None else text

    def sub_raw(self, text: str) -> str:
        return self.raw_pattern.sub(REDACTED, text) if self.raw_pattern is not None else text

    def may_occur(self, text: str) -> bool:
        """False when the text certainly holds none of the person's tokens (True may be a false alarm)."""
        if self.pattern is None:
            return False
        folded = text.casefold()
        return any(a in folded for a in self._anchors) or (
            self._phone_anchor is not None and self._phone_anchor.search(text) is not None)


def scrub(value, matcher: Matcher | None, *, pii_keys: bool = False):
    """A JSON value or text with the person's tokens replaced; with ``pii_keys``, personal keys blanked too.

    Returns the value itself (the same object) when nothing in it changes.
    """

    def walk(v, key=None):
        if isinstance(v, dict):
            new = {k: walk(x, k) for k, x in v.items()}
            return v if all(new[k] is v[k] for k in v) else new
        if isinstance(v, list):
            new = [walk(x, key) for x in v]
            return v if all(a is b for a, b in zip(new, v)) else new
        if isinstance(v, str):
            if pii_keys and key in PII_KEYS and v and v != REDACTED:
                return REDACTED
            if matcher:
                out = matcher.sub(v)
                return v if out == v else out
        return v

    if value is None or (not pii_keys and not matcher):
        return value
    if not pii_keys:
        # Most rows never mention the person: a quick look lets them skip the search.
        try:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = None
        if text is not None and not matcher.may_occur(text):
            return value
    return walk(value)


def rows_to_search(table, shop: str | None):
    """Where a redaction for a customer of ``shop`` looks for their words in ``table``: the shop's rows
    (:func:`.shops.rows_of`) and, in the inbox, deliveries of other platforms (Zendesk's name no shop);
    None: every row (no shop given, or rows of the table carry no shop and point at no row that does)."""
    from .shops import rows_of

    where = rows_of(table, shop) if shop else None
    if where is not None and table is t.inbox:
        where = or_(table.c.platform != "shopify", where)
    return where


def scrub_shared_text(conn, matcher: Matcher, columns: Iterable[tuple[Table, Iterable[str]]] | None = None,
                      *, shop: str | None = None) -> dict[str, int]:
    """Replace the person's whole tokens in every row's free text (binary bodies are the inbox step's).

    :param columns: (table, column names) to search; default: the core's free text.
    :param shop: the shop the person is a customer of: only its rows are searched (:func:`.shops.rows_of`),
        since the same email in another shop of the install is another shop's customer, whose data that
        shop keeps. Rows that carry no shop, and point at no row that does, are searched whatever the shop.
    """
    changed: dict[str, int] = {}
    if not matcher:
        return changed
    if columns is None:
        columns = searched_columns([CORE_COLUMNS])
    for table, names in columns:
        name = table.name
        cols = [table.c[c] for c in names if not isinstance(table.c[c].type, LargeBinary)]
        if not cols:
            continue
        pk = list(table.primary_key.columns)
        # JSON is read as its stored text: most values fail the quick look, and need no decoding.
        read = [cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in cols]
        query = select(*pk, *read)
        where = rows_to_search(table, shop)
        if where is not None:
            query = query.where(where)
        for row in conn.execute(query).mappings().all():
            values = {}
            for c in cols:
                old = row[c.name]
                if old is None or not matcher.may_occur(old):
                    continue
                if isinstance(c.type, JSON):
                    old = json.loads(old)
                new = scrub(old, matcher)
                if new is not old:
                    values[c.name] = new
            if values:
                conn.execute(update(table).where(*(k == row[k.name] for k in pk)).values(**values))
                changed[name] = changed.get(name, 0) + 1
    return changed

"""Every table, as SQLAlchemy Core. Alembic migrations in ``migrations/`` create them.

Conventions that hold across the schema:

- Times are ``UTCDateTime``: aware UTC in Python on both SQLite and PostgreSQL.
- Money is ``Numeric(18, 4)`` beside a 3-letter currency column.
- Every row a feature writes as a consequence of an event carries a ``key``
  with a unique constraint: the idempotency key that makes a replay a no-op.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from ..shop_scope import column_default

naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=naming_convention)


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC; always returns aware UTC.

    SQLite has no time zone type, and a naive datetime slipping in would
    compare wrongly against aware ones, so naive input is rejected.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: retention-plugin stores aware UTC only")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL paths on SQLite
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def Money(name: str, **kw) -> Column:
    return Column(name, Numeric(18, 4), **kw)


def Currency(name: str = "currency", **kw) -> Column:
    return Column(name, String(3), **kw)


Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PKs only


def pk() -> Column:
    return Column("id", Id, primary_key=True, autoincrement=True)


def shop() -> Column:
    """The shop (``x.myshopify.com``) a row belongs to; defaults to the one in scope (:mod:`..shop_scope`)."""
    return Column("shop", String(255), nullable=False, default=column_default)


def created() -> Column:
    return Column("created_at", UTCDateTime, nullable=False)


# --- the spine ---------------------------------------------------------------

inbox = Table(
    "inbox",
    metadata,
    pk(),
    Column("platform", String(16), nullable=False),
    Column("shop", String(255), nullable=False),
    Column("delivery_id", String(255), nullable=False),
    Column("topic", String(128), nullable=False),
    Column("event_id", String(255)),  # Shopify X-Shopify-Event-Id: same event, several deliveries
    Column("headers", JSON, nullable=False, default=dict),  # non-secret headers only
    Column("body", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("claimed_by", String(128)),
    Column("last_error", Text),
    Column("processed_at", UTCDateTime),
    UniqueConstraint("platform", "shop", "delivery_id"),
    Index("ix_inbox_due", "status", "next_attempt_at"),
)

actions = Table(
    "actions",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("platform", String(16), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("request", JSON, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("result", JSON),
    Column("last_error", Text),
    Column("inbox_id", Id),
    created(),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_actions_due", "status", "next_attempt_at"),
)

# One row per attempt, so an admin can see what failed and why (as Saleor does).
action_attempts = Table(
    "action_attempts",
    metadata,
    pk(),
    Column("action_id", Id, ForeignKey("actions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # done / retry / failed / dry_run
    Column("http_status", Integer),
    Column("response", Text),
    Column("error", Text),
)

# Periodic tasks: last run per task, so several workers run each at most once a period.
task_runs = Table(
    "task_runs",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("last_started_at", UTCDateTime),
    Column("last_finished_at", UTCDateTime),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
)

# --- who the customer is -----------------------------------------------------

customers = Table(
    "customers",
    metadata,
    pk(),
    shop(),
    Column("shopify_id", BigInteger),
    Column("email", String(320), index=True),  # normalised: stripped, lower case
    Column("zendesk_user_id", BigInteger),
    Column("external_id", String(255), index=True),
    Column("first_name", String(255)),
    Column("last_name", String(255)),
    Column("phone", String(64)),
    Column("locale", String(35)),
    Column("country", String(2)),
    Column("province", String(16)),
    Column("timezone", String(64)),
    Column("marketing_consent", String(32)),
    Column("tags", JSON, nullable=False, default=list),
    Column("source_updated_at", UTCDateTime),  # newest platform updated_at applied
    Column("merged_into", Id, ForeignKey("customers.id")),
    Column("redacted_at", UTCDateTime),
    created(),
    Column("updated_at", UTCDateTime, nullable=False),
    # A person is a customer of each shop separately: the same platform id in two shops is two rows.
    UniqueConstraint("shop", "shopify_id"),
    UniqueConstraint("shop", "zendesk_user_id"),
)

orders = Table(
    "orders",
    metadata,
    pk(),
    shop(),
    Column("shopify_id", BigInteger),
    Column("name", String(64)),
    Column("customer_id", Id, ForeignKey("customers.id"), index=True),
    Column("email", String(320)),
    Currency(nullable=False),
    Column("presentment_currency", String(3)),
    Money("subtotal", nullable=False),  # after discounts, before shipping and tax, shop money
    Money("total", nullable=False),
    Money("total_discounts", nullable=False, default=0),
    Money("total_tax", nullable=False, default=0),
    Money("shipping", nullable=False, default=0),
    Money("presentment_subtotal"),
    Money("refunded", nullable=False, default=0),
    Column("financial_status", String(32)),
    Column("fulfillment_status", String(32)),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("processed_at", UTCDateTime),
    Column("paid_at", UTCDateTime),
    Column("cancelled_at", UTCDateTime),
    Column("fulfilled_at", UTCDateTime),
    Column("source_updated_at", UTCDateTime),
    Column("locale", String(35)),
    Column("tags", JSON, nullable=False, default=list),
    Column("discount_codes", JSON, nullable=False, default=list),
    Column("test", Boolean, nullable=False, default=False),
    Column("source", String(16), nullable=False, default="webhook"),
    Column("import_key", String(255)),  # e.g. csv:<file digest>:<order name>
    UniqueConstraint("shop", "shopify_id"),
    UniqueConstraint("shop", "import_key"),
)

order_lines = Table(
    "order_lines",
    metadata,
    pk(),
    Column("order_id", Id, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("line_key", String(64), nullable=False),  # Shopify line id, or position for imports
    Column("sku", String(255), index=True),
    Column("product_id", BigInteger, index=True),
    Column("variant_id", BigInteger),
    Column("title", String(512)),
    Column("product_type", String(255)),
    Column("vendor", String(255)),
    Column("tags", JSON, nullable=False, default=list),
    Column("quantity", Integer, nullable=False),
    Money("price", nullable=False),
    Money("total_discount", nullable=False, default=0),
    Column("refunded_quantity", Integer, nullable=False, default=0),
    UniqueConstraint("order_id", "line_key"),
)

refunds = Table(
    "refunds",
    metadata,
    pk(),
    Column("shopify_id", BigInteger, unique=True),
    Column("order_id", Id, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True),
    Money("merchandise", nullable=False),
    Currency(nullable=False),
    Column("lines", JSON, nullable=False, default=list),
    Column("note", Text),
    created(),
)

fulfillments = Table(
    "fulfillments",
    metadata,
    pk(),
    Column("shopify_id", BigInteger, unique=True),
    Column("order_id", Id, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", String(32)),
    created(),
    Column("source_updated_at", UTCDateTime),
)

tickets = Table(
    "tickets",
    metadata,
    pk(),
    shop(),
    Column("zendesk_id", BigInteger, nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), index=True),
    Column("requester_email", String(320)),
    Column("subject", Text),
    Column("description", Text),
    Column("status", String(16)),
    Column("priority", String(16)),
    Column("tags", JSON, nullable=False, default=list),
    Column("group_id", BigInteger),
    Column("form_id", BigInteger),
    Column("custom_fields", JSON, nullable=False, default=dict),
    Column("via", String(64)),
    Column("created_at", UTCDateTime),
    Column("source_updated_at", UTCDateTime),
    Column("first_public_reply_at", UTCDateTime),
    Column("solved_at", UTCDateTime),
    Column("complaint", Boolean, nullable=False, default=False),
    Column("complaint_severity", String(16)),
    Column("complaint_reason", Text),
    Column("escalated_at", UTCDateTime),
    # What made it a complaint: tag, field, keyword, rating, plugin (comma-separated); keyword alone waits for approval.
    Column("complaint_evidence", String(64)),
)

ratings = Table(
    "ratings",
    metadata,
    pk(),
    shop(),
    Column("source", String(16), nullable=False),
    Column("source_id", String(255), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id"), index=True),
    Column("ticket_id", Id, ForeignKey("tickets.id")),
    Column("order_id", Id, ForeignKey("orders.id")),
    Column("score", String(16), nullable=False),
    Column("value", Numeric(6, 4)),  # 0 = worst, 1 = best
    Column("comment", Text),
    created(),
    UniqueConstraint("source", "source_id"),
)

privacy_requests = Table(
    "privacy_requests",
    metadata,
    pk(),
    shop(),
    Column("kind", String(32), nullable=False),  # data_request / redact / shop_redact / manual_*
    Column("customer_id", Id),
    Column("shopify_customer_id", BigInteger),
    Column("export", JSON),
    Column("inbox_id", Id),
    created(),
)

# Each app/uninstalled received (shop id from its body): a shop/redact runs only
# against one of these, which it then uses up with the rest of the shop's data.
app_uninstalls = Table(
    "app_uninstalls",
    metadata,
    pk(),
    Column("shop", String(255), nullable=False),
    Column("shop_id", BigInteger, nullable=False),
    Column("inbox_id", Id),
    Column("received_at", UTCDateTime, nullable=False),
)

# --- what features keep --------------------------------------------------------

ledger = Table(
    "ledger",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # earn / reverse / spend / adjust / expire
    Column("points", Integer, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),  # pending until then
    Column("order_id", Id, ForeignKey("orders.id"), index=True),  # refunds and cancellations look rows up by it
    Column("rate", Numeric(18, 6)),  # points per currency unit when earned
    Money("basis"),
    Column("currency", String(3)),
    Column("reason", Text),
    Column("actor", String(255)),
    created(),
)

customer_tiers = Table(
    "customer_tiers",
    metadata,
    Column("customer_id", Id, ForeignKey("customers.id"), primary_key=True),
    Column("tier", String(64)),
    Column("since", UTCDateTime, nullable=False),
    Column("evaluated_at", UTCDateTime, nullable=False),
)

punches = Table(
    "punches",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("card", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),  # negative for refunds and redemptions
    Column("order_id", Id, ForeignKey("orders.id")),
    created(),
)

rewards = Table(
    "rewards",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("feature", String(32), nullable=False),  # loyalty / punch / offers / recovery / winback
    Column("kind", String(32), nullable=False),  # percent / amount / free_item / store_credit
    Column("code", String(64), unique=True),
    Column("percent", Numeric(7, 4)),
    Money("amount"),
    Column("currency", String(3)),
    Column("points", Integer),
    Column("status", String(16), nullable=False, default="issued"),  # issued / held / declined / cancelled / ...
    Column("source_ref", String(255)),  # order / ticket / recall the reward came from
    created(),
    Column("expires_at", UTCDateTime),
    # A code held for approval (no Shopify customer to bind it to): what to create and send once
    # approved, why it waits, and who decided (discounts.py, ``retention discounts held``).
    Column("hold", JSON),
)

messages = Table(
    "messages",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), index=True),
    Column("kind", String(32), nullable=False),
    Column("message_class", String(16), nullable=False),  # transactional / marketing
    Column("channel", String(32), nullable=False),
    Column("template", String(128)),
    Column("locale", String(35)),
    Column("data", JSON, nullable=False, default=dict),
    Column("due_at", UTCDateTime, nullable=False),
    Column("send_at", UTCDateTime, nullable=False),  # due_at moved by the contact policy
    Column("status", String(16), nullable=False, default="scheduled"),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UTCDateTime),
    Column("provider_id", String(255)),
    Column("sent_at", UTCDateTime),
    Column("rendered", JSON),  # what was sent, for the record; erased on redact
    created(),
    Index("ix_messages_due", "status", "send_at"),
)

reminders = Table(
    "reminders",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("rule", String(64), nullable=False),
    Column("sku", String(255)),
    Column("order_id", Id, ForeignKey("orders.id")),
    Column("due_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # scheduled / cancelled / sent
    Column("message_id", Id, ForeignKey("messages.id")),
    created(),
)

recalls = Table(
    "recalls",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("sku", String(255)),
    Column("product_id", BigInteger),
    Column("ordered_from", UTCDateTime),
    Column("ordered_to", UTCDateTime),
    Column("severity", String(16), nullable=False),
    Column("title", Text),
    Column("status", String(16), nullable=False, default="open"),
    created(),
    Index("ix_recalls_shop", "shop"),
)

recall_cases = Table(
    "recall_cases",
    metadata,
    pk(),
    shop(),
    Column("recall_id", Id, ForeignKey("recalls.id", ondelete="CASCADE"), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("order_id", Id, ForeignKey("orders.id")),
    Column("status", String(16), nullable=False),  # affected / notified / acknowledged / resolved
    Column("message_id", Id, ForeignKey("messages.id")),
    Column("zendesk_ticket_id", BigInteger),
    Column("notified_at", UTCDateTime),
    Column("acknowledged_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    created(),
    UniqueConstraint("recall_id", "customer_id"),
)

recoveries = Table(
    "recoveries",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("ticket_id", Id, ForeignKey("tickets.id")),
    Column("customer_id", Id, ForeignKey("customers.id"), index=True),
    Column("trigger", String(32), nullable=False),  # complaint_solved / bad_rating
    Column("severity", String(16)),
    Column("decision", String(16), nullable=False),  # offered / declined / pending (approval)
    Column("reason", Text),
    Money("amount"),
    Column("currency", String(3)),
    Column("reward_id", Id, ForeignKey("rewards.id")),
    # Did the customer order again within [recovery] outcome_days? pending / repeat / no_repeat
    Column("outcome", String(16)),
    Column("outcome_order_id", Id, ForeignKey("orders.id")),
    Column("outcome_at", UTCDateTime),
    created(),
    # One goodwill offer per incident: the key of the incident's first case, and the order it is about.
    Column("incident", String(255), index=True),
    Column("order_id", Id, ForeignKey("orders.id")),
    Column("evidence", String(64)),
    # decision = pending: why it waits, and what approving issues; who approved or declined it, when, why.
    Column("hold", Text),
    Column("offer", JSON),
    Column("reviewed_by", String(255)),
    Column("reviewed_at", UTCDateTime),
    Column("review_note", Text),
)

winback = Table(
    "winback",
    metadata,
    pk(),
    shop(),
    Column("key", String(255), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("group", String(16), nullable=False),  # offer / holdout
    Column("segment", String(16), nullable=False),  # at_risk / lost
    Column("message_id", Id, ForeignKey("messages.id")),
    created(),
)

customer_scores = Table(
    "customer_scores",
    metadata,
    Column("customer_id", Id, ForeignKey("customers.id"), primary_key=True),
    Column("segment", String(16), nullable=False),
    Column("p_alive", Numeric(8, 6)),
    Column("expected_purchases", Numeric(12, 6)),
    Column("next_purchase_at", UTCDateTime),
    Column("scored_at", UTCDateTime, nullable=False),
)

analysis_runs = Table(
    "analysis_runs",
    metadata,
    pk(),
    shop(),
    Column("kind", String(32), nullable=False),
    Column("as_of", UTCDateTime, nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("summary", JSON, nullable=False, default=dict),
    created(),
    Index("ix_analysis_runs_shop", "shop"),
)

# Anything else a plugin needs to remember, so third-party plugins need no migrations of their own.
plugin_state = Table(
    "plugin_state",
    metadata,
    Column("plugin", String(128), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", JSON),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Which customers' loyalty metafields in Shopify are behind (features/loyalty/sync.py). A change bumps
# ``version``; a write records the version it read before the balance, so a change that lands while
# the write is prepared keeps the customer ``dirty``.
loyalty_sync = Table(
    "loyalty_sync",
    metadata,
    Column("customer_id", Id, ForeignKey("customers.id"), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("synced_version", Integer, nullable=False),
    Column("dirty", Boolean, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime),  # not written again before this (the interval, longer after failures)
    Column("sent", Integer, nullable=False),  # writes enqueued so far; numbers the action keys
    Column("sent_at", UTCDateTime),
    Column("failures", Integer, nullable=False),  # consecutive failed writes: the back-off
    Column("action_key", String(255)),  # the latest write's action
    Index("ix_loyalty_sync_due", "dirty", "due_at"),
)

# The metafield sync looks for points that matured since its last run, every minute.
Index("ix_ledger_available_at", ledger.c.available_at)
# Carrier tracking per fulfillment (fulfillment_events/create), kept by the delays plugin: the latest
# status and when the carrier last reported, so a parcel that stops moving is noticed.
shipments = Table(
    "shipments",
    metadata,
    pk(),
    Column("fulfillment_id", BigInteger, nullable=False, unique=True),  # Shopify's
    Column("order_id", Id, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", String(32), nullable=False),  # of the latest event (by when it happened)
    Column("status_at", UTCDateTime, nullable=False),  # when the latest event happened: the last movement
    Column("estimated_delivery_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    created(),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_shipments_moving", "delivered_at", "status_at"),
)

# Admin API tokens, one row per shop (shop_tokens.py): a client-credentials token cached until shortly
# before it expires, or the offline token (and refresh token) an install stored. Keyed by the shop's
# domain from the start, so several shops can share the table. Tokens are Fernet-encrypted when
# ``encrypted`` (always for installs); a refresh happens with this row locked, once for all workers.
shop_tokens = Table(
    "shop_tokens",
    metadata,
    pk(),
    Column("shop", String(255), nullable=False, unique=True),
    Column("grant_type", String(32), nullable=False),  # client_credentials / authorization_code
    Column("access_token", Text),  # None: a placeholder row, locked while the first token is fetched
    Column("refresh_token", Text),
    Column("encrypted", Boolean, nullable=False),
    Column("scope", Text),
    Column("obtained_at", UTCDateTime),
    Column("expires_at", UTCDateTime),  # None: an offline token that does not expire
    Column("refresh_expires_at", UTCDateTime),
    Column("version", Integer, nullable=False),  # bumped on every new token
    created(),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Install nonces (install/shopify_oauth.py): the SHA-256 of each ``state`` sent to Shopify's authorize
# page, for which shop, until when. The callback deletes its row: a state works once.
oauth_states = Table(
    "oauth_states",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("shop", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# --- the admin console (console/) ------------------------------------------------------------------
# Who may sign in, their sessions, failed sign-ins (the rate limit, shared by every server process),
# and what each of them changed. Passwords are argon2id hashes; a session cookie carries a random
# token of which only the SHA-256 is stored, so a copy of the database signs nobody in.

console_users = Table(
    "console_users",
    metadata,
    pk(),
    Column("email", String(255), nullable=False, unique=True),  # lower-cased
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    created(),
    Column("updated_at", UTCDateTime, nullable=False),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    pk(),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("actor", String(255), nullable=False),  # user email, or shopify:<user id> for an embedded sign-in
    Column("user_id", Id, ForeignKey("console_users.id", ondelete="CASCADE")),
    Column("csrf", String(64), nullable=False),
    created(),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    # An embedded sign-in's shop (the session token's dest); None for a password sign-in.
    Column("shop", String(255)),
)

console_login_failures = Table(
    "console_login_failures",
    metadata,
    pk(),
    Column("email", String(255), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_console_login_failures_lookup", "email", "ip", "at"),
)

console_audit = Table(
    "console_audit",
    metadata,
    pk(),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),  # e.g. events.replay, loyalty.adjust, sign_in
    Column("target", String(255)),  # e.g. inbox:12, customer:5, case:3
    Column("detail", JSON),  # the form's values (reason, points, note), never a password
    Column("ip", String(64)),
)


# A customer's birthday for the loyalty birthday rule: month and day only (the year is not needed to
# give points once a year, so it is not kept). Set once, from the customer metafield or by the shop.
loyalty_birthdays = Table(
    "loyalty_birthdays",
    metadata,
    Column("customer_id", Id, ForeignKey("customers.id"), primary_key=True),
    Column("month", Integer, nullable=False),
    Column("day", Integer, nullable=False),
    Column("source", String(16), nullable=False),  # metafield / api
    Column("set_at", UTCDateTime, nullable=False),
)

# Referrals (features/referrals): who invited whom, and how far the invitation got.
referrals = Table(
    "referrals",
    metadata,
    pk(),
    Column("referrer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("referee_id", Id, ForeignKey("customers.id"), index=True),
    Column("referee_email", String(320), unique=True),  # normalised; first referrer wins
    # invited -> ordered -> qualified (-> reversed), or rejected with ``reason``.
    Column("status", String(16), nullable=False),
    Column("reason", String(64)),
    Column("first_order_id", Id, ForeignKey("orders.id"), index=True),
    Column("discount_key", String(255)),  # the referee's first-order discount (rewards.key)
    created(),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("qualified_at", UTCDateTime),
)

# Keyed digests of the shipping addresses a customer's paid orders went to: enough to tell that a
# referee ships to the referrer's home, without keeping the address.
referral_households = Table(
    "referral_households",
    metadata,
    Column("customer_id", Id, ForeignKey("customers.id"), primary_key=True),
    Column("digest", String(64), primary_key=True),
)

"""Domain events: what the platform adapters turn webhook payloads into.

Plugins react to these, never to raw payloads, so a feature works the same
whether the order came from a webhook, a bulk import or a CSV. Money is
``Money`` (Decimal + ISO currency); every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self):
        if not isinstance(self.amount, Decimal):
            object.__setattr__(self, "amount", Decimal(str(self.amount)))
        if not (isinstance(self.currency, str) and len(self.currency) == 3):
            raise ValueError(f"currency must be an ISO 4217 code, got {self.currency!r}")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


@dataclass
class CustomerInfo:
    """Identity and contact facts about a person, as far as one payload knows them."""

    shopify_id: int | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    locale: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    province: str | None = None  # province/state code
    marketing_consent: str | None = None  # subscribed / unsubscribed / not_subscribed / ...
    tags: list[str] = field(default_factory=list)
    zendesk_user_id: int | None = None
    external_id: str | None = None
    updated_at: datetime | None = None
    #: ``"namespace.key" -> value`` of the metafields the webhook subscription asked for.
    metafields: dict[str, str] = field(default_factory=dict)


@dataclass
class OrderLine:
    line_id: int | None
    sku: str | None
    product_id: int | None
    variant_id: int | None
    title: str | None
    quantity: int
    price: Money  # unit price, shop money
    total_discount: Money  # discount on the whole line, shop money
    product_type: str | None = None
    vendor: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class Order:
    shopify_id: int
    name: str | None
    customer: CustomerInfo | None
    email: str | None
    currency: str  # shop currency
    presentment_currency: str | None
    subtotal: Money  # after discounts, without shipping and taxes; shop money
    total: Money
    total_discounts: Money
    total_tax: Money
    shipping: Money
    presentment_subtotal: Money | None
    financial_status: str | None
    fulfillment_status: str | None
    created_at: datetime
    updated_at: datetime | None
    processed_at: datetime | None = None
    cancelled_at: datetime | None = None
    closed_at: datetime | None = None
    fulfilled_at: datetime | None = None
    locale: str | None = None
    tags: list[str] = field(default_factory=list)
    discount_codes: list[str] = field(default_factory=list)
    lines: list[OrderLine] = field(default_factory=list)
    test: bool = False
    source: str = "webhook"
    #: Street, postcode and country of the shipping address, only to recognise a household
    #: (referral abuse checks keep a keyed digest of it, never the words).
    shipping_address: dict[str, str] | None = None

    @property
    def gid(self) -> str:
        return f"gid://shopify/Order/{self.shopify_id}"


@dataclass
class Refund:
    shopify_id: int
    order_id: int  # Shopify order id
    created_at: datetime
    merchandise: Money  # refunded merchandise amount (line subtotals), shop money
    lines: list[dict[str, Any]] = field(default_factory=list)  # {line_id, quantity, subtotal}
    note: str | None = None


@dataclass
class Fulfillment:
    shopify_id: int
    order_id: int
    status: str | None
    created_at: datetime
    updated_at: datetime | None = None
    line_ids: list[int] = field(default_factory=list)


@dataclass
class Ticket:
    zendesk_id: int
    subject: str | None
    description: str | None
    status: str | None  # new / open / pending / hold / solved / closed (lower case)
    priority: str | None  # low / normal / high / urgent (lower case)
    tags: list[str]
    requester: CustomerInfo | None
    created_at: datetime | None
    updated_at: datetime | None
    group_id: int | None = None
    form_id: int | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    via: str | None = None


@dataclass
class Comment:
    ticket_id: int
    author_id: int | None
    public: bool
    body: str | None
    created_at: datetime
    by_agent: bool | None = None


@dataclass
class Rating:
    source: str  # "zendesk" or "followup"
    source_id: str
    score: str  # good / bad / offered / 1..5 as text
    value: float | None  # normalised 0..1 (bad=0, good=1), None when only offered
    comment: str | None
    created_at: datetime
    ticket_id: int | None = None
    customer: CustomerInfo | None = None
    order_id: int | None = None


# ---------------------------------------------------------------------------
# The events themselves. ``name`` is also the hook that reacts to the event.


@dataclass
class Event:
    name = "event"
    platform: str = field(default="", kw_only=True)
    shop: str = field(default="", kw_only=True)
    occurred_at: datetime | None = field(default=None, kw_only=True)


@dataclass
class OrderCreated(Event):
    name = "order_created"
    order: Order


@dataclass
class OrderUpdated(Event):
    name = "order_updated"
    order: Order


@dataclass
class OrderPaid(Event):
    name = "order_paid"
    order: Order


@dataclass
class OrderCancelled(Event):
    name = "order_cancelled"
    order: Order


@dataclass
class OrderFulfilled(Event):
    name = "order_fulfilled"
    order: Order | None  # None for fulfillments/* deliveries, which carry only the order id
    fulfillment: Fulfillment | None = None

    @property
    def order_id(self) -> int | None:
        """The Shopify order id, from the order, or from the fulfillment when there is no order."""
        if self.order is not None:
            return self.order.shopify_id
        return self.fulfillment.order_id if self.fulfillment is not None else None


@dataclass
class RefundCreated(Event):
    name = "refund_created"
    refund: Refund


@dataclass
class CustomerUpdated(Event):
    name = "customer_updated"
    customer: CustomerInfo
    created: bool = False


@dataclass
class CustomerDeleted(Event):
    name = "customer_deleted"
    customer: CustomerInfo


@dataclass
class CustomerDataRequest(Event):
    name = "customer_data_request"
    customer: CustomerInfo
    orders_requested: list[int] = field(default_factory=list)
    request_id: int | None = None


@dataclass
class CustomerRedact(Event):
    name = "customer_redact"
    customer: CustomerInfo
    orders_to_redact: list[int] = field(default_factory=list)


@dataclass
class ShopRedact(Event):
    name = "shop_redact"


@dataclass
class AppUninstalled(Event):
    name = "app_uninstalled"


@dataclass
class TicketCreated(Event):
    name = "ticket_created"
    ticket: Ticket


@dataclass
class TicketUpdated(Event):
    """Status, priority or tags changed."""

    name = "ticket_updated"
    ticket: Ticket
    changed: list[str] = field(default_factory=list)


@dataclass
class TicketSolved(Event):
    name = "ticket_solved"
    ticket: Ticket


@dataclass
class CommentAdded(Event):
    name = "comment_added"
    ticket: Ticket
    comment: Comment


@dataclass
class SatisfactionRated(Event):
    name = "satisfaction_rated"
    rating: Rating
    ticket: Ticket | None = None


@dataclass
class ShipmentEvent:
    """A carrier tracking event on a fulfillment (``fulfillment_events/create``)."""

    shopify_id: int
    fulfillment_id: int
    order_id: int  # Shopify order id
    status: str  # lower case: confirmed, in_transit, out_for_delivery, delivered, delayed, failure, ...
    happened_at: datetime  # when the carrier reported it (created_at when the payload has no happened_at)
    estimated_delivery_at: datetime | None = None
    message: str | None = None


@dataclass
class ShipmentUpdated(Event):
    name = "shipment_updated"
    shipment: ShipmentEvent


EVENT_TYPES: tuple[type[Event], ...] = (
    OrderCreated,
    OrderUpdated,
    OrderPaid,
    OrderCancelled,
    OrderFulfilled,
    RefundCreated,
    CustomerUpdated,
    CustomerDeleted,
    CustomerDataRequest,
    CustomerRedact,
    ShopRedact,
    AppUninstalled,
    TicketCreated,
    TicketUpdated,
    TicketSolved,
    CommentAdded,
    SatisfactionRated,
    ShipmentUpdated,
)


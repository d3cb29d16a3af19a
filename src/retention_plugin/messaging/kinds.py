"""The built-in message kinds: their default class and the variables their templates use.

The class decides what the contact policy asks of a message: ``marketing``
needs consent and counts against the frequency cap; ``transactional`` needs
neither (quiet hours and rest days still apply). A feature may schedule any
kind with an explicit class; the default here is what it gets otherwise.

The rule used to choose (docs/messaging.md explains it): a message is
transactional only when it tells the customer about something they already
have a relationship with (an order, a product they own, a reward they hold)
and carries no promotional content. Anything that asks for a new purchase,
or a favour such as a review, is marketing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

TRANSACTIONAL = "transactional"
MARKETING = "marketing"
CLASSES = (TRANSACTIONAL, MARKETING)

#: Variables every template gets, whatever the kind (None when unknown).
COMMON_VARIABLES = ("first_name", "last_name", "shop_name", "shop_url", "unsubscribe_url", "locale", "kind",
                    "message_class", "marketing_consent")


@dataclass(frozen=True)
class MessageKind:
    name: str
    message_class: str
    description: str = ""
    #: Template variables the feature must put in the message's ``data``.
    required: tuple[str, ...] = ()
    #: Variables a template may use; missing ones are ``None`` at render time.
    optional: tuple[str, ...] = ()
    #: Sample data: tests render every template with it; ``messages preview`` shows it.
    sample: Mapping = field(default_factory=dict)

    @property
    def variables(self) -> tuple[str, ...]:
        return self.required + self.optional


_OFFER = ("code", "discount_percent", "discount_amount", "currency", "expires_at")

BUILTIN_KINDS: dict[str, MessageKind] = {
    k.name: k
    for k in (
        MessageKind(
            "thank_you", TRANSACTIONAL,
            "Thanks for an order: confirms it arrived and what happens next. No offer in it.",
            required=("order_name", "order_total", "currency"),
            optional=("order_url",),
            sample={"order_name": "#1001", "order_total": "12.50", "currency": "EUR",
                    "order_url": "https://shop.example/orders/1001"},
        ),
        MessageKind(
            "voucher", MARKETING,
            "A thank-you offer: a discount code for the next order.",
            required=("code", "expires_at"),
            optional=("discount_percent", "discount_amount", "currency", "minimum_amount"),
            sample={"code": "THANKS-7KQ2", "discount_percent": "10", "discount_amount": None,
                    "currency": "EUR", "expires_at": "2026-04-30", "minimum_amount": "30.00"},
        ),
        MessageKind(
            "follow_up", MARKETING,
            "After delivery: asks for a one-click rating of the order.",
            required=("order_name", "rating_url_good", "rating_url_bad"),
            sample={"order_name": "#1001", "rating_url_good": "https://shop.example/r/abc?score=good",
                    "rating_url_bad": "https://shop.example/r/abc?score=bad"},
        ),
        MessageKind(
            "delay_apology", TRANSACTIONAL,
            "An order is late or its delivery went wrong: says so, gives the new estimate, may include a "
            "goodwill code. ``reason``: unshipped (default), delayed, stalled, failure, attempted_delivery.",
            required=("order_name",),
            optional=("new_estimate", "reason") + _OFFER,
            sample={"order_name": "#1001", "new_estimate": "2026-03-06", "code": "SORRY-3XP9",
                    "discount_percent": None, "discount_amount": "5.00", "currency": "EUR",
                    "expires_at": "2026-05-31"},
        ),
        MessageKind(
            "reminder", MARKETING,
            "Replenishment: the product bought regularly is probably running out.",
            required=("product_title", "reorder_url"),
            optional=("last_ordered_at",),
            sample={"product_title": "Espresso beans 1 kg", "reorder_url": "https://shop.example/products/espresso",
                    "last_ordered_at": "2026-02-01T10:00:00+00:00"},
        ),
        MessageKind(
            "service_reminder", TRANSACTIONAL,
            "A product the customer owns is due for service (maintenance, inspection, filter change).",
            required=("product_title", "service_name", "due_date"),
            optional=("booking_url",),
            sample={"product_title": "Coffee machine X200", "service_name": "descaling",
                    "due_date": "2026-03-15", "booking_url": "https://shop.example/service"},
        ),
        MessageKind(
            "recall", TRANSACTIONAL,
            "A safety recall: stop using the product, what to do, acknowledge receipt.",
            required=("product_title", "recall_title", "ack_url"),
            optional=("order_name", "instructions", "remedy"),
            sample={"product_title": "Kettle K1", "recall_title": "the lid can come loose and cause burns",
                    "ack_url": "https://shop.example/recall/ack/abc", "order_name": "#1001",
                    "instructions": None, "remedy": None},
        ),
        MessageKind(
            "reward", TRANSACTIONAL,
            "A loyalty reward the customer earned, with its code.",
            required=("code",),
            optional=("reward_description", "free_item", "points_balance") + _OFFER[1:],
            sample={"code": "REWARD-9ZT4", "reward_description": None, "free_item": None, "discount_percent": None,
                    "discount_amount": "10.00", "currency": "EUR", "expires_at": "2026-06-30",
                    "points_balance": 120},
        ),
        MessageKind(
            "points_expiry", TRANSACTIONAL,
            "Loyalty points the customer holds are about to expire, and when.",
            required=("points", "expires_at"),
            sample={"points": 350, "expires_at": "2026-03-31"},
        ),
        MessageKind(
            "win_back", MARKETING,
            "A customer who stopped buying: we miss you, optionally with an offer.",
            optional=_OFFER,
            sample={"code": "COMEBACK-4RT8", "discount_percent": "15", "discount_amount": None,
                    "currency": "EUR", "expires_at": "2026-04-15"},
        ),
        MessageKind(
            "recovery_apology", TRANSACTIONAL,
            "Service recovery: an apology for a bad experience, with the goodwill offer made.",
            required=("offer_kind", "amount", "currency"),
            optional=("code", "expires_at", "ticket_id"),
            sample={"offer_kind": "discount_code", "amount": "10.00", "currency": "EUR", "code": "SORRY-3XP9Q2",
                    "expires_at": "2026-05-31", "ticket_id": 4242},
        ),
    )
}

#: Transactional kinds a customer may decline (``[contact_policy] courtesy_kinds``): a thank-you
#: from this plugin is a courtesy on top of the store's own order confirmation, so its mail offers
#: List-Unsubscribe and an explicit unsubscribe stops it; a recall or a service notice never does.
COURTESY_KINDS = ("thank_you",)

#: Kinds that are safety notices: with ``[contact_policy] safety_ignores_quiet_hours`` they go out at once.
SAFETY_KINDS = ("recall",)


def builtin_classes() -> dict[str, str]:
    return {name: k.message_class for name, k in BUILTIN_KINDS.items()}


def check_class(message_class: str) -> str:
    if message_class not in CLASSES:
        raise ValueError(f"message class must be 'transactional' or 'marketing', got {message_class!r}")
    return message_class


class KindRegistry:
    """Kinds known to this process: the built-ins plus what plugins registered.

    Fed from the ``register_message_kinds`` hook; a kind registered twice with
    different classes is an error, because which one wins would depend on
    plugin order.
    """

    def __init__(self, kinds: Iterable[tuple[str, str]] = ()):
        self._classes: dict[str, str] = {}
        for name, cls in kinds:
            self.register(name, cls)

    def register(self, kind: str, message_class: str) -> None:
        if not isinstance(kind, str) or not kind or len(kind) > 32:
            raise ValueError(f"message kind must be a non-empty string of at most 32 characters, got {kind!r}")
        check_class(message_class)
        old = self._classes.get(kind)
        if old is not None and old != message_class:
            raise ValueError(f"message kind {kind!r} registered as both {old!r} and {message_class!r}")
        self._classes[kind] = message_class

    def class_of(self, kind: str) -> str:
        try:
            return self._classes[kind]
        except KeyError:
            raise KeyError(f"unknown message kind {kind!r} (known: {', '.join(sorted(self._classes))})") from None

    def __contains__(self, kind: str) -> bool:
        return kind in self._classes

    def names(self) -> list[str]:
        return sorted(self._classes)

    @classmethod
    def from_pm(cls, pm=None) -> "KindRegistry":
        """Built-ins, plus every kind the plugins registered (when a plugin manager is given)."""
        reg = cls(builtin_classes().items())
        if pm is not None:
            pm.hook.register_message_kinds(register=reg.register)
        return reg

"""Shopify webhook payloads -> domain events.

:func:`parse_shopify` is the one entry point: a topic (the
``X-Shopify-Topic`` header), the decoded JSON body and the shop domain give a
list of :mod:`retention_plugin.events` objects. Schemas tolerate fields they
do not know (``unknown=EXCLUDE``), so new Shopify API versions do not break
parsing; a field we rely on that is missing or malformed raises
:class:`PayloadError` naming it.

Money rules (see docs/platforms.md):

- accounting amounts are shop money: ``<field>_set.shop_money`` when the
  payload has it, else the plain string field in the order's ``currency``;
- ``Order.subtotal`` is ``subtotal_price``: after discounts, before
  shipping, duties and taxes, as first charged. ``current_subtotal_price``
  also nets out later refunds and edits; since refunds arrive separately as
  ``RefundCreated`` (and reverse loyalty points there), earning on the
  current value would count a refund twice whenever ``orders/updated`` or a
  late ``orders/paid`` arrives after it;
- amounts are ``Decimal``; numbers Shopify sends as JSON numbers go through
  ``str`` first, and ids are never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Mapping

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from ...events import (
    AppUninstalled,
    CustomerDataRequest,
    CustomerDeleted,
    CustomerInfo,
    CustomerRedact,
    CustomerUpdated,
    Event,
    Fulfillment,
    Money,
    Order,
    OrderCancelled,
    OrderCreated,
    OrderFulfilled,
    OrderLine,
    OrderPaid,
    OrderUpdated,
    Refund,
    RefundCreated,
    ShopRedact,
)
from ..errors import PayloadError, UnsupportedTopic
from . import fulfillment_events
from ..schema_fields import (
    Amount,
    BlankableString,
    Count,
    Id,
    Inline,
    Text,
    UtcDateTime,
    load_body,
    normalise_email,
    payload_error_from,
    split_tags,
)

PLATFORM = "shopify"

#: ISO 4217 "no currency": used only for a refund that moves no merchandise
#: money and whose payload names no currency at all.
NO_CURRENCY = "XXX"


# --- schemas -----------------------------------------------------------------


class _Schema(Schema):
    class Meta:
        unknown = EXCLUDE


def _opt_str():
    return BlankableString(allow_none=True, load_default=None)


def _opt_list(schema):
    return fields.List(Inline(schema), allow_none=True, load_default=list)


class MoneySchema(_Schema):
    amount = Amount(required=True)
    currency_code = Text(required=True)


class MoneySetSchema(_Schema):
    shop_money = Inline(MoneySchema, allow_none=True, load_default=None)
    presentment_money = Inline(MoneySchema, allow_none=True, load_default=None)


def _money_set():
    return Inline(MoneySetSchema, allow_none=True, load_default=None)


def _amount():
    return Amount(allow_none=True, load_default=None)


class AddressSchema(_Schema):
    country_code = _opt_str()
    province_code = _opt_str()


class ConsentSchema(_Schema):
    state = _opt_str()


class MetafieldSchema(_Schema):
    namespace = _opt_str()
    key = _opt_str()
    value = fields.Raw(allow_none=True, load_default=None)


class ShippingAddressSchema(_Schema):
    address1 = _opt_str()
    address2 = _opt_str()
    zip = _opt_str()
    city = _opt_str()
    country_code = _opt_str()


class CustomerSchema(_Schema):
    id = Id(required=True)
    email = _opt_str()
    first_name = _opt_str()
    last_name = _opt_str()
    phone = _opt_str()
    locale = _opt_str()
    tags = fields.Raw(allow_none=True, load_default=None)
    default_address = Inline(AddressSchema, allow_none=True, load_default=None)
    email_marketing_consent = Inline(ConsentSchema, allow_none=True, load_default=None)
    # Present only when the subscription names namespaces (metafieldNamespaces / metafields).
    metafields = _opt_list(MetafieldSchema)
    created_at = UtcDateTime(allow_none=True, load_default=None)
    updated_at = UtcDateTime(allow_none=True, load_default=None)


class DiscountAllocationSchema(_Schema):
    amount = _amount()
    amount_set = _money_set()


class LineItemSchema(_Schema):
    id = Id(allow_none=True, load_default=None)
    sku = _opt_str()
    title = _opt_str()
    name = _opt_str()
    vendor = _opt_str()
    product_type = _opt_str()
    product_id = Id(allow_none=True, load_default=None)
    variant_id = Id(allow_none=True, load_default=None)
    quantity = Count(required=True)
    price = _amount()
    price_set = _money_set()
    total_discount = _amount()
    total_discount_set = _money_set()
    discount_allocations = _opt_list(DiscountAllocationSchema)


class DiscountCodeSchema(_Schema):
    code = _opt_str()


class ShippingLineSchema(_Schema):
    price = _amount()
    price_set = _money_set()


class FulfillmentLineSchema(_Schema):
    id = Id(allow_none=True, load_default=None)


class FulfillmentSchema(_Schema):
    id = Id(required=True)
    order_id = Id(required=True)
    status = _opt_str()
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(allow_none=True, load_default=None)
    line_items = _opt_list(FulfillmentLineSchema)


class OrderFulfillmentSchema(FulfillmentSchema):
    # Inside an order the parent id is implied; tolerate its absence.
    order_id = Id(allow_none=True, load_default=None)


class OrderSchema(_Schema):
    id = Id(required=True)
    name = _opt_str()
    email = _opt_str()
    contact_email = _opt_str()
    currency = Text(required=True)
    presentment_currency = _opt_str()
    subtotal_price = _amount()
    subtotal_price_set = _money_set()
    total_price = _amount()
    total_price_set = _money_set()
    total_discounts = _amount()
    total_discounts_set = _money_set()
    total_tax = _amount()
    total_tax_set = _money_set()
    total_shipping_price_set = _money_set()
    shipping_lines = _opt_list(ShippingLineSchema)
    financial_status = _opt_str()
    fulfillment_status = _opt_str()
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(allow_none=True, load_default=None)
    processed_at = UtcDateTime(allow_none=True, load_default=None)
    cancelled_at = UtcDateTime(allow_none=True, load_default=None)
    closed_at = UtcDateTime(allow_none=True, load_default=None)
    customer_locale = _opt_str()
    tags = fields.Raw(allow_none=True, load_default=None)
    discount_codes = _opt_list(DiscountCodeSchema)
    line_items = _opt_list(LineItemSchema)
    customer = Inline(CustomerSchema, allow_none=True, load_default=None)
    billing_address = Inline(AddressSchema, allow_none=True, load_default=None)
    shipping_address = Inline(ShippingAddressSchema, allow_none=True, load_default=None)
    fulfillments = _opt_list(OrderFulfillmentSchema)
    test = fields.Boolean(allow_none=True, load_default=False)


class RefundLineSchema(_Schema):
    id = Id(allow_none=True, load_default=None)
    line_item_id = Id(allow_none=True, load_default=None)
    quantity = Count(required=True)
    subtotal = _amount()
    subtotal_set = _money_set()
    restock_type = _opt_str()


class RefundSchema(_Schema):
    id = Id(required=True)
    order_id = Id(required=True)
    created_at = UtcDateTime(required=True)
    note = _opt_str()
    refund_line_items = _opt_list(RefundLineSchema)


class PrivacyCustomerSchema(_Schema):
    id = Id(required=True)
    email = _opt_str()
    phone = _opt_str()


class DataRequestSchema(_Schema):
    id = Id(required=True)


# The privacy topics' documented fields are all required: a body that lacks one
# is some other topic's body re-sent under a privacy topic (see SHAPES).


class ShopRedactSchema(_Schema):
    shop_id = Id(required=True)
    shop_domain = BlankableString(required=True)


class CustomerDataRequestSchema(ShopRedactSchema):
    customer = Inline(PrivacyCustomerSchema, required=True)
    orders_requested = fields.List(Id(), required=True)
    data_request = Inline(DataRequestSchema, required=True)


class CustomerRedactSchema(ShopRedactSchema):
    customer = Inline(PrivacyCustomerSchema, required=True)
    orders_to_redact = fields.List(Id(), required=True)


class ShopSchema(_Schema):
    myshopify_domain = _opt_str()


class CustomerDeleteSchema(_Schema):
    id = Id(required=True)


def _load(schema: type[Schema], payload: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return load_body(schema, payload)
    except ValidationError as exc:
        raise payload_error_from(exc) from None


# --- money ---------------------------------------------------------------------


def _currency(code: Any, field: str) -> str:
    if not isinstance(code, str) or len(code.strip()) != 3 or not code.strip().isalpha():
        raise PayloadError(field, f"not an ISO 4217 currency code: {code!r}")
    return code.strip().upper()


def _shop_money(
    data: Mapping[str, Any], name: str, currency: str, *, required: bool = False
) -> Money | None:
    """``<name>_set.shop_money`` if present, else ``<name>`` in the order currency."""
    money_set = data.get(f"{name}_set")
    if money_set and money_set.get("shop_money"):
        shop = money_set["shop_money"]
        return Money(shop["amount"], _currency(shop["currency_code"], f"{name}_set.shop_money"))
    plain = data.get(name)
    if plain is not None:
        return Money(plain, currency)
    if required:
        raise PayloadError(name, "missing (neither it nor its _set.shop_money is present)")
    return None


def _presentment_money(data: Mapping[str, Any], name: str) -> Money | None:
    money_set = data.get(f"{name}_set")
    if money_set and money_set.get("presentment_money"):
        pm = money_set["presentment_money"]
        return Money(pm["amount"], _currency(pm["currency_code"], f"{name}_set.presentment_money"))
    return None


def _zero(currency: str) -> Money:
    return Money(Decimal("0"), currency)


def _sum(values: list[Money], currency: str, field: str) -> Money:
    total = Decimal("0")
    for value in values:
        if value.currency != currency:
            raise PayloadError(field, f"mixes currencies {value.currency} and {currency}")
        total += value.amount
    return Money(total, currency)


# --- building domain objects -------------------------------------------------------


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


def _customer_info(
    data: Mapping[str, Any] | None,
    *,
    fallback_email: str | None = None,
    fallback_locale: str | None = None,
    fallback_address: Mapping[str, Any] | None = None,
) -> CustomerInfo | None:
    if not data:
        return None
    address = data.get("default_address") or fallback_address or {}
    consent = data.get("email_marketing_consent") or {}
    return CustomerInfo(
        shopify_id=data["id"],
        email=normalise_email(data.get("email")) or fallback_email,
        first_name=data.get("first_name"),
        last_name=data.get("last_name"),
        phone=data.get("phone"),
        locale=data.get("locale") or fallback_locale,
        country=_upper(address.get("country_code")),
        province=address.get("province_code"),
        marketing_consent=_lower(consent.get("state")),
        tags=split_tags(data.get("tags")),
        updated_at=data.get("updated_at"),
        metafields={f"{m['namespace']}.{m['key']}": str(m["value"]) for m in data.get("metafields") or []
                    if m.get("namespace") and m.get("key") and m.get("value") is not None},
    )


def _line(data: Mapping[str, Any], currency: str, index: int) -> OrderLine:
    where = f"line_items.{index}"
    price = _shop_money(data, "price", currency)
    if price is None:
        raise PayloadError(f"{where}.price", "missing")
    allocations = data.get("discount_allocations") or []
    if allocations:
        # Shopify recommends discount_allocations over the older total_discount.
        parts = []
        for j, alloc in enumerate(allocations):
            money = _shop_money(alloc, "amount", currency)
            if money is None:
                raise PayloadError(f"{where}.discount_allocations.{j}.amount", "missing")
            parts.append(money)
        discount = _sum(parts, price.currency, f"{where}.discount_allocations")
    else:
        discount = _shop_money(data, "total_discount", currency) or _zero(price.currency)
    return OrderLine(
        line_id=data.get("id"),
        sku=data.get("sku"),
        product_id=data.get("product_id"),
        variant_id=data.get("variant_id"),
        title=data.get("title") or data.get("name"),
        quantity=data["quantity"],
        price=price,
        total_discount=discount,
        product_type=data.get("product_type"),
        vendor=data.get("vendor"),
    )


def _fulfillment(data: Mapping[str, Any], order_id: int | None = None) -> Fulfillment:
    return Fulfillment(
        shopify_id=data["id"],
        order_id=data.get("order_id") or order_id,
        status=_lower(data.get("status")),
        created_at=data["created_at"],
        updated_at=data.get("updated_at"),
        line_ids=[li["id"] for li in data.get("line_items") or [] if li.get("id") is not None],
    )


def _latest_success(fulfillments: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    done = [f for f in fulfillments if (f.get("status") or "").lower() == "success"]
    return max(done, key=lambda f: f["created_at"]) if done else None


def build_order(payload: Mapping[str, Any], *, source: str = "webhook") -> Order:
    """An :class:`Order` from a Shopify order JSON object (webhook or REST shape).

    Exposed for the bulk importer, which reads the same shape.
    """
    return _order_from(_load(OrderSchema, payload), source=source)


def _order_from(data: Mapping[str, Any], *, source: str = "webhook") -> Order:
    currency = _currency(data["currency"], "currency")
    subtotal = _shop_money(data, "subtotal_price", currency, required=True)
    total = _shop_money(data, "total_price", currency, required=True)
    shipping = _shop_money(data, "total_shipping_price", currency)
    if shipping is None:
        lines = [_shop_money(s, "price", currency) for s in data.get("shipping_lines") or []]
        shipping = _sum([m for m in lines if m is not None], currency, "shipping_lines")
    order_email = normalise_email(data.get("email")) or normalise_email(data.get("contact_email"))
    fulfillments = data.get("fulfillments") or []
    latest = _latest_success(fulfillments)
    fulfilled_at = None
    if latest is not None and (data.get("fulfillment_status") or "").lower() == "fulfilled":
        fulfilled_at = latest["created_at"]
    presentment_currency = data.get("presentment_currency")
    return Order(
        shopify_id=data["id"],
        name=data.get("name"),
        customer=_customer_info(
            data.get("customer"),
            fallback_email=order_email,
            fallback_locale=data.get("customer_locale"),
            fallback_address=data.get("billing_address"),
        ),
        email=order_email,
        currency=currency,
        presentment_currency=(
            _currency(presentment_currency, "presentment_currency") if presentment_currency else None
        ),
        subtotal=subtotal,
        total=total,
        total_discounts=_shop_money(data, "total_discounts", currency) or _zero(currency),
        total_tax=_shop_money(data, "total_tax", currency) or _zero(currency),
        shipping=shipping,
        presentment_subtotal=_presentment_money(data, "subtotal_price"),
        financial_status=_lower(data.get("financial_status")),
        fulfillment_status=_lower(data.get("fulfillment_status")),
        created_at=data["created_at"],
        updated_at=data.get("updated_at"),
        processed_at=data.get("processed_at"),
        cancelled_at=data.get("cancelled_at"),
        closed_at=data.get("closed_at"),
        fulfilled_at=fulfilled_at,
        locale=data.get("customer_locale") or None,
        tags=split_tags(data.get("tags")),
        discount_codes=[d["code"] for d in data.get("discount_codes") or [] if d.get("code")],
        lines=[_line(li, currency, i) for i, li in enumerate(data.get("line_items") or [])],
        test=bool(data.get("test")),
        source=source,
        shipping_address=_address_parts(data.get("shipping_address")),
    )


def _address_parts(address: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not address:
        return None
    parts = {k: str(address[k]) for k in ("address1", "address2", "zip", "city", "country_code") if address.get(k)}
    return parts or None


def build_refund(payload: Mapping[str, Any], *, shop_currency: str | None = None) -> Refund:
    """A :class:`Refund` whose ``merchandise`` is the sum of refunded line subtotals."""
    data = _load(RefundSchema, payload)
    fallback = _currency(shop_currency, "shop_currency") if shop_currency else None
    amounts: list[tuple[Decimal, str | None]] = []
    lines = []
    for i, rli in enumerate(data.get("refund_line_items") or []):
        shop = (rli.get("subtotal_set") or {}).get("shop_money")
        if shop:
            amount = shop["amount"]
            currency = _currency(shop["currency_code"], f"refund_line_items.{i}.subtotal_set")
        elif rli.get("subtotal") is not None:
            amount, currency = rli["subtotal"], fallback
        else:
            raise PayloadError(f"refund_line_items.{i}.subtotal", "missing")
        amounts.append((amount, currency))
        lines.append(
            {"line_id": rli.get("line_item_id"), "quantity": rli["quantity"], "subtotal": amount}
        )
    currencies = {c for _, c in amounts if c}
    if len(currencies) > 1:
        raise PayloadError("refund_line_items", f"mixes currencies {sorted(currencies)}")
    currency = currencies.pop() if currencies else fallback
    total = sum((a for a, _ in amounts), Decimal("0"))
    if currency is None:
        if total != 0:
            raise PayloadError(
                "refund_line_items.0.subtotal_set",
                "no shop currency given for a non-zero refund; pass shop_currency",
            )
        currency = NO_CURRENCY
    return Refund(
        shopify_id=data["id"],
        order_id=data["order_id"],
        created_at=data["created_at"],
        merchandise=Money(total, currency),
        lines=lines,
        note=data.get("note"),
    )


def build_customer(payload: Mapping[str, Any]) -> CustomerInfo:
    """A :class:`CustomerInfo` from a Shopify customer JSON object."""
    data = _load(CustomerSchema, payload)
    return _customer_info(data)


# --- which body belongs to which topic ------------------------------------------------
#
# Shopify's HMAC covers the body, not the X-Shopify-Topic or X-Shopify-Shop-Domain
# headers: whoever captured one signed delivery can re-send its body under another
# topic. So before any effect the body must have its topic's documented shape
# (Shopify's Webhooks reference, and for the privacy topics "Privacy law
# compliance", shopify.dev/docs/apps/build/compliance/privacy-law-compliance).
#
# Each kind of body Shopify sends us has keys no other kind has at its top level
# (its *markers*). A topic's body must carry its required keys and none of the
# other kinds' markers; a body naming its own resource (``admin_graphql_api_id``)
# must name the topic's resource. The destructive privacy
# topics take their documented keys exactly, no more and no fewer.

#: Top-level keys that only one kind of body has.
_MARKERS: dict[str, frozenset[str]] = {
    "order": frozenset({"financial_status", "total_price", "subtotal_price", "order_number", "checkout_id"}),
    "refund": frozenset({"refund_line_items", "order_adjustments"}),
    "fulfillment": frozenset({"tracking_number", "tracking_numbers", "tracking_company", "shipment_status"}),
    "child": frozenset({"order_id"}),  # refunds and fulfillments belong to an order
    "customer": frozenset({"addresses", "verified_email", "tax_exemptions", "multipass_identifier"}),
    "shop": frozenset({"myshopify_domain", "shop_owner", "money_format", "plan_name"}),
    "privacy": frozenset({"shop_domain", "orders_to_redact", "orders_requested", "data_request"}),
    "fulfillment_event": frozenset({"fulfillment_id", "happened_at"}),
}


@dataclass(frozen=True)
class TopicShape:
    """What one topic's body must look like before it has any effect.

    :param kind: the kind of body (a key of ``_MARKERS`` families) for messages.
    :param markers: which ``_MARKERS`` families belong to this kind; every
        other family's keys are refused.
    :param required: keys that must be present (a null value counts).
    :param exact: when set, the body must have exactly these keys.
    :param gid: the resource an ``admin_graphql_api_id`` must name, if present.
    :param check: a further test of the loaded body's meaning (e.g. an
        ``orders/paid`` body must not say the order is unpaid).
    """

    kind: str
    markers: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    exact: frozenset[str] | None = None
    gid: str | None = None
    check: Callable[[Mapping[str, Any]], None] | None = None

    def verify(self, topic: str, payload: Mapping[str, Any]) -> None:
        keys = set(payload)
        if self.exact is not None:
            missing = sorted(self.exact - keys)
            if missing:
                raise PayloadError(missing[0], f"missing: a {topic} body has exactly {sorted(self.exact)}")
            extra = sorted(keys - self.exact)
            if extra:
                raise PayloadError(extra[0], f"not part of a {topic} body, which has exactly {sorted(self.exact)}")
            return
        missing = sorted(self.required - keys)
        if missing:
            raise PayloadError(missing[0], f"missing: required in {self.kind} body ({topic})")
        for family, marker_keys in _MARKERS.items():
            if family in self.markers:
                continue
            found = sorted(marker_keys & keys)
            if found:
                raise PayloadError(found[0], f"belongs to another kind of body than {self.kind} ({topic})")
        if self.gid is not None:
            _check_gid(payload, self.gid)


def _check_gid(payload: Mapping[str, Any], resource: str) -> None:
    gid = payload.get("admin_graphql_api_id")
    if gid is None:
        return
    if not isinstance(gid, str) or not gid.startswith(f"gid://shopify/{resource}/"):
        raise PayloadError("admin_graphql_api_id", f"names {str(gid)[:80]!r}, not a {resource}")


#: Financial statuses (Shopify's OrderDisplayFinancialStatus, lower case in webhook bodies) of an order
#: money was taken for. Pending, authorized and expired orders were never paid; voided and refunded
#: ones were paid back in full (a partial refund is reversed by its refunds/create). Points, vouchers
#: and punches hang off orders/paid, and the signed body is what says the order is paid: a body that
#: says otherwise, or says nothing, pays nothing.
PAID_STATUSES = frozenset({"paid", "partially_paid", "partially_refunded"})


def _paid_order(data: Mapping[str, Any]) -> None:
    status = data.get("financial_status")
    if not (isinstance(status, str) and status.strip().lower() in PAID_STATUSES):
        shown = "missing" if status is None else repr(status)[:40]
        raise PayloadError("financial_status", f"{shown}: an orders/paid body must say the order is paid "
                                               f"({', '.join(sorted(PAID_STATUSES))})")


def _cancelled_order(data: Mapping[str, Any]) -> None:
    if data.get("cancelled_at") is None:
        raise PayloadError("cancelled_at", "missing: an orders/cancelled body is for a cancelled order")


def _fulfilled_order(data: Mapping[str, Any]) -> None:
    status = data.get("fulfillment_status")
    if not (isinstance(status, str) and status.strip().lower() == "fulfilled"):
        raise PayloadError("fulfillment_status", f"{status!r}: an orders/fulfilled body is for a fulfilled order")


def _order_shape(check=None) -> TopicShape:
    return TopicShape("an order", frozenset({"order"}), frozenset({"id", "currency", "created_at", "line_items"}),
                      gid="Order", check=check)


_REFUND = TopicShape("a refund", frozenset({"refund", "child"}),
                     frozenset({"id", "order_id", "created_at", "refund_line_items"}), gid="Refund")
_FULFILLMENT = TopicShape("a fulfillment", frozenset({"fulfillment", "child"}),
                          frozenset({"id", "order_id", "created_at"}), gid="Fulfillment")
_FULFILLMENT_EVENT = TopicShape("a fulfillment event", frozenset({"fulfillment_event", "child"}),
                                frozenset({"id", "fulfillment_id", "order_id", "status"}), gid="FulfillmentEvent")
_CUSTOMER = TopicShape("a customer", frozenset({"customer"}), frozenset({"id"}), gid="Customer")
_SHOP = TopicShape("a shop", frozenset({"shop"}), frozenset({"id", "name", "myshopify_domain"}))


def _exact(*keys: str) -> TopicShape:
    return TopicShape("a privacy request", exact=frozenset(keys))


#: The documented shape of every topic :func:`parse_shopify` handles. A new topic
#: adds its handler to ``_HANDLERS`` and its shape here (a test checks both agree).
SHAPES: dict[str, TopicShape] = {
    "orders/create": _order_shape(),
    "orders/updated": _order_shape(),
    "orders/paid": _order_shape(_paid_order),
    "orders/cancelled": _order_shape(_cancelled_order),
    "orders/fulfilled": _order_shape(_fulfilled_order),
    "fulfillments/create": _FULFILLMENT,
    "fulfillments/update": _FULFILLMENT,
    "fulfillment_events/create": _FULFILLMENT_EVENT,
    "refunds/create": _REFUND,
    "customers/create": _CUSTOMER,
    "customers/update": _CUSTOMER,
    "customers/delete": _CUSTOMER,
    "customers/data_request": _exact("shop_id", "shop_domain", "customer", "orders_requested", "data_request"),
    "customers/redact": _exact("shop_id", "shop_domain", "customer", "orders_to_redact"),
    "shop/redact": _exact("shop_id", "shop_domain"),
    "app/uninstalled": _SHOP,
}


# --- topics ------------------------------------------------------------------------


def _same_shop(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def _check_shop(domain: str | None, shop: str, field: str) -> None:
    # The shop header is not covered by the HMAC; the body is. A body that
    # names another shop than the one it was delivered for is refused.
    if domain and shop and not _same_shop(domain, shop):
        raise PayloadError(field, f"names shop {domain!r}, but was delivered for {shop!r}")


def _check_privacy_shop(domain: str | None, shop: str, configured: str | None) -> None:
    """A privacy request must name, in its signed body, the shop it was delivered for and ours."""
    if not domain:
        raise PayloadError("shop_domain", "missing: a privacy request must name its shop")
    _check_shop(domain, shop, "shop_domain")
    if configured and not _same_shop(domain, configured):
        raise PayloadError("shop_domain", f"names shop {domain!r}, but this installation serves {configured!r}")


def _order_topic(event_cls, when: Callable[[Order], datetime | None]):
    def handle(payload, *, shop, shop_currency, configured_shop):
        order = build_order(payload)
        return [event_cls(order=order, platform=PLATFORM, shop=shop, occurred_at=when(order))]

    return handle


def _orders_fulfilled(payload, *, shop, shop_currency, configured_shop):
    data = _load(OrderSchema, payload)
    order = _order_from(data)
    latest = _latest_success(data.get("fulfillments") or [])
    fulfillment = _fulfillment(latest, order.shopify_id) if latest else None
    if order.fulfilled_at is None:
        # orders/fulfilled means "now fully fulfilled"; without a fulfillment
        # list the update time is the best estimate of when.
        order.fulfilled_at = fulfillment.created_at if fulfillment else order.updated_at
    return [
        OrderFulfilled(
            order=order,
            fulfillment=fulfillment,
            platform=PLATFORM,
            shop=shop,
            occurred_at=order.fulfilled_at,
        )
    ]


def _fulfillment_topic(payload, *, shop, shop_currency, configured_shop):
    data = _load(FulfillmentSchema, payload)
    fulfillment = _fulfillment(data)
    if fulfillment.status != "success":
        # pending/open/cancelled/failure/error fulfillments ship nothing yet.
        return []
    # The payload carries the fulfillment, not the order: ``order`` is None
    # and handlers look the order up by ``fulfillment.order_id``.
    return [
        OrderFulfilled(
            order=None,
            fulfillment=fulfillment,
            platform=PLATFORM,
            shop=shop,
            occurred_at=fulfillment.updated_at or fulfillment.created_at,
        )
    ]


def _refunds_create(payload, *, shop, shop_currency, configured_shop):
    refund = build_refund(payload, shop_currency=shop_currency)
    return [RefundCreated(refund=refund, platform=PLATFORM, shop=shop, occurred_at=refund.created_at)]


def _customer_topic(created: bool):
    def handle(payload, *, shop, shop_currency, configured_shop):
        customer = build_customer(payload)
        return [
            CustomerUpdated(
                customer=customer,
                created=created,
                platform=PLATFORM,
                shop=shop,
                occurred_at=customer.updated_at,
            )
        ]

    return handle


def _customers_delete(payload, *, shop, shop_currency, configured_shop):
    data = _load(CustomerDeleteSchema, payload)
    return [CustomerDeleted(customer=CustomerInfo(shopify_id=data["id"]), platform=PLATFORM, shop=shop)]


def _privacy_customer(data: Mapping[str, Any]) -> CustomerInfo:
    customer = data["customer"]
    return CustomerInfo(
        shopify_id=customer["id"],
        email=normalise_email(customer.get("email")),
        phone=customer.get("phone"),
    )


def _customers_data_request(payload, *, shop, shop_currency, configured_shop):
    data = _load(CustomerDataRequestSchema, payload)
    _check_privacy_shop(data.get("shop_domain"), shop, configured_shop)
    return [
        CustomerDataRequest(
            customer=_privacy_customer(data),
            orders_requested=list(data.get("orders_requested") or []),
            request_id=(data.get("data_request") or {}).get("id"),
            platform=PLATFORM,
            shop=shop,
        )
    ]


def _customers_redact(payload, *, shop, shop_currency, configured_shop):
    data = _load(CustomerRedactSchema, payload)
    _check_privacy_shop(data.get("shop_domain"), shop, configured_shop)
    return [
        CustomerRedact(
            customer=_privacy_customer(data),
            orders_to_redact=list(data.get("orders_to_redact") or []),
            platform=PLATFORM,
            shop=shop,
        )
    ]


def _shop_redact(payload, *, shop, shop_currency, configured_shop):
    data = _load(ShopRedactSchema, payload)
    _check_privacy_shop(data.get("shop_domain"), shop, configured_shop)
    return [ShopRedact(platform=PLATFORM, shop=shop)]


def _app_uninstalled(payload, *, shop, shop_currency, configured_shop):
    data = _load(ShopSchema, payload)
    _check_shop(data.get("myshopify_domain"), shop, "myshopify_domain")
    if configured_shop:
        _check_shop(data.get("myshopify_domain"), configured_shop, "myshopify_domain")
    return [AppUninstalled(platform=PLATFORM, shop=shop)]


#: A new topic adds its handler here and its documented shape to SHAPES
#: (tests/adversarial/test_adv_topics.py checks that both list the same topics).
_HANDLERS: dict[str, Callable[..., list[Event]]] = {
    "orders/create": _order_topic(OrderCreated, lambda o: o.created_at),
    "orders/updated": _order_topic(OrderUpdated, lambda o: o.updated_at or o.created_at),
    "orders/paid": _order_topic(OrderPaid, lambda o: o.updated_at or o.processed_at or o.created_at),
    "orders/cancelled": _order_topic(OrderCancelled, lambda o: o.cancelled_at or o.updated_at),
    "orders/fulfilled": _orders_fulfilled,
    "fulfillments/create": _fulfillment_topic,
    "fulfillments/update": _fulfillment_topic,
    "refunds/create": _refunds_create,
    "customers/create": _customer_topic(created=True),
    "customers/update": _customer_topic(created=False),
    "customers/delete": _customers_delete,
    "customers/data_request": _customers_data_request,
    "customers/redact": _customers_redact,
    "shop/redact": _shop_redact,
    "app/uninstalled": _app_uninstalled,
}
_HANDLERS[fulfillment_events.TOPIC] = fulfillment_events.parse  # carrier tracking events (delays)

#: Every topic :func:`parse_shopify` understands, in ``X-Shopify-Topic`` spelling.
SUPPORTED_TOPICS: tuple[str, ...] = tuple(_HANDLERS)


def parse_shopify(
    topic: str,
    payload: Mapping[str, Any],
    *,
    shop: str,
    shop_currency: str | None = None,
    configured_shop: str | None = None,
) -> list[Event]:
    """Turn one Shopify webhook into domain events.

    :param topic: the ``X-Shopify-Topic`` header, e.g. ``orders/paid``.
    :param payload: the decoded JSON body.
    :param shop: the shop domain the delivery belongs to (``x.myshopify.com``).
    :param shop_currency: the shop's currency, used only when a refund
        payload carries no ``subtotal_set`` to say which currency it is in.
    :param configured_shop: ``[shopify] shop``; a privacy request must name
        it (as well as ``shop``) in its body.
    :returns: the events, usually one; empty for a fulfillment that has not
        succeeded (nothing shipped yet).
    :raises UnsupportedTopic: for a topic not in :data:`SUPPORTED_TOPICS`.
    :raises PayloadError: naming the field that is missing or invalid, or
        that shows the body is not this topic's (see :data:`SHAPES`).
    """
    key = topic.strip().lower() if isinstance(topic, str) else ""
    handler = _HANDLERS.get(key)
    if handler is None:
        raise UnsupportedTopic(str(topic), PLATFORM)
    if not isinstance(payload, Mapping):
        raise PayloadError("<payload>", f"expected a JSON object, got {type(payload).__name__}")
    shape = SHAPES[key]
    shape.verify(key, payload)
    try:
        if shape.check is not None:
            shape.check(payload)
        return handler(payload, shop=shop, shop_currency=shop_currency, configured_shop=configured_shop)
    except ValueError as exc:
        if isinstance(exc, PayloadError):
            raise
        # e.g. Money() refusing a currency: still a bad payload, not a crash.
        raise PayloadError("<payload>", str(exc)) from exc

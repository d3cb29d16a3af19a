"""Shopify GraphQL Admin request builders: pure functions returning ``{"query", "variables"}``.

The action runner stores these dicts in ``actions.request`` and performs
them later with :meth:`ShopifyClient.perform`, so variables are plain JSON:
money is sent as a decimal *string* (Shopify's ``Decimal`` scalar accepts
it, and it never passes through a float), times as ISO 8601 UTC.

Shapes follow the Admin API 2026-07: code discounts take ``context``
(which replaced ``customerSelection``); webhook subscriptions take ``uri``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

#: Mutations that must not be repeated after an ambiguous failure (timeout or
#: 5xx after sending): Shopify offers no idempotency key for them, so a blind
#: retry could apply them twice.
NON_IDEMPOTENT_MUTATIONS = frozenset({"storeCreditAccountCredit"})

_GID = re.compile(r"^gid://shopify/[A-Za-z]+/\d+$")


def _gid(value: str, name: str, kind: str | None = None) -> str:
    if not isinstance(value, str) or not _GID.match(value):
        raise ValueError(f"{name} must be a Shopify GID like gid://shopify/Customer/123, got {value!r}")
    if kind and value.split("/")[3] != kind:
        raise ValueError(f"{name} must be a {kind} GID, got {value!r}")
    return value


def _time(value: datetime | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        # floats are refused: money must not pass through binary floating point.
        raise ValueError(f"{name} must be a Decimal, int or decimal string, got {value!r}")
    number = Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"{name} must be finite")
    return number


def _currency(code: Any) -> str:
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha():
        raise ValueError(f"currency must be an ISO 4217 code, got {code!r}")
    return code.upper()


def _tags(tags: Sequence[str]) -> list[str]:
    if isinstance(tags, str) or not tags:
        raise ValueError("tags must be a non-empty list of strings")
    out = [t.strip() for t in tags if isinstance(t, str) and t.strip()]
    if len(out) != len(tags):
        raise ValueError("every tag must be a non-empty string")
    return out


# --- discounts -------------------------------------------------------------------

def _code_discount_create(kind: str) -> str:
    """The create mutation of a code discount of ``kind`` (``Basic``, ``Bxgy``), answering its code and dates."""
    arg = f"{kind.lower()}CodeDiscount"
    return f"""
mutation discountCode{kind}Create(${arg}: DiscountCode{kind}Input!) {{
  discountCode{kind}Create({arg}: ${arg}) {{
    codeDiscountNode {{
      id
      codeDiscount {{
        ... on DiscountCode{kind} {{
          title
          startsAt
          endsAt
          codes(first: 1) {{ nodes {{ code }} }}
        }}
      }}
    }}
    userErrors {{ field code message extraInfo }}
  }}
}}
""".strip()


DISCOUNT_CODE_BASIC_CREATE = _code_discount_create("Basic")


def discount_code_basic_create(
    code: str,
    title: str,
    *,
    percent: Decimal | int | str | None = None,
    amount: Decimal | int | str | None = None,
    currency: str | None = None,
    customer_gid: str | None,
    starts_at: datetime,
    ends_at: datetime | None,
    usage_limit: int | None = 1,
    applies_once_per_customer: bool = True,
    product_gids: Sequence[str] | None = None,
    combines_with: Iterable[str],
) -> dict[str, Any]:
    """A one-customer discount code (``discountCodeBasicCreate``).

    :param percent: percent off, ``0 < percent <= 100`` (``10`` means 10 %);
        sent as Shopify's ``percentage`` fraction (``0.1``).
    :param amount: fixed amount off, with ``currency``; Shopify applies it in
        the shop currency, split across the entitled items.
    :param customer_gid: the only customer who may use it; ``None`` for all.
    :param product_gids: limit to these products; default all items.
    :param combines_with: the discount classes (``order``, ``product``,
        ``shipping``) it may be used together with; required, because
        Shopify's default is none, and a code that silently refuses to stack
        on a tier discount breaks what the shop promised.
    """
    if (percent is None) == (amount is None):
        raise ValueError("give exactly one of percent or amount")
    if not code or not isinstance(code, str) or any(c.isspace() for c in code):
        raise ValueError(f"discount code must be non-empty without spaces, got {code!r}")
    if starts_at is None:
        raise ValueError("starts_at is required")
    if percent is not None:
        pct = _decimal(percent, "percent")
        if not (0 < pct <= 100):
            raise ValueError(f"percent must be in (0, 100], got {pct}")
        # Shopify's percentage is a Float fraction; a ratio, not money.
        value: dict[str, Any] = {"percentage": float(pct / 100)}
    else:
        money = _decimal(amount, "amount")
        if money <= 0:
            raise ValueError("amount must be positive")
        if currency is None:
            raise ValueError("amount needs its currency")
        _currency(currency)
        value = {"discountAmount": {"amount": str(money), "appliesOnEachItem": False}}
    if product_gids:
        items: dict[str, Any] = {
            "products": {"productsToAdd": [_gid(g, "product_gids", "Product") for g in product_gids]}
        }
    else:
        items = {"all": True}
    if customer_gid is None:
        context: dict[str, Any] = {"all": "ALL"}
    else:
        context = {"customers": {"add": [_gid(customer_gid, "customer_gid", "Customer")]}}
    discount: dict[str, Any] = {
        "title": title,
        "code": code,
        "startsAt": _time(starts_at, "starts_at"),
        "endsAt": _time(ends_at, "ends_at"),
        "context": context,
        "customerGets": {"value": value, "items": items},
        "appliesOncePerCustomer": bool(applies_once_per_customer),
        "combinesWith": combines_with_input(combines_with),
    }
    if usage_limit is not None:
        if usage_limit < 1:
            raise ValueError("usage_limit must be at least 1")
        discount["usageLimit"] = int(usage_limit)
    return {"query": DISCOUNT_CODE_BASIC_CREATE, "variables": {"basicCodeDiscount": discount}}


DISCOUNT_CODE_BXGY_CREATE = _code_discount_create("Bxgy")

#: The smallest "customer buys" condition a Buy X get Y discount can have: a purchase of 0.01.
BXGY_MINIMUM_BUY = Decimal("0.01")


def discount_code_free_units(
    code: str,
    title: str,
    *,
    product_gids: Sequence[str] = (),
    variant_gids: Sequence[str] = (),
    quantity: int = 1,
    customer_gid: str,
    starts_at: datetime,
    ends_at: datetime | None,
    combines_with: Iterable[str],
    buys_amount: Decimal | str = BXGY_MINIMUM_BUY,
) -> dict[str, Any]:
    """``quantity`` units of these products free, once, for one customer (``discountCodeBxgyCreate``).

    A basic code can take a percentage off every matching unit or an amount
    off the order, but not 100 % off *one* unit; only a Buy X get Y discount
    counts the units it discounts (``customerGets.value.discountOnQuantity``,
    which takes no ``percentage``/``discountAmount`` of its own). Buy X get Y
    needs a "customer buys" condition and cannot name "all items", so the
    condition is the least one can ask: a purchase of ``buys_amount`` from the
    same products. ``usesPerOrderLimit`` 1 and ``usageLimit`` 1 keep it to
    one free unit, once.
    """
    if not code or not isinstance(code, str) or any(c.isspace() for c in code):
        raise ValueError(f"discount code must be non-empty without spaces, got {code!r}")
    if starts_at is None:
        raise ValueError("starts_at is required")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError(f"quantity must be a positive int, got {quantity!r}")
    products = [_gid(g, "product_gids", "Product") for g in product_gids]
    variants = [_gid(g, "variant_gids", "ProductVariant") for g in variant_gids]
    if not (products or variants):
        raise ValueError("name the products or variants that are free: Buy X get Y cannot apply to all items")
    buys = _decimal(buys_amount, "buys_amount")
    if buys <= 0:
        raise ValueError("buys_amount must be positive")
    items: dict[str, Any] = {"products": {}}
    if products:
        items["products"]["productsToAdd"] = products
    if variants:
        items["products"]["productVariantsToAdd"] = variants
    discount: dict[str, Any] = {
        "title": title,
        "code": code,
        "startsAt": _time(starts_at, "starts_at"),
        "endsAt": _time(ends_at, "ends_at"),
        "context": {"customers": {"add": [_gid(customer_gid, "customer_gid", "Customer")]}},
        "customerBuys": {"items": items, "value": {"amount": str(buys)}},
        # UnsignedInt64 travels as a string of digits.
        "customerGets": {"items": items, "value": {"discountOnQuantity": {
            "quantity": str(quantity), "effect": {"percentage": 1.0}}}},
        "usesPerOrderLimit": 1,
        "usageLimit": 1,
        "appliesOncePerCustomer": True,
        "combinesWith": combines_with_input(combines_with),
    }
    return {"query": DISCOUNT_CODE_BXGY_CREATE, "variables": {"bxgyCodeDiscount": discount}}


#: Shopify's discount classes, as ``[offers] combines_with`` names them.
DISCOUNT_CLASSES = ("order", "product", "shipping")


def combines_with_input(classes: Iterable[str]) -> dict[str, bool]:
    """``["order", "shipping"]`` -> ``DiscountCombinesWithInput`` with every class stated."""
    if isinstance(classes, str):
        raise ValueError("combines_with takes a list of discount classes, not a string")
    chosen = set(classes)
    unknown = chosen - set(DISCOUNT_CLASSES)
    if unknown:
        raise ValueError(f"unknown discount class(es) {sorted(unknown)}; known: {', '.join(DISCOUNT_CLASSES)}")
    return {f"{c}Discounts": c in chosen for c in DISCOUNT_CLASSES}


# --- tags and metafields ----------------------------------------------------------------

TAGS_ADD = """
mutation tagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) {
    node { id }
    userErrors { field message }
  }
}
""".strip()

TAGS_REMOVE = """
mutation tagsRemove($id: ID!, $tags: [String!]!) {
  tagsRemove(id: $id, tags: $tags) {
    node { id }
    userErrors { field message }
  }
}
""".strip()


def tags_add(gid: str, tags: Sequence[str]) -> dict[str, Any]:
    """Add tags to a customer, order, product, ... (``tagsAdd``); idempotent."""
    return {"query": TAGS_ADD, "variables": {"id": _gid(gid, "gid"), "tags": _tags(tags)}}


def tags_remove(gid: str, tags: Sequence[str]) -> dict[str, Any]:
    """Remove tags (``tagsRemove``); idempotent."""
    return {"query": TAGS_REMOVE, "variables": {"id": _gid(gid, "gid"), "tags": _tags(tags)}}


METAFIELDS_SET = """
mutation metafieldsSet($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) {
    metafields { id namespace key }
    userErrors { field message code }
  }
}
""".strip()

METAFIELDS_SET_LIMIT = 25  # Shopify accepts at most 25 metafields per call


def metafields_set(owner_gid: str, metafields: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Set metafields on one owner (``metafieldsSet``).

    :param metafields: dicts with ``namespace``, ``key``, ``type`` and
        ``value``; ``value`` is sent as a string, as the API requires.
    """
    _gid(owner_gid, "owner_gid")
    if not metafields or len(metafields) > METAFIELDS_SET_LIMIT:
        raise ValueError(f"metafields_set takes 1..{METAFIELDS_SET_LIMIT} metafields")
    items = []
    for i, mf in enumerate(metafields):
        missing = [k for k in ("namespace", "key", "type", "value") if mf.get(k) in (None, "")]
        if missing:
            raise ValueError(f"metafields[{i}] is missing {', '.join(missing)}")
        value = mf["value"]
        if isinstance(value, float):
            raise ValueError(f"metafields[{i}].value: pass numbers as Decimal or str, not float")
        items.append(
            {
                "ownerId": owner_gid,
                "namespace": mf["namespace"],
                "key": mf["key"],
                "type": mf["type"],
                "value": value if isinstance(value, str) else str(value),
            }
        )
    return {"query": METAFIELDS_SET, "variables": {"metafields": items}}


# --- email marketing consent -------------------------------------------------------------

CUSTOMER_EMAIL_MARKETING_CONSENT_UPDATE = """
mutation customerEmailMarketingConsentUpdate($input: CustomerEmailMarketingConsentUpdateInput!) {
  customerEmailMarketingConsentUpdate(input: $input) {
    customer { id }
    userErrors { field message }
  }
}
""".strip()


def customer_email_marketing_consent_update(customer_gid: str, marketing_state: str) -> dict[str, Any]:
    """Record a customer's email marketing consent (``customerEmailMarketingConsentUpdate``)."""
    return {"query": CUSTOMER_EMAIL_MARKETING_CONSENT_UPDATE, "variables": {"input": {
        "customerId": _gid(customer_gid, "customer_gid", "Customer"),
        "emailMarketingConsent": {"marketingState": marketing_state}}}}


# --- tier pricing: customer segments and automatic discounts ------------------------------

SEGMENT_CREATE = """
mutation segmentCreate($name: String!, $query: String!) {
  segmentCreate(name: $name, query: $query) {
    segment { id name query }
    userErrors { field message }
  }
}
""".strip()

DISCOUNT_AUTOMATIC_BASIC_CREATE = """
mutation discountAutomaticBasicCreate($automaticBasicDiscount: DiscountAutomaticBasicInput!) {
  discountAutomaticBasicCreate(automaticBasicDiscount: $automaticBasicDiscount) {
    automaticDiscountNode { id }
    userErrors { field code message }
  }
}
""".strip()

DISCOUNT_AUTOMATIC_ACTIVATE = """
mutation discountAutomaticActivate($id: ID!) {
  discountAutomaticActivate(id: $id) {
    automaticDiscountNode { id }
    userErrors { field code message }
  }
}
""".strip()

DISCOUNT_AUTOMATIC_DEACTIVATE = """
mutation discountAutomaticDeactivate($id: ID!) {
  discountAutomaticDeactivate(id: $id) {
    automaticDiscountNode { id }
    userErrors { field code message }
  }
}
""".strip()


def segment_create(name: str, query: str) -> dict[str, Any]:
    """A customer segment from a segment query (``segmentCreate``)."""
    return {"query": SEGMENT_CREATE, "variables": {"name": name, "query": query}}


def discount_automatic_basic_create(title: str, percent: Decimal, segment_gid: str, starts_at,
                                    combines_with=("order", "product", "shipping")) -> dict[str, Any]:
    """A percentage off everything for a customer segment, applied automatically (the tier discount)."""
    if not (0 < percent <= 100):
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    return {"query": DISCOUNT_AUTOMATIC_BASIC_CREATE, "variables": {"automaticBasicDiscount": {
        "title": title,
        "startsAt": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "context": {"customerSegments": {"add": [segment_gid]}},
        "customerGets": {"value": {"percentage": float(percent / 100)}, "items": {"all": True}},
        "combinesWith": combines_with_input(combines_with),
    }}}


def discount_automatic_deactivate(gid: str) -> dict[str, Any]:
    return {"query": DISCOUNT_AUTOMATIC_DEACTIVATE, "variables": {"id": gid}}


def discount_automatic_activate(gid: str) -> dict[str, Any]:
    return {"query": DISCOUNT_AUTOMATIC_ACTIVATE, "variables": {"id": gid}}


# --- products (the punch cards' collections and tags) -------------------------------------

COLLECTION_PRODUCTS = """
query loyaltyCollectionProducts($id: ID!, $after: String) {
  collection(id: $id) {
    products(first: 250, after: $after) {
      nodes { id }
      pageInfo { hasNextPage endCursor }
    }
  }
}
""".strip()

TAGGED_PRODUCTS = """
query loyaltyTaggedProducts($query: String!, $after: String) {
  products(first: 250, after: $after, query: $query) {
    nodes { id }
    pageInfo { hasNextPage endCursor }
  }
}
""".strip()


# --- store credit ---------------------------------------------------------------------

STORE_CREDIT_ACCOUNT_CREDIT = """
mutation storeCreditAccountCredit($id: ID!, $creditInput: StoreCreditAccountCreditInput!) {
  storeCreditAccountCredit(id: $id, creditInput: $creditInput) {
    storeCreditAccountTransaction {
      id
      amount { amount currencyCode }
      account { id balance { amount currencyCode } }
    }
    userErrors { field message code }
  }
}
""".strip()


def store_credit_account_credit(
    customer_gid: str,
    amount: Decimal | int | str,
    currency: str,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """Credit a customer's store credit account (``storeCreditAccountCredit``).

    Shopify creates the account for that currency if needed. Not idempotent:
    :meth:`ShopifyClient.perform` will not repeat it after a timeout.
    """
    money = _decimal(amount, "amount")
    if money <= 0:
        raise ValueError("store credit amount must be positive")
    credit: dict[str, Any] = {"creditAmount": {"amount": str(money), "currencyCode": _currency(currency)}}
    if expires_at is not None:
        credit["expiresAt"] = _time(expires_at, "expires_at")
    return {
        "query": STORE_CREDIT_ACCOUNT_CREDIT,
        "variables": {"id": _gid(customer_gid, "customer_gid", "Customer"), "creditInput": credit},
    }


# --- webhooks ---------------------------------------------------------------------------

WEBHOOK_SUBSCRIPTION_CREATE = """
mutation webhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri format metafields { namespace key } }
    userErrors { field message }
  }
}
""".strip()

WEBHOOK_SUBSCRIPTION_UPDATE = """
mutation webhookSubscriptionUpdate($id: ID!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri format metafields { namespace key } }
    userErrors { field message }
  }
}
""".strip()

WEBHOOK_SUBSCRIPTIONS_LIST = """
query webhookSubscriptions($first: Int!, $after: String) {
  webhookSubscriptions(first: $first, after: $after) {
    nodes { id topic uri format metafields { namespace key } }
    pageInfo { hasNextPage endCursor }
  }
}
""".strip()


def topic_enum(topic: str) -> str:
    """``orders/paid`` -> ``ORDERS_PAID``; an enum name passes through."""
    if not isinstance(topic, str) or not topic.strip():
        raise ValueError("topic is required")
    return re.sub(r"[/.]", "_", topic.strip()).upper()


def webhook_subscription_create(topic_enum_or_topic: str, callback_url: str,
                                metafields: list[str] | None = None) -> dict[str, Any]:
    """Subscribe ``callback_url`` to a topic (``webhookSubscriptionCreate``).

    :param topic_enum_or_topic: ``ORDERS_PAID`` or ``orders/paid``.
    :param metafields: ``namespace.key`` names whose values the bodies should carry (a body
        holds no metafield the subscription does not name).
    """
    if not isinstance(callback_url, str) or not callback_url.startswith("https://"):
        raise ValueError("callback_url must be an https:// URL")
    subscription: dict[str, Any] = {"uri": callback_url, "format": "JSON"}
    if metafields:
        subscription["metafields"] = _metafield_ids(metafields)
    return {
        "query": WEBHOOK_SUBSCRIPTION_CREATE,
        "variables": {"topic": topic_enum(topic_enum_or_topic), "webhookSubscription": subscription},
    }


def webhook_subscription_update(subscription_id: str, *, metafields: list[str]) -> dict[str, Any]:
    """Set the metafields an existing subscription's bodies carry (``webhookSubscriptionUpdate``).

    Only ``metafields`` is sent, so the subscription's URI, format and filter stay as they are.
    """
    if not isinstance(subscription_id, str) or not subscription_id.startswith("gid://shopify/WebhookSubscription/"):
        raise ValueError("subscription_id must be a WebhookSubscription gid")
    return {"query": WEBHOOK_SUBSCRIPTION_UPDATE,
            "variables": {"id": subscription_id, "webhookSubscription": {"metafields": _metafield_ids(metafields)}}}


#: A metafield named ``namespace.key`` as Shopify allows it (namespace 2-255, key 2-64 characters).
METAFIELD_NAME = r"[A-Za-z0-9_-]{2,255}\.[A-Za-z0-9_-]{2,64}"


def _metafield_ids(metafields: list[str]) -> list[dict[str, str]]:
    """``["facts.birth_date"]`` -> ``[{"namespace": "facts", "key": "birth_date"}]``."""
    out = []
    for name in metafields:
        namespace, dot, key = name.partition(".")
        if not dot or not namespace or not key:
            raise ValueError(f"metafield {name!r}: expected namespace.key")
        out.append({"namespace": namespace, "key": key})
    return out


def webhook_subscriptions_list(first: int = 100, after: str | None = None) -> dict[str, Any]:
    """One page of this app's webhook subscriptions."""
    if not 1 <= first <= 250:
        raise ValueError("first must be in 1..250")
    return {"query": WEBHOOK_SUBSCRIPTIONS_LIST, "variables": {"first": first, "after": after}}


# --- bulk operations -----------------------------------------------------------------------

BULK_OPERATION_RUN_QUERY = """
mutation bulkOperationRunQuery($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
""".strip()

_BULK_FIELDS = "id status errorCode createdAt completedAt objectCount fileSize url partialDataUrl"

CURRENT_BULK_OPERATION = f"""
query currentBulkOperation {{
  currentBulkOperation(type: QUERY) {{ {_BULK_FIELDS} }}
}}
""".strip()

BULK_OPERATION = f"""
query bulkOperation($id: ID!) {{
  bulkOperation(id: $id) {{ {_BULK_FIELDS} }}
}}
""".strip()


def bulk_operation_run_query(query: str) -> dict[str, Any]:
    """Start a bulk query (``bulkOperationRunQuery``); poll with :func:`bulk_operation`."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("bulk query text is required")
    return {"query": BULK_OPERATION_RUN_QUERY, "variables": {"query": query}}


def current_bulk_operation() -> dict[str, Any]:
    """The app's most recent bulk query operation.

    From API 2026-01 several bulk queries may run at once; prefer
    :func:`bulk_operation` with the id ``bulk_operation_run_query`` returned.
    """
    return {"query": CURRENT_BULK_OPERATION, "variables": {}}


def bulk_operation(gid: str) -> dict[str, Any]:
    """One bulk operation by id (status, ``url`` of the JSONL result when done)."""
    return {"query": BULK_OPERATION, "variables": {"id": _gid(gid, "gid", "BulkOperation")}}


#: The fields the importer reads; nested connections need no ``first`` in a bulk query.
ORDERS_BULK_QUERY = """
{
  orders(query: "%(filter)s", sortKey: CREATED_AT) {
    edges {
      node {
        id
        name
        email
        createdAt
        updatedAt
        processedAt
        cancelledAt
        closedAt
        test
        tags
        discountCodes
        currencyCode
        presentmentCurrencyCode
        customerLocale
        displayFinancialStatus
        displayFulfillmentStatus
        subtotalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
        totalPriceSet { shopMoney { amount currencyCode } }
        totalDiscountsSet { shopMoney { amount currencyCode } }
        totalTaxSet { shopMoney { amount currencyCode } }
        totalShippingPriceSet { shopMoney { amount currencyCode } }
        totalRefundedSet { shopMoney { amount currencyCode } }
        fulfillments { createdAt status }
        billingAddress { countryCodeV2 provinceCode }
        customer {
          id
          firstName
          lastName
          phone
          locale
          tags
          updatedAt
          defaultEmailAddress { emailAddress marketingState }
          defaultAddress { countryCodeV2 provinceCode }
        }
        lineItems {
          edges {
            node {
              id
              sku
              title
              name
              quantity
              vendor
              originalUnitPriceSet { shopMoney { amount currencyCode } }
              totalDiscountSet { shopMoney { amount currencyCode } }
              product { id productType }
              variant { id }
            }
          }
        }
      }
    }
  }
}
""".strip()


def orders_bulk_query(since: datetime, until: datetime | None = None) -> str:
    """The bulk query text (for :func:`bulk_operation_run_query`) of orders created in ``[since, until)``."""
    parts = [f"created_at:>='{_bulk_time(since)}'"]
    if until is not None:
        parts.append(f"created_at:<'{_bulk_time(until)}'")
    return ORDERS_BULK_QUERY % {"filter": " AND ".join(parts)}


def _bulk_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def root_field(query: str) -> str | None:
    """The first field selected by a GraphQL operation, e.g. ``tagsAdd``."""
    body = query[query.find("{") + 1 :] if "{" in query else ""
    match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", body)
    return match.group(1) if match else None


def is_mutation(query: str) -> bool:
    """True for ``mutation ...`` documents (comments and whitespace ignored)."""
    text = re.sub(r"#[^\n]*", "", query).lstrip()
    return text.startswith("mutation")


# --- the shop ------------------------------------------------------------------------------

SHOP_NAME = """
query shopName {
  shop { name myshopifyDomain }
}
""".strip()


def shop_name() -> dict[str, Any]:
    """The cheapest authenticated question (``retention config check``'s live token check)."""
    return {"query": SHOP_NAME, "variables": {}}

"""Shopify GraphQL request builders: documented 2026-07 input shapes, plain-JSON variables."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from retention_plugin.platforms.shopify import mutations as m

from .helpers import shopify_request_errors

UTC = timezone.utc
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CUSTOMER = "gid://shopify/Customer/115310627314723954"


def test_discount_percent_for_one_customer():
    request = m.discount_code_basic_create(
        "THANKS-7F3A9C", "Thank you, Ann", percent=Decimal("15"), customer_gid=CUSTOMER,
        starts_at=START, ends_at=START + timedelta(days=30), combines_with=["order", "shipping"],
    )
    assert set(request) == {"query", "variables"}
    json.dumps(request)  # storable as-is in actions.request
    assert "discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount)" in request["query"]
    assert "userErrors { field code message extraInfo }" in request["query"]
    d = request["variables"]["basicCodeDiscount"]
    assert d == {
        "title": "Thank you, Ann",
        "code": "THANKS-7F3A9C",
        "startsAt": "2026-03-02T12:00:00Z",
        "endsAt": "2026-04-01T12:00:00Z",
        "context": {"customers": {"add": [CUSTOMER]}},  # 2026-07: context replaced customerSelection
        "customerGets": {"value": {"percentage": 0.15}, "items": {"all": True}},
        "appliesOncePerCustomer": True,
        "usageLimit": 1,
        "combinesWith": {"orderDiscounts": True, "productDiscounts": False, "shippingDiscounts": True},
    }
    assert "customerSelection" not in json.dumps(request)


def test_discount_amount_on_products_for_everyone():
    request = m.discount_code_basic_create(
        "RECALL-1", "Recall credit", amount=Decimal("12.50"), currency="EUR", customer_gid=None,
        starts_at=START.astimezone(timezone(timedelta(hours=2))), ends_at=None, usage_limit=None,
        applies_once_per_customer=False, product_gids=["gid://shopify/Product/788032119674292922"],
        combines_with=[],
    )
    d = request["variables"]["basicCodeDiscount"]
    assert d["customerGets"] == {
        "value": {"discountAmount": {"amount": "12.50", "appliesOnEachItem": False}},
        "items": {"products": {"productsToAdd": ["gid://shopify/Product/788032119674292922"]}},
    }
    assert d["context"] == {"all": "ALL"}
    assert d["startsAt"] == "2026-03-02T12:00:00Z" and d["endsAt"] is None
    assert "usageLimit" not in d and d["appliesOncePerCustomer"] is False
    # Shopify's default is "combines with nothing": it is stated all the same, never left implicit.
    assert d["combinesWith"] == {"orderDiscounts": False, "productDiscounts": False, "shippingDiscounts": False}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # neither percent nor amount
        {"percent": 10, "amount": Decimal("5"), "currency": "USD"},
        {"percent": 0},
        {"percent": 150},
        {"amount": 5.0, "currency": "USD"},  # float money refused
        {"amount": Decimal("5")},  # no currency
        {"amount": Decimal("-1"), "currency": "USD"},
        {"percent": 10, "starts_at": datetime(2026, 3, 2)},  # noqa: DTZ001 (naive on purpose)
        {"percent": 10, "customer_gid": "115310627314723954"},  # not a GID
        {"percent": 10, "customer_gid": "gid://shopify/Order/1"},  # wrong kind
        {"percent": 10, "usage_limit": 0},
        {"percent": 10, "combines_with": ["orders"]},  # not a discount class
        {"percent": 10, "combines_with": "order"},  # a string, not a list
    ],
)
def test_discount_input_errors(kwargs):
    args = {"customer_gid": CUSTOMER, "starts_at": START, "ends_at": None, "combines_with": ["order"]}
    args.update(kwargs)
    with pytest.raises(ValueError):
        m.discount_code_basic_create("CODE", "Title", **args)


def test_discount_code_must_not_have_spaces():
    with pytest.raises(ValueError):
        m.discount_code_basic_create("TWO WORDS", "t", percent=10, customer_gid=CUSTOMER, starts_at=START,
                                     ends_at=None, combines_with=[])


def test_every_discount_states_what_it_combines_with():
    # Without combinesWith Shopify combines a code with nothing: not with the tier discount either.
    with pytest.raises(TypeError, match="combines_with"):
        m.discount_code_basic_create("C", "t", percent=10, customer_gid=CUSTOMER, starts_at=START, ends_at=None)
    with pytest.raises(TypeError, match="combines_with"):
        m.discount_code_free_units("C", "t", product_gids=["gid://shopify/Product/1"], customer_gid=CUSTOMER,
                                   starts_at=START, ends_at=None)
    assert m.combines_with_input(["product"]) == {
        "orderDiscounts": False, "productDiscounts": True, "shippingDiscounts": False}


def test_one_unit_free_is_a_buy_x_get_y_code_for_one_customer():
    request = m.discount_code_free_units(
        "LOYAL-ABC", "Punch card: one free cartridge", product_gids=["gid://shopify/Product/7001"],
        variant_gids=["gid://shopify/ProductVariant/8001"], customer_gid=CUSTOMER, starts_at=START,
        ends_at=START + timedelta(days=90), combines_with=["order", "shipping"])
    assert m.root_field(request["query"]) == "discountCodeBxgyCreate"
    d = request["variables"]["bxgyCodeDiscount"]
    items = {"products": {"productsToAdd": ["gid://shopify/Product/7001"],
                          "productVariantsToAdd": ["gid://shopify/ProductVariant/8001"]}}
    assert d["customerGets"] == {"items": items, "value": {"discountOnQuantity": {
        "quantity": "1", "effect": {"percentage": 1.0}}}}
    assert d["customerBuys"] == {"items": items, "value": {"amount": "0.01"}}
    assert d["context"] == {"customers": {"add": [CUSTOMER]}}
    assert (d["usesPerOrderLimit"], d["usageLimit"], d["appliesOncePerCustomer"]) == (1, 1, True)
    assert d["combinesWith"] == {"orderDiscounts": True, "productDiscounts": False, "shippingDiscounts": True}
    json.dumps(request)
    for bad in ({"product_gids": []}, {"quantity": 0}, {"product_gids": ["gid://shopify/Collection/1"]},
                {"buys_amount": Decimal("0")}):
        args = {"product_gids": ["gid://shopify/Product/7001"], "customer_gid": CUSTOMER, "starts_at": START,
                "ends_at": None, "combines_with": []}
        args.update(bad)
        with pytest.raises(ValueError):
            m.discount_code_free_units("C", "t", **args)


def test_the_builders_requests_are_valid_for_the_pinned_and_newest_admin_api():
    from retention_plugin.features.loyalty.sync import metafields_request

    requests = [
        m.discount_code_basic_create("THANKS-7F3A9C", "Thank you, Ann", percent=Decimal("15"), customer_gid=CUSTOMER,
                                     starts_at=START, ends_at=START + timedelta(days=30),
                                     combines_with=["order", "shipping"]),
        m.discount_code_basic_create("RECALL-1", "Recall credit", amount=Decimal("12.50"), currency="EUR",
                                     customer_gid=None, starts_at=START, ends_at=None, usage_limit=None,
                                     product_gids=["gid://shopify/Product/788032119674292922"], combines_with=[]),
        m.discount_code_free_units("LOYAL-ABC", "Punch card: one free cartridge",
                                   product_gids=["gid://shopify/Product/7001"],
                                   variant_gids=["gid://shopify/ProductVariant/8001"], customer_gid=CUSTOMER,
                                   starts_at=START, ends_at=START + timedelta(days=90), combines_with=["order"]),
        metafields_request({"metafield_namespace": "retention"}, CUSTOMER, 322, "gold"),
        m.discount_automatic_basic_create("Gold members: 5% off", Decimal("5"), "gid://shopify/Segment/42",
                                                START, ["order", "product", "shipping"]),
        m.segment_create("Retention tier: Gold", "customer_tags CONTAINS 'retention-tier-gold'"),
        m.discount_automatic_deactivate("gid://shopify/DiscountAutomaticNode/9"),
        m.tags_add(CUSTOMER, ["retention-tier-gold"]),
        m.tags_remove(CUSTOMER, ["retention-tier-silver"]),
    ]
    for request in requests:
        assert shopify_request_errors(request) == [], request["query"]
        assert shopify_request_errors(request, "2026-10") == [], request["query"]
    combines = requests[4]["variables"]["automaticBasicDiscount"]["combinesWith"]
    assert combines == {"orderDiscounts": True, "productDiscounts": True, "shippingDiscounts": True}
    # The shape a wrong one has: validation catches an unknown field.
    bad = m.tags_add(CUSTOMER, ["x"])
    bad["variables"]["tags"] = [{"name": "x"}]
    assert shopify_request_errors(bad) != []


def test_tags():
    add = m.tags_add(CUSTOMER, ["vip", " loyalty-gold "])
    assert add["variables"] == {"id": CUSTOMER, "tags": ["vip", "loyalty-gold"]}
    assert m.root_field(add["query"]) == "tagsAdd"
    remove = m.tags_remove("gid://shopify/Order/1", ["vip"])
    assert m.root_field(remove["query"]) == "tagsRemove"
    for bad in ([], "vip", ["ok", ""]):
        with pytest.raises(ValueError):
            m.tags_add(CUSTOMER, bad)


def test_metafields_set():
    request = m.metafields_set(CUSTOMER, [
        {"namespace": "retention", "key": "points", "type": "number_integer", "value": 120},
        {"namespace": "retention", "key": "tier", "type": "single_line_text_field", "value": "gold"},
        {"namespace": "retention", "key": "balance", "type": "number_decimal", "value": Decimal("12.50")},
    ])
    assert request["variables"]["metafields"] == [
        {"ownerId": CUSTOMER, "namespace": "retention", "key": "points", "type": "number_integer", "value": "120"},
        {"ownerId": CUSTOMER, "namespace": "retention", "key": "tier", "type": "single_line_text_field",
         "value": "gold"},
        {"ownerId": CUSTOMER, "namespace": "retention", "key": "balance", "type": "number_decimal",
         "value": "12.50"},
    ]
    with pytest.raises(ValueError):
        m.metafields_set(CUSTOMER, [{"namespace": "n", "key": "k", "type": "t"}])
    with pytest.raises(ValueError):
        m.metafields_set(CUSTOMER, [{"namespace": "n", "key": f"k{i}", "type": "t", "value": "v"}
                                    for i in range(26)])
    with pytest.raises(ValueError):
        m.metafields_set(CUSTOMER, [{"namespace": "n", "key": "k", "type": "number_decimal", "value": 1.5}])


def test_store_credit():
    request = m.store_credit_account_credit(CUSTOMER, Decimal("10.00"), "usd", expires_at=START)
    assert request["variables"] == {
        "id": CUSTOMER,
        "creditInput": {"creditAmount": {"amount": "10.00", "currencyCode": "USD"},
                        "expiresAt": "2026-03-02T12:00:00Z"},
    }
    assert m.root_field(request["query"]) == "storeCreditAccountCredit"
    assert "storeCreditAccountCredit" in m.NON_IDEMPOTENT_MUTATIONS
    for amount in (0, Decimal("-5"), 9.99):
        with pytest.raises(ValueError):
            m.store_credit_account_credit(CUSTOMER, amount, "USD")


def test_webhook_subscriptions():
    request = m.webhook_subscription_create("orders/paid", "https://retention.example.com/webhooks/shopify")
    assert request["variables"] == {
        "topic": "ORDERS_PAID",
        "webhookSubscription": {"uri": "https://retention.example.com/webhooks/shopify", "format": "JSON"},
    }
    assert m.webhook_subscription_create("APP_UNINSTALLED", "https://x.example")["variables"]["topic"] \
        == "APP_UNINSTALLED"
    assert m.topic_enum("customers/data_request") == "CUSTOMERS_DATA_REQUEST"
    with pytest.raises(ValueError):
        m.webhook_subscription_create("orders/paid", "http://insecure.example")
    listing = m.webhook_subscriptions_list()
    assert listing["variables"] == {"first": 100, "after": None}
    assert not m.is_mutation(listing["query"]) and m.root_field(listing["query"]) == "webhookSubscriptions"


def test_bulk_operations():
    run = m.bulk_operation_run_query("{ orders { edges { node { id } } } }")
    assert m.is_mutation(run["query"]) and m.root_field(run["query"]) == "bulkOperationRunQuery"
    assert run["variables"] == {"query": "{ orders { edges { node { id } } } }"}
    current = m.current_bulk_operation()
    assert "currentBulkOperation(type: QUERY)" in current["query"]
    one = m.bulk_operation("gid://shopify/BulkOperation/720918")
    assert one["variables"] == {"id": "gid://shopify/BulkOperation/720918"}
    with pytest.raises(ValueError):
        m.bulk_operation_run_query("  ")


def test_root_field_and_is_mutation():
    assert m.root_field("mutation x($a: ID!) { tagsAdd(id: $a) { node { id } } }") == "tagsAdd"
    assert m.root_field("{ shop { name } }") == "shop"
    assert m.is_mutation("# comment\n  mutation { a }")
    assert not m.is_mutation("query { a }")


def _graphql_documents_outside_mutations() -> list[str]:
    """String constants anywhere in the package that read as a GraphQL operation or a bulk query."""
    import ast
    from pathlib import Path

    import retention_plugin

    root = Path(retention_plugin.__file__).resolve().parent
    operation = re.compile(r"^\s*(mutation|query)\s+\w+\s*[({]|^\s*\{\s*\w+\([^)]*\)\s*\{", re.S)
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "platforms" / "shopify" / "mutations.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and operation.match(node.value):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_graphql_document_lives_in_mutations():
    assert _graphql_documents_outside_mutations() == []


def test_every_document_in_mutations_is_valid_for_the_pinned_admin_api():
    from graphql import parse, validate

    from .helpers import _admin_schema

    schema = _admin_schema("2026-07")
    documents = {name: value for name, value in vars(m).items()
                 if name.isupper() and isinstance(value, str) and re.match(r"\s*(mutation|query)\b", value)}
    assert {"TAGS_ADD", "METAFIELDS_SET", "SEGMENT_CREATE", "COLLECTION_PRODUCTS",
            "CUSTOMER_EMAIL_MARKETING_CONSENT_UPDATE"} <= set(documents)
    for name, text in documents.items():
        assert [e.message for e in validate(schema, parse(text))] == [], name
    # The bulk query runs as the argument of bulkOperationRunQuery: a query of its own.
    bulk = m.orders_bulk_query(START, START + timedelta(days=1))
    assert [e.message for e in validate(schema, parse(bulk))] == []
    assert "created_at:>='2026-03-02T12:00:00Z' AND created_at:<'2026-03-03T12:00:00Z'" in bulk

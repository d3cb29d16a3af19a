"""ShopifyClient against documented GraphQL Admin responses (HTTP mocked with `responses`)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests
import responses
from responses.registries import OrderedRegistry

from retention_plugin.platforms.errors import AlreadyExists, PermanentError, TransientError, UserErrors
from retention_plugin.platforms.shopify import ShopifyClient, raise_for_user_errors, throttle_wait
from retention_plugin.platforms.shopify import mutations as m

from .helpers import SleepRecorder

SHOP = "retention-test.myshopify.com"
TOKEN = "shpat_0123456789abcdef0123456789abcdef"
URL = f"https://{SHOP}/admin/api/2026-07/graphql.json"
CUSTOMER = "gid://shopify/Customer/115310627314723954"
START = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def sleep():
    return SleepRecorder()


@pytest.fixture
def client(sleep):
    return ShopifyClient(SHOP, TOKEN, "2026-07", sleep=sleep)


@pytest.fixture
def rsps():
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        yield mock


def ok(data, cost=None):
    body = {"data": data}
    body["extensions"] = {"cost": cost or {
        "requestedQueryCost": 10, "actualQueryCost": 10,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0}}}
    return body


DISCOUNT_CREATED = {"discountCodeBasicCreate": {
    "codeDiscountNode": {"id": "gid://shopify/DiscountCodeNode/1", "codeDiscount": {
        "title": "Thanks", "codes": {"nodes": [{"code": "THANKS-1"}]}}},
    "userErrors": []}}


def discount_request():
    return m.discount_code_basic_create("THANKS-1", "Thanks", percent=10, customer_gid=CUSTOMER,
                                        starts_at=START, ends_at=None, combines_with=["order"])


def test_request_shape(client, rsps):
    rsps.add(responses.POST, URL, json=ok({"shop": {"name": "Super Toys"}}))
    assert client.graphql("query { shop { name } }", {"x": Decimal("1.50")}) == {"shop": {"name": "Super Toys"}}
    sent = rsps.calls[0].request
    assert sent.url == URL
    assert sent.headers["X-Shopify-Access-Token"] == TOKEN
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"].startswith("retention-plugin/")
    assert json.loads(sent.body) == {"query": "query { shop { name } }", "variables": {"x": "1.50"}}


def test_perform_mutation_returns_its_payload(client, rsps):
    request = discount_request()
    rsps.add(responses.POST, URL, json=ok(DISCOUNT_CREATED))
    result = client.perform(request)
    assert result["codeDiscountNode"]["id"] == "gid://shopify/DiscountCodeNode/1"
    assert json.loads(rsps.calls[0].request.body) == request


def test_perform_query_returns_data(client, rsps):
    rsps.add(responses.POST, URL, json=ok({"webhookSubscriptions": {"nodes": [], "pageInfo": {
        "hasNextPage": False, "endCursor": None}}}))
    assert "webhookSubscriptions" in client.perform(m.webhook_subscriptions_list())


def test_429_with_retry_after_then_success(client, rsps, sleep):
    rsps.add(responses.POST, URL, status=429, headers={"Retry-After": "2.0"}, json={"errors": "Throttled"})
    rsps.add(responses.POST, URL, json=ok(DISCOUNT_CREATED))
    client.perform(discount_request())
    assert sleep.calls == [2.0]
    assert len(rsps.calls) == 2


def test_throttled_waits_as_throttle_status_says(client, rsps, sleep):
    throttled = {
        "errors": [{"message": "Throttled", "extensions": {
            "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/limits#rate-limits"}}],
        "extensions": {"cost": {"requestedQueryCost": 202, "actualQueryCost": None, "throttleStatus": {
            "maximumAvailable": 2000.0, "currentlyAvailable": 52, "restoreRate": 100.0}}},
    }
    rsps.add(responses.POST, URL, json=throttled)
    rsps.add(responses.POST, URL, json=ok(DISCOUNT_CREATED))
    client.perform(discount_request())
    assert sleep.calls == [pytest.approx(1.5)]  # (202 - 52) / 100


def test_throttle_wait_helper():
    assert throttle_wait({}) == 1.0
    assert throttle_wait({"extensions": {"cost": {"requestedQueryCost": 10, "throttleStatus": {
        "currentlyAvailable": 50, "restoreRate": 50}}}}) == 0.0
    assert throttle_wait({"extensions": {"cost": {"requestedQueryCost": 10, "throttleStatus": {
        "currentlyAvailable": 0, "restoreRate": 0}}}}) == 1.0


def test_5xx_retried_then_give_up(client, rsps, sleep):
    for _ in range(5):
        rsps.add(responses.POST, URL, status=502, body="Bad Gateway")
    with pytest.raises(TransientError) as err:
        client.graphql("query { shop { name } }")
    assert err.value.status == 502 and err.value.attempts == 5
    assert len(rsps.calls) == 5
    assert sleep.calls == [1.0, 2.0, 4.0, 8.0]  # exponential when no Retry-After
    assert TOKEN not in str(err.value)


def test_5xx_then_success(client, rsps, sleep):
    rsps.add(responses.POST, URL, status=503, headers={"Retry-After": "3"})
    rsps.add(responses.POST, URL, json=ok({"shop": {"name": "x"}}))
    assert client.graphql("{ shop { name } }") == {"shop": {"name": "x"}}
    assert sleep.calls == [3.0]


def test_connection_errors_retried(client, rsps, sleep):
    rsps.add(responses.POST, URL, body=requests.ConnectTimeout("connect timed out"))
    rsps.add(responses.POST, URL, body=requests.ReadTimeout("read timed out"))
    rsps.add(responses.POST, URL, json=ok({"shop": {"name": "x"}}))
    assert client.graphql("{ shop { name } }") == {"shop": {"name": "x"}}
    assert len(sleep.calls) == 2


def test_non_idempotent_mutation_is_not_repeated_after_ambiguous_failure(client, rsps, sleep):
    rsps.add(responses.POST, URL, status=500, body="oops")
    with pytest.raises(TransientError) as err:
        client.perform(m.store_credit_account_credit(CUSTOMER, Decimal("10.00"), "USD"))
    assert err.value.ambiguous is True
    assert len(rsps.calls) == 1 and sleep.calls == []


def test_non_idempotent_mutation_still_retries_rate_limits(client, rsps, sleep):
    rsps.add(responses.POST, URL, status=429, headers={"Retry-After": "1"})
    rsps.add(responses.POST, URL, json=ok({"storeCreditAccountCredit": {
        "storeCreditAccountTransaction": {"id": "gid://shopify/StoreCreditAccountCreditTransaction/1"},
        "userErrors": []}}))
    client.perform(m.store_credit_account_credit(CUSTOMER, Decimal("10.00"), "USD"))
    assert sleep.calls == [1.0]


def test_retry_after_too_long_is_handed_back(client, rsps, sleep):
    rsps.add(responses.POST, URL, status=429, headers={"Retry-After": "120"})
    with pytest.raises(TransientError) as err:
        client.graphql("{ shop { name } }")
    assert err.value.retry_after == 120.0
    assert sleep.calls == [] and len(rsps.calls) == 1


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 423])
def test_4xx_is_permanent_and_not_retried(client, rsps, sleep, status):
    rsps.add(responses.POST, URL, status=status,
             json={"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
    with pytest.raises(PermanentError) as err:
        client.graphql("{ shop { name } }")
    assert err.value.status == status
    assert "Invalid API key" in str(err.value)
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value)
    assert len(rsps.calls) == 1 and sleep.calls == []


def test_graphql_errors_are_permanent(client, rsps, sleep):
    rsps.add(responses.POST, URL, json={"errors": [{
        "message": "Field 'nope' doesn't exist on type 'QueryRoot'",
        "locations": [{"line": 1, "column": 3}], "path": ["query", "nope"],
        "extensions": {"code": "undefinedField", "typeName": "QueryRoot", "fieldName": "nope"}}]})
    with pytest.raises(PermanentError) as err:
        client.graphql("{ nope }")
    assert "doesn't exist" in str(err.value)
    assert err.value.errors and len(rsps.calls) == 1


def test_access_denied_graphql_error_is_permanent(client, rsps):
    rsps.add(responses.POST, URL, json={"data": {"storeCreditAccountCredit": None}, "errors": [{
        "message": "Access denied for storeCreditAccountCredit field.",
        "extensions": {"code": "ACCESS_DENIED"}}]})
    with pytest.raises(PermanentError):
        client.perform(m.store_credit_account_credit(CUSTOMER, Decimal("1"), "USD"))


def test_user_errors_not_retried(client, rsps, sleep):
    rsps.add(responses.POST, URL, json=ok({"tagsAdd": {"node": None, "userErrors": [
        {"field": ["id"], "message": "Customer does not exist"}]}}))
    with pytest.raises(UserErrors) as err:
        client.perform(m.tags_add(CUSTOMER, ["vip"]))
    assert not isinstance(err.value, AlreadyExists)
    assert err.value.operation == "tagsAdd"
    assert "id: Customer does not exist" in str(err.value)
    assert len(rsps.calls) == 1 and sleep.calls == []


def test_duplicate_discount_code_is_already_exists(client, rsps):
    rsps.add(responses.POST, URL, json=ok({"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [
        {"field": ["basicCodeDiscount", "code"], "code": "TAKEN",
         "message": "Code must be unique. Please try a different code.", "extraInfo": None}]}}))
    with pytest.raises(AlreadyExists) as err:
        client.perform(discount_request())
    assert isinstance(err.value, UserErrors)  # still a user error for callers that do not care


def test_other_discount_user_errors_are_not_already_exists():
    with pytest.raises(UserErrors) as err:
        raise_for_user_errors({"discountCodeBasicCreate": {"userErrors": [
            {"field": ["basicCodeDiscount", "endsAt"], "code": "END_DATE_BEFORE_START_DATE",
             "message": "Ends at needs to be after starts_at"}]}}, "discountCodeBasicCreate")
    assert not isinstance(err.value, AlreadyExists)
    # "already taken" wording without a code also counts, on the code field only
    with pytest.raises(AlreadyExists):
        raise_for_user_errors({"discountCodeBasicCreate": {"userErrors": [
            {"field": ["basicCodeDiscount", "code"], "message": "Code has already been taken"}]}},
            "discountCodeBasicCreate")
    assert raise_for_user_errors({"tagsAdd": {"node": {"id": "x"}, "userErrors": []}}, "tagsAdd") == {
        "node": {"id": "x"}, "userErrors": []}
    with pytest.raises(PermanentError):
        raise_for_user_errors({"other": {}}, "tagsAdd")


def test_non_json_response_is_permanent(client, rsps):
    rsps.add(responses.POST, URL, body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(PermanentError):
        client.graphql("{ shop { name } }")


def test_constructor_validation_and_masking():
    client = ShopifyClient(SHOP, TOKEN, "2026-07")
    assert TOKEN not in repr(client) and repr(client).endswith("'****cdef')")
    for shop in ("https://x.myshopify.com", "x.myshopify.com/admin", "", "bad shop.myshopify.com"):
        with pytest.raises(ValueError):
            ShopifyClient(shop, TOKEN, "2026-07")
    with pytest.raises(ValueError):
        ShopifyClient(SHOP, "", "2026-07")
    with pytest.raises(ValueError):
        ShopifyClient(SHOP, TOKEN, "latest")

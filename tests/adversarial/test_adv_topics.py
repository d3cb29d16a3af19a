"""Topic swaps: a signed body re-sent under another topic has no effect (issue 12, item 1).

Shopify signs the body, not ``X-Shopify-Topic``: anyone holding one captured
delivery can re-send its exact bytes, with the same valid HMAC and a new
webhook id, under ``shop/redact`` or ``customers/redact``. Each topic's body
must have that topic's documented shape before anything happens.
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest
import requests
from sqlalchemy import select

from conftest import SHARED, SHOP, base_config, dumps, shopify_headers
from payloads import order, refund
from server_util import running_server, write_config
from retention_plugin.app import Retention
from retention_plugin.platforms.errors import PayloadError
from retention_plugin.platforms.shopify.payloads import SUPPORTED_TOPICS, parse_shopify
from retention_plugin.storage import tables as t
from retention_plugin.worker import Worker

DESTRUCTIVE = ("shop/redact", "customers/redact", "customers/data_request")


def fixture(name: str, fallback: dict) -> dict:
    """Shopify's own sample from ../shared when it is there, else the same documented shape by hand."""
    path = SHARED / "fixtures" / "shopify" / name
    return json.loads(path.read_text()) if path.exists() else fallback


def customer_body(customer_id: int, email: str) -> dict:
    """A customers/update body as Shopify's Webhooks reference shows it."""
    body = order(1, customer_id=customer_id, email=email)["customer"]
    body.update(addresses=[], tax_exemptions=[], verified_email=True, state="enabled",
                admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}")
    return body


def fulfillment_body(fulfillment_id: int, order_id: int) -> dict:
    return {"id": fulfillment_id, "order_id": order_id, "status": "success", "created_at": "2026-03-01T12:00:00Z",
            "updated_at": "2026-03-01T12:00:00Z", "service": "manual", "tracking_company": "UPS",
            "tracking_number": "1Z999", "shipment_status": None, "line_items": [{"id": order_id * 10 + 1}],
            "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fulfillment_id}"}


def app_uninstalled_body() -> dict:
    body = fixture("app_uninstalled.json", {"id": 548380009, "name": "Super Toys", "email": "super@supertoys.com",
                                            "domain": None, "myshopify_domain": None, "shop_owner": "John Smith",
                                            "money_format": "${{amount}}", "plan_name": "enterprise",
                                            "currency": "USD", "primary_locale": "en"})
    body["myshopify_domain"] = SHOP
    return body


def bodies() -> dict[str, tuple[str, dict]]:
    """One genuine body of every kind Shopify sends us: name -> (its own topic, body)."""
    redact = fixture("customers_redact.json", {
        "shop_id": 954889, "shop_domain": SHOP, "customer": {"id": 191167, "email": "john@example.com",
                                                             "phone": "555-625-1199"},
        "orders_to_redact": [299938, 280263, 220458]})
    redact["shop_domain"] = SHOP
    paid = order(4101, customer_id=6101, email="ann@example.com")
    created = order(4102, customer_id=6102, email="ben@example.com", financial_status="pending")
    return {
        "order_paid": ("orders/paid", paid),
        "order_created": ("orders/create", created),
        "refund": ("refunds/create", refund(5101, 4101, 41011, 1, "10.00")),
        "fulfillment": ("fulfillments/create", fulfillment_body(7101, 4101)),
        "customer": ("customers/update", customer_body(6101, "ann@example.com")),
        "customer_fixture": ("customers/create",
                             fixture("customers_create.json", customer_body(6104, "bob@example.com"))),
        "customer_deleted": ("customers/delete", {"id": 6103, "phone": None, "addresses": [], "tax_exemptions": [],
                                                  "email_marketing_consent": None, "sms_marketing_consent": None,
                                                  "admin_graphql_api_id": "gid://shopify/Customer/6103"}),
        "shop": ("app/uninstalled", app_uninstalled_body()),
        "data_request": ("customers/data_request", {
            "shop_id": 954889, "shop_domain": SHOP, "orders_requested": [4101],
            "customer": {"id": 6101, "email": "ann@example.com", "phone": None}, "data_request": {"id": 9999}}),
        "customer_redact": ("customers/redact", redact),
        "shop_redact": ("shop/redact", {"shop_id": 954889, "shop_domain": SHOP}),
    }


#: Topics whose bodies are the same kind of document, so a swap among them is no swap.
FAMILIES = [
    {"orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/fulfilled"},
    {"fulfillments/create", "fulfillments/update"},
    {"customers/create", "customers/update", "customers/delete"},
]


def same_kind(a: str, b: str) -> bool:
    return a == b or any(a in f and b in f for f in FAMILIES)


def test_every_topic_has_a_documented_shape():
    from retention_plugin.platforms.shopify.payloads import SHAPES

    assert set(SHAPES) == set(SUPPORTED_TOPICS)


def test_each_genuine_body_parses_under_its_own_topic():
    for name, (topic, body) in bodies().items():
        assert parse_shopify(topic, copy.deepcopy(body), shop=SHOP, configured_shop=SHOP), name


@pytest.mark.parametrize("topic", SUPPORTED_TOPICS)
def test_no_body_parses_under_another_kinds_topic(topic):
    for name, (own_topic, body) in bodies().items():
        if same_kind(topic, own_topic):
            continue
        with pytest.raises(PayloadError) as err:
            parse_shopify(topic, copy.deepcopy(body), shop=SHOP, configured_shop=SHOP)
        assert err.value.field, (topic, name)


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b.pop("shop_id"), "shop_id"),
    (lambda b: b.pop("shop_domain"), "shop_domain"),
    (lambda b: b.update(shop_domain="other.myshopify.com"), "shop_domain"),
    (lambda b: b.update(shop_domain=None), "shop_domain"),
    (lambda b: b.update(id=1), "id"),  # anything more than the two documented keys
])
def test_shop_redact_takes_exactly_its_documented_shape(mutate, field):
    body = {"shop_id": 954889, "shop_domain": SHOP}
    mutate(body)
    with pytest.raises(PayloadError) as err:
        parse_shopify("shop/redact", body, shop=SHOP, configured_shop=SHOP)
    assert err.value.field == field


def test_privacy_requests_must_name_the_configured_shop_too():
    body = {"shop_id": 954889, "shop_domain": "other.myshopify.com"}
    # Delivered "for" the other shop (the header is unsigned), but this installation serves SHOP.
    with pytest.raises(PayloadError) as err:
        parse_shopify("shop/redact", body, shop="other.myshopify.com", configured_shop=SHOP)
    assert err.value.field == "shop_domain" and SHOP in str(err.value)


@pytest.mark.parametrize("topic, drop", [
    ("customers/redact", "orders_to_redact"), ("customers/redact", "customer"),
    ("customers/data_request", "orders_requested"), ("customers/data_request", "data_request"),
])
def test_privacy_requests_need_every_documented_key(topic, drop):
    body = copy.deepcopy(next(b for t_, b in bodies().values() if t_ == topic))
    body.pop(drop)
    with pytest.raises(PayloadError) as err:
        parse_shopify(topic, body, shop=SHOP, configured_shop=SHOP)
    assert err.value.field == drop


def test_a_redact_without_customer_id_names_it():
    body = copy.deepcopy(bodies()["customer_redact"][1])
    del body["customer"]["id"]
    with pytest.raises(PayloadError) as err:
        parse_shopify("customers/redact", body, shop=SHOP, configured_shop=SHOP)
    assert err.value.field == "customer.id"


def test_order_topics_check_what_the_body_says_about_the_order():
    unpaid = order(1, financial_status="pending")
    with pytest.raises(PayloadError) as err:
        parse_shopify("orders/paid", unpaid, shop=SHOP)
    assert err.value.field == "financial_status"
    with pytest.raises(PayloadError) as err:
        parse_shopify("orders/cancelled", order(2), shop=SHOP)  # cancelled_at is null
    assert err.value.field == "cancelled_at"
    with pytest.raises(PayloadError) as err:
        parse_shopify("orders/fulfilled", order(3), shop=SHOP)  # fulfillment_status is null
    assert err.value.field == "fulfillment_status"


def test_a_body_naming_another_resource_is_refused():
    body = order(4)
    body["admin_graphql_api_id"] = "gid://shopify/Customer/4"
    with pytest.raises(PayloadError) as err:
        parse_shopify("orders/paid", body, shop=SHOP)
    assert err.value.field == "admin_graphql_api_id"


# --- end to end: the real receiver, the worker, both databases ------------------------------


@pytest.fixture(scope="module")
def server(module_db_url, tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("swap") / "retention.toml", base_config(module_db_url))
    with running_server(path) as base:
        yield base, module_db_url


def post(base: str, body: bytes, headers: dict) -> None:
    r = requests.post(base + "/webhooks/shopify", data=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def snapshot(app) -> dict:
    """Every business table's rows, to compare before and after."""
    out = {}
    with app.engine.connect() as conn:
        for table in (t.customers, t.orders, t.order_lines, t.refunds, t.fulfillments, t.ledger, t.actions,
                      t.messages, t.privacy_requests):
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
    return out


def test_captured_bodies_resent_under_destructive_topics_erase_nothing(server, tmp_path):
    base, db_url = server
    app = Retention.from_dict(base_config(db_url), path=tmp_path / "retention.toml", entry_points=False)
    try:
        captured = []  # (body bytes, its genuine signature headers)
        for name, (topic, payload) in bodies().items():
            if topic in DESTRUCTIVE:
                continue  # genuine privacy requests would act; they are replayed below, not delivered
            body = dumps(payload)
            headers = shopify_headers(body, topic)
            post(base, body, headers)
            captured.append((name, topic, body, headers))
        for name, (topic, payload) in bodies().items():
            if topic in DESTRUCTIVE:  # captured on the wire, never delivered here
                body = dumps(payload)
                captured.append((name, topic, body, shopify_headers(body, topic)))
        Worker(app, name="seed").run(burst=True)
        with app.engine.connect() as conn:
            assert conn.execute(select(t.customers)).first() is not None
            assert conn.execute(select(t.ledger)).first() is not None  # loyalty earned on the paid order
        before = snapshot(app)

        swapped = []
        for name, own_topic, body, headers in captured:
            for topic in DESTRUCTIVE:
                if topic == own_topic:
                    continue
                wid = str(uuid.uuid4())
                # The same bytes and the same valid signature; only the unsigned headers change.
                post(base, body, {**headers, "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": wid})
                swapped.append((name, topic, wid))
        assert len(swapped) >= 20
        Worker(app, name="swap").run(burst=True)

        with app.engine.connect() as conn:
            rows = {r["delivery_id"]: r for r in conn.execute(select(t.inbox)).mappings()}
        for name, topic, wid in swapped:
            row = rows[wid]
            assert row["status"] == "dead", (name, topic, row["status"], row["last_error"])
            assert row["last_error"].startswith("bad payload: "), row["last_error"]
        assert snapshot(app) == before  # nothing erased, exported or changed
    finally:
        app.dispose()

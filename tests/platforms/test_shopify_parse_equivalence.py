"""Shopify bodies parse to the same events, and fail with the same field error, as before issue 19's speed-up.

Three checks:

- every body below (the shared Shopify fixtures, and the bench's and the documented shapes built
  from tests/payloads.py) gives events equal, field for field, to ``data/shopify_parse_golden.json``,
  written by the parser as it was before the nested schemas were loaded inline;
- dropping any field the schemas load makes some body's events differ from that record, unless the
  field is one the code only validates (``VALIDATED_ONLY``), so the bodies are enough to notice a
  field the parser stopped reading;
- ``Inline`` loads exactly as marshmallow's own ``Nested`` does: for every body with each position
  replaced by a bad value (or removed), both give the same events or the same field and message.

Regenerate the record only when a change of output is intended, from the tree that defines it:
``PYTHONPATH=src python tests/platforms/test_shopify_parse_equivalence.py --write``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from marshmallow import fields

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # run as a script to write the record (the package comes from PYTHONPATH)
    sys.path.insert(0, str(HERE.parent))

from payloads import order, refund  # noqa: E402
from retention_plugin.platforms.errors import PayloadError, UnsupportedTopic  # noqa: E402
from retention_plugin.platforms.shopify import payloads as sp  # noqa: E402
from shared_dir import SHARED  # noqa: E402

from platforms.helpers import broken  # noqa: E402

GOLDEN = HERE / "data" / "shopify_parse_golden.json"
SHOP = "retention-test.myshopify.com"
FIXTURES = SHARED / "fixtures" / "shopify"
UTC = timezone.utc


# --- the bodies -------------------------------------------------------------------------------------


def _fixture(name: str) -> dict | None:
    path = FIXTURES / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _paid(body: dict) -> dict:
    return {**body, "financial_status": "paid"}


def _without_sets(body: dict) -> dict:
    """An older-API order: plain amounts only, shipping from its lines, discounts from the old field."""
    plain = copy.deepcopy(body)
    for key in [k for k in plain if k.endswith("_set")]:
        del plain[key]
    plain["shipping_lines"] = [{"price": "4.50"}, {"price": "1.25"}]
    for line in plain["line_items"]:
        for key in [k for k in line if k.endswith("_set")]:
            del line[key]
        line["total_discount"] = "2.00"
    return plain


def _sets_only() -> dict:
    """Shop money only in the ``_set`` objects, each different from the presentment money."""
    body = order(4104, subtotal="30.00", presentment_currency="EUR", presentment_factor=Decimal("0.9"), lines=[
        {"id": 41041, "sku": "SKU-3", "quantity": 3, "price": "10.00", "total_discount": "1.00"},
        {"id": 41042, "sku": "SKU-4", "quantity": 1, "price": "0.00", "total_discount": "0.40"}])
    for key in ("subtotal_price", "total_price", "total_discounts", "total_tax"):
        del body[key]
    del body["total_shipping_price_set"]
    body["shipping_lines"] = [{"price_set": {"shop_money": {"amount": "3.00", "currency_code": "USD"}}},
                              {"price_set": {"shop_money": {"amount": "0.50", "currency_code": "USD"}}}]
    for line in body["line_items"]:
        del line["price"], line["total_discount"]
    body["line_items"][0]["discount_allocations"] = [
        {"amount_set": {"shop_money": {"amount": "0.75", "currency_code": "USD"}}}]
    return body


def _fulfilled() -> dict:
    body = order(4101, customer_id=6101, lines=[
        {"id": 41011, "sku": "SKU-1", "product_id": 7001, "variant_id": 8001, "title": "Ink", "quantity": 2,
         "price": "12.50", "vendor": "Acme", "product_type": "Ink"},
        {"id": 41012, "sku": "SKU-2", "quantity": 1, "price": "5.00"}])
    body["line_items"][0]["discount_allocations"] = [
        {"amount": "1.00", "amount_set": {"shop_money": {"amount": "1.00", "currency_code": "USD"},
                                          "presentment_money": {"amount": "1.00", "currency_code": "USD"}}},
        {"amount": "0.50"}]
    body.update(fulfillment_status="fulfilled", name="#4101", tags="vip, wholesale",
                discount_codes=[{"code": "SPRING", "amount": "1.50"}, {"code": ""}],
                closed_at="2026-03-03T09:00:00-05:00", processed_at="2026-03-01T10:00:30Z", test=True,
                fulfillments=[
                    {"id": 70, "order_id": 4101, "status": "cancelled", "created_at": "2026-03-01T11:00:00Z",
                     "line_items": [{"id": 41011}]},
                    {"id": 71, "status": "success", "created_at": "2026-03-02T12:00:00+02:00",
                     "updated_at": "2026-03-02T13:00:00Z", "line_items": [{"id": 41011}, {"id": None}]}])
    body["customer"].update(tags="a, b", metafields=[
        {"namespace": "loyalty", "key": "tier", "value": "gold"}, {"namespace": "x", "key": "n", "value": 3},
        {"namespace": "y", "key": None, "value": "dropped"}])
    body["customer"]["default_address"]["province_code"] = "VL"
    body["customer"]["locale"] = "lt"  # the order's customer_locale is "en"
    body["shipping_address"].update(address2="Flat 2", zip="01103")
    body["line_items"][0]["name"] = "Ink - Black"  # the title wins
    body["line_items"][1].update(title=None, name="Named only")
    body["contact_email"] = "orders@example.com"  # the order's email wins
    body["customer"]["email"] = " Ann.Customer@Example.com"  # and the customer's own over both
    return body


def _refund_without_sets() -> dict:
    body = refund(5102, 4101, 41011, 2, "7.25")
    for line in body["refund_line_items"]:
        del line["subtotal_set"]
    return body


def _customer() -> dict:
    body = copy.deepcopy(_fulfilled()["customer"])
    body.update(addresses=[], admin_graphql_api_id="gid://shopify/Customer/6101")
    return body


def _no_customer() -> dict:
    body = order(4102, customer_id=None, email="  Guest@Example.COM ", locale="lt", country="lv")
    body["billing_address"]["province_code"] = "RIX"
    body["email"] = None  # the contact email stands in
    return body


def _no_customer_order() -> dict:
    body = _no_customer()
    body["customer"] = {"id": 6102, "email": None, "first_name": "Guest"}
    return body


def bodies() -> list[tuple[str, str, dict | None, dict]]:
    """(name, topic, body or None when its fixture is absent, parse_shopify keywords)."""
    redact = _fixture("customers_redact")
    uninstalled = _fixture("app_uninstalled")
    orders_paid = _fixture("orders_paid")
    return [
        ("fixture orders_create", "orders/create", _fixture("orders_create"), {}),
        ("fixture orders_paid as paid", "orders/paid", orders_paid and _paid(orders_paid), {}),
        ("fixture orders_paid as updated", "orders/updated", orders_paid, {}),
        ("fixture orders_paid without sets", "orders/updated", orders_paid and _without_sets(orders_paid), {}),
        ("fixture refunds_create", "refunds/create", _fixture("refunds_create"), {}),
        ("fixture customers_create", "customers/create", _fixture("customers_create"), {}),
        ("fixture customers_update", "customers/update", _fixture("customers_update"), {}),
        ("fixture customers_redact", "customers/redact", redact, {"shop": "{shop}.myshopify.com"}),
        ("fixture app_uninstalled", "app/uninstalled", uninstalled,
         {"shop": (uninstalled or {}).get("myshopify_domain") or SHOP}),
        ("bench orders/paid", "orders/paid", order(5000011, customer_id=9000011, email="c9000011@example.com",
                                                   subtotal=Decimal(91), presentment_currency="EUR",
                                                   presentment_factor=Decimal("0.92")), {}),
        ("bench refunds/create", "refunds/create", refund(5000010, 5000010, 50000101, 1, Decimal(90)), {}),
        ("bench orders without sets", "orders/paid", _without_sets(order(5000012)), {}),
        ("order with sets only", "orders/paid", _sets_only(), {}),
        ("refund without sets", "refunds/create", _refund_without_sets(), {}),
        ("orders/fulfilled with fulfillments", "orders/fulfilled", _fulfilled(), {}),
        ("orders/cancelled", "orders/cancelled", {**order(4103), "cancelled_at": "2026-03-04T08:00:00Z"}, {}),
        ("guest order", "orders/create", _no_customer(), {}),
        ("order of a customer without email", "orders/create", _no_customer_order(), {}),
        ("fulfillments/create", "fulfillments/create", {**_fulfilled()["fulfillments"][1], "order_id": 4101,
                                                        "tracking_number": "1Z"}, {}),
        ("fulfillments/update pending", "fulfillments/update", {**_fulfilled()["fulfillments"][0],
                                                               "status": "pending"}, {}),
        ("customers/create", "customers/create", _customer(), {}),
        ("customers/delete", "customers/delete", {"id": 6101, "phone": None, "addresses": []}, {}),
        ("customers/data_request", "customers/data_request",
         {"shop_id": 1, "shop_domain": SHOP, "orders_requested": [4101, "4102"],
          "customer": {"id": 6101, "email": " Ann@Example.com", "phone": "+37060000000"}, "data_request": {"id": 9}},
         {"configured_shop": SHOP}),
        ("customers/redact", "customers/redact",
         {"shop_id": 1, "shop_domain": SHOP, "orders_to_redact": [4101],
          "customer": {"id": "6101", "email": "ann@example.com", "phone": "+37060000001"}}, {}),
        ("shop/redact", "shop/redact", {"shop_id": 1, "shop_domain": SHOP}, {}),
        ("app/uninstalled", "app/uninstalled", {"id": 1, "name": "Shop", "myshopify_domain": SHOP}, {}),
        ("refused: app/uninstalled naming another shop", "app/uninstalled",
         {"id": 1, "name": "Shop", "myshopify_domain": "other.myshopify.com"}, {}),
    ]


# --- what is compared --------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Events as JSON, types kept: amounts as Decimal text, times as UTC text, dataclasses by name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__,
                **{f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime):
        assert value.tzinfo is not None and value.utcoffset() == timezone.utc.utcoffset(None)
        return {"utc": value.isoformat()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    assert value is None or isinstance(value, (str, int, float, bool)), type(value)
    return value


def outcome(topic: str, body: Any, kw: dict) -> Any:
    """The events as JSON, or the error: what a delivery's parse decides."""
    try:
        return plain(sp.parse_shopify(topic, body, shop=kw.get("shop", SHOP), shop_currency="USD",
                                      configured_shop=kw.get("configured_shop")))
    except PayloadError as exc:
        return {"error": exc.field, "message": exc.message}
    except UnsupportedTopic as exc:
        return {"unsupported": str(exc)}


def record() -> dict[str, Any]:
    return {name: outcome(topic, body, kw) for name, topic, body, kw in bodies() if body is not None}


def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def differences(expected: dict[str, Any]) -> list[str]:
    """The bodies whose outcome is not the recorded one (a crash counts as different)."""
    changed = []
    for name, topic, body, kw in bodies():
        if body is None:
            continue
        try:
            same = outcome(topic, body, kw) == expected.get(name)
        except Exception:
            same = False
        if not same:
            changed.append(name)
    return changed


# --- 1. the same events as before ---------------------------------------------------------------------


@pytest.mark.parametrize("name,topic,body,kw", bodies(), ids=[b[0] for b in bodies()])
def test_every_body_parses_as_before(name, topic, body, kw):
    if body is None:
        pytest.skip(f"{name}: {FIXTURES} is absent")
    expected = golden()[name]
    got = outcome(topic, body, kw)
    assert got == expected
    assert isinstance(got, list) or name.startswith("refused")


def test_the_record_holds_what_issue_19_asked_to_compare():
    expected = golden()
    paid = expected["bench orders/paid"][0]["order"]
    # Totals are Decimal with their currency; presentment money is kept apart.
    assert paid["total"] == {"type": "Money", "amount": {"decimal": "91"}, "currency": "USD"}
    assert paid["presentment_subtotal"] == {"type": "Money", "amount": {"decimal": "83.72"}, "currency": "EUR"}
    assert paid["customer"]["shopify_id"] == 9000011 and paid["customer"]["email"] == "c9000011@example.com"
    assert [line["sku"] for line in paid["lines"]] == ["SKU-1"]
    fulfilled = expected["orders/fulfilled with fulfillments"][0]
    assert fulfilled["order"]["lines"][0]["total_discount"]["amount"] == {"decimal": "1.50"}
    assert fulfilled["fulfillment"]["shopify_id"] == 71
    assert expected["bench refunds/create"][0]["refund"]["merchandise"]["amount"] == {"decimal": "90"}
    assert expected["orders/fulfilled with fulfillments"][0]["order"]["customer"]["metafields"] == {
        "loyalty.tier": "gold", "x.n": "3"}
    if (FIXTURES / "refunds_create.json").exists():
        assert expected["fixture refunds_create"][0]["refund"]["merchandise"] == {
            "type": "Money", "amount": {"decimal": "414.95"}, "currency": "USD"}


# --- 2. a field dropped from the schemas is noticed -----------------------------------------------------

#: Fields the schemas load (so a bad value is refused naming them) that no event carries:
#: dropping one changes no event, only which bodies are refused.
VALIDATED_ONLY = {
    # Only the subtotal's presentment money is kept (Order.presentment_subtotal).
    *(f"OrderSchema.{m}_set.presentment_money" for m in
      ("total_price", "total_discounts", "total_tax", "total_shipping_price")),
    *(f"OrderSchema.{m}_set.presentment_money.{f}" for m in
      ("total_price", "total_discounts", "total_tax", "total_shipping_price") for f in ("amount", "currency_code")),
    *(f"OrderSchema.line_items.{m}_set.presentment_money{f}" for m in ("price", "total_discount")
      for f in ("", ".amount", ".currency_code")),
    *(f"OrderSchema.line_items.discount_allocations.amount_set.presentment_money{f}"
      for f in ("", ".amount", ".currency_code")),
    *(f"OrderSchema.shipping_lines.price_set.presentment_money{f}" for f in ("", ".amount", ".currency_code")),
    *(f"RefundSchema.refund_line_items.subtotal_set.presentment_money{f}" for f in ("", ".amount", ".currency_code")),
    # Read by code that is not on these events: kept so a malformed one is still refused.
    "OrderSchema.customer.created_at", "CustomerSchema.created_at",
    "OrderSchema.fulfillments.order_id",
    "RefundSchema.refund_line_items.id", "RefundSchema.refund_line_items.restock_type",
    "ShopRedactSchema.shop_id", "CustomerDataRequestSchema.shop_id", "CustomerRedactSchema.shop_id",
}

TOP_SCHEMAS = (sp.OrderSchema, sp.RefundSchema, sp.FulfillmentSchema, sp.CustomerSchema, sp.CustomerDeleteSchema,
               sp.CustomerDataRequestSchema, sp.CustomerRedactSchema, sp.ShopRedactSchema, sp.ShopSchema)


def loaded_fields() -> list[tuple[str, Any, str]]:
    """(dotted name, the Inline field it is loaded through, key) for every field loaded."""
    found: list[tuple[str, Any, str]] = []

    def walk(prefix: str, holder: Any, names: list[str], children: dict[str, fields.Field]) -> None:
        for key in names:
            found.append((f"{prefix}.{key}", holder, key))
            child = children[key]
            inner = child.inner if isinstance(child, fields.List) else child
            if isinstance(inner, sp.Inline):
                plan = inner._fields()
                walk(f"{prefix}.{key}", inner, [k for k, _, _ in plan], {k: f for k, _, f in plan})

    # Imported here, not at the top: the record is written by trees that have no body_inline.
    from retention_plugin.platforms.schema_fields import body_inline

    for schema in TOP_SCHEMAS:
        top = body_inline(schema)  # the body itself is loaded as a nested object is
        plan = top._fields()
        walk(schema.__name__, top, [k for k, _, _ in plan], {k: f for k, _, f in plan})
    return found


def test_dropping_any_loaded_field_changes_some_body_or_is_known_to_be_validated_only(monkeypatch):
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing")
    expected = golden()
    assert differences(expected) == []
    unnoticed = []
    for name, holder, key in loaded_fields():
        with monkeypatch.context() as m:
            m.setattr(holder, "_plan", [p for p in holder._fields() if p[0] != key])
            if not differences(expected):
                unnoticed.append(name)
    assert sorted(set(unnoticed) - VALIDATED_ONLY) == []
    # A name listed here that is in fact noticed should leave the list.
    assert sorted(VALIDATED_ONLY - set(unnoticed)) == []


# --- 3. Inline loads as Nested does ---------------------------------------------------------------------

BAD_VALUES: list[Any] = [None, "", " ", "x", "\x00", -1, 0, 1.5, 2**64, True, [], {}, [{}], {"a": 1},
                         "2026-03-01T10:00:00", "9999-12-31T23:59:59-14:00", "1e999", "usd"]



def as_nested(monkeypatch) -> None:
    """marshmallow's own path: nested schemas loaded by Schema.load, validators run as Field does."""
    # Imported here, not at the top: the record is written by trees that have no _Checked.
    from retention_plugin.platforms.schema_fields import _Checked

    monkeypatch.setattr(sp.Inline, "_deserialize", fields.Nested._deserialize)
    monkeypatch.setattr(_Checked, "_validate", fields.Field._validate)


@pytest.mark.parametrize("name,topic,body,kw", bodies(), ids=[b[0] for b in bodies()])
def test_inline_loads_every_broken_body_as_nested_does(monkeypatch, name, topic, body, kw):
    if body is None:
        pytest.skip(f"{name}: {FIXTURES} is absent")
    read = {name.rsplit(".", 1)[1] for name, _, _ in loaded_fields()}
    body = copy.deepcopy(body)
    fast = [(where, outcome(topic, body, kw)) for where in broken(body, BAD_VALUES, read)]
    with monkeypatch.context() as m:
        as_nested(m)
        reference = [outcome(topic, body, kw) for _ in broken(body, BAD_VALUES, read)]
    assert len(fast) == len(reference) > 20
    mismatched = [(where, f, r) for (where, f), r in zip(fast, reference) if f != r]
    assert mismatched == []
    # The cases reach the nested objects and are refused there, naming the nested field.
    assert any("error" in r and "." in r["error"] for r in reference) or "order" not in topic


def test_an_inline_schema_with_hooks_is_refused():
    from marshmallow import Schema, post_load

    class Hooked(Schema):
        a = fields.String()

        @post_load
        def change(self, data, **kwargs):
            return data

    class Outer(sp._Schema):
        inner = sp.Inline(Hooked)

    with pytest.raises(TypeError, match="Hooked cannot be loaded inline"):
        Outer().load({"inner": {"a": "x"}})


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    GOLDEN.write_text(json.dumps(record(), indent=1, sort_keys=True, ensure_ascii=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")

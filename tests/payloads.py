"""Shopify- and Zendesk-shaped payload builders for tests (field names as the webhooks carry them)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def money_set(amount, currency="USD", presentment=None, presentment_currency=None):
    return {"shop_money": {"amount": str(amount), "currency_code": currency},
            "presentment_money": {"amount": str(presentment if presentment is not None else amount),
                                  "currency_code": presentment_currency or currency}}


def order(order_id: int, *, customer_id: int | None = 1001, email: str = "ann@example.com",
          subtotal="100.00", currency="USD", created: datetime | None = None, updated: datetime | None = None,
          lines: list[dict] | None = None, financial_status="paid", cancelled: datetime | None = None,
          presentment_currency: str | None = None, presentment_factor=Decimal("1"), first_name="Ann",
          last_name="Example", phone="+37060000000", consent="subscribed", locale="en", country="LT") -> dict:
    created = created or datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
    updated = updated or created
    subtotal = Decimal(str(subtotal))
    pc = presentment_currency or currency
    psub = (subtotal * presentment_factor).quantize(Decimal("0.01"))
    if lines is None:
        lines = [{"id": order_id * 10 + 1, "sku": "SKU-1", "product_id": 7001, "variant_id": 8001,
                  "title": "Ink cartridge", "quantity": 1, "price": str(subtotal)}]
    line_items = []
    for ln in lines:
        line_items.append({
            "id": ln["id"], "sku": ln.get("sku"), "product_id": ln.get("product_id"),
            "variant_id": ln.get("variant_id"), "title": ln.get("title", "Item"), "name": ln.get("title", "Item"),
            "quantity": ln["quantity"], "price": ln["price"], "price_set": money_set(ln["price"], currency),
            "total_discount": ln.get("total_discount", "0.00"),
            "total_discount_set": money_set(ln.get("total_discount", "0.00"), currency),
            "product_type": ln.get("product_type"), "vendor": ln.get("vendor"), "discount_allocations": [],
        })
    customer = None
    if customer_id is not None:
        customer = {"id": customer_id, "email": email, "first_name": first_name, "last_name": last_name,
                    "phone": phone, "locale": locale, "tags": "",
                    "email_marketing_consent": {"state": consent, "opt_in_level": "single_opt_in"},
                    "default_address": {"country_code": country, "province_code": None, "first_name": first_name,
                                        "last_name": last_name, "phone": phone},
                    "created_at": _iso(created), "updated_at": _iso(updated)}
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": f"#{order_id % 100000}",
        "email": email, "contact_email": email, "phone": phone, "currency": currency, "presentment_currency": pc,
        "subtotal_price": str(subtotal), "current_subtotal_price": str(subtotal),
        "subtotal_price_set": money_set(subtotal, currency, psub, pc),
        "current_subtotal_price_set": money_set(subtotal, currency, psub, pc),
        "total_price": str(subtotal), "total_price_set": money_set(subtotal, currency, psub, pc),
        "total_discounts": "0.00", "total_discounts_set": money_set("0.00", currency),
        "total_tax": "0.00", "total_tax_set": money_set("0.00", currency),
        "total_shipping_price_set": money_set("0.00", currency),
        "financial_status": financial_status, "fulfillment_status": None,
        "created_at": _iso(created), "updated_at": _iso(updated), "processed_at": _iso(created),
        "cancelled_at": _iso(cancelled) if cancelled else None, "cancel_reason": "customer" if cancelled else None,
        "customer_locale": locale, "test": False, "tags": "", "discount_codes": [],
        "line_items": line_items, "customer": customer,
        "billing_address": {"first_name": first_name, "last_name": last_name, "phone": phone, "country_code": country},
        "shipping_address": {"first_name": first_name, "last_name": last_name, "phone": phone,
                             "address1": "Gedimino pr. 1", "city": "Vilnius", "country_code": country},
    }


def refund(refund_id: int, order_id: int, line_id: int, quantity: int, subtotal, *, currency="USD",
           created: datetime | None = None) -> dict:
    created = created or datetime(2026, 3, 5, 10, 0, tzinfo=timezone.utc)
    return {
        "id": refund_id, "order_id": order_id, "created_at": _iso(created), "processed_at": _iso(created),
        "note": "damaged", "restock": True, "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
        "refund_line_items": [{"id": refund_id * 10, "line_item_id": line_id, "quantity": quantity,
                               "subtotal": float(subtotal), "subtotal_set": money_set(subtotal, currency),
                               "total_tax": 0.0, "total_tax_set": money_set("0.00", currency)}],
        "transactions": [], "order_adjustments": [],
    }


# --- Zendesk ----------------------------------------------------------------------------

def zendesk_envelope(kind: str, ticket_id: int, *, requester_id: int = 8801, email: str | None = None,
                     status="OPEN", priority="NORMAL", tags=(), subject="Help", when: datetime | None = None,
                     event: dict | None = None, event_id: str | None = None) -> dict:
    """An event-subscribed webhook body, e.g. kind="ticket.created" (string ids, upper-case enums)."""
    import uuid

    when = when or datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    detail = {"id": str(ticket_id), "subject": subject, "description": "It broke", "status": status,
              "priority": priority, "tags": list(tags), "requester_id": str(requester_id),
              "submitter_id": str(requester_id), "created_at": _iso(when).replace("+00:00", "Z"),
              "updated_at": _iso(when).replace("+00:00", "Z"), "via": {"channel": "email"}, "type": "QUESTION"}
    if email:
        detail["requester"] = {"id": str(requester_id), "email": email}
    return {"type": f"zen:event-type:{kind}", "account_id": 1, "id": event_id or str(uuid.uuid4()),
            "time": _iso(when).replace("+00:00", "Z"), "zendesk_event_version": "2022-11-06",
            "subject": f"zen:ticket:{ticket_id}", "detail": detail, "event": event or {}}


def zendesk_trigger(name: str, values: dict) -> dict:
    """A shipped trigger body as Zendesk renders it, e.g. name="satisfaction_rated"."""
    from retention_plugin.platforms.zendesk.triggers import DEFAULT_DIRECTORY, render_body
    import json

    body = json.loads((DEFAULT_DIRECTORY / f"{name}.json").read_text())
    return render_body(body, values)


def rating_values(ticket_id: int, rating: str, *, email="ann@example.com", requester_id=8801,
                  comment="", when: datetime | None = None, status="solved", tags="") -> dict:
    when = when or datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    return {"ticket.id": str(ticket_id), "ticket.title": "Help", "ticket.status": status.capitalize(),
            "ticket.priority": "Normal", "ticket.tags": tags,
            "ticket.created_at_with_timestamp": _iso(when).replace("+00:00", "Z"),
            "ticket.updated_at_with_timestamp": _iso(when).replace("+00:00", "Z"),
            "ticket.requester.id": str(requester_id), "ticket.requester.email": email,
            "ticket.requester.first_name": "Ann", "ticket.requester.last_name": "Example",
            "ticket.requester.external_id": "", "satisfaction.current_rating": rating,
            "satisfaction.current_comment": comment}

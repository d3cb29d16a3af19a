"""`retention import zendesk --since`: incremental cursor export with users, then ratings, with `responses`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from conftest import shared_path
from retention_plugin import events as ev
from retention_plugin import shop_scope
from retention_plugin.importers.commands import import_group
from retention_plugin.records import resolve_customer
from retention_plugin.storage import tables as t
from retention_plugin.testing.apps import SHOP

from .conftest import dump, invoke, rows_of

UTC = timezone.utc
BASE = "https://retention-test.zendesk.com"
SINCE = datetime(2024, 1, 1, tzinfo=UTC)


def ticket(tid, *, status="open", requester=7881, updated="2024-01-10T10:00:00Z", **kw):
    return {"id": tid, "url": f"{BASE}/api/v2/tickets/{tid}.json", "subject": f"Ticket {tid}",
            "description": "The grinder arrived broken", "status": status, "priority": "high",
            "tags": ["complaint", "grinder"], "requester_id": requester, "submitter_id": requester,
            "assignee_id": 135, "group_id": 44, "ticket_form_id": 9, "created_at": "2024-01-09T08:00:00Z",
            "updated_at": updated, "generated_timestamp": 1704880800, "via": {"channel": "email"},
            "custom_fields": [{"id": 360001, "value": "order-1001"}, {"id": 360002, "value": None}],
            "satisfaction_rating": {"score": "good"}, **kw}


PAGES = {
    None: {"tickets": [ticket(208, status="solved"), ticket(209, status="deleted"), {"id": "x"}],
           "users": [{"id": 7881, "name": "Ona Petraitė", "email": "Ona@Example.com", "role": "end-user",
                      "external_id": None, "locale": "lt", "phone": "+37060000001"}],
           "after_url": f"{BASE}/api/v2/incremental/tickets/cursor.json?cursor=c1", "after_cursor": "c1",
           "before_cursor": None, "end_of_stream": False},
    "c1": {"tickets": [ticket(210, requester=7882, updated="2024-02-01T00:00:00Z")], "users": [],
           "after_url": None, "after_cursor": "c2", "before_cursor": "c1", "end_of_stream": True},
}


class FakeZendesk:
    def __init__(self, ratings_payload):
        self.ratings_payload = ratings_payload
        self.requests: list[dict] = []

    def tickets(self, request):
        q = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.requests.append(q)
        assert q.get("include") == "users"
        body = PAGES[q.get("cursor")]
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def ratings(self, request):
        q = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.requests.append(q)
        body = dict(self.ratings_payload)
        body["satisfaction_ratings"] = body["satisfaction_ratings"] + [
            {"id": 35437, "score": "unoffered", "ticket_id": 210, "requester_id": 7882,
             "created_at": "2024-02-01T00:00:00Z"}]
        body["meta"] = {"has_more": False, "after_cursor": None}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


@pytest.fixture
def zendesk():
    fixture = json.loads(shared_path("fixtures", "zendesk", "satisfaction_ratings_list.json").read_text())
    fake = FakeZendesk(fixture["payload"])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.GET, f"{BASE}/api/v2/incremental/tickets/cursor.json", callback=fake.tickets)
        rsps.add_callback(responses.GET, f"{BASE}/api/v2/satisfaction_ratings", callback=fake.ratings)
        yield fake


def test_tickets_and_ratings_are_imported_and_linked_to_the_shopify_customer(zendesk, config, engine):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    # The configured shop's customer, as the import will look for: the engine's own default shop is
    # that of whichever app the process built last, so without the scope the test passed only after
    # another test had built one.
    with engine.begin() as conn, shop_scope.scope(SHOP):
        shopper = resolve_customer(conn, ev.CustomerInfo(shopify_id=77, email="ona@example.com"), now)

    r = invoke(import_group, config, "zendesk", "--since", "2024-01-01", "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "imported 2 tickets, updated 0, skipped 1 deleted; ratings: imported 1, skipped 0 already imported; "
        "rejected 1 records",
        "  ticket 'x': id: Not a valid id (expected an integer or a string of digits)."]
    assert zendesk.requests[0] == {"start_time": str(int(SINCE.timestamp())), "include": "users"}
    assert zendesk.requests[1] == {"cursor": "c1", "include": "users"}
    assert zendesk.requests[2]["start_time"] == str(int(SINCE.timestamp()))

    t208, t210 = rows_of(engine, t.tickets, order_by=t.tickets.c.zendesk_id)
    assert (t208["zendesk_id"], t208["status"], t208["priority"], t208["requester_email"]) == (
        208, "solved", "high", "ona@example.com")
    assert t208["solved_at"] == datetime(2024, 1, 10, 10, 0, tzinfo=UTC)
    assert t208["tags"] == ["complaint", "grinder"] and t208["custom_fields"] == {"360001": "order-1001"}
    assert (t208["via"], t208["form_id"], t208["group_id"]) == ("email", 9, 44)
    assert t208["customer_id"] == shopper
    (ona,) = rows_of(engine, t.customers, t.customers.c.id == shopper)
    assert ona["zendesk_user_id"] == 7881 and ona["shopify_id"] == 77
    assert t210["customer_id"] is not None and t210["customer_id"] != shopper  # requester known by id only

    (rating,) = rows_of(engine, t.ratings)
    assert (rating["source"], rating["source_id"], rating["score"], float(rating["value"]), rating["comment"]) == (
        "zendesk", "35436", "good", 1.0, "Awesome support!")
    assert rating["created_at"] == datetime(2011, 7, 20, 22, 55, 29, tzinfo=UTC)
    # the fixture's ticket 208 is the one imported; its requester 7881 is Ona
    assert rating["ticket_id"] == t208["id"] and rating["customer_id"] == shopper

    before = dump(engine, t.customers, t.tickets, t.ratings)
    r = invoke(import_group, config, "zendesk", "--since", "2024-01-01", "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == (
        "imported 0 tickets, updated 2, skipped 1 deleted; ratings: imported 0, skipped 1 already imported; "
        "rejected 1 records")
    assert dump(engine, t.customers, t.tickets, t.ratings) == before


def test_without_ratings(zendesk, config, engine):
    r = invoke(import_group, config, "zendesk", "--since", "2024-01-01", "--no-ratings", "--json", "--no-progress")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["imported"], report["ratings_imported"]) == (2, 0)
    assert all("cursor" in q or q.get("include") == "users" for q in zendesk.requests)  # no ratings call
    assert rows_of(engine, t.ratings) == []

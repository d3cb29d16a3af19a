"""A ticket whose webhook names the requester only by Zendesk id still meets the Shopify customer."""

import pytest
import responses
from sqlalchemy import select

from payloads import order, zendesk_envelope
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, deliver_zendesk, run_worker

USERS = "https://retention-test.zendesk.com/api/v2/users"
FEATURES = ["loyalty", "offers", "followups", "delays", "reminders", "recalls", "recovery", "winback"]


@pytest.fixture
def live(make_app):
    return make_app(actions={"dry_run": False}, plugins={"disabled": FEATURES})


def ticket_customer(app, zendesk_id):
    with app.engine.connect() as conn:
        cid = conn.execute(select(t.tickets.c.customer_id).where(t.tickets.c.zendesk_id == zendesk_id)).scalar()
        return conn.execute(select(t.customers).where(t.customers.c.id == cid)).mappings().first()


def test_the_requester_is_looked_up_once_and_linked_to_the_shopify_customer(live):
    deliver_shopify(live, "orders/paid", order(5001, customer_id=7001, email="ona@example.com"))
    run_worker(live)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{USERS}/8801.json",
                 json={"user": {"id": 8801, "email": "Ona@Example.com", "external_id": "crm-17", "name": "Ona P"}})
        deliver_zendesk(live, zendesk_envelope("ticket.created", 4242, requester_id=8801))
        deliver_zendesk(live, zendesk_envelope("ticket.priority_changed", 4242, requester_id=8801))
        run_worker(live)
        assert len(rsps.calls) == 1  # the second delivery finds the person already known
        assert rsps.calls[0].request.headers["Authorization"].startswith("Basic ")
    c = ticket_customer(live, 4242)
    assert (c["shopify_id"], c["email"], c["zendesk_user_id"], c["external_id"]) == (
        7001, "ona@example.com", 8801, "crm-17")


def test_no_lookup_in_dry_run_and_a_failed_lookup_still_records_the_ticket(make_app, live):
    dry = make_app(plugins={"disabled": FEATURES})
    with responses.RequestsMock() as rsps:
        deliver_zendesk(dry, zendesk_envelope("ticket.created", 4243, requester_id=8802))
        run_worker(dry)
        assert len(rsps.calls) == 0
    assert ticket_customer(dry, 4243)["zendesk_user_id"] == 8802

    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{USERS}/8803.json", status=503)
        rsps.add(responses.GET, f"{USERS}/8803.json", status=503)
        deliver_zendesk(live, zendesk_envelope("ticket.created", 4244, requester_id=8803))
        counts = run_worker(live)
    c = ticket_customer(live, 4244)
    assert c["zendesk_user_id"] == 8803 and c["email"] is None
    with live.engine.connect() as conn:
        assert set(conn.execute(select(t.inbox.c.status)).scalars()) == {"done"}, counts

"""Issue 13, item 12 (Shopify part): every send through the Shopify channel is visible to Shopify Flow.

Flow's *Customer tags added* trigger starts a workflow when a tag is added to a customer
(help.shopify.com, Shopify Flow reference, triggers: Customer tags added). Adding a tag the
customer already has adds nothing, so re-adding ``retention:<kind>`` started the Flow once
ever. Each send now adds a tag of its own, and the previous one of that kind is removed.
"""

from __future__ import annotations

import gzip
import json

import pytest
from sqlalchemy import select

from conftest import shared_path
from retention_plugin.platforms.shopify import mutations
from retention_plugin.messaging.channels import ShopifyChannel
from retention_plugin.messaging.outbox import schedule_message, send_due
from retention_plugin.storage import tables as t

from .test_messaging_outbox import TUESDAY_10


def _actions(engine):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.actions).where(t.actions.c.platform == "shopify")
                                              .order_by(t.actions.c.id)).mappings()]


def _send(engine, settings, key, cid, when):
    from retention_plugin.messaging.kinds import BUILTIN_KINDS

    with engine.begin() as conn:
        mid = schedule_message(conn, key=key, customer_id=cid, kind="thank_you", due_at=when, channel="shopify",
                               data=BUILTIN_KINDS["thank_you"].sample, now=when)
    assert send_due(engine, now=when, channels={"shopify": ShopifyChannel("tag")}, settings=settings)["sent"] == 1
    return mid


def test_every_send_adds_a_new_tag_so_flow_fires_each_time(engine, add_customer, settings):
    cid = add_customer(marketing_consent="not_subscribed")
    first = _send(engine, settings, "thanks:1", cid, TUESDAY_10)
    second = _send(engine, settings, "thanks:2", cid, TUESDAY_10.replace(hour=TUESDAY_10.hour + 1))
    actions = _actions(engine)
    adds = [a for a in actions if a["kind"] == "customer_tags_add"]
    assert [a["request"]["variables"]["tags"] for a in adds] == [
        ["retention:thank_you", f"retention:thank_you:m{first}"],
        ["retention:thank_you", f"retention:thank_you:m{second}"]]
    new_tags = [set(a["request"]["variables"]["tags"]) for a in adds]
    assert new_tags[1] - new_tags[0], "the second send adds a tag the customer does not have yet"
    # The first send's tag is taken off when the second is added: one per-send tag per kind stays.
    [untag] = [a for a in actions if a["kind"] == "customer_tags_remove"]
    assert untag["key"] == "message:thanks:2:shopify:untag"
    assert untag["request"]["variables"]["tags"] == [f"retention:thank_you:m{first}"]
    gid = adds[0]["request"]["variables"]["id"]
    assert untag["request"]["variables"]["id"] == gid and gid.startswith("gid://shopify/Customer/")


def test_a_retried_send_adds_the_same_tag_once(engine, add_customer, settings):
    cid = add_customer()
    mid = _send(engine, settings, "thanks:r", cid, TUESDAY_10)
    with engine.begin() as conn:  # the send is replayed by a worker whose lease ran out
        conn.execute(t.messages.update().where(t.messages.c.id == mid).values(status="scheduled", lease_until=None))
    send_due(engine, now=TUESDAY_10, channels={"shopify": ShopifyChannel("tag")}, settings=settings)
    actions = _actions(engine)
    assert [a["kind"] for a in actions] == ["customer_tags_add"]


def test_the_metafield_changes_on_every_send():
    from datetime import datetime, timezone

    from retention_plugin.messaging.templates import Rendered

    r = Rendered(subject="s", text="t", html="<p>t</p>", locale="lt")
    channel, customer = ShopifyChannel("metafield"), {"id": 1, "shopify_id": 7001}
    a = channel.request({"key": "k", "kind": "voucher"}, customer, r, "metafield",
                        datetime(2026, 3, 3, 9, tzinfo=timezone.utc))
    b = channel.request({"key": "k", "kind": "voucher"}, customer, r, "metafield",
                        datetime(2026, 3, 4, 9, tzinfo=timezone.utc))
    va, vb = (json.loads(x[1]["variables"]["metafields"][0]["value"]) for x in (a, b))
    assert va["sent_at"] == "2026-03-03T09:00:00+00:00" and va != vb


@pytest.fixture(scope="module")
def admin_schema():
    graphql = pytest.importorskip("graphql", reason="graphql-core validates documents against Shopify's schema")
    data = json.loads(gzip.open(shared_path("shopify-admin-schema", "admin_2026-07.json.gz")).read())
    return graphql, graphql.build_client_schema(data["data"], assume_valid=True)


@pytest.mark.parametrize("name, variables", [
    ("TAGS_ADD", {"id": "gid://shopify/Customer/7001", "tags": ["retention:thank_you", "retention:thank_you:m12"]}),
    ("TAGS_REMOVE", {"id": "gid://shopify/Customer/7001", "tags": ["retention:thank_you:m11"]}),
    ("METAFIELDS_SET", {"metafields": [{"ownerId": "gid://shopify/Customer/7001", "namespace": "retention",
                                        "key": "voucher", "type": "json", "value": "{}"}]}),
])
def test_the_channels_documents_are_valid_against_the_pinned_schema(admin_schema, name, variables):
    graphql, schema = admin_schema
    from graphql.execution.values import get_variable_values

    doc = graphql.parse(getattr(mutations, name))
    assert not graphql.validate(schema, doc)
    values = get_variable_values(schema, doc.definitions[0].variable_definitions or [], variables)
    assert not isinstance(values, list), values

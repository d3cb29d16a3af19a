"""Poison pills: no body can crash the worker (issue 12, item 2).

Property-based: Hypothesis generates bodies for every Shopify topic and
every Zendesk shape (event envelopes, shipped trigger bodies, the ratings
API) by breaking valid ones field by field, and parsing may raise nothing
but PayloadError / UnsupportedTopic. Then end to end on both databases: a
batch laced with poison leaves the worker running and the rest processed.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, cast, literal, select

from conftest import SHOP
from payloads import order, refund, zendesk_envelope
from retention_plugin import hookimpl
from retention_plugin.inbox import store_delivery
from retention_plugin.platforms.errors import PayloadError, UnsupportedTopic
from retention_plugin.platforms.schema_fields import parse_iso_datetime
from retention_plugin.platforms.shopify.payloads import SUPPORTED_TOPICS, parse_shopify
from retention_plugin.platforms.zendesk.payloads import parse_satisfaction_ratings, parse_zendesk
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, deliver_zendesk
from retention_plugin.worker import Worker

UTC = timezone.utc
ZENDESK_SUB = "retention-test"
POISON_TIMES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z",
                "2201-01-01T00:00:00Z")


# --- valid bodies of every shape ---------------------------------------------------------------


def customer_body() -> dict:
    body = order(1, customer_id=6101)["customer"]
    body.update(addresses=[], admin_graphql_api_id="gid://shopify/Customer/6101")
    return body


def shopify_base(topic: str) -> dict:
    paid = order(4101, customer_id=6101)
    paid["fulfillments"] = [{"id": 71, "order_id": 4101, "status": "success", "created_at": "2026-03-01T12:00:00Z",
                             "updated_at": "2026-03-01T12:00:00Z", "line_items": [{"id": 41011}]}]
    return {
        "orders/create": paid,
        "orders/updated": paid,
        "orders/paid": paid,
        "orders/cancelled": {**paid, "cancelled_at": "2026-03-02T10:00:00Z"},
        "orders/fulfilled": {**paid, "fulfillment_status": "fulfilled"},
        "fulfillments/create": {**paid["fulfillments"][0], "tracking_number": "1Z"},
        "fulfillments/update": {**paid["fulfillments"][0], "tracking_number": "1Z"},
        "fulfillment_events/create": {"id": 81, "fulfillment_id": 71, "order_id": 4101, "status": "in_transit",
                                      "happened_at": "2026-03-01T14:00:00Z", "created_at": "2026-03-01T14:05:00Z",
                                      "estimated_delivery_at": "2026-03-03T18:00:00Z", "message": "Left the depot",
                                      "admin_graphql_api_id": "gid://shopify/FulfillmentEvent/81"},
        "refunds/create": refund(5101, 4101, 41011, 1, "10.00"),
        "customers/create": customer_body(),
        "customers/update": customer_body(),
        "customers/delete": {"id": 6101, "phone": None, "addresses": []},
        "customers/data_request": {"shop_id": 1, "shop_domain": SHOP, "orders_requested": [4101],
                                   "customer": {"id": 6101, "email": "ann@example.com", "phone": "+37060000000"},
                                   "data_request": {"id": 9}},
        "customers/redact": {"shop_id": 1, "shop_domain": SHOP, "orders_to_redact": [4101],
                             "customer": {"id": 6101, "email": "ann@example.com", "phone": "+37060000000"}},
        "shop/redact": {"shop_id": 1, "shop_domain": SHOP},
        "app/uninstalled": {"id": 1, "name": "Shop", "myshopify_domain": SHOP, "shop_owner": "Ann"},
    }[topic]


ENVELOPE_EVENTS = {
    "ticket.created": None,
    "ticket.comment_added": {"comment": {"id": "91", "body": "Sorry!", "is_public": True,
                                         "author": {"id": "8801", "is_staff": True, "name": "Agent"}}},
    "ticket.status_changed": {"current": "SOLVED", "previous": "OPEN"},
    "ticket.priority_changed": {"current": "HIGH", "previous": "LOW"},
    "ticket.tags_changed": {"current": ["a", "b"], "previous": ["a"]},
    "ticket.custom_field_changed": {"custom_field": {"id": "360001", "title": "Reason"},
                                    "current": {"value": "damaged"}, "previous": None},
    "ticket.group_assignment_changed": {"current": {"id": "1"}, "previous": None},
    "ticket.merged": {},
}

TRIGGER_TICKET = {"id": "4242", "subject": "Broken mug", "description": "It broke", "status": "Solved",
                  "priority": "Normal", "tags": "complaint shipping", "via": "Mail",
                  "created_at": "2026-03-01T10:00Z", "updated_at": "2026-03-02T12:00:00Z"}
TRIGGER_REQUESTER = {"id": "8801", "email": "ann@example.com", "first_name": "Ann", "last_name": "Example",
                     "external_id": ""}


def zendesk_bases() -> dict[str, dict]:
    out = {kind: zendesk_envelope(kind, 4242, event=event, email="ann@example.com")
           for kind, event in ENVELOPE_EVENTS.items()}
    for kind in ("ticket.created", "ticket.solved", "ticket.complaint_tagged", "satisfaction.rated"):
        body = {"retention_event": kind, "body_version": 1, "ticket": dict(TRIGGER_TICKET),
                "requester": dict(TRIGGER_REQUESTER)}
        if kind == "satisfaction.rated":
            body["satisfaction"] = {"rating": "Bad, I'm unsatisfied", "comment": "Too slow"}
        out[f"trigger:{kind}"] = body
    return out


def ratings_base() -> dict:
    return {"satisfaction_ratings": [{"id": 35436, "score": "bad", "comment": "Slow", "ticket_id": 4242,
                                      "requester_id": 8801, "created_at": "2026-03-01T10:00:00Z",
                                      "updated_at": "2026-03-01T10:00:00Z"}]}


# --- strategies --------------------------------------------------------------------------------

OFFSETS = [timezone(timedelta(hours=h)) for h in (-14, -12, -5, 0, 1, 5, 14)]

timestamps = st.one_of(
    st.sampled_from(POISON_TIMES),
    # Hypothesis takes naive bounds; the zone comes from `timezones` (or none: naive text is poison too).
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59),  # noqa: DTZ001
                 timezones=st.sampled_from(OFFSETS)).map(lambda d: d.isoformat()),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(  # noqa: DTZ001
        lambda d: d.isoformat()),
)
nasty_text = st.sampled_from(["", " ", "-", "\x00", "a\x00b", "\ud800", "x\udfff", "NaN", "Infinity", "1e999999",
                              "-1e-999999", "9" * 40, "0x1F", "USD", "usd", "€€€", "paid", "pending", "success",
                              "SOLVED", "good", "gid://shopify/Order/1", "zen:ticket:1", "ticket.created",
                              "retention-test.myshopify.com", "other.myshopify.com"])
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 10**30, 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), nasty_text, timestamps)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), nasty_text), inner, max_size=4)),
    max_leaves=12)


def paths(value, prefix=()):
    """Every position in a JSON document (containers and leaves)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, prefix + (i,))


def put(doc, path, value, *, delete=False):
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def broken(draw, base: dict):
    """``base`` with a few positions replaced by anything JSON can say, or deleted; via real JSON."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        where = draw(st.sampled_from(list(paths(doc))))
        doc = put(doc, where, draw(json_values), delete=draw(st.booleans()))
    # What the worker reads: JSON text as stored, decoded by the standard library.
    return json.loads(json.dumps(doc))


def bodies_for(base: dict):
    return st.one_of(broken(base), json_values.map(lambda v: json.loads(json.dumps(v))))


# --- what parsed events may hold -------------------------------------------------------------------


def assert_storable(value, where="event"):
    """Everything an event carries fits the database: the worker stores it next."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None, where
        assert 1970 <= value.astimezone(UTC).year <= 2200, (where, value)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        assert -(2**63) <= value < 2**63, (where, value)
    elif isinstance(value, Decimal):
        assert value.is_finite() and abs(value) < Decimal(10) ** 14, (where, value)
    elif isinstance(value, str):
        assert "\x00" not in value, where
        value.encode("utf-8")
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            assert_storable(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, dict):
        for k, v in value.items():
            assert_storable(k, where)
            assert_storable(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            assert_storable(v, f"{where}.{i}")


PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.data_too_large])


@pytest.mark.parametrize("topic", SUPPORTED_TOPICS)
def test_any_shopify_body_parses_or_raises_a_payload_error(topic):
    @PROPERTY
    @given(bodies_for(shopify_base(topic)))
    def check(body):
        try:
            events = parse_shopify(topic, body, shop=SHOP, configured_shop=SHOP)
        except (PayloadError, UnsupportedTopic):
            return
        assert_storable(events)

    check()


@pytest.mark.parametrize("shape", list(zendesk_bases()))
def test_any_zendesk_body_parses_or_raises_a_payload_error(shape):
    @PROPERTY
    @given(bodies_for(zendesk_bases()[shape]))
    def check(body):
        try:
            events = parse_zendesk(body, shop=ZENDESK_SUB)
        except (PayloadError, UnsupportedTopic):
            return
        assert_storable(events)

    check()


@PROPERTY
@given(bodies_for(ratings_base()))
def test_any_ratings_page_parses_or_raises_a_payload_error(page):
    try:
        ratings = parse_satisfaction_ratings(page)
    except PayloadError:
        return
    assert_storable(ratings)


# --- every date field, one by one ---------------------------------------------------------------


def date_paths(doc) -> list[tuple]:
    return [p for p in paths(doc) if p and isinstance(_get(doc, p), str) and parse_iso_datetime(_get(doc, p))]


def _get(doc, path):
    for step in path:
        doc = doc[step]
    return doc


def dotted(path) -> str:
    return ".".join(str(p) for p in path)


SHOPIFY_DATE_CASES = [(topic, p) for topic in SUPPORTED_TOPICS for p in date_paths(shopify_base(topic))]
ZENDESK_DATE_CASES = [(shape, p) for shape, body in zendesk_bases().items() if shape != "ticket.merged"
                      for p in date_paths(body)]


def test_the_date_cases_cover_every_kind_of_body():
    assert {topic for topic, _ in SHOPIFY_DATE_CASES} >= {"orders/paid", "refunds/create", "fulfillments/create",
                                                         "customers/update"}
    assert len(ZENDESK_DATE_CASES) >= 2 * len(zendesk_bases()) - 2


@pytest.mark.parametrize("value", POISON_TIMES)
@pytest.mark.parametrize("topic, path", SHOPIFY_DATE_CASES, ids=lambda x: dotted(x) if isinstance(x, tuple) else x)
def test_a_shopify_date_out_of_range_is_a_field_error(topic, path, value):
    body = put(copy.deepcopy(shopify_base(topic)), path, value)
    try:
        events = parse_shopify(topic, body, shop=SHOP)
    except PayloadError as err:
        assert err.field == dotted(path)
    else:  # a field the parser does not read (e.g. a refund's processed_at) changes nothing
        assert events == parse_shopify(topic, shopify_base(topic), shop=SHOP)


@pytest.mark.parametrize("value", POISON_TIMES)
@pytest.mark.parametrize("shape, path", ZENDESK_DATE_CASES, ids=lambda x: dotted(x) if isinstance(x, tuple) else x)
def test_a_zendesk_timestamp_out_of_range_is_a_field_error(shape, path, value):
    body = put(copy.deepcopy(zendesk_bases()[shape]), path, value)
    try:
        events = parse_zendesk(body, shop=ZENDESK_SUB)
    except PayloadError as err:
        assert err.field == dotted(path)
    else:
        assert events == parse_zendesk(zendesk_bases()[shape], shop=ZENDESK_SUB)


# --- end to end: the worker, both databases ------------------------------------------------------


def read_by_parser(parse, body) -> bool:
    try:
        parse(body)
    except PayloadError:
        return True
    return False


def poison_batch(app) -> tuple[list[int], dict[int, str]]:
    """Good deliveries with poison between them; returns (good ids, {poison id: field the reason names})."""
    good, poison = [], {}
    engine = app.engine

    def raw(topic, body: bytes, expect: str, platform="shopify", shop=SHOP):
        poison[store_delivery(engine, platform=platform, shop=shop, delivery_id=f"raw-{len(poison)}",
                              topic=topic, body=body, now=app.now())] = expect

    good.append(deliver_shopify(app, "orders/paid", order(9001)))
    for value in POISON_TIMES[:2]:
        for topic, path in SHOPIFY_DATE_CASES:
            if topic in ("orders/paid", "refunds/create", "customers/update", "fulfillments/create"):
                body = put(copy.deepcopy(shopify_base(topic)), path, value)
                if read_by_parser(lambda b, topic=topic: parse_shopify(topic, b, shop=SHOP), body):
                    poison[deliver_shopify(app, topic, body)] = dotted(path)
        for shape, path in ZENDESK_DATE_CASES:
            body = put(copy.deepcopy(zendesk_bases()[shape]), path, value)
            if read_by_parser(lambda b: parse_zendesk(b, shop=ZENDESK_SUB), body):
                poison[deliver_zendesk(app, body)] = dotted(path)
    good.append(deliver_zendesk(app, zendesk_bases()["ticket.created"]))
    raw("orders/paid", json.dumps(order(9002)).replace('"Ink cartridge"', '"Ink\\u0000"').encode(), "line_items.0.")
    raw("orders/paid", json.dumps(order(9003)).replace('"Ann"', '"\\ud800"').encode(), "customer.first_name")
    raw("orders/paid", json.dumps(order(9004)).replace('"100.00"', "NaN").encode(), "Not a valid amount")
    raw("orders/paid", json.dumps(order(2**64)).encode(), "id")
    raw("orders/paid", json.dumps(order(9005)).replace('"quantity": 1', '"quantity": ' + "9" * 5000).encode(),
        "bad payload")
    raw("orders/paid", b"[1, 2, 3]", "<payload>")
    good.append(deliver_shopify(app, "orders/paid", order(9006)))
    return good, poison


def test_poison_deliveries_leave_the_worker_running_and_the_batch_processed(make_app):
    app = make_app(worker={"batch_size": 500})
    good, poison = poison_batch(app)
    assert len(poison) > 40
    counts = Worker(app, name="w").run(burst=True)  # returns: it did not die
    with app.engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(t.inbox)).mappings()}
    assert [rows[i]["status"] for i in good] == ["done"] * len(good)
    for delivery, field in poison.items():
        row = rows[delivery]
        assert row["status"] == "dead", (field, row["status"], row["last_error"])
        assert row["attempts"] == 1  # not retried: a bad body cannot get better
        assert row["last_error"].startswith("bad payload: ") and field in row["last_error"], row["last_error"]
    assert counts.dead == len(poison) and counts.processed == len(good)


class Crasher:
    """Takes the whole process down on one order, as a segfault or the OOM killer would."""

    @hookimpl
    def order_paid(self, event, ctx):
        if event.order.shopify_id == 666:
            raise SystemExit("the process died on this delivery")


def test_a_delivery_that_kills_the_process_every_time_is_buried_at_claim(make_app, clock):
    app = make_app(extra_plugins=[Crasher()], worker={"max_attempts": 3, "lease_seconds": 60})
    killer = deliver_shopify(app, "orders/paid", order(666))
    after = deliver_shopify(app, "orders/paid", order(667))
    for _ in range(3):  # each restart claims it again and dies on it again
        with pytest.raises(SystemExit):
            Worker(app, name="w").run(burst=True)
        clock.advance(seconds=61)  # the lease of the dead worker runs out
    Worker(app, name="w").run(burst=True)  # the fourth claim buries it; the rest of the batch goes on
    with app.engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(t.inbox)).mappings()}
    assert rows[killer]["status"] == "dead" and rows[killer]["attempts"] == 3
    assert "buried at claim" in rows[killer]["last_error"]
    assert rows[after]["status"] == "done"


class Faulty:
    """Hooks failing in ways a retry cannot fix, and in one way it can."""

    def __init__(self):
        self.races = 1

    @hookimpl
    def order_paid(self, event, ctx):
        oid = event.order.shopify_id
        if oid == 701:  # a value the database refuses (PostgreSQL DataError; SQLite's driver: OverflowError)
            ctx.conn.execute(select(cast(literal(2**70), BigInteger)))
        if oid == 702:  # NOT NULL (updated_at left out): the row itself is wrong
            ctx.conn.execute(t.plugin_state.insert().values(plugin="faulty", key="k", value=1))
        if oid == 703:
            raise ValueError("amount out of range for this plugin")
        if oid == 704 and self.races:  # a unique key another worker took first: the retry finds it
            self.races -= 1
            row = {"plugin": "faulty", "key": "race", "value": 1, "updated_at": ctx.now}
            ctx.conn.execute(t.plugin_state.insert().values(**row))
            ctx.conn.execute(t.plugin_state.insert().values(**row))


def test_errors_that_cannot_succeed_on_retry_go_dead_at_once(make_app, clock):
    app = make_app(extra_plugins=[Faulty()], worker={"max_attempts": 5, "backoff_base_seconds": 1})
    ids = {oid: deliver_shopify(app, "orders/paid", order(oid)) for oid in (701, 702, 703, 704)}
    Worker(app, name="w").run(burst=True)
    with app.engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(t.inbox)).mappings()}
    for oid in (701, 702, 703):
        row = rows[ids[oid]]
        assert (row["status"], row["attempts"]) == ("dead", 1), (oid, row["last_error"])
        assert row["last_error"].startswith("cannot succeed on retry: ")
    assert rows[ids[704]]["status"] == "pending"  # a race is retried
    clock.advance(seconds=5)
    Worker(app, name="w").run(burst=True)
    with app.engine.connect() as conn:
        assert conn.execute(select(t.inbox.c.status).where(t.inbox.c.id == ids[704])).scalar() == "done"

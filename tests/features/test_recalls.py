"""Product recalls: who is affected, transactional notices, case states, tickets, acknowledgment links."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from payloads import order, zendesk_envelope
from retention_plugin import events as ev
from retention_plugin.features import recalls
from retention_plugin.features.recalls import ack_page
from retention_plugin.features.recalls import engine as recall_engine
from legacy_links import sign_ack, unsubscribe_token
from retention_plugin import links
from retention_plugin.features.recalls.ack import verify_ack
from retention_plugin.features.recalls.ack_page import handle_ack
from retention_plugin.features.recalls.engine import create_recall
from retention_plugin.features.recalls.settings import RecallError
from retention_plugin.context import HookContext
from retention_plugin.records import record_order, resolve_customer
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, deliver_zendesk, run_worker

#: [recalls] signing_secret now only verifies links sent before there was one signed-link scheme.
SECRET = "recall-signing-secret-0123456789"
RECALLS = {"signing_secret": SECRET}
LINK_SECRET = "link-secret-for-recall-tests-0123"
LINKS = {"secret": LINK_SECRET, "base_url": "https://retention.example.com"}
LOG = {"default_channel": "log"}
X = "KETTLE-K1"


def kettle(line_id, sku=X, product_id=7501, quantity=1):
    return [{"id": line_id, "sku": sku, "product_id": product_id, "variant_id": 8501, "title": "Kettle K1",
             "quantity": quantity, "price": "40.00"}]


def paid(app, order_id, created, *, customer_id, email, sku=X, consent="subscribed", **kw):
    deliver_shopify(app, "orders/paid", order(order_id, created=created, customer_id=customer_id, email=email,
                                              lines=kettle(order_id * 10, sku=sku), consent=consent, **kw))


def imported(app, shopify_id, when, *, email, sku=X):
    """A historical order stored by an import (source='import'), with no webhook behind it."""
    money = ev.Money(Decimal("40.00"), "EUR")
    o = ev.Order(shopify_id=shopify_id, name=f"#OLD{shopify_id}", email=email,
                 customer=ev.CustomerInfo(email=email, marketing_consent="not_subscribed"),
                 currency="EUR", presentment_currency="EUR", subtotal=money, total=money,
                 total_discounts=ev.Money(0, "EUR"), total_tax=ev.Money(0, "EUR"), shipping=ev.Money(0, "EUR"),
                 presentment_subtotal=None, financial_status="paid", fulfillment_status="fulfilled",
                 created_at=when, updated_at=when, processed_at=when, source="import",
                 lines=[ev.OrderLine(line_id=None, sku=sku, product_id=None, variant_id=None, title="Kettle K1",
                                     quantity=1, price=money, total_discount=ev.Money(0, "EUR"))])
    with app.engine.begin() as conn:
        return record_order(conn, o, when, import_key=f"csv:test:{shopify_id}")


def customer_id(app, email):
    with app.engine.connect() as conn:
        return conn.execute(select(t.customers.c.id).where(t.customers.c.email == email)).scalar_one()


def cases(app, rid):
    with app.engine.connect() as conn:
        return {r["customer_id"]: dict(r) for r in conn.execute(
            select(t.recall_cases).where(t.recall_cases.c.recall_id == rid)).mappings()}


def recall_messages(app):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.messages).where(
            t.messages.c.kind.in_(("recall", "recall_quality"))).order_by(t.messages.c.id)).mappings()]


def status(app, rid):
    with app.engine.begin() as conn:
        recall_engine.sync_notified(conn, rid)
        return recall_engine.recall_status(conn, rid)


def add_up(s):
    return s["affected"] + s["notified"] + s["acknowledged"] + s["resolved"] == s["total"]


@pytest.fixture
def store(make_app, clock):
    """Buyers of X inside and outside the window, by webhook and by import, and a buyer of something else."""
    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    now = clock.now
    inside = now - timedelta(days=20)
    paid(app, 7001, inside, customer_id=501, email="a@example.com")  # A: webhook, in window
    paid(app, 7002, inside, customer_id=502, email="e@example.com", consent="unsubscribed")  # E: no consent
    paid(app, 7003, inside, customer_id=503, email="f@example.com")  # F: two orders in the window
    paid(app, 7004, inside + timedelta(days=3), customer_id=503, email="f@example.com")
    paid(app, 7005, now - timedelta(days=200), customer_id=504, email="c@example.com")  # C: before the window
    paid(app, 7006, inside, customer_id=505, email="d@example.com", sku="TOASTER-T2")  # D: other product
    assert run_worker(app).dead == 0
    imported(app, 90001, inside - timedelta(days=5), email="b@example.com")  # B: imported history only
    imported(app, 90002, now - timedelta(days=400), email="old@example.com")  # imported, before the window
    # E also had plenty of marketing lately: a frequency cap must not hold a recall back.
    e = customer_id(app, "e@example.com")
    with app.engine.begin() as conn:
        for i in range(3):
            conn.execute(t.messages.insert().values(
                key=f"promo:{i}", customer_id=e, kind="voucher", message_class="marketing", channel="log",
                data={}, due_at=now - timedelta(hours=5 + i), send_at=now - timedelta(hours=5 + i), status="sent",
                sent_at=now - timedelta(hours=5 + i), attempts=1, created_at=now - timedelta(days=1)))
    return app


WINDOW = {"ordered_from": "2026-01-15", "ordered_to": "2026-02-28"}


def test_recall_reaches_exactly_the_buyers_in_the_window_and_rerunning_notifies_nobody_twice(store, clock):
    app = store
    out = create_recall(app, sku=X, severity="safety", title="the lid can come loose and cause burns", **WINDOW)
    rid = out["id"]
    expected = {customer_id(app, e) for e in ("a@example.com", "b@example.com", "e@example.com", "f@example.com")}
    assert set(cases(app, rid)) == expected
    assert out["created"] and out["new_cases"] == 4 and out["notices_scheduled"] == 4 and out["total"] == 4

    msgs = recall_messages(app)
    assert {m["customer_id"] for m in msgs} == expected
    assert all(m["message_class"] == "transactional" and m["kind"] == "recall" for m in msgs)
    assert {m["key"] for m in msgs} == {f"recall:{rid}:{c}" for c in expected}
    a = customer_id(app, "a@example.com")
    data = next(m["data"] for m in msgs if m["customer_id"] == a)
    assert data["ack_url"].startswith("https://retention.example.com/r/ack?t=")
    assert data["product_title"] == "Kettle K1" and data["recall_title"].startswith("the lid")

    s = status(app, rid)
    assert (s["affected"], s["notified"], s["acknowledged"], s["resolved"]) == (4, 0, 0, 0) and add_up(s)

    run_worker(app)
    assert all(m["status"] == "sent" for m in recall_messages(app))  # no consent, cap reached: still sent
    s = status(app, rid)
    assert (s["affected"], s["notified"], s["acknowledged"], s["resolved"]) == (0, 4, 0, 0) and add_up(s)
    assert all(isinstance(s[k], int) for k in ("affected", "notified", "acknowledged", "resolved"))

    again = create_recall(app, sku=X, severity="safety", **WINDOW)  # same item, same window: same recall
    assert again["id"] == rid and not again["created"]
    assert again["new_cases"] == 0 and again["notices_scheduled"] == 0
    assert len(recall_messages(app)) == 4
    run_worker(app)
    assert len(recall_messages(app)) == 4


def test_states_move_through_ack_ticket_and_command_and_always_add_up(make_app, clock, monkeypatch):
    app = make_app(recalls=dict(RECALLS, zendesk_tickets=True), links=LINKS, messages=LOG)
    inside = clock.now - timedelta(days=10)
    for i, who in enumerate("pqrs"):
        paid(app, 7100 + i, inside, customer_id=600 + i, email=f"{who}@example.com")
    run_worker(app)
    out = create_recall(app, sku=X, title="it overheats", **WINDOW)
    rid = out["id"]
    p, q, r, s_ = (customer_id(app, f"{w}@example.com") for w in "pqrs")
    by_customer = cases(app, rid)
    assert out["tickets_queued"] == 4
    with app.engine.connect() as conn:
        actions = {a["key"]: dict(a) for a in conn.execute(select(t.actions).where(
            t.actions.c.kind == "ticket_create")).mappings()}
    ticket = actions[f"recalls:ticket:{rid}:{p}"]["request"]["json"]["ticket"]
    assert f"recall_case_{by_customer[p]['id']}" in ticket["tags"] and f"recall_{rid}" in ticket["tags"]
    assert ticket["external_id"] == f"recall:{rid}:{p}" and ticket["comment"]["public"] is False
    assert ticket["requester"]["email"] == "p@example.com"

    run_worker(app)  # notices sent; the ticket actions run in dry-run
    assert status(app, rid)["notified"] == 4  # (status brings the stored states up to date first)

    # P clicks the link: the page asks to confirm (a link scanner's GET records nothing), the button records it.
    token = notice_token(app, rid, p)
    page = handle_ack(app, "GET", token)
    assert page.status == 200 and b"<form" in page.body and cases(app, rid)[p]["status"] == "notified"
    done = handle_ack(app, "POST", token)
    assert done.status == 200 and done.outcome == "acknowledged"
    assert cases(app, rid)[p]["status"] == "acknowledged" and cases(app, rid)[p]["acknowledged_at"] == clock.now
    assert handle_ack(app, "POST", token).outcome == "already"
    assert handle_ack(app, "POST", token[:-2] + "xx").status == 400
    assert handle_ack(app, "DELETE", token).status == 405

    # Q's ticket is solved in Zendesk: the case-tag identifies the case.
    deliver_zendesk(app, zendesk_envelope("ticket.status_changed", 4401, tags=[f"recall_case_{by_customer[q]['id']}"],
                                          status="SOLVED", event={"previous": "OPEN", "current": "SOLVED"}))
    # R's ticket id comes back from the performed action; solving it without tags resolves the case too.
    with app.engine.begin() as conn:
        conn.execute(update(t.actions).where(t.actions.c.key == f"recalls:ticket:{rid}:{r}")
                     .values(status="done", result={"ticket": {"id": 4402}}))
        recall_engine.link_tickets(conn, rid)
    assert cases(app, rid)[r]["zendesk_ticket_id"] == 4402
    deliver_zendesk(app, zendesk_envelope("ticket.status_changed", 4402, requester_id=9999, status="SOLVED",
                                          event={"previous": "OPEN", "current": "SOLVED"}))
    assert run_worker(app).dead == 0
    got = cases(app, rid)
    assert got[q]["status"] == "resolved" and got[q]["zendesk_ticket_id"] == 4401
    assert got[r]["status"] == "resolved"

    s = status(app, rid)
    assert (s["affected"], s["notified"], s["acknowledged"], s["resolved"]) == (0, 1, 1, 2) and add_up(s)
    assert s["cumulative"] == {"notified": 4, "acknowledged": 1, "resolved": 2}

    # The commands: resolve S, then status and list as JSON; ack by token.
    res = _invoke(app, monkeypatch, "recall", "resolve", str(rid), "s@example.com")
    assert res.exit_code == 0, res.output
    res = _invoke(app, monkeypatch, "recall", "status", str(rid), "--json")
    assert res.exit_code == 0, res.output
    js = json.loads(res.output)
    assert (js["affected"], js["notified"], js["acknowledged"], js["resolved"], js["total"]) == (0, 0, 1, 3, 4)
    res = _invoke(app, monkeypatch, "recall", "ack", token)
    assert res.exit_code == 0 and "already resolved" not in res.output
    res = _invoke(app, monkeypatch, "recall", "ack", "1.2.AAAAAAAAAAAAAAAAAAAAAAAA")
    assert res.exit_code == 2
    res = _invoke(app, monkeypatch, "recall", "list", "--json")
    assert [x["id"] for x in json.loads(res.output)] == [rid]
    res = _invoke(app, monkeypatch, "recall", "resolve", str(rid), "nobody@example.com")
    assert res.exit_code == 2


def test_an_order_arriving_later_inside_the_window_joins_the_recall(make_app, clock):
    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    out = create_recall(app, sku=X, title="the handle breaks", ordered_from="2026-02-01")
    rid = out["id"]
    assert out["total"] == 0
    paid(app, 7201, clock.now, customer_id=701, email="g@example.com")  # inside (open-ended window)
    paid(app, 7202, clock.now - timedelta(days=90), customer_id=702, email="h@example.com")  # before it
    paid(app, 7203, clock.now, customer_id=703, email="i@example.com", sku="OTHER")
    counts = run_worker(app)
    assert counts.dead == 0
    g = customer_id(app, "g@example.com")
    assert set(cases(app, rid)) == {g}
    [msg] = recall_messages(app)
    assert msg["customer_id"] == g and msg["status"] == "sent"
    # The same order delivered again changes nothing.
    paid(app, 7201, clock.now, customer_id=701, email="g@example.com")
    run_worker(app)
    assert len(recall_messages(app)) == 1 and len(cases(app, rid)) == 1
    # An import of an older order inside the window joins through the periodic sync.
    imported(app, 90101, datetime(2026, 2, 10, tzinfo=timezone.utc), email="j@example.com")
    with app.engine.begin() as conn:
        from retention_plugin.context import HookContext

        recall_engine.sync_all(HookContext(app, conn, now=clock.now, source="task"))
    assert customer_id(app, "j@example.com") in cases(app, rid)


def test_safety_notices_ignore_quiet_hours_quality_notices_keep_them(make_app, clock):
    clock.now = datetime(2026, 3, 2, 23, 30, tzinfo=timezone.utc)  # 01:30 in Vilnius
    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    paid(app, 7301, clock.now - timedelta(days=3), customer_id=801, email="k@example.com")
    paid(app, 7302, clock.now - timedelta(days=3), customer_id=802, email="l@example.com", sku="MUG-M1")
    run_worker(app)
    create_recall(app, sku=X, severity="safety", title="it can catch fire")
    create_recall(app, sku="MUG-M1", severity="quality", title="the glaze crackles")
    run_worker(app)
    by_kind = {m["kind"]: m for m in recall_messages(app)}
    assert by_kind["recall"]["status"] == "sent"
    quality = by_kind["recall_quality"]
    assert quality["message_class"] == "transactional" and quality["status"] == "deferred"
    assert quality["template"] in ("recall", None)
    clock.now = datetime(2026, 3, 3, 8, 0, tzinfo=timezone.utc)  # 10:00 in Vilnius
    run_worker(app)
    assert {m["status"] for m in recall_messages(app)} == {"sent"}


def test_create_validates_its_input(make_app):
    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    with pytest.raises(RecallError, match="--title is required"):
        create_recall(app, sku=X)
    with pytest.raises(RecallError, match="--sku or --product-id"):
        create_recall(app, title="x")
    with pytest.raises(RecallError, match="not a date"):
        create_recall(app, sku=X, title="x", ordered_from="last week")
    with pytest.raises(RecallError, match="after"):
        create_recall(app, sku=X, title="x", ordered_from="2026-03-01", ordered_to="2026-02-01")
    bare = make_app(messages=LOG)
    with pytest.raises(RecallError, match=r"\[links\] secret is not set.*needs \[links\] secret and \[links\] base"):
        create_recall(bare, sku=X, title="x")
    no_base = make_app(messages=LOG, links={"secret": LINK_SECRET})
    with pytest.raises(RecallError, match=r"\[links\] base_url is not set"):
        create_recall(no_base, sku=X, title="x")


def test_product_id_recall_and_preview(make_app, clock, monkeypatch):
    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    paid(app, 7401, clock.now - timedelta(days=2), customer_id=901, email="m@example.com", sku="KETTLE-K1-RED")
    run_worker(app)
    imported(app, 90201, clock.now - timedelta(days=3), email="n@example.com")  # no product id, right SKU
    res = _invoke(app, monkeypatch, "recall", "create", "--sku", X, "--product-id", "7501", "--preview", "--json")
    assert res.exit_code == 0, res.output
    pv = json.loads(res.output)
    assert pv["customers"] == 2 and pv["by_source"] == {"import": 1, "webhook": 1}
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.recalls)).scalar() == 0
    res = _invoke(app, monkeypatch, "recall", "create", "--sku", X, "--product-id", "7501", "--title", "leaks")
    assert res.exit_code == 0, res.output
    assert "2 new case(s)" in res.output
    res = _invoke(app, monkeypatch, "recall", "create", "--sku", X, "--title", "x", "--ordered-from", "soon")
    assert res.exit_code == 1 and "not a date" in res.output


def notice_token(app, recall_id, customer_id):
    """The ``t`` of the acknowledgment link in the customer's recall notice, as it was sent."""
    with app.engine.connect() as conn:
        data = conn.execute(select(t.messages.c.data).where(
            t.messages.c.key == f"recall:{recall_id}:{customer_id}")).scalar_one()
    url = data["ack_url"]
    assert url.startswith("https://retention.example.com/r/ack?t=v1."), url
    return url.split("t=", 1)[1]


def test_ack_tokens_are_signed_links_bound_to_their_purpose(make_app, clock):
    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    later = clock.now + timedelta(days=1)
    token = links.sign("recall_ack", {"r": 12, "c": 345}, LINK_SECRET, later)
    assert verify_ack(app.settings, token, clock.now) == (12, 345)
    # A genuine token made for another purpose (an unsubscribe, a rating) acknowledges nothing.
    for purpose in ("unsubscribe", "rate"):
        with pytest.raises(links.LinkError) as e:
            verify_ack(app.settings, links.sign(purpose, {"r": 12, "c": 345}, LINK_SECRET, later), clock.now)
        assert e.value.reason == "purpose"
    with pytest.raises(links.LinkError) as e:
        verify_ack(app.settings, links.sign("recall_ack", {"r": 12, "c": 345}, "another-secret-0123456789", later),
                   clock.now)
    assert e.value.reason == "signature"
    for junk in ("junk", None, token[:-3] + "AAA"):
        with pytest.raises(links.LinkError):
            verify_ack(app.settings, junk, clock.now)
    assert ack_page.token_from_request("t=" + token) == token
    assert ack_page.token_from_request("", ("t=" + token).encode()) == token


def test_ack_links_sent_before_the_one_scheme_still_verify(make_app, clock):
    """Notices already in inboxes carry the old ``<recall>.<customer>.<mac>`` token, made by the old code."""
    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    old = sign_ack(SECRET, 12, 345)
    assert verify_ack(app.settings, old, clock.now + timedelta(days=3650)) == (12, 345)  # they never expired
    for forged in (sign_ack("another-secret-0123456789", 12, 345), old.replace("12.", "13.", 1),
                   unsubscribe_token(SECRET, 345)):
        with pytest.raises(links.LinkError):
            verify_ack(app.settings, forged, clock.now)
    # Without [recalls] signing_secret nothing old verifies; without [links] nothing new does.
    with pytest.raises(links.LinkError):
        verify_ack(make_app(links=LINKS, messages=LOG).settings, old, clock.now)
    assert verify_ack(make_app(recalls=RECALLS, messages=LOG).settings, old, clock.now) == (12, 345)


def test_merging_two_affected_customers_keeps_one_case(make_app, clock):
    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    imported(app, 90301, clock.now - timedelta(days=3), email="o@example.com")  # no Shopify id
    paid(app, 7501, clock.now - timedelta(days=2), customer_id=951, email="o2@example.com")
    run_worker(app)
    rid = create_recall(app, sku=X, title="it rattles")["id"]
    assert len(cases(app, rid)) == 2
    with app.engine.begin() as conn:  # a payload that says both are one person
        ctx = HookContext(app, conn, now=clock.now, source="cli")  # the recalls plugin moves its cases
        keep = resolve_customer(conn, ev.CustomerInfo(shopify_id=951, email="o@example.com"), clock.now, ctx=ctx)
    assert list(cases(app, rid)) == [keep]
    s = status(app, rid)
    assert s["total"] == 1 and add_up(s)


def _invoke(app, monkeypatch, *args):
    from retention_plugin import cli as cli_mod

    monkeypatch.setattr(cli_mod.LazyApp, "app", property(lambda self: app))
    group = click.Group("retention")
    recalls.register_commands(cli=group)
    return CliRunner().invoke(group, list(args), obj=cli_mod.LazyApp(None))


def test_a_sent_notice_shows_as_notified_in_every_read_and_no_read_writes(make_app, clock, monkeypatch):
    """The console's recall pages (``recalls.list``, ``recalls.status``) and ``recall list/status/cases``
    used to store ``notified`` (``sync_notified``) before reading, so a GET wrote and, on SQLite, waited for
    the worker's group. They now show what it would store, from the case's notice; the ``recalls.sync`` task
    stores it, and what they show is the same before and after."""
    from retention_plugin.operations import collect_operations
    from retention_plugin.worker import Worker

    app = make_app(recalls=RECALLS, links=LINKS, messages=LOG)
    inside = clock.now - timedelta(days=10)
    paid(app, 7301, inside, customer_id=801, email="u@example.com")
    paid(app, 7302, inside, customer_id=802, email="v@example.com")
    assert run_worker(app).dead == 0
    rid = create_recall(app, sku=X, title="the base cracks", **WINDOW)["id"]
    u, v = customer_id(app, "u@example.com"), customer_id(app, "v@example.com")
    with app.engine.begin() as conn:  # v's notice is not due yet: v stays affected
        conn.execute(update(t.messages).where(t.messages.c.customer_id == v, t.messages.c.kind == "recall")
                     .values(send_at=clock.now + timedelta(days=1)))
    # The sender alone, as a worker round ends: no recalls.sync round after it.
    assert Worker(app).send_messages()["sent"] == 1
    sent_at = next(m["sent_at"] for m in recall_messages(app) if m["customer_id"] == u)
    stored = {c: (r["status"], r["notified_at"]) for c, r in cases(app, rid).items()}
    assert stored == {u: ("affected", None), v: ("affected", None)}

    operations = collect_operations(app.pm)

    def cli_json(*args):
        res = _invoke(app, monkeypatch, "recall", *args, "--json")
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    def shown():
        one = operations["recalls.status"](app, recall_id=rid)
        return {"console": one, "console list": operations["recalls.list"](app),
                "cli status": cli_json("status", str(rid)), "cli list": cli_json("list"),
                "cli cases": cli_json("cases", str(rid)),
                "cli notified": [c["customer_id"] for c in cli_json("cases", str(rid), "--state", "notified")],
                "cli affected": [c["customer_id"] for c in cli_json("cases", str(rid), "--state", "affected")]}

    before = shown()
    one = before["console"]
    assert (one["affected"], one["notified"], one["cumulative"]["notified"]) == (1, 1, 1) and add_up(one)
    assert {c["customer_id"]: (c["status"], c["notified_at"]) for c in one["cases"]} == {
        u: ("notified", sent_at.isoformat()), v: ("affected", None)}
    assert before["console list"] == [{**{k: one[k] for k in one if k != "cases"}, "shop": one_shop(app, rid)}]
    assert before["cli status"] == {k: one[k] for k in one if k != "cases"} == before["cli list"][0]
    assert before["cli cases"] == one["cases"]
    assert (before["cli notified"], before["cli affected"]) == ([u], [v])
    # Nothing above wrote: the stored states are the task's to bring up to date.
    assert {c: (r["status"], r["notified_at"]) for c, r in cases(app, rid).items()} == stored

    with app.engine.begin() as conn:
        recall_engine.sync_all(HookContext(app, conn, now=clock.now, source="task"))
    assert {c: (r["status"], r["notified_at"]) for c, r in cases(app, rid).items()} == {
        u: ("notified", sent_at), v: ("affected", None)}
    assert shown() == before


def one_shop(app, rid):
    with app.engine.connect() as conn:
        return conn.execute(select(t.recalls.c.shop).where(t.recalls.c.id == rid)).scalar_one()

"""Service recovery pays only for real complaints, once per incident, with codes nobody can guess.

Issue 13, items 1, 2, 3, 8 and the closed-ticket part of 12. Every test that
touches storage runs on SQLite and PostgreSQL, through real webhook payloads,
the real worker and the real action runner; the CLI runs as `retention` does.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config
from payloads import order, rating_values, zendesk_trigger
from server_util import write_config
from test_recovery import (RECOVERY, ZENDESK, actions, buy, make, open_ticket, rate, rows, solve_ticket,
                           sorry_code, ticket, ticket_values)
from retention_plugin import hookimpl
from retention_plugin.app import Retention
from retention_plugin.cli import cli
from retention_plugin.discounts import UnboundCode, code_for, code_secret, derive_code, rotate_secret
from retention_plugin.events import Ticket
from retention_plugin.features.followups import engine as followup_engine
from retention_plugin.features import recovery as recovery_plugin
from retention_plugin.features.recovery.classify import builtin_classify
from retention_plugin.features.recovery.labelled import LANGUAGES, load, score
from retention_plugin.features.recovery.settings import defaults
from retention_plugin.platforms.zendesk.requests import PRODUCT_TAG
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine, upgrade
from retention_plugin.testing import deliver_shopify, deliver_zendesk, run_worker


@pytest.fixture
def run_cli(db_url, tmp_path, clock, monkeypatch):
    """`retention --config ... recovery ...` on the test's database and clock."""
    recovery_plugin.register_commands(cli=cli)
    from_config = Retention.from_config.__func__
    monkeypatch.setattr(Retention, "from_config", classmethod(
        lambda cls, path=None, **kw: from_config(cls, path, clock=clock, entry_points=False)))
    config = write_config(tmp_path / "cli.toml", base_config(db_url, recovery={"currency": "USD"}))

    def invoke(*args):
        return CliRunner().invoke(cli, ["--config", str(config), *args])

    return invoke


def classify_text(subject, body, **kw):
    ticket = Ticket(zendesk_id=1, subject=subject, description=body, status="new", priority=None, tags=[],
                    requester=None, created_at=None, updated_at=None)
    return builtin_classify(ticket, defaults(), **kw)


# --- 1. questions, thanks and negations are not complaints ------------------------------------------


@pytest.mark.parametrize("subject, body", [
    ("Question about your refund policy", "Hi, what is your refund policy for unopened items?"),
    ("Nothing was broken or damaged, thanks!", "The parcel came today."),
    ("Klausimas dėl pinigų grąžinimo politikos", "Kokia jūsų pinigų grąžinimo politika?"),
    ("Paket je prispel", "Nič ni bilo razbito ali poškodovano, hvala!"),
    ("Посылка пришла", "Ничего не было разбито или повреждено, спасибо!"),
    ("ამანათი მოვიდა", "არაფერი იყო გატეხილი ან დაზიანებული, მადლობა!"),
    ("Is my order delayed?", "Tracking hasn't moved since yesterday, just checking."),
])
def test_questions_thanks_and_negations_pay_nothing(make_app, subject, body):
    app = make(make_app)
    buy(app, 11, subtotal="90.00")
    open_ticket(app, 4242, subject=subject, description=body)
    run_worker(app)
    solve_ticket(app, 4242, subject=subject, description=body)
    run_worker(app)
    row = ticket(app, 4242)
    assert row["complaint"] is False, row["complaint_reason"]
    assert rows(app, t.recoveries) == []
    assert actions(app, "discount_code_basic_create") == []
    assert actions(app, key_prefix="recovery:ticket:4242:reply") == []


@pytest.mark.parametrize("subject, body, severity", [
    ("Broken mug", "The mug arrived broken.", "high"),
    ("Why?", "Why did my parcel arrive damaged?", "high"),
    ("Sugadinta prekė", "Gavau sugadintą prekę, labai nusivylusi.", "high"),
    ("Paket", "Paketa nisem prejel in želim vračilo denarja.", "high"),
    ("СРОЧНО", "ПОСЫЛКУ НЕ ПОЛУЧИЛ, ВЕРНИТЕ ДЕНЬГИ", "high"),
    ("შეკვეთა", "შეკვეთა ისევ აგვიანებს", "low"),
])
def test_real_complaints_are_still_found(subject, body, severity):
    got = classify_text(subject, body)
    assert got["complaint"] is True and got["severity"] == severity, got["reason"]
    assert got["evidence"] == ["keyword"]


def test_the_labelled_set_meets_the_targets_in_every_language():
    """At least 300 realistic tickets, every language, hard negatives; P >= 0.95 and R >= 0.85 on the tuned
    part and on the held-out part. (The ``fresh`` part, written after the rules were frozen, is reported by
    bench/bench_classify.py and docs/recovery.md, not held to the target.)"""
    items = load()
    assert len(items) >= 300
    assert len({x["id"] for x in items}) == len(items)
    for lang in LANGUAGES:
        mine = [x for x in items if x["lang"] == lang]
        hard = [x for x in mine if not x["complaint"] and x["kind"] in (
            "question", "thanks", "negated", "policy", "order_status", "conditional", "praise")]
        assert len(mine) >= 60 and len(hard) >= 25, lang
        assert {x["split"] for x in mine} == {"tune", "holdout", "fresh"}
    settings = defaults()

    def predict(item):
        ticket = Ticket(zendesk_id=1, subject=item["subject"], description=item["body"], status="new",
                        priority=None, tags=[], requester=None, created_at=None, updated_at=None)
        return builtin_classify(ticket, settings)["complaint"]

    figures = score(items, predict)
    for lang in LANGUAGES:
        for split in ("tune", "holdout"):
            f = figures[(lang, split)]
            errors = [(why, x["id"]) for why, x in f.errors]
            assert f.precision >= 0.95 and f.recall >= 0.85, (lang, split, f.precision, f.recall, errors)


def test_classify_command_shows_why(run_cli):
    r = run_cli("recovery", "classify", "--subject", "Question about your refund policy",
                "--body", "Nothing was broken or damaged, thanks!", "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert set(got) >= {"complaint", "severity", "matched", "reason"}
    assert got["complaint"] is False and got["severity"] is None and got["matched"] == []
    why = {x["text"]: x["why"] for x in got["ignored"]}
    assert why["broken"] == 'negated ("nothing")' and why["damaged"] == 'negated ("nothing")'
    assert "ignored" in got["reason"]

    r = run_cli("recovery", "classify", "--subject", "Parcel", "--body", "Товар пришёл сломанный", "--lang", "ru",
                "--json")
    got = json.loads(r.output)
    assert got["complaint"] is True and got["severity"] == "high"
    assert [(x["lang"], x["text"]) for x in got["matched"]] == [("ru", "сломанный")]
    r = run_cli("recovery", "classify", "--body", "Товар пришёл сломанный", "--lang", "en", "--json")
    assert json.loads(r.output)["complaint"] is False  # only English keywords asked for

    r = run_cli("recovery", "classify", "--body", "The mug arrived broken")
    assert r.exit_code == 0 and "complaint: yes, severity high" in r.output and '"broken"' in r.output
    bad = run_cli("recovery", "classify", "--body", "x", "--lang", "xx")
    assert bad.exit_code == 2 and "--lang" in bad.output and "'xx'" in bad.output


def keyword_only_complaint(make_app, text):
    """Ann's ticket 4242, a complaint by its words alone, solved: returns the app and its recovery case."""
    app = make(make_app)
    buy(app, 11, subtotal="90.00")
    open_ticket(app, 4242, description=text)
    run_worker(app)
    solve_ticket(app, 4242, description=text)
    run_worker(app)
    [case] = rows(app, t.recoveries)
    return app, case


def test_a_keyword_only_offer_waits_and_approving_issues_it_exactly_once(make_app, run_cli):
    app, case = keyword_only_complaint(make_app, "The kettle arrived broken")
    assert case["decision"] == "pending" and case["amount"] == Decimal("20.00") and case["evidence"] == "keyword"
    assert case["hold"] == "the complaint is known from keywords alone"
    assert actions(app, "discount_code_basic_create") == [] and rows(app, t.rewards) == []
    assert actions(app, key_prefix="recovery:ticket:4242:reply") == []
    [note] = actions(app, key_prefix="recovery:ticket:4242:pending-note")
    comment = note["request"]["json"]["ticket"]["comment"]
    assert comment["public"] is False and f"retention recovery approve {case['id']}" in comment["body"]

    listed = json.loads(run_cli("recovery", "pending", "--json").output)
    assert [(c["id"], c["amount"], c["hold"]) for c in listed] == [
        (case["id"], "20.00", "the complaint is known from keywords alone")]

    r = run_cli("recovery", "approve", str(case["id"]), "--by", "maria")
    assert r.exit_code == 0 and "approved by maria" in r.output, r.output
    again = run_cli("recovery", "approve", str(case["id"]), "--by", "tom")
    assert again.exit_code == 0 and "already approved by maria" in again.output
    [case] = rows(app, t.recoveries)
    assert case["decision"] == "offered" and case["reviewed_by"] == "maria" and case["reward_id"] is not None
    [discount] = actions(app, "discount_code_basic_create")
    code = sorry_code(app, "recovery:ticket:4242")
    assert discount["request"]["variables"]["basicCodeDiscount"]["code"] == code
    [reply] = actions(app, key_prefix="recovery:ticket:4242:reply")
    assert reply["request"]["json"]["ticket"]["comment"]["public"] is True
    assert code in reply["request"]["json"]["ticket"]["comment"]["body"]
    assert len(rows(app, t.rewards)) == 1
    assert json.loads(run_cli("recovery", "pending", "--json").output) == []


def test_declining_records_who_and_why(make_app, run_cli):
    app, case = keyword_only_complaint(make_app, "It arrived damaged")
    missing = run_cli("recovery", "decline", str(case["id"]))
    assert missing.exit_code == 2 and "--reason" in missing.output
    r = run_cli("recovery", "decline", str(case["id"]), "--by", "maria", "--reason", "asked about it, not damaged")
    assert r.exit_code == 0, r.output
    [case] = rows(app, t.recoveries)
    assert case["decision"] == "declined" and case["reviewed_by"] == "maria"
    assert case["review_note"] == "asked about it, not damaged"
    assert case["reason"].startswith("declined_by_reviewer: maria")
    late = run_cli("recovery", "approve", str(case["id"]))
    assert late.exit_code == 1 and "is declined, not waiting for approval" in late.output
    assert actions(app, "discount_code_basic_create") == []
    nothing = run_cli("recovery", "approve", "999")
    assert nothing.exit_code == 1 and "no recovery case 999" in nothing.output
    report = json.loads(run_cli("recovery", "report", "--json").output)
    assert report["no_offer"]["by_reason"] == {"declined_by_reviewer": 1}


def test_offers_above_approval_above_wait(make_app):
    app = make(make_app, tiers={}, recovery={"approval_above": 15})
    buy(app, 11, subtotal="90.00")
    buy(app, 12, email="ben@example.com", customer_id=2002, subtotal="90.00")
    # Tagged by an agent: confirmed complaints. High (20) is above 15 and waits; medium (10) goes out.
    open_ticket(app, 2, description="It arrived broken", tags="complaint")
    open_ticket(app, 3, email="ben@example.com", requester_id=8802, description="Look at my order", tags="complaint")
    run_worker(app)
    solve_ticket(app, 2, description="It arrived broken", tags="complaint")
    solve_ticket(app, 3, email="ben@example.com", requester_id=8802, description="Look at my order", tags="complaint")
    run_worker(app)
    cases = {r["key"]: r for r in rows(app, t.recoveries)}
    high, medium = cases["recovery:ticket:2"], cases["recovery:ticket:3"]
    assert high["decision"] == "pending" and high["evidence"] == "tag,keyword"
    assert high["hold"] == "20.00 USD is above approval_above 15"
    assert medium["decision"] == "offered" and medium["evidence"] == "tag" and medium["amount"] == Decimal("10.00")
    [d] = actions(app, "discount_code_basic_create")
    assert d["key"] == "recovery:ticket:3:discount"


def test_hook_classify_ticket_stays_the_override_point(make_app):
    """A plugin's answer is evidence of its own: its offers go out without waiting (the built-in's would wait)."""

    class Model:
        @hookimpl
        def classify_ticket(self, ticket, ctx):
            if "refund policy" in (ticket.subject or "").lower():
                return {"complaint": True, "severity": "low", "reason": "model: angry about the policy"}
            return None

    app = make_app(extra_plugins=[Model()], recovery=RECOVERY, plugins={"disabled": ["loyalty", "winback"]})
    buy(app, 11, subtotal="90.00")
    open_ticket(app, 7, subject="Your refund policy is a joke", description="Seriously.")
    run_worker(app)
    solve_ticket(app, 7, subject="Your refund policy is a joke", description="Seriously.")
    run_worker(app)
    assert ticket(app, 7)["complaint_evidence"] == "plugin"
    [case] = rows(app, t.recoveries)
    assert case["decision"] == "offered" and case["amount"] == Decimal("5.00")


# --- 2. one bad experience is paid once ---------------------------------------------------------------


LINKS = {"secret": "test-link-secret-0123456789", "base_url": "https://retention.example.com"}


def _fulfilled(app, clock, order_id):
    deliver_shopify(app, "orders/paid", order(order_id, subtotal="90.00", created=clock.now - timedelta(hours=1)))
    run_worker(app)
    clock.advance(days=1)
    deliver_shopify(app, "fulfillments/create", {
        "id": order_id + 50_000, "order_id": order_id, "status": "success",
        "created_at": clock.now.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "updated_at": clock.now.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "line_items": [{"id": order_id * 10 + 1}]})
    run_worker(app)
    clock.advance(days=8)  # the follow-up goes out
    run_worker(app)
    [msg] = rows(app, t.messages, t.messages.c.key == f"followups:order:{order_id}")
    return parse_qs(urlsplit(msg["data"]["rating_url"]).query)["t"][0]


def _zendesk_creates(app, action, zendesk_id, *, status="New"):
    """Zendesk's ticket.created trigger for a ticket the product asked for, as it arrives back."""
    body = action["request"]["json"]["ticket"]
    values = ticket_values(zendesk_id, subject=body["subject"], description=body["comment"]["body"],
                           tags=" ".join(body["tags"]), when=app.now(), status=status)
    return deliver_zendesk(app, zendesk_trigger("ticket_created" if status == "New" else "ticket_solved", values))


def test_one_bad_experience_is_paid_once(make_app, clock):
    app = make(make_app, links=LINKS, messages={"default_channel": "email", "shop_name": "Shop"},
               offers={"thank_you": False})
    token = _fulfilled(app, clock, 8001)
    result = followup_engine.record_rating_answer(app, token, "bad", comment="The mug was broken and I am unhappy")
    assert result.ticket == "enqueued"
    run_worker(app)
    [first] = rows(app, t.recoveries)
    assert first["key"] == "recovery:rating:followup:8001" and first["decision"] == "offered"
    assert first["amount"] == Decimal("10.00")
    [opened] = actions(app, key_prefix="followups:ticket:order:8001")
    assert PRODUCT_TAG in opened["request"]["json"]["ticket"]["tags"]

    # The ticket the product opened comes back from Zendesk: "Unhappy with order #8001" is our text.
    _zendesk_creates(app, opened, 9100)
    run_worker(app)
    assert ticket(app, 9100)["complaint"] is False
    clock.advance(days=2)
    _zendesk_creates(app, opened, 9100, status="Solved")
    run_worker(app)
    # An agent tags it a complaint, or the customer rates it badly: still the same incident.
    rate(app, 9100)
    # And the customer's own email about the same order, tagged by an agent.
    open_ticket(app, 9101, subject="Order #8001", description="The mug arrived broken!", tags="complaint")
    run_worker(app)
    solve_ticket(app, 9101, subject="Order #8001", description="The mug arrived broken!", tags="complaint")
    run_worker(app)
    cases = {r["key"]: r for r in rows(app, t.recoveries)}
    assert [k for k, r in cases.items() if r["decision"] == "offered"] == ["recovery:rating:followup:8001"]
    for key in ("recovery:ticket:9100", "recovery:ticket:9101"):
        assert cases[key]["decision"] == "declined" and cases[key]["reason"].startswith("same_incident"), cases[key]
        assert cases[key]["incident"] == "recovery:rating:followup:8001"
        assert cases[key]["order_id"] == cases["recovery:rating:followup:8001"]["order_id"] is not None
    assert len(actions(app, "discount_code_basic_create")) == 1

    # A different order is a different incident; so is the same order once the window is over.
    buy(app, 8002, subtotal="40.00", days_ago=0)
    open_ticket(app, 9102, subject="Order #8002", description="Wrong item", tags="complaint")
    run_worker(app)
    solve_ticket(app, 9102, subject="Order #8002", description="Wrong item", tags="complaint")
    run_worker(app)
    assert rows(app, t.recoveries, t.recoveries.c.key == "recovery:ticket:9102")[0]["decision"] == "offered"
    clock.advance(days=15)
    open_ticket(app, 9103, subject="Order #8001 again", description="The other mug broke too", tags="complaint")
    run_worker(app)
    solve_ticket(app, 9103, subject="Order #8001 again", description="The other mug broke too", tags="complaint")
    run_worker(app)
    assert rows(app, t.recoveries, t.recoveries.c.key == "recovery:ticket:9103")[0]["decision"] == "offered"


def test_the_product_never_classifies_its_own_ticket_text(make_app):
    app = make(make_app)
    buy(app, 11)
    open_ticket(app, 5, subject="Recall #3: Kettle", description="Dangerous: the kettle can overheat. Broken units",
                tags=f"recall {PRODUCT_TAG}")
    run_worker(app)
    row = ticket(app, 5)
    assert row["complaint"] is False and row["complaint_reason"] == "no complaint signals"


# --- 3. codes nobody can guess, bound to somebody ---------------------------------------------------------


def rated_offer(make_app):
    """Ann rates ticket 4242 bad: an offer (rating evidence) with a code goes out."""
    app = make(make_app)
    buy(app, 11, subtotal="90.00")
    open_ticket(app, 4242)
    rate(app, 4242)
    run_worker(app)
    return app


def test_codes_are_an_hmac_under_a_per_install_secret(make_app, tmp_path):
    app = rated_offer(make_app)
    [reward] = rows(app, t.rewards)
    key = "recovery:ticket:4242"
    # Not the unsalted digest of the key anyone could compute from the ticket number.
    unsalted = "SORRY-" + base64.b32encode(hashlib.sha256(key.encode()).digest()).decode()[:12]
    assert reward["code"] != unsalted and reward["code"].startswith("SORRY-") and len(reward["code"]) == 19
    with app.engine.connect() as conn:
        state = conn.execute(select(t.plugin_state.c.value).where(t.plugin_state.c.plugin == "discounts",
                                                                   t.plugin_state.c.key == "code_secret")).scalar()
    secret = bytes.fromhex(state["secret"])
    assert len(secret) * 8 >= 64
    assert reward["code"] == derive_code(secret, "SORRY", key)
    with app.engine.begin() as conn:
        customer = conn.execute(select(t.customers).where(t.customers.c.shopify_id == 1001)).mappings().one()
        assert code_for(conn, "SORRY", key, customer) == reward["code"]  # deterministic: a retry sends the same
        rotate_secret(conn, app.now())
        assert code_for(conn, "SORRY", key, customer) != reward["code"]
    # Another install derives another code for the same key.
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    upgrade(other)
    with other.begin() as conn:
        assert code_for(conn, "SORRY", key, customer) != reward["code"]
    other.dispose()


def test_rotate_secret_command(make_app, run_cli):
    app = rated_offer(make_app)
    before = sorry_code(app, "recovery:ticket:4242")
    refused = run_cli("discounts", "rotate-secret")  # asks first; no answer is no
    assert refused.exit_code == 1 and sorry_code(app, "recovery:ticket:4242") == before
    r = run_cli("discounts", "rotate-secret", "--yes")
    assert r.exit_code == 0, r.output
    assert sorry_code(app, "recovery:ticket:4242") != before
    assert rows(app, t.rewards)[0]["code"] == before  # the issued code is stored; it stays valid
    with app.engine.connect() as conn:
        secret = code_secret(conn).hex()
    assert secret not in r.output  # never printed


def test_no_code_is_ever_bound_to_nobody(make_app, run_cli):
    app = make(make_app)
    # Known from Zendesk only: no Shopify customer id to limit a code to.
    open_ticket(app, 77, email="zoe@example.com", requester_id=8877, description="Help", tags="complaint")
    run_worker(app)
    solve_ticket(app, 77, email="zoe@example.com", requester_id=8877, description="Help", tags="complaint")
    run_worker(app)
    [case] = rows(app, t.recoveries)
    assert case["decision"] == "pending"
    assert case["hold"] == "no Shopify customer id: a code or credit would be bound to nobody"
    assert actions(app, "discount_code_basic_create") == [] and rows(app, t.rewards) == []
    r = run_cli("recovery", "approve", str(case["id"]))
    assert r.exit_code == 1 and "still has no Shopify customer id" in r.output
    assert rows(app, t.recoveries)[0]["decision"] == "pending" and actions(app, "discount_code_basic_create") == []
    with app.engine.begin() as conn:
        customer = conn.execute(select(t.customers).where(t.customers.c.email == "zoe@example.com")).mappings().one()
        with pytest.raises(UnboundCode, match="bound to nobody"):
            code_for(conn, "THANKS", "offers:voucher:order:1", customer)

    # Once Shopify links the customer (her first order), the same approval issues a code limited to her.
    deliver_shopify(app, "orders/paid", order(31, email="zoe@example.com", customer_id=3131))
    run_worker(app)
    r = run_cli("recovery", "approve", str(case["id"]), "--by", "maria")
    assert r.exit_code == 0, r.output
    [d] = actions(app, "discount_code_basic_create")
    assert d["request"]["variables"]["basicCodeDiscount"]["context"] == {
        "customers": {"add": ["gid://shopify/Customer/3131"]}}


# --- 8. escalation never lowers a priority -------------------------------------------------------------------


def test_escalation_raises_from_the_current_priority_never_lowers_it(make_app, clock):
    app = make(make_app, tiers={"ann@example.com": "gold", "ben@example.com": None},
               recovery={"watch": {"tiers": ["gold"], "min_spend": 500}})
    buy(app, 11, subtotal="50.00")
    buy(app, 12, email="ben@example.com", customer_id=2002, subtotal="600.00")
    open_ticket(app, 901)  # gold: routed to urgent
    open_ticket(app, 902, email="ben@example.com", requester_id=8802)  # valued: routed to high
    open_ticket(app, 903, email="ben@example.com", requester_id=8802, priority="Low")  # stored low, routed high
    run_worker(app)
    routed = {a["key"]: a["request"]["json"]["ticket"].get("priority") for a in actions(app, "ticket_update")}
    assert routed == {"recovery:route:901": "urgent", "recovery:route:902": "high", "recovery:route:903": "high"}
    assert ticket(app, 901)["priority"] == "normal"  # Zendesk has not sent the change back (dry run)
    clock.advance(hours=4, minutes=30)
    run_worker(app)
    sent = {a["key"]: a["request"]["json"]["ticket"] for a in actions(app, key_prefix="recovery:escalate:")}
    assert sent["recovery:escalate:901"] == {"additional_tags": ["retention_waiting"]}  # urgent stays urgent
    assert sent["recovery:escalate:902"]["priority"] == "urgent"  # one step up from high, not from normal
    assert sent["recovery:escalate:903"]["priority"] == "urgent"


# --- 12. an apology for a closed ticket ---------------------------------------------------------------


def test_an_apology_for_a_closed_ticket_opens_a_follow_up(make_app):
    app = make(make_app, actions={"dry_run": False})
    buy(app, 11, subtotal="90.00")
    values = rating_values(4242, "Bad, I'm unsatisfied", when=app.now(), status="closed")
    deliver_zendesk(app, zendesk_trigger("satisfaction_rated", values))
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, f"{ZENDESK}/api/v2/tickets", json={"ticket": {"id": 5000}}, status=201)
        rsps.add(responses.POST, "https://retention-test.myshopify.com/admin/api/2026-07/graphql.json",
                 json={"data": {"discountCodeBasicCreate": {"codeDiscountNode": {"id": "gid://shopify/x/1"},
                                                            "userErrors": []}}})
        counts = run_worker(app)
        posted = [c for c in rsps.calls if c.request.url == f"{ZENDESK}/api/v2/tickets"]
        assert len(posted) == 1, counts
        sent = json.loads(posted[0].request.body)["ticket"]
        assert posted[0].request.headers["Idempotency-Key"] == "recovery:ticket:4242:followup"
    assert ticket(app, 4242)["status"] == "closed"
    assert sent["via_followup_source_id"] == 4242
    assert sent["requester"]["email"] == "ann@example.com"
    assert sent["comment"]["public"] is True and sorry_code(app, "recovery:ticket:4242") in sent["comment"]["body"]
    assert PRODUCT_TAG in sent["tags"] and "(request #4242)" in sent["subject"]
    # Nothing is put on the closed ticket itself: Zendesk would refuse it.
    assert [a for a in actions(app) if a["request"].get("path") == "/api/v2/tickets/4242"] == []
    assert {a["status"] for a in actions(app)} == {"done"}

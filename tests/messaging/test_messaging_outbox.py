"""The outbox on a real SQLite file: scheduling, the worker's send_due, retries, actions, explain."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from retention_plugin import hookimpl
from retention_plugin.events import Money
from retention_plugin.messaging import outbox
from retention_plugin.messaging.kinds import BUILTIN_KINDS
from retention_plugin.messaging.channels import ChannelError, EmailChannel, LogChannel, ZendeskChannel
from retention_plugin.customers import find_customer
from retention_plugin.messaging.outbox import cancel_message, explain, schedule_message, send_due
from retention_plugin.storage import tables
from retention_plugin.testing import RecordingChannel as Recording  # keeps what it is given; the database is real

VILNIUS = ZoneInfo("Europe/Vilnius")


def vilnius(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=VILNIUS).astimezone(timezone.utc)


TUESDAY_10 = vilnius(2026, 3, 3, 10)


def row(engine, key):
    with engine.connect() as conn:
        return conn.execute(select(tables.messages).where(tables.messages.c.key == key)).mappings().one()


def schedule(engine, key, customer_id, kind, due_at, data=None, **kw):
    from retention_plugin.messaging.kinds import BUILTIN_KINDS

    with engine.begin() as conn:
        return schedule_message(conn, key=key, customer_id=customer_id, kind=kind, due_at=due_at,
                                data=BUILTIN_KINDS[kind].sample if data is None else data, now=due_at, **kw)


# --- scheduling --------------------------------------------------------------------------------


def test_schedule_is_idempotent_on_the_key(engine, add_customer):
    cid = add_customer()
    a = schedule(engine, "thanks:1", cid, "thank_you", TUESDAY_10)
    b = schedule(engine, "thanks:1", cid, "thank_you", TUESDAY_10 + timedelta(days=1), data={"other": 1})
    assert a == b
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.messages)).scalar_one() == 1
    r = row(engine, "thanks:1")
    assert (r["status"], r["message_class"], r["channel"], r["send_at"]) == ("scheduled", "transactional", "default",
                                                                              TUESDAY_10)
    assert r["data"]["order_total"] == "12.50"


def test_schedule_stores_money_as_text_and_needs_a_class_for_unknown_kinds(engine, add_customer):
    cid = add_customer()
    with engine.begin() as conn:
        schedule_message(conn, key="v:1", customer_id=cid, kind="voucher", due_at=TUESDAY_10,
                         data={"discount_amount": Decimal("5.00"), "min": Money(Decimal("30"), "EUR"),
                               "expires_at": TUESDAY_10})
        with pytest.raises(KeyError, match="unknown message kind 'birthday'"):
            schedule_message(conn, key="b:1", customer_id=cid, kind="birthday", due_at=TUESDAY_10)
        schedule_message(conn, key="b:2", customer_id=cid, kind="birthday", message_class="marketing",
                         due_at=TUESDAY_10)
        with pytest.raises(ValueError, match="aware"):
            schedule_message(conn, key="b:3", customer_id=cid, kind="voucher",
                             due_at=datetime(2026, 3, 3))  # noqa: DTZ001 (naive on purpose)
    data = row(engine, "v:1")["data"]
    assert data == {"discount_amount": "5.00", "min": {"amount": "30", "currency": "EUR"},
                    "expires_at": TUESDAY_10.isoformat()}


def test_cancel_only_touches_pending_messages(engine, add_customer):
    cid = add_customer()
    schedule(engine, "f:1", cid, "follow_up", TUESDAY_10)
    with engine.begin() as conn:
        assert cancel_message(conn, "f:1", "order refunded")
        assert not cancel_message(conn, "f:1", "again")
    r = row(engine, "f:1")
    assert (r["status"], r["reason"]) == ("cancelled", "cancelled: order refunded")
    assert send_due(engine, now=TUESDAY_10, channels={"email": Recording()})["sent"] == 0


# --- send_due: the acceptance cases end to end ------------------------------------------------------


def test_marketing_at_six_is_deferred_then_sent_at_nine(engine, add_customer, settings):
    cid = add_customer()
    ch = Recording()
    schedule(engine, "v:1", cid, "voucher", vilnius(2026, 3, 3, 6))
    counts = send_due(engine, now=vilnius(2026, 3, 3, 6), channels={"email": ch}, settings=settings)
    assert counts["deferred"] == 1 and not ch.sent
    r = row(engine, "v:1")
    assert (r["status"], r["send_at"]) == ("deferred", vilnius(2026, 3, 3, 9))
    assert "06:00 Europe/Vilnius is before allowed hours 09:00–20:00" in r["reason"]
    assert send_due(engine, now=vilnius(2026, 3, 3, 8, 59), channels={"email": ch}, settings=settings)["sent"] == 0
    assert send_due(engine, now=vilnius(2026, 3, 3, 9), channels={"email": ch}, settings=settings)["sent"] == 1
    r = row(engine, "v:1")
    assert (r["status"], r["sent_at"], r["provider_id"], r["attempts"]) == ("sent", vilnius(2026, 3, 3, 9), "test-1", 1)
    assert r["rendered"]["locale"] == "lt" and "THANKS-7KQ2" in r["rendered"]["text"]
    assert r["reason"].startswith("email: 09:00 Europe/Vilnius")
    message, customer, rendered = ch.sent[0]
    assert message["key"] == "v:1" and customer["id"] == cid
    assert "https://shop.example/unsubscribe?c=" in rendered.text  # marketing: the unsubscribe link is in the body


def test_sunday_and_holiday_go_out_on_the_next_working_day(engine, add_customer, settings):
    cid = add_customer()
    schedule(engine, "r:sun", cid, "reminder", vilnius(2026, 3, 1, 11))
    schedule(engine, "r:hol", cid, "reminder", vilnius(2026, 2, 16, 11))
    send_due(engine, now=vilnius(2026, 2, 16, 11), channels={"email": Recording()}, settings=settings)
    r = row(engine, "r:hol")
    assert (r["status"], r["send_at"]) == ("deferred", vilnius(2026, 2, 17, 9))
    assert "2026-02-16 is a public holiday in LT" in r["reason"]
    assert row(engine, "r:sun")["status"] == "scheduled"  # not due yet, not touched
    send_due(engine, now=vilnius(2026, 3, 1, 11), channels={"email": Recording()}, settings=settings)
    r = row(engine, "r:sun")
    assert (r["status"], r["send_at"]) == ("deferred", vilnius(2026, 3, 2, 9))
    assert "Sunday 2026-03-01 is a rest day in LT" in r["reason"]


def test_third_marketing_message_suppressed_with_reason_transactional_still_sent(engine, add_customer, settings):
    cid = add_customer()
    ch = Recording()
    schedule(engine, "m:1", cid, "voucher", vilnius(2026, 3, 2, 10))
    schedule(engine, "m:2", cid, "reminder", vilnius(2026, 3, 4, 10))
    schedule(engine, "m:3", cid, "win_back", vilnius(2026, 3, 6, 10, 30))  # Friday
    schedule(engine, "t:1", cid, "thank_you", vilnius(2026, 3, 6, 10, 30))
    for when in (vilnius(2026, 3, 2, 10), vilnius(2026, 3, 4, 10), vilnius(2026, 3, 6, 10, 30)):
        send_due(engine, now=when, channels={"email": ch}, settings=settings)
    assert [row(engine, k)["status"] for k in ("m:1", "m:2", "m:3", "t:1")] == ["sent", "sent", "suppressed", "sent"]
    assert row(engine, "m:3")["reason"] == "marketing frequency cap: 2 marketing messages in the last 7 days (max 2)"
    assert row(engine, "t:1")["reason"].endswith("transactional, so no consent or frequency cap applies")


def test_unsubscribed_customer_gets_no_offer_and_the_reason_is_recorded(engine, add_customer, settings):
    cid = add_customer(marketing_consent="unsubscribed")
    ch = Recording()
    schedule(engine, "v:1", cid, "voucher", TUESDAY_10)
    schedule(engine, "d:1", cid, "delay_apology", TUESDAY_10)
    counts = send_due(engine, now=TUESDAY_10, channels={"email": ch}, settings=settings)
    assert (counts["suppressed"], counts["sent"]) == (1, 1)
    r = row(engine, "v:1")
    assert (r["status"], r["reason"], r["rendered"]) == ("suppressed", "no marketing consent (unsubscribed)", None)
    assert [m["key"] for m, _, _ in ch.sent] == ["d:1"]


def test_an_unsubscribe_stops_courtesy_mail_but_never_a_notice_they_need(engine, add_customer, settings):
    ch = Recording()
    unsubscribed = add_customer(marketing_consent="unsubscribed")
    never_asked = add_customer(marketing_consent="not_subscribed")
    for cid in (unsubscribed, never_asked):
        for kind in ("thank_you", "recall", "delay_apology"):
            schedule(engine, f"{kind}:{cid}", cid, kind, TUESDAY_10)
    send_due(engine, now=TUESDAY_10, channels={"email": ch}, settings=settings)
    assert row(engine, f"thank_you:{unsubscribed}")["status"] == "suppressed"
    assert "unsubscribed" in row(engine, f"thank_you:{unsubscribed}")["reason"]
    sent = {m["key"] for m, _, _ in ch.sent}
    assert sent == {f"recall:{unsubscribed}", f"delay_apology:{unsubscribed}",
                    f"thank_you:{never_asked}", f"recall:{never_asked}", f"delay_apology:{never_asked}"}
    # Only the courtesy kind offers the way out in its mail.
    assert {m["key"] for m, _, _ in ch.sent if m.get("list_unsubscribe")} == {f"thank_you:{never_asked}"}


def test_thank_you_reaches_a_real_smtp_server(engine, add_customer, settings, smtp_server):
    cid = add_customer(email="ona@example.com", locale="lt")
    cfg = dict(settings)
    cfg["email"] = {**settings["email"], "host": smtp_server.host, "port": smtp_server.port, "security": "none"}
    schedule(engine, "thanks:1001", cid, "thank_you", TUESDAY_10)
    schedule(engine, "voucher:1001", cid, "voucher", TUESDAY_10)
    counts = send_due(engine, now=TUESDAY_10, channels={"email": EmailChannel()}, settings=cfg)
    assert counts["sent"] == 2
    mails = {m["Subject"]: m for m in (email.message_from_bytes(e.content, policy=email.policy.default)
                                       for e in smtp_server.inbox.envelopes)}
    thanks = mails["Ačiū už Jūsų užsakymą #1001"]
    # A thank-you is transactional (no consent needed) but a courtesy the customer may decline.
    assert thanks["List-Unsubscribe"].strip().startswith(f"<https://shop.example/unsubscribe?c={cid}&t=")
    assert thanks["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "12,50" in thanks.get_body(("plain",)).get_content()
    assert thanks.get_body(("html",)).get_content().startswith("<!DOCTYPE html>")
    voucher = next(m for s, m in mails.items() if s.startswith("Dėkojame"))
    assert voucher["List-Unsubscribe"].strip().startswith(f"<https://shop.example/unsubscribe?c={cid}&t=")
    assert voucher["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert row(engine, "thanks:1001")["provider_id"] == thanks["Message-ID"]


# --- failures and retries --------------------------------------------------------------------------


def test_transient_errors_are_retried_with_backoff_then_failed(engine, add_customer, settings):
    cid = add_customer()
    ch = Recording(fail=ChannelError("SMTP connection refused", transient=True))
    schedule(engine, "t:1", cid, "thank_you", TUESDAY_10)
    assert send_due(engine, now=TUESDAY_10, channels={"email": ch}, settings=settings)["retry"] == 1
    r = row(engine, "t:1")
    assert (r["status"], r["attempts"], r["send_at"]) == ("scheduled", 1, TUESDAY_10 + timedelta(seconds=60))
    assert r["reason"].startswith("attempt 1 of 3 failed: email: SMTP connection refused; retrying at")
    early = send_due(engine, now=TUESDAY_10 + timedelta(seconds=59), channels={"email": ch}, settings=settings)
    assert early["retry"] == 0
    send_due(engine, now=TUESDAY_10 + timedelta(seconds=60), channels={"email": ch}, settings=settings)
    assert row(engine, "t:1")["send_at"] == TUESDAY_10 + timedelta(seconds=60 + 120)  # doubled
    counts = send_due(engine, now=TUESDAY_10 + timedelta(seconds=180), channels={"email": ch}, settings=settings)
    assert counts["failed"] == 1
    r = row(engine, "t:1")
    assert (r["status"], r["attempts"]) == ("failed", 3)
    assert r["reason"] == "email: SMTP connection refused (gave up after 3 attempts)"
    with engine.begin() as conn:
        assert outbox.retry_message(conn, r["id"], TUESDAY_10 + timedelta(hours=1))
    ok = Recording()
    assert send_due(engine, now=TUESDAY_10 + timedelta(hours=1), channels={"email": ok}, settings=settings)["sent"] == 1


def test_permanent_errors_fail_at_once(engine, add_customer, settings):
    cid = add_customer()
    schedule(engine, "t:1", cid, "thank_you", TUESDAY_10)
    refused = Recording(fail=ChannelError("recipient refused: 550 no such user"))
    send_due(engine, now=TUESDAY_10, channels={"email": refused},
             settings=settings)
    r = row(engine, "t:1")
    assert (r["status"], r["reason"], r["attempts"]) == ("failed", "email: recipient refused: 550 no such user", 1)


def test_unknown_channel_broken_data_and_missing_customer_fail_with_reasons(engine, add_customer, settings):
    cid = add_customer()
    schedule(engine, "a", cid, "thank_you", TUESDAY_10, channel="pigeon")
    schedule(engine, "b", cid, "thank_you", TUESDAY_10, data={"order_name": "#1"})  # no total
    schedule(engine, "c", None, "thank_you", TUESDAY_10)
    counts = send_due(engine, now=TUESDAY_10, channels={"email": Recording()}, settings=settings)
    assert counts["failed"] == 3
    assert row(engine, "a")["reason"] == "unknown channel 'pigeon' (registered: email)"
    assert "'order_total' is undefined" in row(engine, "b")["reason"]
    assert row(engine, "c")["reason"] == "customer None not found"


def test_a_failed_zendesk_send_leaves_no_action_behind(engine, add_customer, settings):
    cid = add_customer(zendesk_user_id=555)

    class Flaky(ZendeskChannel):
        calls = 0

        def send(self, message, customer, rendered, ctx):
            provider = super().send(message, customer, rendered, ctx)  # the action is queued...
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ChannelError("lost the connection", transient=True)  # ...then the send fails
            return provider

    schedule(engine, "recall:1", cid, "recall", TUESDAY_10, channel="zendesk")
    send_due(engine, now=TUESDAY_10, channels={"zendesk": Flaky()}, settings=settings)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.actions)).scalar_one() == 0
    send_due(engine, now=TUESDAY_10 + timedelta(minutes=1), channels={"zendesk": Flaky()}, settings=settings)
    r = row(engine, "recall:1")
    with engine.connect() as conn:
        action = conn.execute(select(tables.actions)).mappings().one()
    assert r["status"] == "sent" and r["provider_id"] == f"action:{action['id']}"
    assert (action["platform"], action["kind"], action["key"]) == ("zendesk", "ticket_create",
                                                                   "message:recall:1:zendesk")
    assert action["request"]["json"]["ticket"]["requester_id"] == 555


def test_ctx_factory_supplies_the_channel_context(engine, add_customer, settings):
    cid = add_customer()
    made = []

    class Ctx:
        def __init__(self, conn):
            made.append(conn)
            self.settings = settings

        def enqueue_action(self, platform, kind, key, request):
            return 99

    schedule(engine, "s:1", cid, "reward", TUESDAY_10, channel="shopify")
    from retention_plugin.messaging.channels import ShopifyChannel

    send_due(engine, now=TUESDAY_10, channels={"shopify": ShopifyChannel()}, settings=settings, ctx_factory=Ctx)
    assert len(made) == 1 and row(engine, "s:1")["provider_id"] == "action:99"


def test_claimed_rows_are_not_claimed_again_until_the_lease_runs_out(engine, add_customer, settings):
    cid = add_customer()
    schedule(engine, "t:1", cid, "thank_you", TUESDAY_10)
    ids, lease = outbox.claim_due(engine, TUESDAY_10, 10, 300)
    assert len(ids) == 1
    assert outbox.claim_due(engine, TUESDAY_10 + timedelta(seconds=299), 10, 300)[0] == []
    # a crashed worker's rows come back after the lease
    ids2, _ = outbox.claim_due(engine, TUESDAY_10 + timedelta(seconds=301), 10, 300)
    assert ids2 == ids
    # and the first worker, late, no longer owns it
    ch = Recording()
    counts = outbox.send_claimed(engine, ids, lease, now=TUESDAY_10, channels={"email": ch}, settings=settings)
    assert counts["skipped"] == 1 and counts["sent"] == 0 and ch.sent == []


def test_limit_and_order(engine, add_customer, settings):
    cid = add_customer()
    for i in range(5):
        schedule(engine, f"t:{i}", cid, "thank_you", TUESDAY_10 - timedelta(minutes=i))
    ch = Recording()
    assert send_due(engine, now=TUESDAY_10, channels={"email": ch}, settings=settings, limit=2)["sent"] == 2
    assert [m["key"] for m, _, _ in ch.sent] == ["t:4", "t:3"]


# --- hooks ---------------------------------------------------------------------------------------


def test_hook_contact_allowed(engine, add_customer, settings, pm_factory):
    """A veto suppresses the message; the stored reason names the plugin."""
    cid = add_customer()
    vip = add_customer(tags=["vip"])

    class NoMailForVips:
        @hookimpl
        def contact_allowed(message, customer, when):
            assert message["kind"] == "voucher" and when == TUESDAY_10
            return False if "vip" in customer["tags"] else None

    pm = pm_factory(NoMailForVips)
    schedule(engine, "v:a", cid, "voucher", TUESDAY_10)
    schedule(engine, "v:b", vip, "voucher", TUESDAY_10)
    send_due(engine, now=TUESDAY_10, channels={"email": Recording()}, settings=settings, pm=pm)
    assert row(engine, "v:a")["status"] == "sent"
    r = row(engine, "v:b")
    assert (r["status"], r["reason"]) == ("suppressed", "vetoed by plugin 'NoMailForVips' (contact_allowed)")


def test_hook_customer_timezone(engine, add_customer, settings, pm_factory):
    """The hook's zone decides the customer's local time, over the address."""
    cid = add_customer()

    class Tokyo:
        @hookimpl
        def customer_timezone(customer):
            return "Asia/Tokyo"

    schedule(engine, "v:1", cid, "voucher", vilnius(2026, 3, 3, 6))  # 13:00 in Tokyo
    send_due(engine, now=vilnius(2026, 3, 3, 6), channels={"email": Recording()}, settings=settings,
             pm=pm_factory(Tokyo))
    sent = row(engine, "v:1")
    assert sent["status"] == "sent" and "Asia/Tokyo (customer_timezone hook)" in sent["reason"]


# --- explain and lookup ------------------------------------------------------------------------------


def test_explain_counts_what_was_sent_before(engine, add_customer, settings):
    cid = add_customer()
    with engine.begin() as conn:
        d = explain(conn, cid, "voucher", None, vilnius(2026, 3, 3, 6), settings)
    assert (d.decision, d.send_at) == ("defer", vilnius(2026, 3, 3, 9))
    for i, day in enumerate((2, 4)):
        schedule(engine, f"m:{i}", cid, "voucher", vilnius(2026, 3, day, 12))
        send_due(engine, now=vilnius(2026, 3, day, 12), channels={"email": Recording()}, settings=settings)
    with engine.begin() as conn:
        assert explain(conn, cid, "voucher", None, vilnius(2026, 3, 5, 12), settings).decision == "suppress"
        assert explain(conn, cid, "voucher", "transactional", vilnius(2026, 3, 5, 12), settings).decision == "send"
        assert explain(conn, cid, "voucher", None, vilnius(2026, 3, 2, 11), settings).decision == "send"  # before both
        with pytest.raises(LookupError):
            explain(conn, 9999, "voucher", None, TUESDAY_10, settings)


def test_find_customer_by_id_shopify_id_gid_and_email(engine, add_customer):
    a = add_customer(email="ona@example.com", shopify_id=7_999_999_999_999)
    b = add_customer(email="jonas@example.com", shopify_id=a)  # a Shopify id that is also a's internal id
    with engine.begin() as conn:
        assert find_customer(conn, "7999999999999")["id"] == a
        assert find_customer(conn, "gid://shopify/Customer/7999999999999")["id"] == a
        assert find_customer(conn, " ONA@example.com ")["id"] == a
        assert find_customer(conn, str(a))["id"] == a  # the internal id wins...
        assert find_customer(conn, f"shopify:{a}")["id"] == b  # ...unless the prefix says otherwise
        assert find_customer(conn, f"id:{b}")["id"] == b
        assert find_customer(conn, "email:jonas@example.com")["id"] == b
        assert find_customer(conn, "nobody@example.com") is None
        assert find_customer(conn, "abc") is None
        assert find_customer(conn, "id:12345") is None


def test_messages_to_a_merged_customer_follow_the_merge(engine, add_customer, settings):
    survivor = add_customer(email="ona@example.com")
    old = add_customer(email="old@example.com", marketing_consent="unsubscribed")
    with engine.begin() as conn:
        conn.execute(update(tables.customers).where(tables.customers.c.id == old).values(merged_into=survivor))
    ch = Recording()
    schedule(engine, "v:1", old, "voucher", TUESDAY_10)
    send_due(engine, now=TUESDAY_10, channels={"email": ch}, settings=settings)
    assert ch.sent[0][1]["id"] == survivor


def test_log_channel_is_a_dry_run_through_the_same_path(engine, add_customer, settings, caplog):
    import logging

    caplog.set_level(logging.INFO)
    cid = add_customer()
    schedule(engine, "t:1", cid, "thank_you", TUESDAY_10, channel="log")
    send_due(engine, now=TUESDAY_10, channels={"log": LogChannel()}, settings=settings)
    assert row(engine, "t:1")["provider_id"] == "log:t:1"
    assert "dry run: message t:1" in caplog.text


def test_outcomes_in_one_group_each_write_only_their_own_columns(engine, add_customer, settings):
    # The outcome UPDATEs are built once per set of columns and shared by every message after.
    ona, far, unsubscribed = (add_customer(), add_customer(country="US", province="CA"),
                              add_customer(marketing_consent="unsubscribed"))
    schedule(engine, "sent", ona, "thank_you", TUESDAY_10)
    schedule(engine, "broken", ona, "thank_you", TUESDAY_10, data={"order_name": "#1"})  # no total
    schedule(engine, "pigeon", ona, "thank_you", TUESDAY_10, channel="pigeon")
    schedule(engine, "night", far, "win_back", TUESDAY_10)  # 00:00 in Los Angeles
    schedule(engine, "declined", unsubscribed, "win_back", TUESDAY_10)
    schedule(engine, "sent-too", ona, "follow_up", TUESDAY_10)
    for _ in range(2):  # the second round runs on the statements the first one built
        counts = send_due(engine, now=TUESDAY_10, channels={"email": Recording()}, settings=settings)
        with engine.begin() as conn:
            conn.execute(update(tables.messages).values(status="scheduled", send_at=TUESDAY_10, attempts=0, reason=None,
                                                        sent_at=None, provider_id=None, rendered=None))
        assert counts == {"sent": 2, "deferred": 1, "suppressed": 1, "failed": 2, "retry": 0, "skipped": 0}
    send_due(engine, now=TUESDAY_10, channels={"email": Recording()}, settings=settings)
    got = {k: row(engine, k) for k in ("sent", "broken", "pigeon", "night", "declined", "sent-too")}
    for k, r in got.items():
        assert r["lease_until"] is None and r["reason"], k
        assert (r["sent_at"] is not None, r["provider_id"] is not None, r["rendered"] is not None) == (
            (True,) * 3 if k.startswith("sent") else (False,) * 3), k
    assert [(k, r["status"], r["attempts"]) for k, r in got.items()] == [
        ("sent", "sent", 1), ("broken", "failed", 1), ("pigeon", "failed", 0), ("night", "deferred", 0),
        ("declined", "suppressed", 0), ("sent-too", "sent", 1)]
    assert got["sent"]["rendered"]["subject"] != got["sent-too"]["rendered"]["subject"]
    assert got["night"]["send_at"] > TUESDAY_10 and "Los_Angeles" in got["night"]["reason"]
    assert all(got[k]["send_at"] == TUESDAY_10 for k in ("sent", "broken", "pigeon", "sent-too"))
    assert got["declined"]["reason"] == "no marketing consent (unsubscribed)"


def test_cancelling_several_messages_gives_each_its_own_reason(engine, add_customer):
    cid = add_customer()
    for key in ("c:1", "c:2", "c:3"):
        schedule(engine, key, cid, "follow_up", TUESDAY_10)
    with engine.begin() as conn:
        assert cancel_message(conn, "c:1", "order refunded")
        assert cancel_message(conn, "c:3", "reordered in order #9")
        assert not cancel_message(conn, "c:1", "again")
        assert not cancel_message(conn, "c:404", "no such message")
    assert [(row(engine, k)["status"], row(engine, k)["reason"]) for k in ("c:1", "c:2", "c:3")] == [
        ("cancelled", "cancelled: order refunded"), ("scheduled", None),
        ("cancelled", "cancelled: reordered in order #9")]


def test_jsonable_passes_plain_values_through_and_converts_the_rest_at_any_depth():
    import enum
    from datetime import date

    from retention_plugin.messaging.schedule import jsonable

    class Tier(str, enum.Enum):  # a str subclass goes the long way, and still comes back as given
        GOLD = "gold"

    data = {"s": "x", "n": 3, "b": True, "none": None, "tier": Tier.GOLD, "d": Decimal("1.50"), "f": 0.1,
            "when": date(2026, 3, 2), "at": TUESDAY_10, "money": Money(Decimal("5"), "EUR"),
            "items": [{"qty": 2, "price": Decimal("3.0")}, ("a", 1.25)], 7: {"nested": {Decimal("2")}}}
    got = jsonable(data)
    assert got == {"s": "x", "n": 3, "b": True, "none": None, "tier": Tier.GOLD, "d": "1.50", "f": "0.1",
                   "when": "2026-03-02", "at": TUESDAY_10.isoformat(), "money": {"amount": "5", "currency": "EUR"},
                   "items": [{"qty": 2, "price": "3.0"}, ["a", "1.25"]], "7": {"nested": ["2"]}}
    assert got["b"] is True and type(got["n"]) is int and got["tier"] is Tier.GOLD


def test_a_change_to_the_template_settings_shows_in_the_next_send(engine, add_customer, settings, tmp_path):
    (tmp_path / "lt").mkdir()
    (tmp_path / "lt" / "thank_you.j2").write_text(
        "{% block subject %}Override {{ order_name }}{% endblock %}\n{% block text %}Ačiū{% endblock %}\n",
        encoding="utf-8")
    cid = add_customer()
    sent = []
    for n, (shop_name, templates_dir) in enumerate([("Kavos Namai", None), ("Arbatos Namai", None),
                                                    ("Arbatos Namai", str(tmp_path)), ("Kavos Namai", None)]):
        schedule(engine, f"t:{n}", cid, "thank_you", TUESDAY_10, data={**BUILTIN_KINDS["thank_you"].sample,
                                                                       "order_name": f"#{n}"})
        now = {**settings, "messages": {**settings["messages"], "shop_name": shop_name,
                                         "templates_dir": templates_dir}}
        assert send_due(engine, now=TUESDAY_10, channels={"email": Recording()}, settings=now)["sent"] == 1
        r = row(engine, f"t:{n}")["rendered"]
        sent.append((r["subject"].startswith("Override"), shop_name in r["html"]))
    assert sent == [(False, True), (False, True), (True, True), (False, True)]

"""``retention messages explain|list|preview|retry`` against a real database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from retention_plugin.messaging.commands import messages
from retention_plugin.messaging.kinds import BUILTIN_KINDS
from retention_plugin.messaging.outbox import schedule_message, send_due

V = ZoneInfo("Europe/Vilnius")


class Rec:
    def send(self, message, customer, rendered, ctx):
        return "rec"


@pytest.fixture
def cli_app(engine, settings, pm_factory):
    """The stand-in for the application object the real CLI puts in the click context."""
    return SimpleNamespace(engine=engine, settings=settings, pm=pm_factory())


def run(app, *args):
    return CliRunner().invoke(messages, list(args), obj=app, catch_exceptions=False)


def test_explain_json_defers_a_six_am_offer(cli_app, add_customer):
    cid = add_customer(email="ona@example.com")
    res = run(cli_app, "explain", "--customer", "ona@example.com", "--kind", "voucher",
              "--at", "2026-03-03T06:00:00+02:00", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out == {"decision": "defer", "send_at": "2026-03-03T07:00:00+00:00",
                   "reason": out["reason"]}
    assert out["reason"].startswith("06:00 Europe/Vilnius is before allowed hours 09:00–20:00")
    res = run(cli_app, "explain", "--customer", str(cid), "--kind", "voucher", "--at", "2026-03-03T10:00:00Z", "--json")
    assert json.loads(res.output)["decision"] == "send"


def test_explain_suppress_and_class_override(cli_app, add_customer):
    add_customer(shopify_id=123456789012, marketing_consent="unsubscribed")
    res = run(cli_app, "explain", "--customer", "123456789012", "--kind", "voucher", "--at", "2026-03-03T10:00:00Z",
              "--json")
    assert json.loads(res.output) == {"decision": "suppress", "send_at": None,
                                      "reason": "no marketing consent (unsubscribed)"}
    res = run(cli_app, "explain", "--customer", "123456789012", "--kind", "voucher", "--class", "transactional",
              "--at", "2026-03-03T10:00:00Z")
    assert res.exit_code == 0 and res.output.startswith("send at 2026-03-03T10:00:00+00:00\nreason: ")


@pytest.mark.parametrize("args, option", [
    (["--at", "tomorrow"], "--at"),
    (["--kind", "vouchr"], "--kind"),
    (["--customer", "nobody@example.com"], "--customer"),
])
def test_explain_bad_input_names_the_option_and_exits_2(cli_app, add_customer, args, option):
    add_customer(email="ona@example.com")
    base = {"--customer": "ona@example.com", "--kind": "voucher", "--at": "2026-03-03T10:00:00Z"}
    base[args[0]] = args[1]
    res = CliRunner().invoke(messages, ["explain", *[x for kv in base.items() for x in kv]], obj=cli_app)
    assert res.exit_code == 2
    assert option in res.output
    if option == "--kind":
        assert "known: delay_apology, follow_up" in res.output


def test_list_filters_and_json(cli_app, add_customer, engine, settings):
    a = add_customer(email="ona@example.com")
    b = add_customer(email="jonas@example.com", marketing_consent="unsubscribed")
    at = datetime(2026, 3, 3, 10, tzinfo=V).astimezone(timezone.utc)
    with engine.begin() as conn:
        for key, cid, kind in (("t:a", a, "thank_you"), ("v:b", b, "voucher"), ("f:a", a, "follow_up")):
            schedule_message(conn, key=key, customer_id=cid, kind=kind, due_at=at, data=BUILTIN_KINDS[kind].sample)
    send_due(engine, now=at - timedelta(minutes=1), channels={"email": Rec()}, settings=settings)  # nothing due
    with engine.begin() as conn:
        schedule_message(conn, key="later", customer_id=a, kind="reminder", due_at=at + timedelta(days=1),
                         data=BUILTIN_KINDS["reminder"].sample)
    send_due(engine, now=at, channels={"email": Rec()}, settings=settings)

    res = run(cli_app, "list", "--json")
    rows = json.loads(res.output)
    assert {r["key"]: r["status"] for r in rows} == {"t:a": "sent", "v:b": "suppressed", "f:a": "sent",
                                                     "later": "scheduled"}
    suppressed = json.loads(run(cli_app, "list", "--status", "suppressed", "--json").output)
    assert [(r["key"], r["reason"]) for r in suppressed] == [("v:b", "no marketing consent (unsubscribed)")]
    mine = json.loads(run(cli_app, "list", "--customer", "ona@example.com", "--json").output)
    assert sorted(r["key"] for r in mine) == ["f:a", "later", "t:a"]
    text = run(cli_app, "list", "--status", "suppressed").output
    assert "suppressed" in text and "no marketing consent (unsubscribed)" in text
    assert run(cli_app, "list", "--status", "failed").output.strip() == "no messages"
    assert CliRunner().invoke(messages, ["list", "--status", "gone"], obj=cli_app).exit_code == 2


def test_preview_renders_a_template_with_sample_data(cli_app):
    res = run(cli_app, "preview", "--kind", "recall", "--locale", "ru")
    assert res.exit_code == 0
    assert res.output.startswith("Subject: Важное уведомление о безопасности: Kettle K1\nLocale: ru\n")
    assert "немедленно прекратите" in res.output
    res = CliRunner().invoke(messages, ["preview", "--kind", "custom"], obj=cli_app)
    assert res.exit_code == 2 and "--data" in res.output


def test_retry_requeues_only_failed_messages(cli_app, add_customer, engine, settings):
    cid = add_customer()
    at = datetime(2026, 3, 3, 10, tzinfo=V).astimezone(timezone.utc)
    with engine.begin() as conn:
        mid = schedule_message(conn, key="t:1", customer_id=cid, kind="thank_you", due_at=at, channel="nowhere",
                               data=BUILTIN_KINDS["thank_you"].sample)
    send_due(engine, now=at, channels={"email": Rec()}, settings=settings)
    res = CliRunner().invoke(messages, ["retry", str(mid), "999"], obj=cli_app)
    assert res.exit_code == 1
    assert f"{mid}: requeued" in res.output and "999: not failed" in res.output
    assert json.loads(run(cli_app, "list", "--json").output)[0]["status"] == "scheduled"

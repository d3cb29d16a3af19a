"""Follow-ups after fulfilment, and the signed rating link's answers.

Orders and fulfilments arrive as Shopify-shaped webhooks through the inbox and
the worker; the rating link is answered through the framework-independent
handler the web route calls. Time moves with ``clock``; nothing sleeps.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from payloads import order
from retention_plugin import hookimpl, links
from retention_plugin.features import followups
from retention_plugin.features.followups import commands as followup_commands
from retention_plugin.features.followups import engine as followup_engine
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

LINKS = {"secret": "test-link-secret-0123456789", "base_url": "https://retention.example.com"}
MESSAGES = {"default_channel": "test", "shop_name": "Test Shop", "shop_url": "https://shop.example"}


class Ratings:
    """Records every satisfaction_rated call."""

    def __init__(self):
        self.events = []

    @hookimpl
    def satisfaction_rated(self, event, ctx):
        assert ctx.conn is not None
        self.events.append(event)


@pytest.fixture
def rated():
    return Ratings()


@pytest.fixture
def make(make_app, channel, rated):
    def build(links_cfg=LINKS, **settings):
        sections = {"followups": settings, "messages": MESSAGES, "offers": {"thank_you": False}}
        if links_cfg is not None:
            sections["links"] = links_cfg
        return make_app(extra_plugins=[channel, rated], **sections)

    return build


def _iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def fulfillment(fid, order_id, when, status="success"):
    return {"id": fid, "order_id": order_id, "status": status, "created_at": _iso(when), "updated_at": _iso(when),
            "line_items": [{"id": order_id * 10 + 1}]}


def _rows(app, table, *where):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(*where).order_by(table.c.id)).mappings()]


def _followups(app):
    return _rows(app, t.messages, t.messages.c.kind == "follow_up")


def _ratings(app):
    return _rows(app, t.ratings, t.ratings.c.source == "followup")


def _tickets(app):
    return _rows(app, t.actions, t.actions.c.key.like("followups:ticket:%"))


def _run(app):
    counts = run_worker(app)
    assert counts.dead == 0 and counts.retried == 0, counts
    return counts


def _shipped(app, clock, order_id=8001, *, days_later=1, **kw):
    """Paid now, fulfilled ``days_later``; returns the follow-up message row."""
    deliver_shopify(app, "orders/paid", order(order_id, created=clock.now - timedelta(hours=1), **kw))
    _run(app)
    clock.advance(days=days_later)
    deliver_shopify(app, "fulfillments/create", fulfillment(order_id + 50_000, order_id, clock.now))
    _run(app)
    rows = [m for m in _followups(app) if m["key"] == f"followups:order:{order_id}"]
    return rows[0] if rows else None


def _query(url):
    return parse_qs(urlsplit(url).query)


def _answer(app, msg, answer, **kw):
    q = _query(msg["data"]["rating_url"])
    q["a"] = [answer]
    return followups.handle_rating_link(app, q, **kw)


# --- scheduling -----------------------------------------------------------------------------------


def test_a_follow_up_is_due_days_after_fulfilment_with_signed_rating_links(make, clock, channel):
    app = make(days_after_fulfillment=3, support_url="https://shop.example/help")
    shipped_at = clock.now + timedelta(days=1)
    msg = _shipped(app, clock)
    assert msg["due_at"] == shipped_at + timedelta(days=3) and msg["status"] == "scheduled"
    assert msg["message_class"] == "marketing" and msg["locale"] == "en"
    data = msg["data"]
    assert data["order_name"] == "#8001" and data["support_url"] == "https://shop.example/help"
    assert data["product_titles"] == ["Ink cartridge"]
    for answer in ("good", "bad"):
        url = data[f"rating_url_{answer}"]
        assert url.startswith("https://retention.example.com/r/rate?t=v1.") and url.endswith(f"&a={answer}")
    assert sorted(data["rating_urls"]) == ["1", "2", "3", "4", "5"]
    token = _query(data["rating_url"])["t"][0]
    payload = links.verify("rate", token, LINKS["secret"], clock.now)
    assert payload["o"] == 8001 and isinstance(payload["c"], int)

    # A second fulfilment and a replay change nothing; the message goes when due, rendered by the real template.
    deliver_shopify(app, "fulfillments/create", fulfillment(99, 8001, clock.now + timedelta(hours=3)))
    deliver_shopify(app, "orders/fulfilled", {**order(8001), "fulfillment_status": "fulfilled"})
    _run(app)
    assert len(_followups(app)) == 1
    clock.advance(days=3, hours=1)  # a Friday afternoon in Lithuania: no quiet hours, no rest day
    _run(app)
    [(sent, _, rendered)] = [s for s in channel.sent if s.message["kind"] == "follow_up"]
    assert data["rating_url_good"] in rendered.text and data["rating_url_bad"] in rendered.text


def test_cancelled_test_and_stale_orders_get_no_follow_up(make, clock):
    app = make(stale_after_days=3)
    deliver_shopify(app, "orders/paid", order(8101, cancelled=clock.now))
    test_order = order(8102)
    test_order["test"] = True
    deliver_shopify(app, "orders/paid", test_order)
    old = clock.now - timedelta(days=30)
    deliver_shopify(app, "orders/paid", order(8103, customer_id=3103, email="old@example.com", created=old))
    _run(app)
    for oid, when in ((8101, clock.now), (8102, clock.now), (8103, old + timedelta(days=1))):
        deliver_shopify(app, "fulfillments/create", fulfillment(oid + 50_000, oid, when))
    _run(app)
    assert _followups(app) == []


def test_cancelling_after_fulfilment_withdraws_the_follow_up(make, clock):
    app = make()
    _shipped(app, clock, 8201)
    deliver_shopify(app, "orders/cancelled", order(8201, cancelled=clock.now, updated=clock.now))
    _run(app)
    [msg] = _followups(app)
    assert msg["status"] == "cancelled"


def test_without_links_configured_the_follow_up_is_recorded_suppressed_with_the_reason(make, clock):
    app = make(links_cfg=None)
    msg = _shipped(app, clock, 8301)
    assert msg["status"] == "suppressed"
    assert msg["reason"] == ("not sent: [links] secret is not set: signed links (rating, recall acknowledgment) "
                             "cannot be made")


# --- answers --------------------------------------------------------------------------------------


def test_a_good_answer_is_a_rating_and_nothing_else(make, clock, rated):
    app = make()
    msg = _shipped(app, clock)
    status, page = _answer(app, msg, "good")
    assert status == 200 and "Thank you" in page and "Good" in page
    [r] = _ratings(app)
    assert r["source_id"] == "8001" and r["score"] == "good" and r["value"] == Decimal(1)
    assert r["order_id"] is not None and r["customer_id"] == msg["customer_id"]
    assert _tickets(app) == []
    [event] = rated.events
    assert event.rating.source == "followup" and event.rating.value == 1.0 and event.rating.order_id == 8001
    assert event.rating.customer.shopify_id == 1001


@pytest.mark.parametrize("answer, value, bad", [("1", Decimal(0), True), ("2", Decimal("0.25"), True),
                                                ("3", Decimal("0.5"), False), ("4", Decimal("0.75"), False),
                                                ("5", Decimal(1), False), ("bad", Decimal(0), True),
                                                ("GOOD", Decimal(1), False)])
def test_answers_are_normalised(answer, value, bad):
    score, v, b = followup_engine.parse_answer(answer)
    assert (v, b) == (value, bad) and score == answer.lower()


def test_hook_satisfaction_rated_from_a_bad_answer_opens_one_ticket(make, clock, rated):
    app = make()
    msg = _shipped(app, clock)
    status, page = _answer(app, msg, "2")
    assert status == 200 and "get in touch" in page
    [ticket] = _tickets(app)
    assert ticket["platform"] == "zendesk" and ticket["kind"] == "ticket_create"
    body = ticket["request"]["json"]["ticket"]
    assert body["requester"] == {"email": "ann@example.com", "name": "Ann Example"}
    assert body["subject"] == "Unhappy with order #8001" and body["comment"]["public"] is False
    assert "2 of 5" in body["comment"]["body"] and "/admin/orders/8001" in body["comment"]["body"]
    assert body["tags"] == ["retention", "followup", "bad_rating", "retention_created"]  # ours: never classified
    assert ticket["request"]["idempotency_key"] == ticket["key"] == "followups:ticket:order:8001"
    assert [e.rating.score for e in rated.events] == ["2"]

    # Another bad answer changes the rating and fires the hook, but opens no second ticket.
    assert _answer(app, msg, "bad")[0] == 200
    # The same answer again (a second click) changes nothing and fires nothing.
    assert _answer(app, msg, "bad")[0] == 200
    assert [e.rating.score for e in rated.events] == ["2", "bad"]
    assert len(_tickets(app)) == 1
    [r] = _ratings(app)
    assert r["score"] == "bad" and r["value"] == Decimal(0)


def test_the_last_answer_wins(make, clock):
    app = make()
    msg = _shipped(app, clock)
    _answer(app, msg, "bad")
    clock.advance(minutes=1)
    _answer(app, msg, "good")
    [r] = _ratings(app)
    assert r["score"] == "good" and r["value"] == Decimal(1) and r["created_at"] == clock.now
    assert len(_tickets(app)) == 1  # the ticket a bad answer opened stays, for a person to close


def test_a_ticket_needs_zendesk_and_can_be_switched_off(make, clock):
    app = make(ticket_on_bad=False)
    msg = _shipped(app, clock)
    token = _query(msg["data"]["rating_url"])["t"][0]
    result = followup_engine.record_rating_answer(app, token, "1")
    assert result.bad and result.ticket == "skipped: [followups] ticket_on_bad = false" and _tickets(app) == []


@pytest.mark.parametrize("mangle, expected", [
    (lambda tok: None, "no token"),
    (lambda tok: "", "no token"),
    (lambda tok: "garbage", "not one of ours"),
    (lambda tok: tok[:-4], "signature"),
    (lambda tok: tok.replace("v1.", "v1.A", 1), "not one of ours"),
    (lambda tok: "v1." + "A" * 5000 + ".x", "not one of ours"),
    (lambda tok: links.sign("ack", {"o": 8001, "c": 1}, LINKS["secret"], tok_expiry()), "not a rating link"),
    (lambda tok: links.sign("rate", {"o": 8001, "c": 1}, "another-secret-0123456789", tok_expiry()), "signature"),
])
def test_bad_tokens_get_a_400_page_never_a_500(make, clock, mangle, expected):
    app = make()
    msg = _shipped(app, clock)
    token = _query(msg["data"]["rating_url"])["t"][0]
    query = {"a": ["good"]}
    bad = mangle(token)
    if bad is not None:
        query["t"] = [bad]
    status, page = followups.handle_rating_link(app, query)
    assert status == 400 and "not valid" in page
    assert expected in page.replace("&#x27;", "'")
    assert _ratings(app) == []


def tok_expiry():
    from datetime import datetime, timezone

    return datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_an_expired_link_says_so(make, clock):
    app = make(link_valid_days=10)
    msg = _shipped(app, clock)
    clock.advance(days=7 + 10 + 1)
    status, page = _answer(app, msg, "good")
    assert status == 400 and "expired" in page and _ratings(app) == []


def test_unknown_answers_and_missing_answers(make, clock):
    app = make()
    msg = _shipped(app, clock)
    status, page = _answer(app, msg, "meh")
    assert status == 400 and "unknown answer" in page
    q = _query(msg["data"]["rating_url"])
    status, page = followups.handle_rating_link(app, q)
    assert status == 200 and "How did we do?" in page and "a=5" in page
    assert followups.handle_rating_link(app, q, method="DELETE")[0] == 405
    assert _ratings(app) == []


def test_an_order_we_no_longer_have_is_a_clear_4xx(make, clock):
    app = make()
    token = links.sign("rate", {"o": 999999, "c": 1}, LINKS["secret"], clock.now + timedelta(days=1))
    status, page = followups.handle_rating_link(app, {"t": token, "a": "good"})
    assert status == 404 and "no longer have this order" in page and _ratings(app) == []


def test_with_confirm_clicks_only_the_form_records_and_a_comment_reaches_the_ticket(make, clock):
    app = make(confirm_clicks=True)
    msg = _shipped(app, clock)
    status, page = _answer(app, msg, "bad")
    assert status == 200 and '<form method="post">' in page and _ratings(app) == []
    assert followups.handle_rating_link(app, _query(msg["data"]["rating_url_bad"]), method="HEAD")[0] == 200
    assert _ratings(app) == []
    token = _query(msg["data"]["rating_url"])["t"][0]
    status, page = followups.handle_rating_link(app, {}, method="POST",
                                                form={"t": token, "a": "bad", "comment": "The box was crushed"})
    assert status == 200
    [r] = _ratings(app)
    assert r["score"] == "bad" and r["comment"] == "The box was crushed"
    [ticket] = _tickets(app)
    assert "The box was crushed" in ticket["request"]["json"]["ticket"]["comment"]["body"]


def test_pages_escape_what_they_show(make, clock):
    app = make()
    msg = _shipped(app, clock)
    status, page = _answer(app, msg, "<script>")
    assert status == 400 and "<script>" not in page


def test_cli_rate(make, clock):
    app = make()
    msg = _shipped(app, clock)
    token = _query(msg["data"]["rating_url"])["t"][0]
    runner = CliRunner()
    res = runner.invoke(followup_commands.followups_group, ["rate", token, "4", "--comment", "fine"],
                        obj=SimpleNamespace(app=app))
    assert res.exit_code == 0, res.output
    assert "order 8001: 4 (0.75) recorded" in res.output
    res = runner.invoke(followup_commands.followups_group, ["rate", "nonsense", "4"], obj=SimpleNamespace(app=app))
    assert res.exit_code == 2 and "not one of ours" in res.output
    [r] = _ratings(app)
    assert r["comment"] == "fine"


def test_the_command_is_registered():
    from retention_plugin.cli import cli, register_plugin_commands

    register_plugin_commands([])
    assert "followups" in cli.commands


def test_unknown_key_is_a_configuration_error(make):
    from retention_plugin.config import ConfigError

    with pytest.raises(ConfigError, match=r"\[followups\]\.days: unknown key"):
        make(days=3)

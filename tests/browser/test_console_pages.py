"""The admin console in a real Chromium against the real WSGI app on a real socket.

Each flow an admin needs from issue 16 is done with the mouse and keyboard the
way a person would, then checked in the database; each saves its screenshot
for docs/console.md. Runs on SQLite (tests/test_console.py runs the same
pages' rules on both databases).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from browser_support import screenshot
from conftest import SHOP
from payloads import order, zendesk_trigger
from storefront_support import serving as serve_wsgi
from retention_plugin.console import auth
from retention_plugin.storage import tables as t
from retention_plugin.testing import AppFactory, deliver_shopify, deliver_zendesk, run_worker
from retention_plugin.web import create_app

EMAIL, PASSWORD = "admin@example.com", "correct horse battery"
RECALLS = {"public_url": "https://retention.example.com", "signing_secret": "recall-signing-secret-0123456789"}
#: Recall notices carry signed acknowledgment links, which need [links].
LINKS = {"secret": "console-link-secret-0123456789abcdef", "base_url": "https://retention.example.com"}
KETTLE = [{"id": 901, "sku": "KETTLE-K1", "product_id": 7501, "variant_id": 8501, "title": "Kettle K1",
           "quantity": 1, "price": "40.00"}]


RECOVERY = {"currency": "USD"}


def ticket(app, trigger, status, text="The kettle arrived broken"):
    """Ann's Zendesk ticket 4242 as the recovery feature's trigger sends it (a complaint by its words alone)."""
    when = app.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    deliver_zendesk(app, zendesk_trigger(trigger, {
        "ticket.id": "4242", "ticket.title": "Kettle", "ticket.description": text, "ticket.status": status,
        "ticket.priority": "Normal", "ticket.tags": "", "ticket.via": "Mail", "ticket.created_at_with_timestamp": when,
        "ticket.updated_at_with_timestamp": when, "ticket.requester.id": "8801",
        "ticket.requester.email": "ann@example.com", "ticket.requester.first_name": "Ann",
        "ticket.requester.last_name": "Example", "ticket.requester.external_id": ""}))


@contextmanager
def serving(app):
    """The console's WSGI app on a loopback port (the storefront tests' threaded server)."""
    with serve_wsgi(create_app(app)) as base:
        yield base


@pytest.fixture
def store(sqlite_url, clock, tmp_path):
    """A shop with something on every page: a dead letter, a failed action, customers with orders and points,
    a goodwill offer waiting, buyers of a recallable kettle, an at-risk score."""
    with AppFactory(sqlite_url, clock, tmp_path) as make:
        app = make(recovery=RECOVERY, recalls=RECALLS, links=LINKS, messages={"default_channel": "log"})
        auth.create_user(app.engine, EMAIL, PASSWORD, app.now())
        deliver_shopify(app, "orders/paid", order(11, subtotal="90.00", created=app.now() - timedelta(days=30)))
        deliver_shopify(app, "orders/paid", order(12, customer_id=1002, email="ben@example.com", first_name="Ben",
                                                  lines=KETTLE, created=app.now() - timedelta(days=20)))
        ticket(app, "ticket_created", "New")
        run_worker(app)
        ticket(app, "ticket_solved", "Solved")
        run_worker(app)
        with app.engine.begin() as conn:
            conn.execute(insert(t.inbox).values(
                platform="shopify", shop=SHOP, delivery_id="dead-1", topic="orders/paid", headers={}, body=b"{}",
                received_at=app.now(), status="dead", attempts=5, next_attempt_at=app.now(),
                last_error="payload: line_items is missing"))
            conn.execute(insert(t.actions).values(
                key="thanks:77", platform="shopify", kind="tags_add", request={}, status="failed", attempts=8,
                next_attempt_at=app.now(), last_error="HTTP 502 from Shopify", created_at=app.now(),
                updated_at=app.now()))
            ben = conn.execute(select(t.customers.c.id).where(t.customers.c.email == "ben@example.com")).scalar()
            conn.execute(insert(t.customer_scores).values(customer_id=ben, segment="at_risk", p_alive=0.27,
                                                          expected_purchases=0.4, scored_at=app.now()))
        with serving(app) as base:
            yield app, base


def sign_in(page, base):
    page.goto(base + "/admin")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/admin")


def one(app, query):
    with app.engine.connect() as conn:
        return conn.execute(query).scalar()


def test_sign_in_refuses_a_wrong_password_then_signs_in(store, page):
    app, base = store
    page.goto(base + "/admin")
    assert "/admin/login" in page.url
    screenshot(page, "console-sign-in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.keyboard.press("Enter")
    assert page.get_by_role("alert").inner_text() == "wrong email or password"
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/admin")
    assert page.get_by_role("heading", name="Health").is_visible()


def test_replay_a_dead_letter_and_retry_a_failed_action(store, page):
    app, base = store
    sign_in(page, base)
    assert page.get_by_text("payload: line_items is missing").is_visible()
    screenshot(page, "console-health")
    dead = one(app, select(t.inbox.c.id).where(t.inbox.c.status == "dead"))
    page.get_by_role("button", name=f"Replay delivery {dead}").click()
    assert page.get_by_role("status").inner_text() == f"delivery {dead} queued again"
    assert one(app, select(t.inbox.c.status).where(t.inbox.c.id == dead)) == "pending"
    failed = one(app, select(t.actions.c.id).where(t.actions.c.status == "failed"))
    page.get_by_role("button", name=f"Retry action {failed}").click()
    assert page.get_by_role("status").inner_text() == f"action {failed} queued again"
    assert one(app, select(t.actions.c.status).where(t.actions.c.id == failed)) == "pending"


def test_open_a_customer_and_adjust_points_with_a_reason(store, page):
    app, base = store
    sign_in(page, base)
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Email, name or id").fill("ann@")
    page.keyboard.press("Enter")
    page.get_by_role("link", name="ann@example.com").click()
    before = one(app, select(t.ledger.c.id).order_by(t.ledger.c.id.desc()).limit(1))
    page.get_by_label("Points (negative to take away)").fill("25")
    page.get_by_label("Reason (required, kept in the ledger)").fill("kettle arrived late")
    page.get_by_role("button", name="Adjust points").click()
    assert "+25 points" in page.get_by_role("status").inner_text()
    row = None
    with app.engine.connect() as conn:
        row = conn.execute(select(t.ledger.c.points, t.ledger.c.reason, t.ledger.c.actor)
                           .where(t.ledger.c.id > (before or 0))).one()
    assert tuple(row) == (25, "kettle arrived late", f"console:{EMAIL}")
    assert page.get_by_role("cell", name="kettle arrived late").is_visible()
    assert page.get_by_role("cell", name="90.00 USD", exact=True).is_visible()  # cents, not the stored four decimals
    screenshot(page, "console-customer")


def test_approve_a_goodwill_offer(store, page):
    app, base = store
    sign_in(page, base)
    page.get_by_role("link", name="Recovery").click()
    case = one(app, select(t.recoveries.c.id).where(t.recoveries.c.decision == "pending"))
    assert case is not None
    screenshot(page, "console-recovery")
    page.get_by_label("Note (required to decline)").fill("checked the photos")
    page.get_by_role("button", name=f"Approve case {case}").click()
    assert page.get_by_role("status").inner_text() == f"case {case}: offered"
    assert one(app, select(t.recoveries.c.reviewed_by).where(t.recoveries.c.id == case)) == EMAIL
    assert one(app, select(t.console_audit.c.action).order_by(t.console_audit.c.id.desc()).limit(1)) == \
        "recovery.approve"


def test_create_a_recall_after_its_preview(store, page):
    app, base = store
    sign_in(page, base)
    page.get_by_role("link", name="Recalls").click()
    page.get_by_label("SKU").fill("KETTLE-K1")
    page.get_by_label("Title (what is wrong, as customers read it)").fill("Kettle K1 lid may come loose")
    page.get_by_role("button", name="Preview who is affected").click()
    assert "1 customer(s) would be notified" in page.locator("#preview").inner_text()
    assert one(app, select(t.recalls.c.id)) is None  # a preview changes nothing
    screenshot(page, "console-recalls-preview")
    page.get_by_role("button", name="Create recall and notify").click()
    assert page.get_by_role("alert").count() == 0 and "/admin/recalls" in page.url
    page.get_by_label("I have checked the count and want to notify these customers").check()
    page.get_by_role("button", name="Create recall and notify").click()
    assert "new case(s)" in page.get_by_role("status").inner_text()
    assert one(app, select(t.recalls.c.title)) == "Kettle K1 lid may come loose"
    screenshot(page, "console-recalls")
    page.get_by_role("link", name="Kettle K1 lid may come loose").click()
    assert page.get_by_role("cell", name="ben@example.com").is_visible()  # Ben bought the kettle; Ann did not
    assert page.get_by_role("cell", name="ann@example.com").count() == 0
    screenshot(page, "console-recall-cases")


def test_download_the_at_risk_csv(store, page):
    app, base = store
    sign_in(page, base)
    page.get_by_role("link", name="Analysis").click()
    screenshot(page, "console-analysis")
    with page.expect_download() as got:
        page.get_by_role("link", name="Download the at-risk list (CSV)").click()
    text = open(got.value.path(), encoding="utf-8").read()
    assert text.splitlines()[0].startswith("customer_id,email")
    assert ",ben@example.com,Ben," in text and ",at_risk,0.2700," in text
    # No report has been computed for this shop: the page says how to get one instead of computing it.
    assert page.get_by_text("No full report yet").is_visible()
    assert page.get_by_role("link", name="Open the full report with its charts").count() == 0


def test_the_full_report_with_its_charts(sqlite_url, clock, tmp_path, page):
    from click.testing import CliRunner

    from shop_history import import_history

    from retention_plugin.analysis.commands import analyze

    with AppFactory(sqlite_url, clock, tmp_path) as make:
        app = make()
        auth.create_user(app.engine, EMAIL, PASSWORD, app.now())
        import_history(app, tmp_path)
        res = CliRunner().invoke(analyze, ["report", "--out", str(tmp_path / "report")], obj=app)
        assert res.exit_code == 0, res.output
        with serving(app) as base:
            sign_in(page, base)
            page.get_by_role("link", name="Analysis").click()
            page.get_by_role("link", name="Open the full report with its charts").click()
            assert page.get_by_role("heading", name="Lost customers: who left, why, what it cost").is_visible()
            # Every chart is drawn: the browser decoded each inline PNG (a broken one has no natural width).
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            assert len(widths) >= 7 and min(widths) > 100, widths
            assert page.get_by_role("img", name="revenue at stake").is_visible()
            screenshot(page, "console-analysis-report")
            page.get_by_role("link", name="Analysis").click()  # the banner leads back into the console
            assert page.get_by_role("heading", name="Analysis", level=1).is_visible()


def test_the_other_pages_and_the_phone_layout(store, page, phone_page):
    app, base = store
    sign_in(page, base)
    for name, shot in (("Loyalty", "console-loyalty"), ("Messages", "console-messages"), ("Audit", "console-audit")):
        page.get_by_role("link", name=name, exact=True).click()
        assert page.get_by_role("heading", name=name, level=1).is_visible()
        screenshot(page, shot)
    sign_in(phone_page, base)
    # Nothing is wider than the phone: no sideways scrolling of the page itself.
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "console-health-phone")
    phone_page.goto(base + "/admin/recovery")
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "console-recovery-phone")

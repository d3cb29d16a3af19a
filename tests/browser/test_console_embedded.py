"""The console inside the Shopify admin, in a real Chromium: signed in by App Bridge's session tokens
on every page, never by a cookie.

Shopify's CDN is out of reach here, so App Bridge is played by a stand-in served at its real URL
(Playwright's routing): ``window.shopify.idToken()`` hands out tokens this test signed with the
app's secret, one per call, as App Bridge hands out a fresh one. What is tested is the console's
own script: links, searches, forms and the CSV download each carry a token and work, and the
password sign-in never appears.
"""

from __future__ import annotations

import json
import uuid

import jwt
import pytest
from sqlalchemy import func, select

from browser_support import screenshot
from conftest import SHOP
from payloads import order
from storefront_support import serving
from retention_plugin.console.web import APP_BRIDGE_URL
from retention_plugin.storage import tables as t
from retention_plugin.testing import AppFactory, deliver_shopify, run_worker
from retention_plugin.web import create_app

CLIENT_ID, CLIENT_SECRET = "embedded-client-id", "embedded-client-secret-0123456789abcdef"


def token(app, sub="42") -> str:
    now = int(app.now().timestamp())
    return jwt.encode({"iss": f"https://{SHOP}/admin", "dest": f"https://{SHOP}", "aud": CLIENT_ID, "sub": sub,
                       "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": uuid.uuid4().hex,
                       "sid": "s1"}, CLIENT_SECRET, algorithm="HS256")


@pytest.fixture
def embedded(sqlite_url, clock, tmp_path, page):
    """The shop's console opened from the Shopify admin: Ann with an order, App Bridge's stand-in routed."""
    with AppFactory(sqlite_url, clock, tmp_path) as make:
        app = make(shopify={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        deliver_shopify(app, "orders/paid", order(11, subtotal="90.00"))
        run_worker(app)
        issued: list[str] = []

        def bridge(route):
            tokens = [token(app) for _ in range(40)]
            issued.extend(tokens)
            route.fulfill(content_type="text/javascript", body=(
                f"window.shopify = {{ calls: 0, tokens: {json.dumps(tokens)},"
                " idToken: function () { this.calls += 1; return Promise.resolve(this.tokens.shift()); } };"))

        page.route(APP_BRIDGE_URL, bridge)
        with serving(create_app(app)) as base:
            yield app, base, page, issued


def sessions(app) -> int:
    with app.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.console_sessions)).scalar()


def test_every_page_after_the_first_is_signed_in_by_a_fresh_session_token(embedded):
    app, base, page, issued = embedded
    page.goto(f"{base}/admin?id_token={token(app)}")  # Shopify's first load of an embedded app
    assert page.get_by_role("heading", name="Health").is_visible()
    assert page.get_by_text("shopify:42").is_visible()
    assert page.get_by_role("button", name="Sign out").count() == 0  # nothing to sign out of

    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Email, name or id").wait_for()
    assert page.url == f"{base}/admin/customers"
    page.get_by_label("Email, name or id").fill("ann@")
    page.keyboard.press("Enter")
    page.get_by_role("link", name="ann@example.com").click()
    page.get_by_label("Points (negative to take away)").fill("25")
    page.get_by_label("Reason (required, kept in the ledger)").fill("kettle arrived late")
    page.get_by_role("button", name="Adjust points").click()
    assert "+25 points" in page.get_by_role("status").inner_text()
    screenshot(page, "console-embedded")
    with app.engine.connect() as conn:
        adjusted = conn.execute(select(t.ledger.c.points, t.ledger.c.reason).where(
            t.ledger.c.points == 25)).one()
    assert tuple(adjusted) == (25, "kettle arrived late")
    with app.engine.connect() as conn:
        actors = conn.execute(select(t.console_audit.c.actor)).scalars().all()
    assert actors == ["shopify:42"]

    page.go_back()  # history works: the customer page again, fetched with a new token
    page.get_by_label("Points (negative to take away)").wait_for()
    calls = page.evaluate("window.shopify.calls")
    assert calls == 5  # a token for each: customers, the search, the customer, the adjustment, back

    # Signed in by tokens alone: no cookie was set, no session stored, and the sign-in page never shown.
    assert [c["name"] for c in page.context.cookies() if c["name"].startswith("retention_console")] == []
    assert sessions(app) == 0
    assert "/admin/login" not in page.url


def test_a_download_carries_a_token_too(embedded):
    app, base, page, _ = embedded
    page.goto(f"{base}/admin/analysis?id_token={token(app)}")
    with page.expect_download() as got:
        page.get_by_role("link", name="Download the at-risk list (CSV)").click()
    path = got.value.path()
    assert got.value.suggested_filename.startswith("at-risk-")
    assert open(path, encoding="utf-8").readline().startswith("customer_id,email")


def test_signed_in_by_password_no_page_runs_a_script(embedded):
    app, base, page, _ = embedded
    from retention_plugin.console import auth

    auth.create_user(app.engine, "admin@example.com", "correct horse battery", app.now())
    page.goto(base + "/admin")
    page.get_by_label("Email").fill("admin@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/admin")
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("typeof window.shopify") == "undefined"

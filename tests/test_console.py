"""The admin console over HTTP through the real WSGI app: sign-in, CSRF, sessions, the rate limit, audit,
Shopify session tokens, and the changes it makes through the features' own functions.

Every test runs on SQLite and PostgreSQL (``make_app``). Browser tests are in tests/browser/test_console_pages.py.
"""

from __future__ import annotations

import base64
import html
import json
import re

import falcon.testing
import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from conftest import SHOP
from retention_plugin import hookimpl
from retention_plugin.console import auth
from retention_plugin.operations import OperationConflict, collect_operations
from retention_plugin.plugins import make_plugin_manager
from retention_plugin.storage import tables as t
from retention_plugin.web import create_app

EMAIL, PASSWORD = "admin@example.com", "correct horse battery"
CLIENT_ID, CLIENT_SECRET = "console-client-id", "console-client-secret-0123456789"


class Browser:
    """A falcon test client that keeps cookies like a browser and reads CSRF tokens from forms."""

    def __init__(self, app):
        self.client = falcon.testing.TestClient(create_app(app))
        self.cookies: dict[str, str] = {}

    def _keep(self, result):
        for c in result.cookies.values():
            if c.value == "" or (c.max_age is not None and int(c.max_age) <= 0):
                self.cookies.pop(c.name, None)
            else:
                self.cookies[c.name] = c.value
        return result

    def _headers(self, extra=None):
        h = dict(extra or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return h

    def get(self, path, headers=None, **kw):
        return self._keep(self.client.simulate_get(path, headers=self._headers(headers), **kw))

    def post(self, path, data: dict, headers=None):
        from urllib.parse import urlencode

        h = self._headers(headers)
        h["Content-Type"] = "application/x-www-form-urlencoded"
        return self._keep(self.client.simulate_post(path, body=urlencode(data), headers=h))

    @staticmethod
    def csrf(result) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', result.text).group(1)

    def sign_in(self, email=EMAIL, password=PASSWORD):
        page = self.get("/admin/login")
        return self.post("/admin/login", {"csrf": self.csrf(page), "email": email, "password": password})


@pytest.fixture
def console(make_app):
    app = make_app(shopify={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    auth.create_user(app.engine, EMAIL, PASSWORD, app.now())
    return app


def audit_rows(app):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.console_audit).order_by(t.console_audit.c.id)).mappings()]


def test_pages_need_a_sign_in_and_the_right_password_opens_them(console):
    b = Browser(console)
    r = b.get("/admin")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login?next=")
    wrong = b.sign_in(password="wrong password!")
    assert wrong.status_code == 401 and "wrong email or password" in wrong.text
    assert "retention_console" not in b.cookies
    ok = b.sign_in()
    assert ok.status_code == 303 and ok.headers["location"] == "/admin"
    cookie = [c for c in ok.cookies.values() if c.name == "retention_console"][0]
    assert cookie.http_only and cookie.same_site == "Lax" and cookie.path == "/admin"
    page = b.get("/admin")
    assert page.status_code == 200 and "Dead letters" in page.text and EMAIL in page.text
    # The database keeps only the token's hash.
    with console.engine.connect() as conn:
        hashes = conn.execute(select(t.console_sessions.c.token_hash)).scalars().all()
    assert hashes == [auth.token_hash(b.cookies["retention_console"])]
    assert [r["action"] for r in audit_rows(console)] == ["user.create", "sign_in.failed", "sign_in"]


def test_the_cookie_is_secure_behind_https(console):
    b = Browser(console)
    page = b.get("/admin/login")
    r = b.post("/admin/login", {"csrf": b.csrf(page), "email": EMAIL, "password": PASSWORD},
               headers={"X-Forwarded-Proto": "https"})
    assert [c.secure for c in r.cookies.values() if c.name == "retention_console"] == [True]


def test_a_form_without_or_with_a_wrong_csrf_token_is_refused(console):
    b = Browser(console)
    login = b.get("/admin/login")
    assert b.post("/admin/login", {"email": EMAIL, "password": PASSWORD}).status_code == 403
    assert b.post("/admin/login", {"csrf": "forged", "email": EMAIL, "password": PASSWORD}).status_code == 403
    b.post("/admin/login", {"csrf": b.csrf(login), "email": EMAIL, "password": PASSWORD})
    event_id = dead_letter(console)
    missing = b.post(f"/admin/events/{event_id}/replay", {})
    wrong = b.post(f"/admin/events/{event_id}/replay", {"csrf": "not-the-token"})
    assert missing.status_code == 403 and wrong.status_code == 403 and "security token" in missing.text
    assert inbox_status(console, event_id) == "dead"
    assert "events.replay" not in [r["action"] for r in audit_rows(console)]


def test_an_expired_session_is_refused(console, clock):
    b = Browser(console)
    b.sign_in()
    token = b.csrf(b.get("/admin"))
    clock.advance(hours=8, seconds=1)
    r = b.get("/admin")
    assert r.status_code == 303 and "/admin/login" in r.headers["location"]
    event_id = dead_letter(console)
    post = b.post(f"/admin/events/{event_id}/replay", {"csrf": token})
    assert post.status_code == 401 and inbox_status(console, event_id) == "dead"


def test_signing_out_ends_the_session_on_the_server(console):
    b = Browser(console)
    b.sign_in()
    token, cookie = b.csrf(b.get("/admin")), b.cookies["retention_console"]
    assert b.post("/admin/logout", {"csrf": token}).status_code == 303
    replayed = Browser(console)
    replayed.cookies["retention_console"] = cookie
    assert replayed.get("/admin").status_code == 303


def test_sign_in_is_rate_limited_per_email_and_address(console, clock):
    b = Browser(console)
    for _ in range(auth.MAX_FAILURES):
        assert b.sign_in(password="nope nope nope").status_code == 401
    blocked = b.sign_in()  # even the right password, while blocked
    assert blocked.status_code == 429 and "too many" in blocked.text
    other = Browser(console)
    assert other.sign_in(email="someone@example.com", password="x" * 12).status_code == 401  # another email: own count
    clock.advance(minutes=15, seconds=1)
    assert b.sign_in().status_code == 303
    assert "sign_in.rate_limited" in [r["action"] for r in audit_rows(console)]


def dead_letter(app, delivery_id="dead-1") -> int:
    with app.engine.begin() as conn:
        return conn.execute(insert(t.inbox).values(
            platform="shopify", shop=SHOP, delivery_id=delivery_id, topic="orders/paid", headers={}, body=b"{}",
            received_at=app.now(), status="dead", attempts=5, next_attempt_at=app.now(),
            last_error="payload: line_items is missing")).inserted_primary_key[0]


def inbox_status(app, event_id):
    with app.engine.connect() as conn:
        return conn.execute(select(t.inbox.c.status).where(t.inbox.c.id == event_id)).scalar()


def test_replay_and_retry_are_done_and_audited(console):
    event_id = dead_letter(console)
    with console.engine.begin() as conn:
        action_id = conn.execute(insert(t.actions).values(
            key="thanks:1", platform="shopify", kind="tags_add", request={}, status="failed", attempts=8,
            next_attempt_at=console.now(), last_error="HTTP 500", created_at=console.now(),
            updated_at=console.now())).inserted_primary_key[0]
    b = Browser(console)
    b.sign_in()
    page = b.get("/admin")
    assert "payload: line_items is missing" in page.text and "HTTP 500" in page.text
    token = b.csrf(page)
    r = b.post(f"/admin/events/{event_id}/replay", {"csrf": token})
    assert r.status_code == 303 and inbox_status(console, event_id) == "pending"
    r = b.post(f"/admin/actions/{action_id}/retry", {"csrf": token})
    with console.engine.connect() as conn:
        assert conn.execute(select(t.actions.c.status).where(t.actions.c.id == action_id)).scalar() == "pending"
    done = [(r["actor"], r["action"], r["target"]) for r in audit_rows(console)][-2:]
    assert done == [(EMAIL, "events.replay", f"inbox:{event_id}"), (EMAIL, "actions.retry", f"action:{action_id}")]


def test_points_adjustment_needs_a_reason_goes_through_the_ledger_once(console):
    from retention_plugin.records import resolve_customer

    with console.engine.begin() as conn:
        cid = resolve_customer(conn, None, console.now(), email="ann@example.com")
    b = Browser(console)
    b.sign_in()
    page = b.get(f"/admin/customers/{cid}")
    assert page.status_code == 200 and "ann@example.com" in page.text
    key = re.search(r'name="key" value="([^"]+)"', page.text).group(1)
    token = b.csrf(page)
    no_reason = b.post(f"/admin/customers/{cid}/points", {"csrf": token, "key": key, "points": "50", "reason": " "})
    assert "reason" in no_reason.headers["location"]
    for _ in range(2):  # a resubmitted form adjusts once
        b.post(f"/admin/customers/{cid}/points", {"csrf": token, "key": key, "points": "50", "reason": "goodwill"})
    with console.engine.connect() as conn:
        ledger = conn.execute(select(t.ledger.c.points, t.ledger.c.reason, t.ledger.c.actor)
                              .where(t.ledger.c.customer_id == cid)).all()
    assert ledger == [(50, "goodwill", f"console:{EMAIL}")]
    [row] = [r for r in audit_rows(console) if r["action"] == "loyalty.adjust"]
    assert row["target"] == f"customer:{cid}" and row["detail"]["reason"] == "goodwill"
    search = b.get("/admin/customers", params={"q": "ann@"})
    assert f'href="/admin/customers/{cid}"' in search.text


def test_the_at_risk_csv_is_a_download_and_defuses_formulas(console):
    from retention_plugin.records import resolve_customer

    with console.engine.begin() as conn:
        cid = resolve_customer(conn, None, console.now(), email="=cmd@example.com")
        conn.execute(insert(t.customer_scores).values(customer_id=cid, segment="at_risk", p_alive=0.31,
                                                      expected_purchases=0.2, scored_at=console.now()))
    b = Browser(console)
    b.sign_in()
    r = b.get("/admin/analysis/at-risk.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    lines = r.text.strip().splitlines()
    assert lines[0].startswith("customer_id,email") and lines[1].startswith(f"{cid},'=cmd@example.com,")
    assert b.get("/admin/analysis").status_code == 200


@pytest.mark.parametrize("page", ["/admin/loyalty", "/admin/messages", "/admin/recalls", "/admin/recovery",
                                  "/admin/audit", "/admin/customers"])
def test_every_page_renders_for_a_signed_in_admin(console, page):
    b = Browser(console)
    b.sign_in()
    r = b.get(page)
    assert r.status_code == 200 and "<h1>" in r.text and 'aria-current="page"' in r.text
    # Framed only by itself and this shop's Shopify admin (the embedded app); never cached.
    csp = r.headers["content-security-policy"]
    assert f"frame-ancestors 'self' https://admin.shopify.com https://{SHOP}" in csp and "script-src" not in csp
    assert r.headers["cache-control"] == "no-store"


# --- Shopify embedded: the session token -------------------------------------------------------------


def session_token(app, **claims):
    now = int(app.now().timestamp())
    body = {"iss": f"https://{SHOP}/admin", "dest": f"https://{SHOP}", "aud": CLIENT_ID, "sub": "42",
            "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": "j1", "sid": "s1"}
    body.update(claims)
    secret = body.pop("_secret", CLIENT_SECRET)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def test_a_valid_shopify_session_token_signs_in_each_request_without_a_cookie(console):
    b = Browser(console)
    r = b.get("/admin", headers={"Authorization": f"Bearer {session_token(console)}"})
    assert r.status_code == 200 and "shopify:42" in r.text
    # Nothing depends on a third-party cookie: none is set, no session row is stored.
    assert "retention_console" not in [c.name for c in r.cookies.values()] and b.cookies == {}
    with console.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.console_sessions)).scalar() == 0
    # Shopify's first load of an embedded app puts the token in the URL.
    first = b.get("/admin/audit", params={"id_token": session_token(console)})
    assert first.status_code == 200 and b.cookies == {}
    # The next request without a token is not signed in: the token was the request's, not a session's.
    assert b.get("/admin/audit").status_code == 303


def test_a_bearer_token_beside_a_good_cookie_is_still_checked(console):
    b = Browser(console)
    b.sign_in()
    r = b.get("/admin", headers={"Authorization": f"Bearer {session_token(console, exp=1)}"})
    assert r.status_code == 401 and "expired" in r.text


def test_a_change_with_a_bearer_token_needs_no_csrf_token_but_a_cookie_still_does(console):
    event_id = dead_letter(console)
    b = Browser(console)
    done = b.post(f"/admin/events/{event_id}/replay", {},
                  headers={"Authorization": f"Bearer {session_token(console)}"})
    assert done.status_code == 303 and "queued+again" in done.headers["location"]
    assert inbox_status(console, event_id) == "pending"
    assert [(r["actor"], r["action"]) for r in audit_rows(console)][-1] == ("shopify:42", "events.replay")
    # A bad token on a change is a 401 and changes nothing.
    other = dead_letter(console, "dead-2")
    forged = b.post(f"/admin/events/{other}/replay", {},
                    headers={"Authorization": f"Bearer {session_token(console, _secret='x' * 32)}"})
    assert forged.status_code == 401 and inbox_status(console, other) == "dead"
    # The id_token query parameter is for the first GET only: a change cannot be made with one in its URL.
    url_token = b.post(f"/admin/events/{other}/replay?id_token={session_token(console)}", {})
    assert url_token.status_code == 401 and inbox_status(console, other) == "dead"
    # Signed in by password, the cookie is ambient: without the form's CSRF token the change is refused.
    b.sign_in()
    assert b.post(f"/admin/events/{other}/replay", {}).status_code == 403
    assert inbox_status(console, other) == "dead"


@pytest.mark.parametrize("claims, why", [
    ({"aud": "another-app"}, "aud"),
    ({"dest": "https://other-shop.myshopify.com"}, "dest"),
    ({"exp": 1}, "expired"),
    ({"nbf": 4102444800}, "nbf"),
    ({"_secret": "not-the-app-secret-0123456789abcdef"}, "signature"),
    ({"dest": None}, "dest"),
])
@pytest.mark.parametrize("carried", ["id_token", "bearer"])
def test_a_bad_shopify_session_token_is_refused(console, claims, why, carried):
    b = Browser(console)
    token = session_token(console, **claims)
    r = (b.get("/admin", params={"id_token": token}) if carried == "id_token"
         else b.get("/admin", headers={"Authorization": f"Bearer {token}"}))
    assert r.status_code == 401 and why in r.text
    assert "retention_console" not in b.cookies


# --- the operations registry and the CLI ---------------------------------------------------------------


def test_hook_register_admin_operations():
    ops = collect_operations(make_plugin_manager(entry_points=False))
    assert {"loyalty.adjust", "recovery.pending", "recovery.approve", "recovery.decline", "recalls.list",
            "recalls.status", "recalls.create"} <= set(ops)

    class Twice:
        @hookimpl
        def register_admin_operations(self, register):
            register("loyalty.adjust", lambda retention: None)

    with pytest.raises(OperationConflict, match="loyalty.adjust"):
        collect_operations(make_plugin_manager(entry_points=False, extra=[Twice()]))


def test_admin_create_user_reads_the_password_from_stdin(console, tmp_path, monkeypatch, db_url):
    from conftest import base_config
    from retention_plugin import console as console_plugin
    from retention_plugin.cli import cli
    from server_util import write_config

    console_plugin.register_commands(cli=cli)

    config = write_config(tmp_path / "c.toml", base_config(db_url))
    r = CliRunner().invoke(cli, ["--config", str(config), "admin", "create-user", "Ops@Example.com",
                                 "--password-stdin"], input="a long enough password\n")
    assert r.exit_code == 0, r.output
    short = CliRunner().invoke(cli, ["--config", str(config), "admin", "create-user", "x@example.com",
                                     "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "12 characters" in short.output
    with console.engine.connect() as conn:
        stored = conn.execute(select(t.console_users.c.password_hash).where(
            t.console_users.c.email == "ops@example.com")).scalar()
        assert conn.execute(select(func.count()).select_from(t.console_users)).scalar() == 2
    assert stored.startswith("$argon2id$") and "a long enough password" not in stored


def test_bad_input_gets_a_4xx_naming_the_field_never_a_5xx(console):
    b = Browser(console)
    b.sign_in()
    token = b.csrf(b.get("/admin"))
    huge = "9" * 25
    assert b.post(f"/admin/events/{huge}/replay", {"csrf": token}).status_code == 404
    assert b.get(f"/admin/customers/{huge}").status_code == 404
    assert b.get("/admin/customers/12345").status_code == 404
    assert b.get("/admin/customers", params={"q": huge}).status_code == 200
    with console.engine.begin() as conn:
        cid = conn.execute(insert(t.customers).values(email="cy@example.com", created_at=console.now(),
                                                      updated_at=console.now())).inserted_primary_key[0]
    for points in (huge, "12.5", "0", "", "20000000"):
        r = b.post(f"/admin/customers/{cid}/points", {"csrf": token, "points": points, "reason": "x"})
        assert r.status_code == 303 and "error=points" in r.headers["location"], points
    bad = b.post("/admin/recalls", {"csrf": token, "product_id": huge})
    assert bad.status_code == 400 and "product id" in bad.text
    missing = b.post("/admin/recalls", {"csrf": token, "title": "x"})
    assert missing.status_code == 400 and "sku" in missing.text.lower()
    assert b.post("/admin/recovery/1", {"csrf": token, "decision": "maybe"}).status_code == 400
    assert b.get("/admin/recalls/5").status_code == 404
    unknown = b.post("/admin/recovery/77", {"csrf": token, "decision": "approve"})
    assert unknown.status_code == 303 and "no+recovery+case+77" in unknown.headers["location"]


def test_the_analysis_report_page_says_how_to_get_one_when_none_was_computed(console):
    b = Browser(console)
    b.sign_in()
    r = b.get("/admin/analysis/report")
    assert r.status_code == 404 and "retention analyze report" in r.text
    assert "No full report yet" in b.get("/admin/analysis").text


def test_the_analysis_report_shows_the_newest_computed_report_with_its_charts(console, tmp_path, clock):
    from shop_history import import_history

    from retention_plugin.analysis.commands import analyze

    orders = import_history(console, tmp_path)
    assert orders > 1500  # a year of a few hundred customers buying again
    res = CliRunner().invoke(analyze, ["report", "--out", str(tmp_path / "report")], obj=console)
    assert res.exit_code == 0, res.output
    assert "console's Analysis page shows it" in res.output
    b = Browser(console)
    b.sign_in()
    page = b.get("/admin/analysis")
    assert page.status_code == 200 and "Open the full report with its charts" in page.text
    assert f"computed {console.now():%Y-%m-%d %H:%M} UTC" in page.text and "more than two days old" not in page.text
    r = b.get("/admin/analysis/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    # The charts are inline PNGs (the console's CSP allows data: images and nothing from elsewhere).
    charts = dict(re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]{200,})"', r.text))
    assert {"segment sizes", "revenue at stake", "P(alive) and lost score distribution", "cohort retention heat map",
            "time between orders", "tracking: cumulative repeat purchases, actual and expected",
            "reliability curve"} <= set(charts), sorted(charts)
    assert all(base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n" for png in charts.values())
    assert "img-src 'self' data:" in r.headers["content-security-policy"]
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["customers"] == 400
    # The key figures: the counts by state, the verdict on the lost score, and the way back to the console.
    for state in ("active", "at_risk", "lost"):
        assert f"<b>{summary['states'][state]:,}</b>" in r.text
    assert html.escape(summary["lost_score"]["verdict"], quote=False) in r.text or \
        html.escape(summary["lost_score"]["verdict"]) in r.text
    assert 'href="/admin/analysis"' in r.text and "by <code>retention analyze report</code>" in r.text
    # Opening it computes nothing: the page reads the kept report, and says when it is old.
    clock.advance(days=3)
    b.sign_in()
    assert "more than two days old" in b.get("/admin/analysis/report").text
    assert "more than two days old" in b.get("/admin/analysis").text




# --- reads while a worker's group holds the database --------------------------------------------------


READ_PAGES = ["/admin", "/admin/customers?q=ann", "/admin/customers/{cid}", "/admin/recovery", "/admin/analysis",
              "/admin/loyalty", "/admin/messages?status=sent", "/admin/audit"]


def test_the_pages_that_only_read_answer_while_a_writer_holds_the_database(console, monkeypatch):
    """Every console GET that only reads, and the sign-in lookups behind it (the cookie's session, a
    Shopify session token's shop), reads through ``read_only``: on SQLite it used to take the receivers'
    turn and the write lock, waiting for a worker's whole group and competing with the receivers.
    Here the writer never lets go, and the app may not wait for it."""
    from retention_plugin.records import resolve_customer
    from write_lock_support import writer_holding

    with console.engine.begin() as conn:
        cid = resolve_customer(conn, None, console.now(), email="ann@example.com")
        conn.execute(insert(t.customer_scores).values(customer_id=cid, segment="at_risk", p_alive=0.31,
                                                      expected_purchases=0.2, scored_at=console.now()))
    b = Browser(console)
    assert b.sign_in().status_code == 303
    embedded = Browser(console)
    with writer_holding(console, monkeypatch):
        for path in READ_PAGES:
            r = b.get(path.format(cid=cid))
            assert r.status_code == 200, (path, r.text[:300])
        assert "ann@example.com" in b.get(f"/admin/customers/{cid}").text
        # Signed in by a Shopify session token: the shop's install and uninstall are looked up.
        r = embedded.get("/admin/audit", headers={"Authorization": f"Bearer {session_token(console)}"})
        assert r.status_code == 200 and "shopify:42" in r.text
        # No report kept yet: the page that shows one reads, and says how to get one.
        assert b.get("/admin/analysis/report").status_code == 404


def test_the_recall_pages_read_only_and_show_a_sent_notice_as_notified(console, monkeypatch):
    """``/admin/recalls`` and ``/admin/recalls/{id}`` used to mark the cases whose notice went out as
    notified before reading (an UPDATE on a GET, which a prefetch or a crawler could trigger), so on
    SQLite they waited for the worker's group. They read through ``read_only`` now and show the sent
    notice's case as notified all the same, while what is stored stays the ``recalls.sync`` task's."""
    from datetime import timedelta

    from retention_plugin.records import resolve_customer
    from write_lock_support import writer_holding

    now = console.now()
    sent_at = now - timedelta(minutes=3)
    with console.engine.begin() as conn:
        cid = resolve_customer(conn, None, now, email="ann@example.com")
        mid = conn.execute(insert(t.messages).values(
            key="recall:1:ann", customer_id=cid, kind="recall", message_class="transactional", channel="log",
            data={}, due_at=sent_at, send_at=sent_at, status="sent", sent_at=sent_at, attempts=1,
            created_at=sent_at).returning(t.messages.c.id)).scalar_one()
        rid = conn.execute(insert(t.recalls).values(
            key="recall:sku=KETTLE", sku="KETTLE", severity="safety", title="the lid comes loose", status="open",
            created_at=now).returning(t.recalls.c.id)).scalar_one()
        conn.execute(insert(t.recall_cases).values(recall_id=rid, customer_id=cid, status="affected",
                                                   message_id=mid, created_at=now))
    b = Browser(console)
    assert b.sign_in().status_code == 303
    with writer_holding(console, monkeypatch):
        listing = b.get("/admin/recalls")
        assert listing.status_code == 200, listing.text[:300]
        [row] = re.findall(r"<tr><td data-label=\"Id\">.*?</tr>", listing.text)
        assert '<td data-label="Notified" class="num">1</td>' in row
        page = b.get(f"/admin/recalls/{rid}")
        assert page.status_code == 200, page.text[:300]
        assert '<td data-label="State">notified</td>' in page.text
    with console.engine.connect() as conn:
        assert conn.execute(select(t.recall_cases.c.status, t.recall_cases.c.notified_at)).one() == ("affected", None)

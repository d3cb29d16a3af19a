"""Referrals: the signed link and its landing page (real WSGI server), the referee's first-order code,
qualification after the pending period, and each abuse guard; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from payloads import order, refund
from retention_plugin import hookimpl
from retention_plugin.cli import LazyApp
from retention_plugin.context import HookContext
from retention_plugin.features.referrals import engine, referral_url
from retention_plugin.features.referrals.codes import code_for, customer_of
from retention_plugin.features.referrals.commands import referrals as referrals_cli
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker
from retention_plugin.web import create_app
from test_loyalty_support import bal, customer_id, ledger

LINK_SECRET = "link-secret-0123456789abcdef-xyz"


class Seen:
    def __init__(self):
        self.qualified, self.reversed = [], []

    @hookimpl
    def referral_qualified(self, referral, ctx):
        self.qualified.append(dict(referral))

    @hookimpl
    def referral_reversed(self, referral, ctx):
        self.reversed.append(dict(referral))


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def shop(make_app):
    seen = Seen()
    app = make_app(extra_plugins=[seen], links={"secret": LINK_SECRET, "base_url": "https://ret.example.com"},
                   loyalty={"earn": {"referral": 500}, "currency": "USD"},
                   referrals={"pending_days": 14, "monthly_cap": 2, "discount_percent": "15"})
    server = make_server("127.0.0.1", 0, create_app(app), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def account(app, sid, email):
    deliver_shopify(app, "customers/create", {
        "id": sid, "email": email, "first_name": "F", "last_name": f"L{sid}", "verified_email": True,
        "tax_exemptions": [], "addresses": [], "tags": "", "created_at": "2026-03-01T10:00:00+00:00",
        "updated_at": "2026-03-01T10:00:00+00:00"})
    run_worker(app)
    return customer_id(app, sid)


def pay(app, oid, sid, email, street, subtotal="80.00"):
    body = order(oid, customer_id=sid, email=email, subtotal=subtotal, created=app.now())
    body["shipping_address"]["address1"] = street
    deliver_shopify(app, "orders/paid", body)
    run_worker(app)


def http(method, url, form=None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/x-www-form-urlencoded"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def landing(app, base, referrer_cid):
    url = referral_url(app.settings, {"id": referrer_cid})
    assert url.startswith("https://ret.example.com/referrals/r/")
    return base + urllib.parse.urlparse(url).path


def qualify(app):
    with app.engine.begin() as conn:
        return engine.qualify(HookContext(app, conn, now=app.now(), source="test"))


def referral(app, **where):
    q = select(t.referrals)
    for k, v in where.items():
        q = q.where(t.referrals.c[k] == v)
    with app.engine.connect() as conn:
        return dict(conn.execute(q).mappings().one())


def report(app):
    lazy = LazyApp(None)
    lazy._app = app
    return CliRunner().invoke(referrals_cli, ["report", "--json"], obj=lazy)


def independent_balance(app, cid):
    return sum(e["points"] for e in ledger(app, customer_id=cid))


# --- codes ---------------------------------------------------------------------------------------


def test_codes_are_signed_and_cannot_be_turned_into_another_customers(make_app):
    app = make_app(links={"secret": LINK_SECRET, "base_url": "https://ret.example.com"})
    code = code_for(app.settings, 42)
    assert customer_of(app.settings, code) == 42
    prefix, mac = code.split("-")
    assert customer_of(app.settings, f"{int(prefix, 36) + 1:x}-{mac}") is None
    assert customer_of(app.settings, code[:-1] + ("A" if code[-1] != "A" else "B")) is None
    assert customer_of(app.settings, "") is None and customer_of(app.settings, "x" * 500) is None
    other = make_app(links={"secret": "another-secret-0123456789abcdef", "base_url": "https://ret.example.com"})
    assert customer_of(other.settings, code) is None


# --- the whole way, and the hook -----------------------------------------------------------------


def test_hook_referral_qualified(shop, clock):
    app, base, seen = shop
    ann = account(app, 7001, "ann@example.com")
    pay(app, 1001, 7001, "ann@example.com", "Gedimino pr. 1")
    bea = account(app, 7002, "bea@example.com")
    url = landing(app, base, ann)

    status, page, headers = http("GET", url)
    assert status == 200 and "15% off your first order" in page
    assert "ann@example.com" not in page  # nothing about the referrer
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("retention_referral=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie

    status, page, _ = http("POST", url, {"email": "Bea@Example.com"})
    assert status == 200 and "FRIEND-" in page
    [code] = [r for r in (dict(x) for x in _rows(app, t.rewards)) if r["feature"] == "referrals"]
    assert code["customer_id"] == bea and code["percent"] == 15 and code["code"] in page
    [action] = [a for a in _rows(app, t.actions) if a["key"] == code["key"]]
    assert "gid://shopify/Customer/7002" in json.dumps(action["request"])
    assert http("POST", url, {"email": "bea@example.com"})[0] == 200  # again: the same code, no second one
    assert len([r for r in _rows(app, t.rewards) if r["feature"] == "referrals"]) == 1

    pay(app, 2001, 7002, "bea@example.com", "Pilies g. 5")
    assert referral(app, referee_id=bea)["status"] == "ordered"
    clock.advance(days=13)
    assert qualify(app) == {"qualified": 0, "rejected": 0}  # still pending
    clock.advance(days=2)
    assert qualify(app) == {"qualified": 1, "rejected": 0}
    assert qualify(app) == {"qualified": 0, "rejected": 0}  # once
    r = referral(app, referee_id=bea)
    assert r["status"] == "qualified" and [q["id"] for q in seen.qualified] == [r["id"]]
    assert [(e["key"], e["points"]) for e in ledger(app, customer_id=ann) if "referral" in e["key"]] == [
        (f"loyalty:activity:referral:{r['id']}", 500)]
    assert bal(app, 7001).available == 80 + 500 == independent_balance(app, ann)
    assert bal(app, 7002).available == 80  # the referee earns for their order only


def test_an_invitee_without_an_account_gets_the_code_when_the_account_comes(shop):
    app, base, _ = shop
    ann = account(app, 7001, "ann@example.com")
    status, page, _ = http("POST", landing(app, base, ann), {"email": "cy@example.com"})
    assert status == 200 and "Create your account" in page
    assert referral(app, referee_email="cy@example.com")["referee_id"] is None
    cy = account(app, 7003, "cy@example.com")
    r = referral(app, referee_email="cy@example.com")
    assert r["referee_id"] == cy and r["discount_key"] == f"referrals:discount:{r['id']}"
    [code] = [x for x in _rows(app, t.rewards) if x["feature"] == "referrals"]
    assert code["customer_id"] == cy


# --- abuse ---------------------------------------------------------------------------------------


def test_forged_codes_get_a_plain_404_and_no_cookie(shop):
    app, base, _ = shop
    ann = account(app, 7001, "ann@example.com")
    url = landing(app, base, ann)
    forged = url[:-1] + ("A" if url[-1] != "A" else "B")
    status, page, headers = http("GET", forged)
    assert status == 404 and "not valid" in page and headers.get("Set-Cookie") is None
    assert http("POST", forged, {"email": "x@example.com"})[0] == 404
    assert _rows(app, t.referrals) == []


def test_self_referral_by_email_is_refused_at_the_door(shop):
    app, base, _ = shop
    ann = account(app, 7001, "ann.smith@gmail.com")
    url = landing(app, base, ann)
    for variant in ("ann.smith@gmail.com", "AnnSmith+promo@googlemail.com"):
        status, page, _ = http("POST", url, {"email": variant})
        assert status == 422 and "your own referral link" in page
    assert http("POST", url, {"email": "not an email"})[0] == 400
    assert _rows(app, t.referrals) == []


def test_self_referral_by_customer_id_is_rejected(shop, clock):
    app, base, seen = shop
    ann = account(app, 7001, "ann@example.com")
    assert http("POST", landing(app, base, ann), {"email": "alias@example.com"})[0] == 200
    # The referrer orders herself, giving the invited address at checkout.
    pay(app, 1001, 7001, "alias@example.com", "Gedimino pr. 1")
    clock.advance(days=15)
    assert qualify(app) == {"qualified": 0, "rejected": 1}
    r = referral(app, referee_email="alias@example.com")
    assert (r["status"], r["reason"], r["referee_id"]) == ("rejected", "self_customer", ann)
    assert seen.qualified == [] and independent_balance(app, ann) == 80


def test_self_referral_by_shipping_address_is_rejected(shop, clock):
    app, base, seen = shop
    ann = account(app, 7001, "ann@example.com")
    pay(app, 1001, 7001, "ann@example.com", "Gedimino pr. 1")
    dan = account(app, 7004, "dan@example.com")
    assert http("POST", landing(app, base, ann), {"email": "dan@example.com"})[0] == 200
    pay(app, 2001, 7004, "dan@example.com", "GEDIMINO  pr. 1")  # the same street, written differently
    clock.advance(days=15)
    qualify(app)
    assert referral(app, referee_id=dan)["reason"] == "self_address"
    assert seen.qualified == []
    with app.engine.connect() as conn:
        digests = [r[0] for r in conn.execute(select(t.referral_households.c.digest))]
    assert all(len(d) == 64 and "gedimino" not in d.lower() for d in digests)


def test_a_refunded_first_order_never_qualifies(shop, clock):
    app, base, seen = shop
    ann = account(app, 7001, "ann@example.com")
    bea = account(app, 7002, "bea@example.com")
    http("POST", landing(app, base, ann), {"email": "bea@example.com"})
    pay(app, 2001, 7002, "bea@example.com", "Pilies g. 5")
    clock.advance(days=3)
    deliver_shopify(app, "refunds/create", refund(92001, 2001, 20011, 1, "80.00"))
    run_worker(app)
    clock.advance(days=15)
    qualify(app)
    r = referral(app, referee_id=bea)
    assert (r["status"], r["reason"]) == ("rejected", "refunded")
    assert seen.qualified == [] and independent_balance(app, ann) == 0


def test_hook_referral_reversed(shop, clock):
    app, base, seen = shop
    ann = account(app, 7001, "ann@example.com")
    bea = account(app, 7002, "bea@example.com")
    http("POST", landing(app, base, ann), {"email": "bea@example.com"})
    pay(app, 2001, 7002, "bea@example.com", "Pilies g. 5")
    clock.advance(days=15)
    qualify(app)
    assert bal(app, 7001).available == 500
    deliver_shopify(app, "refunds/create", refund(92001, 2001, 20011, 1, "30.00"))
    deliver_shopify(app, "refunds/create", refund(92002, 2001, 20011, 1, "10.00"))
    run_worker(app)
    r = referral(app, referee_id=bea)
    assert (r["status"], r["reason"]) == ("reversed", "refunded")
    assert [x["id"] for x in seen.reversed] == [r["id"]]
    back = [e for e in ledger(app, customer_id=ann) if e["key"].endswith(":reverse")]
    assert [(e["kind"], e["points"]) for e in back] == [("reverse", -500)]
    assert bal(app, 7001).available == 0 == independent_balance(app, ann)


def test_the_monthly_cap_per_referrer(shop, clock):
    app, base, seen = shop
    ann = account(app, 7001, "ann@example.com")
    url = landing(app, base, ann)
    for i, sid in enumerate((7011, 7012, 7013)):
        email = f"friend{i}@example.com"
        account(app, sid, email)
        assert http("POST", url, {"email": email})[0] == 200
        pay(app, 3000 + i, sid, email, f"Street {i}")
    clock.advance(days=15)
    assert qualify(app) == {"qualified": 2, "rejected": 1}
    statuses = sorted((r["status"], r["reason"]) for r in _rows(app, t.referrals))
    assert statuses == [("qualified", None), ("qualified", None), ("rejected", "monthly_cap")]
    assert independent_balance(app, ann) == 1000 == bal(app, 7001).available

    data = json.loads(report(app).output)
    assert data["by_status"]["qualified"] == 2 and data["rejected_by_reason"] == {"monthly_cap": 1}
    assert data["referrers"][0]["customer_id"] == ann and data["referrers"][0]["qualified"] == 2


def test_someone_who_ordered_before_cannot_be_referred_and_an_email_belongs_to_its_first_referrer(shop):
    app, base, _ = shop
    ann = account(app, 7001, "ann@example.com")
    eve = account(app, 7005, "eve@example.com")
    pay(app, 5001, 7005, "eve@example.com", "Street 5")
    status, page, _ = http("POST", landing(app, base, ann), {"email": "eve@example.com"})
    assert status == 409 and "first order" in page
    assert http("POST", landing(app, base, ann), {"email": "fay@example.com"})[0] == 200
    status, page, _ = http("POST", landing(app, base, eve), {"email": "fay@example.com"})
    assert status == 409 and "invited already" in page
    assert referral(app, referee_email="fay@example.com")["referrer_id"] == ann


def test_report_command_table(shop):
    app, base, _ = shop
    ann = account(app, 7001, "ann@example.com")
    http("POST", landing(app, base, ann), {"email": "gus@example.com"})
    lazy = LazyApp(None)
    lazy._app = app
    out = CliRunner().invoke(referrals_cli, ["report"], obj=lazy)
    assert out.exit_code == 0, out.output
    assert "referrals: 1" in out.output and "invited 1" in out.output and "ann@example.com" in out.output
    link = CliRunner().invoke(referrals_cli, ["link", "ann@example.com"], obj=lazy)
    assert link.exit_code == 0 and link.output.strip() == referral_url(app.settings, {"id": ann})
    with app.engine.connect() as conn:
        facts = app.pm.hook.customer_facts(customer_id=ann, ctx=HookContext(app, conn, now=app.now(), source="t"))
    [mine] = [f["referrals"] for f in facts if f and "referrals" in f]
    assert mine["link"] == link.output.strip() and mine["invited"] == 1 and mine["qualified"] == 0


def _rows(app, table):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


def test_the_rewards_page_shows_the_customers_own_referral_link(shop, clock):
    """The storefront shows the link through storefront_sections, in the page's language, escaped."""
    import falcon.testing
    from storefront_support import proxy_query

    app, _, _ = shop
    cid = account(app, 7001, "ana@example.com")
    other = account(app, 7002, "ben@example.com")
    client = falcon.testing.TestClient(create_app(app))
    page = client.simulate_get("/proxy/rewards", query_string=proxy_query(7001, clock.now, extra={"format": "html"}))
    assert page.status_code == 200
    assert referral_url(app.settings, {"id": cid}) in page.text
    assert referral_url(app.settings, {"id": other}) not in page.text  # never anyone else's
    assert "Invite a friend" in page.text
    lt = client.simulate_get("/proxy/rewards",
                             query_string=proxy_query(7001, clock.now, extra={"format": "html", "locale": "lt"}))
    assert "Pakviesk draugą" in lt.text and "Invite a friend" not in lt.text


def _data_request(app, sid, email, request_id):
    deliver_shopify(app, "customers/data_request", {
        "shop_id": 1, "shop_domain": "retention-test.myshopify.com", "orders_requested": [],
        "customer": {"id": sid, "email": email}, "data_request": {"id": request_id}})
    run_worker(app)
    with app.engine.connect() as conn:
        return conn.execute(select(t.privacy_requests.c.export).order_by(t.privacy_requests.c.id.desc())
                            .limit(1)).scalar_one()


def test_a_data_request_exports_the_invitations_a_person_received_and_not_who_sent_them(shop):
    """An invitation holds the invited person's address and what became of it: theirs to see,
    whether or not they ever made an account; the inviter's identity is not theirs."""
    app, base, _ = shop
    ann = account(app, 7001, "ann@example.com")
    account(app, 7002, "bea@example.com")
    url = landing(app, base, ann)
    assert http("POST", url, {"email": "bea@example.com"})[0] == 200
    assert http("POST", url, {"email": "dee@example.com"})[0] == 200  # no account yet

    export = _data_request(app, 7002, "bea@example.com", 1)
    [got] = export["plugins"]["referral_invitations_received"]
    assert got["email"] == "bea@example.com" and got["status"] == "invited"
    assert got["first_order_discount"].startswith("referrals:discount:")
    assert "ann@example.com" not in json.dumps(export) and not any("referrer" in k for k in got)

    export = _data_request(app, 7009, "Dee@Example.com", 2)
    assert export["customer"] is None
    [got] = export["plugins"]["referral_invitations_received"]
    assert got["email"] == "dee@example.com" and got["first_order_discount"] is None

    export = _data_request(app, 7001, "ann@example.com", 3)  # the inviter: counts, not the friends' addresses
    assert "referral_invitations_received" not in export.get("plugins", {})
    assert export["plugins"]["referrals"]["invited"] == 2
    assert "bea@example.com" not in json.dumps(export) and "dee@example.com" not in json.dumps(export)

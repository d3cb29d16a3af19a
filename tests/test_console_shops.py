"""The console of an install serving two shops: a session signed in from one shop's Shopify admin (a
session token) sees and changes that shop's rows only, and a row of the other shop answers exactly like a
row that does not exist; a password session sees every shop, with a shop column.

HTTP through the real app (``tests/test_console.py``'s ``Browser``), on SQLite and PostgreSQL. Shop A is
``[shopify] shop``; shop B is installed beside it (``tests/test_many_shops.py``).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import unquote_plus

import jwt
import pytest
from sqlalchemy import func, insert, select, update

from retention_plugin import shop_scope
from retention_plugin.analysis.saved_report import KIND
from retention_plugin.console import auth
from retention_plugin.features.recalls.engine import create_recall
from retention_plugin.storage import tables as t
from test_console import CLIENT_ID, CLIENT_SECRET, EMAIL, PASSWORD, Browser
from test_many_shops import LINKS, PER_SHOP, RECALLS, A, B, rows, seed_shop

#: A shop's rows carry its letter in their texts, so a page shows whose rows it lists.
MARK = {A: "ALPHA", B: "BRAVO"}
#: An id no row has: what a row of another shop must look like.
NOWHERE = 987654321


def token(app, shop):
    now = int(app.now().timestamp())
    return jwt.encode({"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": CLIENT_ID, "sub": "7",
                       "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": "j", "sid": "s"},
                      CLIENT_SECRET, algorithm="HS256")


def as_shop(app, shop):
    return {"Authorization": f"Bearer {token(app, shop)}"}


def customer(app, shop, shopify_id=6101):
    (found,) = [c["id"] for c in rows(app, t.customers, shop) if c["shopify_id"] == shopify_id]
    return found


class Seeded:
    """Per shop: its customers, a dead letter, a failed action, a scheduled message, a pending and a reviewed
    recovery case, at-risk scores, win-back assignments (B has two, A one), a saved report (B's the newest)."""

    def __init__(self, app):
        self.app = app
        now = app.now()
        self.dead, self.failed, self.case, self.msg = {}, {}, {}, {}
        for n, shop in enumerate((A, B)):
            mark = MARK[shop]
            ann, ben = customer(app, shop, 6101), customer(app, shop, 6102)
            with shop_scope.scope(shop), app.engine.begin() as conn:
                self.dead[shop] = conn.execute(insert(t.inbox).values(
                    platform="shopify", shop=shop, delivery_id=f"dead-{shop}", topic="orders/paid", headers={},
                    body=b"{}", received_at=now, status="dead", attempts=5, next_attempt_at=now,
                    last_error=f"{mark}-dead")).inserted_primary_key[0]
                self.failed[shop] = conn.execute(insert(t.actions).values(
                    key=f"probe:{shop}", platform="shopify", kind="tags_add", request={}, status="failed",
                    attempts=8, next_attempt_at=now, last_error=f"{mark}-failed", created_at=now,
                    updated_at=now)).inserted_primary_key[0]
                self.msg[shop] = conn.execute(insert(t.messages).values(
                    key=f"probe:{shop}", customer_id=ann, kind=f"{mark.lower()}_note", message_class="marketing",
                    channel="log", due_at=now, send_at=now, status="scheduled", reason=f"{mark}-msg",
                    created_at=now)).inserted_primary_key[0]
                self.case[shop] = conn.execute(insert(t.recoveries).values(
                    key=f"case:{shop}", customer_id=ann, trigger="bad_rating", decision="pending",
                    hold=f"{mark}-hold", created_at=now)).inserted_primary_key[0]
                conn.execute(insert(t.recoveries).values(
                    key=f"reviewed:{shop}", customer_id=ben, trigger="bad_rating", decision="declined",
                    reviewed_by=f"{mark}-reviewer", reviewed_at=now, review_note="no", created_at=now))
                conn.execute(insert(t.customer_scores).values(customer_id=ann, segment="at_risk", p_alive=0.3,
                                                              expected_purchases=0.1, scored_at=now))
                for cid in (ann, ben)[:n + 1]:
                    conn.execute(insert(t.winback).values(key=f"wb:{cid}", customer_id=cid, group="offer",
                                                          segment="at_risk", created_at=now - timedelta(days=90)))
                conn.execute(insert(t.analysis_runs).values(
                    kind=KIND, as_of=now, params={}, created_at=now + timedelta(minutes=n),
                    summary={"summary": {}, "html": f"<html><body><p>{mark}-report</p></body></html>"}))


@pytest.fixture
def two(make_app, clock):
    app = make_app(shopify={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, shops=PER_SHOP,
                   recalls=RECALLS, links=LINKS, messages={"default_channel": "log"})
    auth.create_user(app.engine, EMAIL, PASSWORD, app.now())
    seed_shop(app, A, 1000, clock.now - timedelta(days=10))
    seed_shop(app, B, 2000, clock.now - timedelta(days=10))
    return Seeded(app)


def shows(text: str, shop: str) -> bool:
    return MARK[shop] in text


def same_answer(one, other) -> bool:
    """Two responses alike but for the id they name (a redirect's message, or an error page)."""
    def norm(r):
        return r.status_code, re.sub(r"\d+", "N", unquote_plus(r.headers.get("location") or r.text))
    return norm(one) == norm(other)


def audit_targets(app):
    with app.engine.connect() as conn:
        a = t.console_audit
        return conn.execute(select(a.c.target).where(a.c.target.is_not(None))).scalars().all()


# --- changes ----------------------------------------------------------------------------------------------------


#: Each change the console makes to a row: its path for a row id, its form, and where the row of it is.
CHANGES = {
    "points": ("/admin/customers/{}/points", {"points": "50", "reason": "goodwill", "key": "k1"}, t.ledger),
    "approve": ("/admin/recovery/{}", {"decision": "approve", "note": "x"}, t.recoveries),
    "decline": ("/admin/recovery/{}", {"decision": "decline", "note": "x"}, t.recoveries),
    "replay": ("/admin/events/{}/replay", {}, t.inbox),
    "retry": ("/admin/actions/{}/retry", {}, t.actions),
}


def b_target(two, change):
    return {"points": customer(two.app, B), "approve": two.case[B], "decline": two.case[B],
            "replay": two.dead[B], "retry": two.failed[B]}[change]


@pytest.mark.parametrize("change", CHANGES)
def test_an_embedded_session_cannot_change_another_shops_row_which_answers_as_if_missing(two, change):
    app = two.app
    path, form, table = CHANGES[change]
    b = Browser(app)
    hdr = as_shop(app, A)
    before, audited = rows(app, table), audit_targets(app)

    theirs = b.post(path.format(b_target(two, change)), form, headers=hdr)
    missing = b.post(path.format(NOWHERE), form, headers=hdr)
    if change == "points":
        assert theirs.status_code == 404
    else:  # the page's flash, as for an id that does not exist
        assert theirs.status_code == 303 and "error=" in theirs.headers["location"]
    assert same_answer(theirs, missing)
    assert rows(app, table) == before and audit_targets(app) == audited  # nothing changed, nothing audited


def test_the_same_changes_from_the_rows_own_shop_are_made(two):
    app = two.app
    b = Browser(app)
    own = as_shop(app, B)
    b_ann = customer(app, B)
    audited = audit_targets(app)
    for change in ("points", "decline", "replay", "retry"):
        path, form, _ = CHANGES[change]
        got = b.post(path.format(b_target(two, change)), form, headers=own)
        assert got.status_code == 303 and "error" not in got.headers["location"], (change, got.headers["location"])
    with app.engine.connect() as conn:
        assert conn.execute(select(t.ledger.c.shop, t.ledger.c.points).where(
            t.ledger.c.customer_id == b_ann, t.ledger.c.kind == "adjust")).all() == [(B, 50)]
        assert conn.execute(select(t.recoveries.c.decision).where(t.recoveries.c.id == two.case[B])).scalar() == \
            "declined"
        assert conn.execute(select(t.inbox.c.status).where(t.inbox.c.id == two.dead[B])).scalar() == "pending"
        assert conn.execute(select(t.actions.c.status).where(t.actions.c.id == two.failed[B])).scalar() == "pending"
        # A's rows were not touched by B's changes.
        assert conn.execute(select(t.inbox.c.status).where(t.inbox.c.id == two.dead[A])).scalar() == "dead"
        assert conn.execute(select(t.actions.c.status).where(t.actions.c.id == two.failed[A])).scalar() == "failed"
    assert sorted(audit_targets(app)) == sorted(audited + [f"customer:{b_ann}", f"case:{two.case[B]}",
                                                           f"inbox:{two.dead[B]}", f"action:{two.failed[B]}"])


def test_a_recall_made_in_an_embedded_session_is_that_shops_and_reaches_its_buyers_only(two):
    app = two.app
    with shop_scope.scope(B):
        theirs = create_recall(app, sku="KETTLE-K1", title=f"{MARK[B]}-recall")["id"]
    b = Browser(app)
    hdr = as_shop(app, A)
    form = {"sku": "KETTLE-K1", "severity": "safety", "title": f"{MARK[A]}-recall"}
    preview = b.post("/admin/recalls", form, headers=hdr)
    assert "2 customer(s) would be notified" in preview.text
    done = b.post("/admin/recalls", {**form, "confirm": "yes", "expected": "2"}, headers=hdr)
    assert done.status_code == 303 and "error" not in done.headers["location"]
    (mine,) = [r for r in rows(app, t.recalls) if r["id"] != theirs]
    assert mine["shop"] == A
    a_buyers = {customer(app, A, 6101), customer(app, A, 6102)}
    cases = [c for c in rows(app, t.recall_cases) if c["recall_id"] == mine["id"]]
    assert {c["customer_id"] for c in cases} == a_buyers and {c["shop"] for c in cases} == {A}
    notices = [m for m in rows(app, t.messages) if m["id"] in {c["message_id"] for c in cases}]
    assert len(notices) == 2 and {m["shop"] for m in notices} == {A}

    # The list and a recall's page: A's own only; B's recall answers like one that does not exist.
    listed = b.get("/admin/recalls", headers=hdr)
    assert shows(listed.text, A) and not shows(listed.text, B)
    assert b.get(f"/admin/recalls/{mine['id']}", headers=hdr).status_code == 200
    other, missing = b.get(f"/admin/recalls/{theirs}", headers=hdr), b.get(f"/admin/recalls/{NOWHERE}", headers=hdr)
    assert other.status_code == 404 and same_answer(other, missing)
    assert shows(b.get("/admin/recalls", headers=as_shop(app, B)).text, B)


# --- what a session sees -------------------------------------------------------------------------------------


def page_checks(app, shop, other):
    """Per page: what it must show for ``shop`` (and not for ``other``)."""
    mine, theirs = customer(app, shop), customer(app, other)
    offered = 1 if shop == A else 2  # B has two win-back assignments, A one
    scheduled = len([m for m in rows(app, t.messages, shop) if m["status"] == "scheduled"])
    assert scheduled < len([m for m in rows(app, t.messages) if m["status"] == "scheduled"])
    return {
        "/admin": ['<th scope="row">dead</th><td class="num">1</td>',
                   '<th scope="row">failed</th><td class="num">1</td>',
                   f'>scheduled</a></th><td class="num">{scheduled}</td>'],
        "/admin/recovery": ['<th scope="row">pending</th><td class="num">1</td>',
                            '<th scope="row">declined</th><td class="num">1</td>'],
        "/admin/messages": [],
        "/admin/analysis": [f'<th scope="row">offer</th><td class="num">{offered}</td>',
                            'at_risk</span><span class="b" style="width:60.0%" role="img" aria-label="1 customers">',
                            f'/admin/customers/{mine}"', f"!/admin/customers/{theirs}\""],
        "/admin/analysis/report": [],
        "/admin/analysis/at-risk.csv": [f"\n{mine},", f"!\n{theirs},"],
        "/admin/loyalty": ['<p class="stat">3</p><p class="muted">customers with ledger'],
    }


@pytest.mark.parametrize("page", ["/admin", "/admin/recovery", "/admin/messages", "/admin/analysis",
                                  "/admin/analysis/report", "/admin/analysis/at-risk.csv", "/admin/loyalty"])
def test_an_embedded_session_sees_only_its_own_shops_rows(two, page):
    app = two.app
    b = Browser(app)
    for shop, other in ((A, B), (B, A)):
        got = b.get(page, headers=as_shop(app, shop))
        assert got.status_code == 200, got.text
        if page not in ("/admin/analysis", "/admin/analysis/at-risk.csv", "/admin/loyalty"):  # rows with a mark
            assert shows(got.text, shop) and not shows(got.text, other), shop
        for want in page_checks(app, shop, other)[page]:
            if want.startswith("!"):
                assert want[1:] not in got.text, (shop, want)
            else:
                assert want in got.text, (shop, want)


def test_the_audit_page_of_an_embedded_session_shows_what_was_done_to_its_shops_rows(two):
    app = two.app
    b = Browser(app)
    a_ann, b_ann = customer(app, A), customer(app, B)
    for shop, cid in ((A, a_ann), (B, b_ann)):
        hdr = as_shop(app, shop)
        b.post(f"/admin/customers/{cid}/points", {"points": "5", "reason": f"{MARK[shop]}-reason", "key": shop},
               headers=hdr)
        b.post(f"/admin/events/{two.dead[shop]}/replay", {}, headers=hdr)
        b.get("/admin/analysis/at-risk.csv", headers=hdr)
    b.sign_in()  # a password sign-in: the install's, no shop's
    b.post(f"/admin/actions/{two.failed[B]}/retry", {"csrf": b.csrf(b.get("/admin"))})

    seen_by_a = b.get("/admin/audit", headers=as_shop(app, A)).text
    assert f"customer:{a_ann}" in seen_by_a and f"inbox:{two.dead[A]}" in seen_by_a and f"shop:{A}" in seen_by_a
    assert not shows(seen_by_a, B) and f"customer:{b_ann}" not in seen_by_a and f"shop:{B}" not in seen_by_a
    assert f"action:{two.failed[B]}" not in seen_by_a and "sign_in" not in seen_by_a
    seen_by_b = b.get("/admin/audit", headers=as_shop(app, B)).text
    assert f"customer:{b_ann}" in seen_by_b and f"action:{two.failed[B]}" in seen_by_b  # done to B's rows
    assert not shows(seen_by_b, A)
    everything = b.get("/admin/audit").text  # the password session sees every entry
    assert shows(everything, A) and shows(everything, B) and "sign_in" in everything


def test_a_password_session_sees_every_shop_with_a_shop_column(two):
    app = two.app
    b = Browser(app)
    b.sign_in()
    with shop_scope.scope(B):
        create_recall(app, sku="KETTLE-K1", title=f"{MARK[B]}-recall")
    with shop_scope.scope(A):
        create_recall(app, sku="KETTLE-K1", title=f"{MARK[A]}-recall")
    for page in ["/admin", "/admin/recovery", "/admin/messages", "/admin/analysis", "/admin/recalls"]:
        got = b.get(page).text
        assert page == "/admin/analysis" or (shows(got, A) and shows(got, B)), page
        assert "<th>Shop</th>" in got and f">{B}</td>" in got and f">{A}</td>" in got, page
    with app.engine.connect() as conn:
        scored = conn.execute(select(func.count()).select_from(t.customer_scores)).scalar()
    assert len(b.get("/admin/analysis/at-risk.csv").text.strip().splitlines()) == 1 + scored


def at_risk_csv(b, **kw) -> list[dict]:
    got = b.get("/admin/analysis/at-risk.csv", **kw)
    assert got.status_code == 200, got.text
    return list(csv.DictReader(io.StringIO(got.text)))


def test_the_at_risk_csv_names_each_rows_shop_and_still_defuses_formulas(two):
    """Both shops have a customer ann@example.com at risk: in a password session's export only the ``shop``
    column tells the two rows apart. A shop-controlled name starting with a formula character stays inert."""
    app = two.app
    b_ann = customer(app, B)
    with app.engine.begin() as conn:
        conn.execute(update(t.customers).where(t.customers.c.id == b_ann)
                     .values(first_name="=HYPERLINK(1)", last_name="@SUM(1)"))
    b = Browser(app)
    b.sign_in()
    everything = at_risk_csv(b)
    owner = {r["id"]: r["shop"] for r in rows(app, t.customers)}
    assert sorted(r["shop"] for r in everything) == [A, B]
    assert all(r["shop"] == owner[int(r["customer_id"])] for r in everything)
    assert {r["email"] for r in everything} == {"ann@example.com"}  # the email alone cannot tell them apart
    (theirs,) = [r for r in everything if r["shop"] == B]
    assert theirs["first_name"] == "'=HYPERLINK(1)" and theirs["last_name"] == "'@SUM(1)"

    # An embedded session's export has the same columns, with its own shop in every row.
    for shop in (A, B):
        mine = at_risk_csv(b, headers=as_shop(app, shop))
        assert list(mine[0]) == list(everything[0]) and [r["shop"] for r in mine] == [shop]

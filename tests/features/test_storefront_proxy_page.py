"""The storefront rewards page through the app proxy, and redeeming there, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from urllib.parse import urlencode

import falcon
import falcon.testing
import pytest
import requests
from sqlalchemy import func, select

from payloads import order
from storefront_support import PREFIX, FakeShopifyProxy, form_fields, proxy_query, serving
from retention_plugin import hookimpl
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker
from retention_plugin.web import create_app

PATH = "/proxy/rewards"
LOYALTY = {"rewards": [{"name": "ten-off", "points": 100, "amount": "10.00", "automatic": False},
                       {"name": "big", "points": 500, "percent": "20", "automatic": False},
                       {"name": "retired", "points": 50, "amount": "2.00", "automatic": False, "enabled": False}],
           "tiers": [{"name": "silver", "title": "Silver", "min_points": 100, "perks": {"free_shipping": True}},
                     {"name": "gold", "title": "Gold", "min_points": 1000}]}


@pytest.fixture
def shop(make_app, clock):
    def build(extra_plugins=(), loyalty=None, **sections):
        app = make_app(extra_plugins=extra_plugins, loyalty={**LOYALTY, **(loyalty or {})}, **sections)
        return app, falcon.testing.TestClient(create_app(app))
    return build


def earn(app, order_id=1, customer=1001, subtotal="250.00", **kw):
    deliver_shopify(app, "orders/paid", order(order_id, customer_id=customer, subtotal=subtotal, **kw))
    run_worker(app)


def get(client, clock, customer=1001, **extra):
    return client.simulate_get(PATH, query_string=proxy_query(customer, clock.now, extra=extra))


def post(client, clock, fields, customer=1001, **extra):
    return client.simulate_post(PATH, query_string=proxy_query(customer, clock.now, extra=extra),
                                body=urlencode(fields),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})


def spends(app):
    with app.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.ledger).where(t.ledger.c.kind == "spend")).scalar()


def text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_signed_in_customer_sees_their_account_inside_the_theme(shop, clock):
    app, client = shop()
    earn(app)
    got = get(client, clock)
    assert got.status == falcon.HTTP_200
    assert got.headers["content-type"] == "application/liquid"
    assert "<html" not in got.text  # a fragment: the theme is the page around it
    assert "no-store" in got.headers["cache-control"]
    body = text(got.text)
    assert re.search(r'id="rp-available">250<', got.text)
    assert "Silver" in body and "free shipping" in body and "750 more points to reach Gold" in body
    assert "10.00 USD off" in body and "20% off" in body
    assert "2.00 USD off" not in body  # a disabled reward is not offered
    forms = {re.search(r'name="reward" value="([^"]+)"', f).group(1): f
             for f in re.findall(r'<form class="rp-offer".*?</form>', got.text, re.S)}
    assert set(forms) == {"ten-off", "big"}
    assert "<button" in forms["ten-off"] and "<button" not in forms["big"]
    assert "250 more points needed" in text(forms["big"])  # "big" costs 500
    assert "Order" in body and "+250" in body  # the history
    assert "ann@example.com" not in got.text  # no personal data on the page


def test_plain_html_on_request_or_by_configuration(shop, clock):
    app, client = shop()
    got = get(client, clock, format="html")
    assert got.headers["content-type"].startswith("text/html") and got.text.startswith("<!doctype html>")
    assert "default-src 'none'" in got.headers["content-security-policy"]
    app2, client2 = shop(storefront={"format": "html"})
    assert get(client2, clock).headers["content-type"].startswith("text/html")


def test_a_visitor_not_signed_in_is_asked_to_sign_in(shop, clock):
    app, client = shop()
    earn(app)
    got = get(client, clock, customer=None)
    assert got.status == falcon.HTTP_200
    assert "Sign in to see your rewards." in got.text and "/account/login?return_url=%2Fapps%2Frewards" in got.text
    assert "rp-available" not in got.text
    assert post(client, clock, {"reward": "ten-off", "key": "1", "csrf": "x"}, customer=None).status == falcon.HTTP_403
    assert spends(app) == 0


def test_forged_stale_and_foreign_requests_get_401_revealing_nothing(shop, clock):
    app, client = shop()
    earn(app)
    good = proxy_query(1001, clock.now)
    cases = {
        "forged": proxy_query(1001, clock.now, secret="guessed"),
        "stale": proxy_query(1001, clock.now - timedelta(minutes=10)),
        "foreign shop": proxy_query(1001, clock.now, shop="someone-else.myshopify.com"),
        "other customer swapped in": good.replace("logged_in_customer_id=1001", "logged_in_customer_id=1002"),
        "unsigned": "logged_in_customer_id=1001",
    }
    answers = set()
    for name, q in cases.items():
        for method in (client.simulate_get, client.simulate_post):
            got = method(PATH, query_string=q)
            assert got.status == falcon.HTTP_401, name
            answers.add((got.text, got.headers["content-type"]))
    assert answers == {("Unauthorized", "text/plain")}  # the same bare answer whatever the reason
    assert client.simulate_get(PATH, query_string=good).status == falcon.HTTP_200


def test_the_page_in_the_customers_language(shop, clock):
    app, client = shop()
    earn(app, locale="lt")
    got = get(client, clock)
    assert 'lang="lt"' in got.text and "Jūsų apdovanojimai" in got.text and "Iškeisti" in got.text
    # The storefront's own language, passed by the theme's link, wins over the stored one.
    for loc, word in (("sl", "Unovči"), ("ru", "Обменять"), ("ka", "მიღება"), ("en", "Redeem")):
        assert word in get(client, clock, locale=loc).text
    # Not signed in: the browser's language.
    got = client.simulate_get(PATH, query_string=proxy_query(None, clock.now), headers={"Accept-Language": "ru"})
    assert "Войдите" in got.text


def test_redeeming_gives_a_code_and_the_new_balance_once(shop, clock):
    app, client = shop()
    earn(app)
    fields = form_fields(get(client, clock).text, "ten-off")
    got = post(client, clock, fields)
    assert got.status == falcon.HTTP_200
    code = re.search(r'id="rp-code">([^<]+)<', got.text).group(1)
    assert code.startswith("LOYAL") and "You now have 150 points available." in text(got.text)
    assert re.search(r'id="rp-available">150<', got.text) and code in got.text.split('id="rp-codes"')[1]
    # A retry of the same form: the same code, nothing spent twice.
    again = post(client, clock, fields)
    assert re.search(r'id="rp-code">([^<]+)<', again.text).group(1) == code
    assert spends(app) == 1 and re.search(r'id="rp-available">150<', again.text)
    with app.engine.connect() as conn:
        row = conn.execute(select(t.rewards)).mappings().one()
        cust = conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == 1001)).scalar()
    assert row["customer_id"] == cust and row["code"] == code  # bound to that customer
    # The page shown after redeeming carries a new key: redeeming again is a new redemption.
    fields2 = form_fields(got.text, "ten-off")
    assert fields2["key"] != fields["key"]
    post(client, clock, fields2)
    assert spends(app) == 2


def test_two_tabs_opened_on_one_balance_redeem_once(shop, clock):
    app, client = shop()
    earn(app, subtotal="150.00")
    tab1 = form_fields(get(client, clock).text, "ten-off")
    clock.advance(seconds=30)
    tab2 = form_fields(get(client, clock).text, "ten-off")
    c1 = re.search(r'id="rp-code">([^<]+)<', post(client, clock, tab1).text).group(1)
    c2 = re.search(r'id="rp-code">([^<]+)<', post(client, clock, tab2).text).group(1)
    assert c1 == c2 and spends(app) == 1


@pytest.mark.parametrize("case, loyalty, reward, message", [
    ("insufficient points", {}, "big", "You do not have enough points for this reward."),
    ("disabled reward", {}, "retired", "This reward is no longer offered."),
    ("paused programme", {"paused": True}, "ten-off", "The rewards programme is paused"),
    ("unknown reward", {}, "nope", "This reward cannot be redeemed."),
])
def test_a_refused_redemption_says_why_and_changes_nothing(shop, clock, case, loyalty, reward, message):
    app, client = shop(loyalty=loyalty)
    earn(app)
    # The form of a reward the page offers, sent for another one (the disabled or unaffordable one).
    fields = {**form_fields(get(client, clock).text, "ten-off"), "reward": reward}
    with app.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(t.ledger)).scalar()
        actions_before = conn.execute(select(func.count()).select_from(t.actions)).scalar()
    got = post(client, clock, fields)
    assert message in got.text, case
    assert 'id="rp-code"' not in got.text
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.ledger)).scalar() == before
        assert conn.execute(select(func.count()).select_from(t.actions)).scalar() == actions_before
        assert conn.execute(select(func.count()).select_from(t.rewards)).scalar() == 0


def test_a_forged_or_foreign_csrf_token_redeems_nothing(shop, clock):
    app, client = shop()
    earn(app)
    earn(app, order_id=2, customer=1002, email="bo@example.com")
    fields = form_fields(get(client, clock).text, "ten-off")
    # Customer 1002 replays customer 1001's form: the token is bound to 1001.
    got = post(client, clock, fields, customer=1002)
    assert got.status == falcon.HTTP_403 and "Reload it and try again" in got.text
    got = post(client, clock, {**fields, "csrf": fields["csrf"][:-1] + "0"})
    assert got.status == falcon.HTTP_403
    clock.advance(hours=3)  # the form outlived its token
    assert post(client, clock, fields).status == falcon.HTTP_403
    assert spends(app) == 0


def test_a_customer_only_ever_sees_their_own_account(shop, clock):
    app, client = shop()
    earn(app, subtotal="250.00")
    earn(app, order_id=2, customer=1002, email="bo@example.com", subtotal="777.00")
    mine = get(client, clock, customer=1001).text
    assert "777" not in mine and "bo@example.com" not in mine
    assert re.search(r'id="rp-available">777<', get(client, clock, customer=1002).text)
    # Shopify knows this customer, we have nothing of theirs: an empty account, not someone else's.
    empty = get(client, clock, customer=5555).text
    assert re.search(r'id="rp-available">0<', empty) and "No points yet." in empty


class Referral:
    """A plugin adding a section, with text that must stay text inside a liquid answer."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def storefront_sections(self, customer_id, account, locale, ctx):
        self.seen.append((customer_id, account["available"], locale))
        return [{"id": "referral", "title": "Invite {{ shop.name }}",
                 "html": "<p id='ref'>https://shop.example/r/abc</p>"}]


def test_hook_storefront_sections(shop, clock):
    plugin = Referral()
    app, client = shop(extra_plugins=[plugin])
    earn(app)
    got = get(client, clock)
    assert "<p id='ref'>https://shop.example/r/abc</p>" in got.text
    assert "{{" not in got.text and "Invite &#123;&#123; shop.name }}" in got.text  # never a Liquid tag
    with app.engine.connect() as conn:
        cid = conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == 1001)).scalar()
    assert plugin.seen == [(cid, 250, "en")]


class OtherProgramme:
    def __init__(self):
        self.redeemed = []

    @hookimpl
    def loyalty_account(self, customer_id, ctx):
        return {"available": 4242, "pending": 0, "offers": [
            {"name": "mug", "points": 10, "title": "A mug", "titles": {}, "affordable": True}], "ledger_marker": 9}

    @hookimpl
    def loyalty_redeem(self, customer_id, reward, key, ctx):
        self.redeemed.append((customer_id, reward, key))
        return {"reward": {"code": "MUG-1"}, "available": 4232}


def test_hook_loyalty_account(shop, clock):
    app, client = shop(extra_plugins=[OtherProgramme()])
    earn(app)
    got = get(client, clock)
    assert re.search(r'id="rp-available">4242<', got.text) and "A mug" in got.text


def test_hook_loyalty_redeem(shop, clock):
    plugin = OtherProgramme()
    app, client = shop(extra_plugins=[plugin])
    earn(app)
    got = post(client, clock, form_fields(get(client, clock).text, "mug"))
    assert 'id="rp-code">MUG-1<' in got.text
    assert [(r, k) for _, r, k in plugin.redeemed] == [("mug", "mug:9")]
    assert spends(app) == 0  # the built-in programme was not asked


def test_twenty_concurrent_identical_redemptions_spend_once(make_app, clock):
    app = make_app(loyalty=LOYALTY)
    earn(app)
    proxy = FakeShopifyProxy(create_app(app), PATH, clock)
    proxy.customer = 1001
    with serving(proxy) as base:
        page = requests.get(base + PREFIX + "?format=html", timeout=30)
        fields = form_fields(page.text, "ten-off")
        start = threading.Barrier(20)
        answers: list = []

        def redeem():
            start.wait()
            answers.append(requests.post(base + PREFIX + "?format=html", data=fields, timeout=60))

        threads = [threading.Thread(target=redeem) for _ in range(20)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert [a.status_code for a in answers] == [200] * 20
    codes = {re.search(r'id="rp-code">([^<]+)<', a.text).group(1) for a in answers}
    assert len(codes) == 1
    assert spends(app) == 1
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.rewards)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(t.actions).where(
            t.actions.c.kind == "discount_code_basic_create")).scalar() == 1
    assert all("150" in a.text for a in answers)


def test_punch_cards_show_how_full_they_are(shop, clock):
    app, client = shop(loyalty={"punch_cards": [{"name": "ink", "title": "Ink cartridges", "size": 3,
                                                 "match": {"skus": ["SKU-1"]}}]})
    earn(app)
    body = text(get(client, clock).text)
    assert "Punch cards" in body and "Ink cartridges" in body and "1 of 3" in body
    assert "1 iš 3" in text(get(client, clock, locale="lt").text)


# --- forms of sections: the storefront_action hook and the loyalty plugin's birthday form -------------

BIRTHDAY = {"earn": {"birthday": 200}}


def birthday_form(html):
    m = re.search(r"<form method='post' action='([^']*)' id='rp-birthday-form'>.*?</form>", html, re.S)
    assert m, "no birthday form on the page"
    return m.group(1), dict(re.findall(r"name='(csrf|action)' value='([^']*)'", m.group(0)))


def stored_birthday(app, shopify_id=1001):
    with app.engine.connect() as conn:
        cid = conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == shopify_id)).scalar()
        row = conn.execute(select(t.loyalty_birthdays.c.month, t.loyalty_birthdays.c.day)
                           .where(t.loyalty_birthdays.c.customer_id == cid)).first()
    return tuple(row) if row else None


def birthday_entries(app):
    with app.engine.connect() as conn:
        return conn.execute(select(t.ledger.c.key, t.ledger.c.points)
                            .where(t.ledger.c.key.like("loyalty:activity:birthday:%"))).all()


def test_the_birthday_section_is_shown_only_while_the_rule_gives_points(shop, clock):
    app, client = shop(loyalty=BIRTHDAY)
    earn(app)
    html = get(client, clock).text
    assert 'id="rp-section-birthday"' in html and "get 200 points on it every year" in text(html)
    url, fields = birthday_form(html)
    assert url == PREFIX and fields["action"] == "birthday" and re.fullmatch(r"[0-9]+\.[0-9a-f]{64}", fields["csrf"])
    assert "max='2026-03-02'" in html  # no date in the future to pick
    assert "Gimimo data" in get(client, clock, locale="lt").text
    app2, client2 = shop()  # [loyalty.earn] birthday = 0: nothing to offer
    earn(app2)
    assert "rp-section-birthday" not in get(client2, clock).text


def test_a_birthday_is_set_once_then_rewarded_on_the_day_by_the_hourly_task(shop, clock):
    app, client = shop(loyalty=BIRTHDAY)
    earn(app)
    _, fields = birthday_form(get(client, clock).text)
    got = post(client, clock, {**fields, "birthday": "1990-03-10"})
    assert got.status == falcon.HTTP_200
    assert "Saved. You get 200 points on your birthday." in text(got.text)
    assert stored_birthday(app) == (3, 10)
    assert "Your birthday: 10 March." in text(got.text) and "rp-birthday-form" not in got.text
    # A second try (another tab's form, a replay) changes nothing and says why.
    got = post(client, clock, {**fields, "birthday": "1985-07-01"})
    assert got.status == falcon.HTTP_400 and "already set and cannot be changed" in text(got.text)
    assert stored_birthday(app) == (3, 10)
    assert "Ваш день рождения: 10 марта." in text(get(client, clock, locale="ru").text)
    clock.now = clock.now.replace(month=3, day=9, hour=23)
    run_worker(app)
    assert birthday_entries(app) == []
    clock.advance(hours=2)  # 10 March, 01:00 UTC: the hourly loyalty.birthdays task is due
    run_worker(app)
    clock.advance(hours=5)
    run_worker(app)
    with app.engine.connect() as conn:
        cid = conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == 1001)).scalar()
    assert birthday_entries(app) == [(f"loyalty:activity:birthday:{cid}:2026", 200)]


@pytest.mark.parametrize("value, message", [
    ("1990-02-30", "Date of birth: enter a real date"),
    ("tomorrow", "Date of birth: enter a real date"),
    ("19900423", "Date of birth: enter a real date"),
    ("", "Date of birth: enter a real date"),
    ("2026-03-03", "Date of birth: the date cannot be in the future."),
    ("1899-12-31", "Date of birth: the year must be 1900 or later."),
])
def test_an_invalid_birthday_is_refused_naming_the_field(shop, clock, value, message):
    app, client = shop(loyalty=BIRTHDAY)
    earn(app)
    _, fields = birthday_form(get(client, clock).text)
    got = post(client, clock, {**fields, "birthday": value})
    assert got.status == falcon.HTTP_400 and message in text(got.text)
    assert stored_birthday(app) is None
    assert "rp-birthday-form" in got.text  # still theirs to set


def test_a_birthday_form_with_a_forged_missing_or_foreign_token_sets_nothing(shop, clock):
    app, client = shop(loyalty=BIRTHDAY)
    earn(app)
    earn(app, order_id=2, customer=1002, email="bo@example.com")
    _, fields = birthday_form(get(client, clock).text)
    for name, form, customer in [
        ("missing", {"action": "birthday", "birthday": "1990-03-10"}, 1001),
        ("forged", {**fields, "csrf": fields["csrf"][:-1] + ("0" if fields["csrf"][-1] != "0" else "1"),
                    "birthday": "1990-03-10"}, 1001),
        ("another customer's", {**fields, "birthday": "1990-03-10"}, 1002),
    ]:
        got = post(client, clock, form, customer=customer)
        assert got.status == falcon.HTTP_403 and "Reload it and try again" in got.text, name
    assert stored_birthday(app) is None and stored_birthday(app, 1002) is None


def test_an_action_no_plugin_handles_is_a_clear_400(shop, clock):
    app, client = shop(loyalty=BIRTHDAY)
    earn(app)
    _, fields = birthday_form(get(client, clock).text)
    for action in ("newsletter", "../../etc", "x" * 200):
        got = post(client, clock, {**fields, "action": action})
        assert got.status == falcon.HTTP_400, action
        assert "This form cannot be handled here." in text(got.text)
    assert spends(app) == 0 and stored_birthday(app) is None


class Newsletter:
    """A plugin with a form of its own: writes, then refuses or accepts."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def storefront_action(self, customer_id, action, form, locale, ctx):
        if action != "newsletter":
            return None
        self.seen.append((customer_id, dict(form), locale))
        ctx.conn.execute(t.loyalty_birthdays.insert().values(customer_id=customer_id, month=1, day=1,
                                                             source="newsletter", set_at=ctx.now))
        if form.get("topic") == "bad":
            return {"ok": False, "message": "Topic: {{ not liquid }}"}
        return {"ok": True, "message": "Subscribed."}


def test_hook_storefront_action(shop, clock):
    plugin = Newsletter()
    app, client = shop(extra_plugins=[plugin], loyalty=BIRTHDAY)
    earn(app)
    _, fields = birthday_form(get(client, clock).text)
    got = post(client, clock, {**fields, "action": "newsletter", "topic": "bad"}, locale="sl")
    assert got.status == falcon.HTTP_400 and "Topic: &#123;&#123; not liquid }}" in got.text
    assert stored_birthday(app) is None  # a refusal rolls back what the plugin wrote
    got = post(client, clock, {**fields, "action": "newsletter", "topic": "news"})
    assert got.status == falcon.HTTP_200 and "Subscribed." in got.text
    assert stored_birthday(app) == (1, 1)
    with app.engine.connect() as conn:
        cid = conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == 1001)).scalar()
    assert [(c, f["topic"], loc) for c, f, loc in plugin.seen] == [(cid, "bad", "sl"), (cid, "news", "en")]
    assert spends(app) == 0  # not a redemption


def test_a_form_from_a_customer_we_have_no_orders_of_is_a_clear_400(shop, clock):
    from retention_plugin.features.storefront.page import make_csrf
    from retention_plugin.testing.apps import SHOP, SHOPIFY_SECRET

    app, client = shop(loyalty=BIRTHDAY)
    assert "rp-birthday-form" not in get(client, clock, customer=1003).text  # nothing of ours to attach it to
    csrf = make_csrf(SHOPIFY_SECRET, SHOP, 1003, clock.now + timedelta(hours=1))
    got = post(client, clock, {"csrf": csrf, "action": "birthday", "birthday": "1990-03-10"}, customer=1003)
    assert got.status == falcon.HTTP_400 and "Your rewards account is not set up yet" in text(got.text)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.loyalty_birthdays)).scalar() == 0


def test_the_page_answers_while_a_writer_holds_the_database(shop, clock, monkeypatch):
    """A GET only reads (the shop's install, the customer, their account and sections): through
    ``read_only`` it answers from the last commit instead of waiting for a worker's group for the
    receivers' turn and SQLite's write lock. Here the writer never lets go, and the app may not wait."""
    from write_lock_support import writer_holding

    app, client = shop()
    earn(app)
    with writer_holding(app, monkeypatch):
        got = get(client, clock)
        assert got.status == falcon.HTTP_200, got.text[:300]
        assert re.search(r'id="rp-available">250<', got.text)
        assert get(client, clock, customer=None).status == falcon.HTTP_200

"""Pages customers open from messages, over real HTTP through gunicorn: unsubscribe, recall acknowledgment, rating.

Each page is added by its plugin (``register_routes``); every link is a ``links`` token bound to its
purpose, and links sent before that (made here by the old code, ``legacy_links``) keep working.
"""

from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import select

from conftest import base_config
from server_util import running_server, write_config
import legacy_links
from retention_plugin import links
from retention_plugin.messaging.channels import unsubscribe_token
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

UNSUB = "unsubscribe-secret-for-tests"  # legacy: verifies old unsubscribe tokens only
RECALL = "recall-signing-secret-for-tests-0123456789"  # legacy: verifies old acknowledgment tokens only
LINK = "link-secret-for-web-tests-0123456789"


def token(cid):
    return unsubscribe_token(LINK, cid, datetime.now(timezone.utc))


def signed(purpose, payload):
    return links.sign(purpose, payload, LINK, datetime.now(timezone.utc) + timedelta(days=1))


@pytest.fixture(scope="module")
def site(module_db_url, tmp_path_factory):
    d = tmp_path_factory.mktemp("links")
    cfg = base_config(module_db_url, email={"unsubscribe_secret": UNSUB,
                                            "unsubscribe_url": "https://x.example/r/unsubscribe?c={customer_id}&t={token}"},
                      recalls={"signing_secret": RECALL},
                      links={"secret": LINK, "base_url": "https://x.example"})
    engine = make_engine(module_db_url)
    with engine.begin() as conn:
        for table in reversed(t.metadata.sorted_tables):
            if table is not t.inbox:
                conn.execute(table.delete())
        now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
        cid = conn.execute(t.customers.insert().values(
            shopify_id=123456, email="u@example.com", marketing_consent="subscribed", tags=[],
            created_at=now, updated_at=now)).inserted_primary_key[0]
    with running_server(write_config(d / "retention.toml", cfg)) as base:
        yield base, engine, cid
    engine.dispose()


@pytest.mark.parametrize("scheme", ["links", "legacy"])
def test_unsubscribe_get_asks_and_post_records(site, scheme):
    base, engine, _ = site
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(t.actions.delete())
        cid = conn.execute(t.customers.insert().values(
            shopify_id=123460 if scheme == "links" else 123458, email=f"{scheme}@example.com",
            marketing_consent="subscribed", tags=[], created_at=now, updated_at=now)).inserted_primary_key[0]
    tok = token(cid) if scheme == "links" else legacy_links.unsubscribe_token(UNSUB, cid)
    url = f"{base}/r/unsubscribe?c={cid}&t={tok}"
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and "<form" in r.text
    with engine.connect() as conn:
        consent = conn.execute(select(t.customers.c.marketing_consent).where(t.customers.c.id == cid)).scalar()
    assert consent == "subscribed"
    # RFC 8058 one-click: POST with List-Unsubscribe=One-Click
    r = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert r.status_code == 200 and "no more marketing" in r.text
    with engine.connect() as conn:
        assert conn.execute(select(t.customers.c.marketing_consent).where(
            t.customers.c.id == cid)).scalar() == "unsubscribed"
        action = conn.execute(select(t.actions).where(t.actions.c.kind ==
                                                      "customer_email_marketing_consent_update")).mappings().one()
    assert action["request"]["variables"]["input"] == {
        "customerId": f"gid://shopify/Customer/{123460 if scheme == 'links' else 123458}",
        "emailMarketingConsent": {"marketingState": "UNSUBSCRIBED"}}


@pytest.mark.parametrize("query", ["", "?c=1", "?c=1&t=deadbeef", "?c=abc&t=x", "?t=" + "x" * 5000],
                         ids=["none", "no-token", "wrong-token", "bad-id", "huge"])
def test_unsubscribe_with_a_bad_token_is_400(site, query):
    base, _, _ = site
    for method in ("GET", "POST"):
        r = requests.request(method, f"{base}/r/unsubscribe{query}", timeout=10)
        assert 400 <= r.status_code < 500  # 400 from us; 414 from gunicorn for an absurd URL


@pytest.mark.parametrize("scheme", ["links", "legacy"])
def test_recall_ack_route_is_mounted_and_rejects_forgeries(site, scheme):
    base, _, cid = site
    assert requests.get(f"{base}/r/ack?t=forged", timeout=10).status_code == 400
    good = signed("recall_ack", {"r": 999, "c": cid}) if scheme == "links" else legacy_links.sign_ack(RECALL, 999, cid)
    r = requests.get(f"{base}/r/ack?t={good}", timeout=10)
    assert r.status_code == 404  # a well-signed link to a recall that does not exist
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    assert requests.put(f"{base}/r/ack?t={good}", timeout=10).status_code == 405


def test_a_token_made_for_one_page_opens_no_other(site):
    """The purpose is in the signature: a genuine token is refused by every page it was not made for."""
    base, engine, cid = site
    tokens = {"unsubscribe": token(cid), "recall_ack": signed("recall_ack", {"r": 999, "c": cid}),
              "rate": signed("rate", {"o": 1, "c": cid})}
    pages = {"unsubscribe": f"/r/unsubscribe?c={cid}&t=", "recall_ack": "/r/ack?t=", "rate": "/r/rate?a=good&t="}
    for purpose, page in pages.items():
        for other, tok in tokens.items():
            if other != purpose:
                for method in ("GET", "POST"):
                    r = requests.request(method, f"{base}{page}{tok}", timeout=10)
                    assert r.status_code == 400, (purpose, other, method, r.status_code)
    with engine.connect() as conn:
        assert conn.execute(select(t.customers.c.marketing_consent).where(
            t.customers.c.id == cid)).scalar() == "subscribed"
    # The same customer's unsubscribe token with another customer's c is refused too.
    assert requests.get(f"{base}/r/unsubscribe?c={cid + 1}&t={token(cid)}", timeout=10).status_code == 400


def test_pages_speak_the_customers_language_else_the_browsers(site):
    """Issue 13, item 9: landing pages are localised; the customer's locale first, then Accept-Language."""
    base, engine, cid = site
    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    with engine.begin() as conn:
        ka = conn.execute(t.customers.insert().values(
            shopify_id=123457, email="ka@example.com", locale="ka-GE", marketing_consent="subscribed", tags=[],
            created_at=now, updated_at=now)).inserted_primary_key[0]
    r = requests.get(f"{base}/r/unsubscribe?c={ka}&t={token(ka)}",
                     headers={"Accept-Language": "en-US,en;q=0.9"}, timeout=10)
    assert r.status_code == 200 and '<html lang="ka">' in r.text and "გამოწერის გაუქმება" in r.text
    assert "Unsubscribe" not in r.text
    r = requests.get(f"{base}/r/unsubscribe?c=1&t=forged", headers={"Accept-Language": "ru-RU,ru;q=0.9"},
                     timeout=10)
    assert r.status_code == 400 and '<html lang="ru">' in r.text and "Ссылка недействительна" in r.text
    r = requests.get(f"{base}/r/ack?t=forged", headers={"Accept-Language": "lt"}, timeout=10)
    assert r.status_code == 400 and "Nuoroda negalioja" in r.text
    r = requests.get(f"{base}/r/rate?t=forged", headers={"Accept-Language": "sl"}, timeout=10)
    assert r.status_code == 400 and '<html lang="sl">' in r.text

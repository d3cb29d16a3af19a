"""Signed links: tokens round-trip, and every way a token can be wrong is refused with a clear reason."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from retention_plugin import links
from retention_plugin.config import ConfigError

SECRET = "a-long-enough-secret-0123456789"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(days=30)


def test_round_trip():
    token = links.sign("rate", {"o": 115310627314723954, "c": 7, "x": [1, "two", None, True]}, SECRET, LATER)
    assert token.startswith("v1.") and len(token) < 250 and token.isascii()
    assert links.verify("rate", token, SECRET, NOW) == {"o": 115310627314723954, "c": 7, "x": [1, "two", None, True]}


def test_the_same_input_gives_the_same_token():
    assert links.sign("rate", {"o": 1}, SECRET, LATER) == links.sign("rate", {"o": 1}, SECRET, LATER)


def test_expiry_is_exclusive_and_says_when():
    token = links.sign("rate", {"o": 1}, SECRET, LATER)
    assert links.verify("rate", token, SECRET, LATER - timedelta(seconds=1)) == {"o": 1}
    with pytest.raises(links.LinkExpired) as e:
        links.verify("rate", token, SECRET, LATER)
    assert e.value.reason == "expired" and "2026-04-01" in str(e.value)
    assert isinstance(e.value, links.LinkError)


def _parts(token):
    return token.split(".")


def test_a_changed_payload_fails_the_signature():
    token = links.sign("rate", {"o": 1, "c": 7}, SECRET, LATER)
    v, body, mac = _parts(token)
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["d"]["o"] = 2  # someone else's order
    forged = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    with pytest.raises(links.LinkError) as e:
        links.verify("rate", f"{v}.{forged}.{mac}", SECRET, NOW)
    assert e.value.reason == "signature"


def test_a_later_expiry_cannot_be_forged():
    token = links.sign("rate", {"o": 1}, SECRET, NOW + timedelta(seconds=5))
    v, body, mac = _parts(token)
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["e"] += 10 ** 6
    forged = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    with pytest.raises(links.LinkError, match="signature"):
        links.verify("rate", f"{v}.{forged}.{mac}", SECRET, NOW)


def test_another_secret_or_purpose_is_refused():
    token = links.sign("rate", {"o": 1}, SECRET, LATER)
    with pytest.raises(links.LinkError) as e:
        links.verify("rate", token, "another-secret-0123456789", NOW)
    assert e.value.reason == "signature"
    with pytest.raises(links.LinkError) as e:
        links.verify("ack", token, SECRET, NOW)
    assert e.value.reason == "purpose" and "'rate'" in e.value.message


@pytest.mark.parametrize("token, reason", [
    (None, "missing"), ("", "missing"), ("   ", "missing"), ("garbage", "malformed"), ("v1.abc", "malformed"),
    ("v2.abc.def", "malformed"), ("v1.ab+c.def", "malformed"), ("v1..", "malformed"), ("v1.a.b.c", "malformed"),
    ("v1." + "A" * 5000 + ".AAAA", "malformed"), (12345, "malformed"), ("v1.QUJD.QUJD", "signature"),
])
def test_malformed_tokens_are_refused_with_a_reason(token, reason):
    with pytest.raises(links.LinkError) as e:
        links.verify("rate", token, SECRET, NOW)
    assert e.value.reason == reason and e.value.message
    assert SECRET not in e.value.message


def test_rotation_the_first_secret_signs_every_one_verifies():
    old = links.sign("rate", {"o": 1}, "the-old-secret-0123456789", LATER)
    new = links.sign("rate", {"o": 1}, [SECRET, "the-old-secret-0123456789"], LATER)
    assert links.verify("rate", old, [SECRET, "the-old-secret-0123456789"], NOW) == {"o": 1}
    assert links.verify("rate", new, SECRET, NOW) == {"o": 1}
    with pytest.raises(links.LinkError):
        links.verify("rate", old, [SECRET], NOW)


def test_without_a_secret_nothing_signs_or_verifies():
    with pytest.raises(links.LinkError) as e:
        links.sign("rate", {"o": 1}, None, LATER)
    assert e.value.reason == "not_configured"
    token = links.sign("rate", {"o": 1}, SECRET, LATER)
    for nothing in (None, "", []):
        with pytest.raises(links.LinkError) as e:
            links.verify("rate", token, nothing, NOW)
        assert e.value.reason == "not_configured"


@pytest.mark.parametrize("payload", [{"amount": Decimal("1.5")}, {"when": NOW}, {"x": float("nan")}, ["o", 1]])
def test_payloads_must_be_plain_json(payload):
    with pytest.raises(ValueError):
        links.sign("rate", payload, SECRET, LATER)


def test_naive_times_and_bad_purposes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        links.sign("rate", {}, SECRET, datetime(2030, 1, 1))  # noqa: DTZ001 (naive on purpose)
    token = links.sign("rate", {}, SECRET, LATER)
    with pytest.raises(ValueError, match="aware"):
        links.verify("rate", token, SECRET, datetime(2026, 1, 1))  # noqa: DTZ001 (naive on purpose)
    with pytest.raises(ValueError, match="purpose"):
        links.sign("", {}, SECRET, LATER)


# --- configuration -------------------------------------------------------------------------------


def test_config_section_make_url_and_masking(make_app, clock):
    app = make_app(links={"secret": [SECRET, "the-old-secret-0123456789"], "base_url": "https://r.example.com/"})
    url = links.make_url(app.settings, "/r/rate", "rate", {"o": 5}, clock.now + timedelta(days=1), a="good", b=None)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "r.example.com", "/r/rate")
    q = parse_qs(parts.query)
    assert q["a"] == ["good"] and "b" not in q
    assert links.verify_with_settings(app.settings, "rate", q["t"][0], clock.now) == {"o": 5}
    masked = app.settings.masked()["links"]
    assert masked["secret"] == ["********", "********"] and masked["base_url"] == "https://r.example.com/"


def test_config_defaults_and_what_is_missing(make_app):
    app = make_app()
    assert links.settings_of(app.settings) == {"secret": None, "base_url": None}
    assert links.configured(app.settings).startswith("[links] secret is not set")
    with pytest.raises(links.LinkError) as e:
        links.make_url(app.settings, "/r/x", "x", {}, LATER)
    assert e.value.reason == "not_configured"
    app2 = make_app(links={"secret": SECRET})
    assert links.configured(app2.settings).startswith("[links] base_url is not set")


@pytest.mark.parametrize("section, key", [
    ({"secret": "short"}, "secret"), ({"secret": [SECRET, "short"]}, "secret"), ({"secret": []}, "secret"),
    ({"secret": 5}, "secret"), ({"base_url": "retention.example.com"}, "base_url"), ({"url": "x"}, "url"),
])
def test_bad_config_names_the_key(make_app, section, key):
    with pytest.raises(ConfigError, match=rf"\[links\]\.{key}"):
        make_app(links=section)


# --- links sent before there was one scheme ---------------------------------------------------------


def test_legacy_tokens_made_by_the_old_code_still_verify_for_their_own_purpose_only():
    from legacy_links import sign_ack, unsubscribe_token

    old = "the-old-secret-0123456789"
    ack, unsub = sign_ack(old, 12, 345), unsubscribe_token(old, 345)
    assert links.verify_legacy("recall_ack", ack, old) == {"r": 12, "c": 345}
    assert links.verify_legacy("unsubscribe", unsub, old, customer_id="345") == {"c": 345}
    # The old unsubscribe token names its customer only through the link's c: another c, no c, no match.
    for cid in ("346", None, "", "x345"):
        assert links.verify_legacy("unsubscribe", unsub, old, customer_id=cid) is None
    # Each old scheme answers for its own purpose only; the rating link never had one.
    assert links.verify_legacy("unsubscribe", ack, old, customer_id="345") is None
    assert links.verify_legacy("recall_ack", unsub, old) is None
    assert links.verify_legacy("rate", ack, old) is None
    for wrong in ("another-old-secret-012345", "", None):
        assert links.verify_legacy("recall_ack", ack, wrong) is None
    assert links.verify_legacy("recall_ack", ack[:-1] + ("A" if ack[-1] != "A" else "B"), old) is None


def test_settings_verify_today_s_tokens_then_the_legacy_ones(make_app):
    from legacy_links import sign_ack

    old = "the-old-secret-0123456789"
    app = make_app(links={"secret": SECRET, "base_url": "https://r.example.com"})
    new = links.sign("recall_ack", {"r": 1, "c": 2}, SECRET, LATER)
    assert links.verify_with_settings(app.settings, "recall_ack", new, NOW, legacy_secret=old) == {"r": 1, "c": 2}
    assert links.verify_with_settings(app.settings, "recall_ack", sign_ack(old, 1, 2), NOW,
                                      legacy_secret=old) == {"r": 1, "c": 2}
    with pytest.raises(links.LinkError):  # without the legacy secret, an old token is just malformed
        links.verify_with_settings(app.settings, "recall_ack", sign_ack(old, 1, 2), NOW)
    # An expired or forged token of today's scheme is not retried as a legacy one.
    with pytest.raises(links.LinkExpired):
        links.verify_with_settings(app.settings, "recall_ack", new, LATER, legacy_secret=old)
    with pytest.raises(links.LinkError) as e:
        links.verify_with_settings(app.settings, "recall_ack", links.sign("recall_ack", {"r": 1}, old, LATER), NOW,
                                   legacy_secret=old)
    assert e.value.reason == "signature"


# --- the pages, while a worker's group holds the database ----------------------------------------------


def test_a_link_page_that_only_asks_answers_while_a_writer_holds_the_database(make_app, clock, monkeypatch):
    """A GET of the unsubscribe, recall acknowledgment and rating pages only reads (the token's recall, the
    customer's language): through ``read_only`` it answers from the last commit instead of waiting for a
    worker's group for the receivers' turn and SQLite's write lock. Here the writer never lets go, and
    the app may not wait for it."""
    import falcon.testing
    from sqlalchemy import insert, select

    from write_lock_support import writer_holding

    from retention_plugin.features.followups.engine import rating_links
    from retention_plugin.features.recalls.ack import ack_url
    from retention_plugin.messaging.channels import unsubscribe_token
    from retention_plugin.storage import tables as t
    from retention_plugin.web import create_app

    app = make_app(links={"secret": SECRET, "base_url": "https://r.example.com/"})
    with app.engine.begin() as conn:
        cid = conn.execute(insert(t.customers).values(
            shopify_id=123456, email="u@example.com", locale="lt", marketing_consent="subscribed", tags=[],
            created_at=clock.now, updated_at=clock.now)).inserted_primary_key[0]
        rid = conn.execute(insert(t.recalls).values(key="recall:held", sku="KETTLE-1", severity="safety",
                                                    title="Kettle lid", created_at=clock.now)).inserted_primary_key[0]
    client = falcon.testing.TestClient(create_app(app))

    def get(url):
        parts = urlsplit(url)
        return client.simulate_get(parts.path, query_string=parts.query)

    with writer_holding(app, monkeypatch):
        unsubscribe = client.simulate_get("/r/unsubscribe", params={
            "c": str(cid), "t": unsubscribe_token(SECRET, cid, clock.now)})
        ack = get(ack_url(app.settings, rid, cid, clock.now))
        rating = get(rating_links(app.settings, 7, cid, clock.now + timedelta(days=1))["rating_url"])
        for page in (unsubscribe, ack, rating):
            assert page.status_code == 200, page.text[:300]
            assert 'lang="lt"' in page.text  # the customer's language, read from their row
        assert "Kettle lid" in ack.text
    with app.engine.connect() as conn:  # asked, not done
        assert conn.execute(select(t.customers.c.marketing_consent)).scalar() == "subscribed"

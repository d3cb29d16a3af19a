"""The receiver as an attacker meets it: 300+ forged and malformed requests, then chunked deliveries.

Everything goes through the real server (`retention serve`: gunicorn with the
receiver's worker class) on SQLite and on PostgreSQL, byte for byte as a
hostile client would send it (repeated headers stay repeated). Each forged or
malformed request must get a 4xx, never a 5xx; afterwards no table holds one
row more than before, and the server's log holds no traceback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from conftest import SHOP, SHOPIFY_SECRET, ZENDESK_SECRET, base_config, shopify_sign, zendesk_sign
from server_util import http_bytes, raw_http, running_server, write_config
from legacy_links import sign_ack, unsubscribe_token  # still accepted: the old secrets are configured
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

UNSUB = "unsubscribe-secret-for-adversaries"
RECALL = "recall-signing-secret-for-adversaries-0123"
MAX_BODY = 2 * 1024 * 1024  # the default [server] max_body_bytes

ORDER = json.dumps({"id": 820982911946154508, "email": "jon@example.com", "total_price": "199.00",
                    "currency": "USD", "customer": {"id": 115310627314723954}}).encode()
REDACT = json.dumps({"shop_id": 954889, "shop_domain": SHOP, "customer": {"id": 191167},
                     "orders_to_redact": [299938, 280263]}).encode()
SHOP_REDACT = json.dumps({"shop_id": 954889, "shop_domain": SHOP}).encode()
UNINSTALLED = json.dumps({"id": 548380009, "domain": SHOP, "myshopify_domain": SHOP}).encode()
TOPIC_BODIES = [("orders/paid", ORDER), ("customers/redact", REDACT), ("shop/redact", SHOP_REDACT),
                ("app/uninstalled", UNINSTALLED), ("orders/create", ORDER)]


@pytest.fixture(scope="module")
def site(module_db_url, tmp_path_factory):
    d = tmp_path_factory.mktemp("adv-receiver")
    cfg = base_config(module_db_url,
                      email={"unsubscribe_secret": UNSUB,
                             "unsubscribe_url": "https://x.example/r/unsubscribe?c={customer_id}&t={token}"},
                      recalls={"signing_secret": RECALL},
                      links={"secret": "link-secret-for-adversaries-0123", "base_url": "https://x.example"})
    engine = make_engine(module_db_url)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        for table in reversed(t.metadata.sorted_tables):
            conn.execute(table.delete())
        cid = conn.execute(t.customers.insert().values(
            shopify_id=123456, email="u@example.com", marketing_consent="subscribed", tags=[],
            created_at=now, updated_at=now)).inserted_primary_key[0]
    with running_server(write_config(d / "retention.toml", cfg)) as base:
        yield base, engine, cid
    engine.dispose()


def row_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in t.metadata.sorted_tables}


# --- the requests ---------------------------------------------------------------------------------


def shopify_headers(body: bytes, topic: str = "orders/paid", *, secret: str = SHOPIFY_SECRET,
                    content_type: str = "application/json") -> list[tuple[str, str]]:
    return [("Content-Type", content_type), ("X-Shopify-Topic", topic), ("X-Shopify-Shop-Domain", SHOP),
            ("X-Shopify-Webhook-Id", str(uuid.uuid4())), ("X-Shopify-Api-Version", "2026-07"),
            ("X-Shopify-Hmac-Sha256", shopify_sign(body, secret))]


def replace(headers, name, value):
    """Headers with ``name`` set to ``value`` (None drops it; a list repeats it)."""
    kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
    if value is None:
        return kept
    return kept + [(name, v) for v in (value if isinstance(value, list) else [value])]


def zendesk_headers(body: bytes, ts: str | None = None, *, secret: str = ZENDESK_SECRET,
                    signature: str | None = None, invocation: str | list | None = "auto") -> list[tuple[str, str]]:
    ts = ts if ts is not None else datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    h = [("Content-Type", "application/json"), ("X-Zendesk-Webhook-Id", "01HWEBHOOK"),
         ("X-Zendesk-Webhook-Signature-Timestamp", ts),
         ("X-Zendesk-Webhook-Signature", signature if signature is not None else zendesk_sign(body, ts, secret))]
    if invocation == "auto":
        invocation = str(uuid.uuid4())
    return replace(h, "X-Zendesk-Webhook-Invocation-Id", invocation)


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def shopify_forgeries(body: bytes) -> dict[str, str | bytes]:
    good = shopify_sign(body)
    raw = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "wrong secret": shopify_sign(body, "not-the-secret"),
        "empty": "",
        "spaces": "   ",
        "not base64": "%%%not base64%%%",
        "hex digest": raw.hex(),
        "sha1": base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha1).digest()).decode(),
        "plain sha256": sha256_b64(body),
        "other body": shopify_sign(body + b" "),
        "truncated": good[:-4],
        "extra bytes": base64.b64encode(raw + b"\x00").decode(),
        "sha256= prefix": "sha256=" + good,
        "case flipped": good.swapcase(),
        "urlsafe": base64.urlsafe_b64encode(hmac.new(b"x", body, hashlib.sha256).digest()).decode(),
        "8 KiB": good * 180,
        "non-ascii": "é".encode("utf-8") * 30,
    }


def altered_bodies(body: bytes) -> dict[str, bytes]:
    data = json.loads(body)
    first_key = next(iter(data))
    return {
        "byte flipped": body[:10] + bytes([body[10] ^ 1]) + body[11:],
        "space appended": body + b" ",
        "newline appended": body + b"\n",
        "bom prepended": b"\xef\xbb\xbf" + body,
        "re-serialised": json.dumps(data, indent=1).encode(),
        "last byte cut": body[:-1],
        "key reordered": json.dumps(dict(reversed(list(data.items())))).encode(),
        "value changed": json.dumps({**data, first_key: "x"}).encode(),
        "key added": body[:-1] + b', "admin": true}',
        "emptied": b"{}",
    }


def cases(cid: int) -> list[tuple[str, bytes]]:
    """(name, request bytes): every one forged or malformed."""
    out: list[tuple[str, bytes]] = []

    def add(name, method, path, headers, body=None, **kw):
        out.append((name, http_bytes(method, path, headers, body, **kw)))

    # Shopify: forged signatures, for every topic (destructive ones included).
    for topic, body in TOPIC_BODIES:
        for name, signature in shopify_forgeries(body).items():
            add(f"shopify {topic} signature {name}", "POST", "/webhooks/shopify",
                replace(shopify_headers(body, topic), "X-Shopify-Hmac-Sha256", signature), body)
    # Shopify: bodies signed, then altered in transit.
    for topic, body in TOPIC_BODIES[:4]:
        headers = shopify_headers(body, topic)
        for name, altered in altered_bodies(body).items():
            add(f"shopify {topic} body {name}", "POST", "/webhooks/shopify",
                replace(headers, "X-Shopify-Webhook-Id", str(uuid.uuid4())), altered)
    # Shopify: a genuine signature, the headers that say what it is missing or played with.
    for name, value in [("X-Shopify-Hmac-Sha256", None), ("X-Shopify-Shop-Domain", None), ("X-Shopify-Topic", None),
                        ("X-Shopify-Webhook-Id", None), ("X-Shopify-Shop-Domain", ""), ("X-Shopify-Topic", ""),
                        ("X-Shopify-Webhook-Id", ""), ("X-Shopify-Hmac-Sha256", "")]:
        add(f"shopify header {name}={value!r}", "POST", "/webhooks/shopify",
            replace(shopify_headers(ORDER), name, value), ORDER)
    shop_games = ["other.myshopify.com", SHOP + ".", SHOP + ":443", SHOP + "/admin", SHOP + ".evil.com",
                  "retention-tеst.myshopify.com".encode("utf-8"), "evil.com", [SHOP, "other.myshopify.com"],
                  [SHOP, SHOP]]
    for topic, body in TOPIC_BODIES[:3]:
        for shop in shop_games:
            add(f"shopify {topic} shop {shop!r}", "POST", "/webhooks/shopify",
                replace(shopify_headers(body, topic), "X-Shopify-Shop-Domain", shop), body)
    for topic in [["orders/paid", "shop/redact"], ["shop/redact", "orders/paid"], "orders/paid,shop/redact",
                  "../../etc/passwd", "orders paid", "ORDERS/PAID", "orders", "/", "x" * 200, "orders/paid\tx",
                  "orders/päid".encode("utf-8"), "shop/redact;drop"]:
        add(f"shopify topic {topic!r}", "POST", "/webhooks/shopify",
            replace(shopify_headers(ORDER), "X-Shopify-Topic", topic), ORDER)
    for webhook_id in [[str(uuid.uuid4()), str(uuid.uuid4())], "a,b", "has space", "x" * 300,
                       "ïd".encode("utf-8"), "id\x01ctl"]:
        add(f"shopify webhook id {webhook_id!r}", "POST", "/webhooks/shopify",
            replace(shopify_headers(ORDER), "X-Shopify-Webhook-Id", webhook_id), ORDER)
    # Repeated signature and event-id headers (WSGI joins repeats with ",").
    add("shopify hmac twice (good first)", "POST", "/webhooks/shopify",
        replace(shopify_headers(ORDER), "X-Shopify-Hmac-Sha256", [shopify_sign(ORDER), "AAAA"]), ORDER)
    add("shopify hmac twice (same)", "POST", "/webhooks/shopify",
        replace(shopify_headers(ORDER), "X-Shopify-Hmac-Sha256", [shopify_sign(ORDER)] * 2), ORDER)
    add("shopify event id twice", "POST", "/webhooks/shopify",
        shopify_headers(ORDER) + [("X-Shopify-Event-Id", "e1"), ("X-Shopify-Event-Id", "e2")], ORDER)
    # Signed, but not a JSON object; with a JSON and with an odd content type.
    not_objects = [b"not json at all", b"[1, 2, 3]", b"42", b'"a string"', b"null", b'{"id": 1', b"\xff\xfe\x00gar",
                   b"[" * 60_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b"{}x", b"{}{}",
                   b"\xef\xbb\xbf[1]", b"\xef\xbb\xbf\xef\xbb\xbf{}"]
    for content_type in ("application/json", "text/plain"):
        for body in not_objects:
            add(f"shopify signed non-object {body[:12]!r} as {content_type}", "POST", "/webhooks/shopify",
                shopify_headers(body, content_type=content_type), body)
    # Forged, under every kind of content type.
    for content_type in ("text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
                         "application/json; charset=utf-16", "", "garbage", "application/xml", "image/png"):
        for topic, body in TOPIC_BODIES[:2]:
            add(f"shopify forged {topic} as {content_type!r}", "POST", "/webhooks/shopify",
                replace(shopify_headers(body, topic, secret="forger", content_type=content_type),
                        "Content-Type", content_type or None), body)
    # Too large: signed, by Content-Length and chunked; and Content-Length lies.
    big = json.dumps({"pad": "x" * MAX_BODY}).encode()
    add("shopify signed body over the limit", "POST", "/webhooks/shopify", shopify_headers(big), big)
    out.append(("shopify signed chunked body over the limit",
                http_bytes("POST", "/webhooks/shopify", shopify_headers(big), chunks=[big[i:i + 65536] for i in range(
                    0, len(big), 65536)])))
    out.append(("content-length far beyond the limit", http_bytes(
        "POST", "/webhooks/shopify", shopify_headers(ORDER) + [("Content-Length", "99999999999")], ORDER,
        content_length=False)))
    # Odd methods, on every route.
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "FOO"):
        for path in ("/webhooks/shopify", "/webhooks/zendesk"):
            add(f"{method} {path}", method, path, shopify_headers(ORDER), ORDER)
    for method, path in [("POST", "/healthz"), ("PUT", "/healthz"), ("DELETE", "/metrics"), ("GET", "/metrics"),
                         ("POST", "/nowhere"), ("POST", "/webhooks/shopify/extra"), ("GET", "/webhooks/../healthz"),
                         ("GET", "/" + "a" * 6000), ("PUT", "/r/unsubscribe"), ("DELETE", "/r/ack")]:
        add(f"{method} {path[:40]}", method, path, shopify_headers(ORDER), ORDER)

    # Zendesk: forged.
    event = json.dumps({"type": "zen:event-type:ticket.created", "account_id": 1, "id": str(uuid.uuid4()),
                        "time": "2026-03-02T12:00:00Z", "detail": {"id": "5158", "status": "NEW"}}).encode()
    trigger = json.dumps({"retention_event": "ticket.solved", "ticket": {"id": "5158", "status": "Solved"}}).encode()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for body in (event, trigger):
        for name, signature in {
            "wrong secret": zendesk_sign(body, now, "not-the-secret"), "empty": "", "not base64": "@@@",
            "body only": base64.b64encode(hmac.new(ZENDESK_SECRET.encode(), body, hashlib.sha256).digest()).decode(),
            "other timestamp": zendesk_sign(body, "2021-03-25T05:09:27Z"), "other body": zendesk_sign(b"{}", now),
            "hex": hmac.new(ZENDESK_SECRET.encode(), now.encode() + body, hashlib.sha256).hexdigest(),
        }.items():
            add(f"zendesk signature {name}", "POST", "/webhooks/zendesk",
                zendesk_headers(body, now, signature=signature),
                body)
        for name in ("X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp"):
            add(f"zendesk without {name}", "POST", "/webhooks/zendesk", replace(zendesk_headers(body, now), name, None),
                body)
    # Zendesk: genuinely signed over a timestamp that is no time we accept.
    when = datetime.now(timezone.utc)
    for ts in ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z",
               "2026-03-02T12:00:00", str(int(when.timestamp())), "yesterday", "2026-03-02T12:00:00+25:00",
               "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z", (when - timedelta(minutes=6)).isoformat(),
               (when + timedelta(minutes=6)).isoformat(), "x" * 1000, "NaN", "２０２６-03-02T12:00:00Z",
               "2026-13-45T25:61:61Z", "-2026-03-02T12:00:00Z", ""]:
        add(f"zendesk timestamp {ts[:30]!r}", "POST", "/webhooks/zendesk", zendesk_headers(event, ts), event)
    # Zendesk: genuine signature, a body or id that cannot be stored.
    for body in [b"not json", b"[1]", json.dumps({"type": "zen:event-type:ticket.created"}).encode(),
                 json.dumps({"type": 5, "id": "x"}).encode(), json.dumps({"id": "y" * 300}).encode(),
                 b'{"a":' * 10_000 + b"1" + b"}" * 10_000]:
        add(f"zendesk signed body {body[:20]!r}", "POST", "/webhooks/zendesk", zendesk_headers(body, invocation=None),
            body)
    for invocation in [[str(uuid.uuid4()), str(uuid.uuid4())], "a,b", "with space", "z" * 300]:
        add(f"zendesk invocation {str(invocation)[:30]!r}", "POST", "/webhooks/zendesk",
            zendesk_headers(event, invocation=invocation), event)

    # Signed links, each parameter given twice (a genuine token among them) or garbage.
    token = unsubscribe_token(UNSUB, cid)
    ack = sign_ack(RECALL, 1, cid)
    for method in ("GET", "POST"):
        for query in [f"c={cid}&c={cid + 1}&t={token}", f"c={cid}&t={token}&t=x",
                      f"c={cid}&c={cid}&t={token}&t={token}",
                      f"customer_id={cid}&customer_id=1&token={token}", "c=%ff&t=%fe", "c=1&t=" + "x" * 5000]:
            add(f"{method} /r/unsubscribe?{query[:40]}", method, f"/r/unsubscribe?{query}", [])
        for query in [f"t={ack}&t=x", f"t={ack}&t={ack}", "t=%ff", "t=" + "x" * 5000]:
            add(f"{method} /r/ack?{query[:40]}", method, f"/r/ack?{query}", [])
        for query in ["t=a&t=b", "t=a&a=1&a=2", "t=v1.x.y&t=v1.x.y", "a=%ff"]:
            add(f"{method} /r/rate?{query}", method, f"/r/rate?{query}", [])
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    add("POST /r/unsubscribe form repeats c", "POST", f"/r/unsubscribe?c={cid}&t={token}", form,
        f"c={cid}&c={cid + 1}".encode())
    add("POST /r/ack form repeats t", "POST", "/r/ack", form, f"t={ack}&t=x".encode())
    add("POST /r/rate form repeats a", "POST", "/r/rate?t=x", form, b"a=1&a=5")

    # Not HTTP as we know it.
    raw = [
        ("garbage request line", b"GARBAGE\r\n\r\n"),
        ("http/0.9", b"GET /healthz\r\n\r\n"),
        ("http/9.9", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("header without colon", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"),
        ("nul in header", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}"),
        ("obs-fold", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nX-Shopify-Topic: orders/paid\r\n shop/redact"
                     b"\r\nContent-Length: 2\r\n\r\n{}"),
        ("content-length abc", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}"),
        ("content-length negative", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}"),
        ("content-length twice", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                 b"Content-Length: 3\r\n\r\n{}x"),
        ("content-length and chunked", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        ("transfer-encoding gzip", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}"),
        ("chunk size garbage", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"zz\r\n{}\r\n0\r\n\r\n"),
        ("chunk size overflow", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n"),
        ("chunk without crlf", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"2\r\n{}XX0\r\n\r\n"),
        ("huge header line", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"),
        ("two hundred headers", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\n"
                                + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"Content-Length: 2\r\n\r\n{}"),
        ("host twice", b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: 2\r\n\r\n{}"),
    ]
    out.extend(raw)
    return out


# --- the runs -------------------------------------------------------------------------------------


def test_forged_and_malformed_requests_get_4xx_and_store_nothing(site):
    base, engine, cid = site
    requests_ = cases(cid)
    assert len(requests_) >= 300, len(requests_)
    before = row_counts(engine)
    answers = {name: raw_http(base, data)[0] for name, data in requests_}
    server_errors = {name: status for name, status in answers.items() if status is not None and status >= 500}
    assert not server_errors, server_errors
    unanswered = [name for name, status in answers.items() if status is None]
    # Only bytes that are no HTTP request may be closed without an answer.
    assert set(unanswered) <= {"h2 preface", "http/0.9", "garbage request line"}, unanswered
    # OPTIONS is answered with what the route allows (200 and an Allow header); it changes nothing.
    not_refused = {name: status for name, status in answers.items() if status is not None
                   and not 400 <= status < 500 and not (name.startswith("OPTIONS") and status == 200)}
    assert not not_refused, not_refused
    assert row_counts(engine) == before
    with engine.connect() as conn:
        assert conn.execute(select(t.customers.c.marketing_consent).where(t.customers.c.id == cid)).scalar() \
            == "subscribed"
    log = base.log_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


def test_the_refusals_say_why(site):
    """Spot checks that each defence, not an accident, refused its case."""
    base, _, _ = site
    expect = {
        "shopify orders/paid signature wrong secret": (401, "bad_signature"),
        "shopify shop/redact body key added": (401, "bad_signature"),
        "shopify topic ['orders/paid', 'shop/redact']": (400, "bad_header"),
        "shopify webhook id 'a,b'": (400, "bad_header"),
        "zendesk timestamp '0001-01-01T00:00:00+14:00'": (401, "bad_timestamp"),
        "zendesk invocation 'a,b'": (400, "bad_header"),
        "shopify signed body over the limit": (413, "too_large"),
        "shopify signed chunked body over the limit": (413, "too_large"),
    }
    for name, data in cases(1):
        if name in expect:
            status, body = raw_http(base, data)
            assert (status, json.loads(body)["error"]) == expect.pop(name), name
    assert not expect


def chunked(body: bytes, sizes: list[int]) -> list[bytes]:
    pieces, i = [], 0
    for size in sizes:
        pieces.append(body[i:i + size])
        i += size
    return pieces + ([body[i:]] if i < len(body) else [])


@pytest.mark.parametrize("name, sizes", [("one chunk", [10**9]), ("ten chunks", [len(ORDER) // 10] * 10),
                                         ("one-byte chunks", [1] * 300)])
def test_signed_chunked_delivery_is_accepted(site, name, sizes):
    base, engine, _ = site
    headers = shopify_headers(ORDER)
    webhook_id = dict(headers)["X-Shopify-Webhook-Id"]
    status, body = raw_http(base, http_bytes("POST", "/webhooks/shopify", headers, chunks=chunked(ORDER, sizes)))
    assert status == 200, body
    with engine.connect() as conn:
        row = conn.execute(select(t.inbox).where(t.inbox.c.delivery_id == webhook_id)).mappings().one()
    assert bytes(row["body"]) == ORDER  # the de-chunked bytes, as signed
    assert row["topic"] == "orders/paid"


def test_chunked_with_extensions_and_trailers_and_a_zendesk_chunked_delivery(site):
    base, engine, _ = site
    headers = shopify_headers(ORDER)
    webhook_id = dict(headers)["X-Shopify-Webhook-Id"]
    request = http_bytes("POST", "/webhooks/shopify", headers, chunks=[])  # framing written by hand below
    request = request[:-len(b"0\r\n\r\n")] + b"%x;name=value\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n" % (len(ORDER), ORDER)
    assert raw_http(base, request)[0] == 200
    event = json.dumps({"type": "zen:event-type:ticket.created", "id": str(uuid.uuid4()),
                        "detail": {"id": "77"}}).encode()
    zheaders = zendesk_headers(event)
    assert raw_http(base, http_bytes("POST", "/webhooks/zendesk", zheaders, chunks=chunked(event, [7, 7])))[0] == 200
    with engine.connect() as conn:
        assert bytes(conn.execute(select(t.inbox.c.body).where(t.inbox.c.delivery_id == webhook_id)).scalar()) == ORDER
        invocation = dict(zheaders)["X-Zendesk-Webhook-Invocation-Id"]
        assert bytes(conn.execute(select(t.inbox.c.body).where(t.inbox.c.delivery_id == invocation)).scalar()) == event


def test_chunked_forged_or_over_the_limit_stores_nothing(site):
    base, engine, _ = site
    before = row_counts(engine)
    forged = shopify_headers(ORDER, secret="forger")
    assert raw_http(base, http_bytes("POST", "/webhooks/shopify", forged, chunks=chunked(ORDER, [5])))[0] == 401
    big = json.dumps({"pad": "y" * MAX_BODY}).encode()
    for sizes in ([len(big)], [4096] * (len(big) // 4096 + 1)):
        status, body = raw_http(base, http_bytes("POST", "/webhooks/shopify", shopify_headers(big),
                                                 chunks=chunked(big, sizes)))
        assert status == 413, body
    # exactly at the limit is fine
    edge = json.dumps({"pad": "z" * (MAX_BODY - 11)}).encode()
    assert len(edge) == MAX_BODY
    assert raw_http(base, http_bytes("POST", "/webhooks/shopify", shopify_headers(edge),
                                     chunks=chunked(edge, [65536] * 40)))[0] == 200
    after = row_counts(engine)
    assert after["inbox"] == before["inbox"] + 1 and {k: v for k, v in after.items() if k != "inbox"} == \
        {k: v for k, v in before.items() if k != "inbox"}

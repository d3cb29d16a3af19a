"""The receiver over real HTTP, through gunicorn, against SQLite and PostgreSQL."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import func, select

from conftest import SHOP, base_config, dumps, shopify_headers, shopify_sign, zendesk_headers
from server_util import running_server, write_config
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

ORDER = {"id": 820982911946154508, "email": "jon@example.com", "total_price": "10.00", "currency": "USD"}


@pytest.fixture(scope="module")
def server(module_db_url, tmp_path_factory):
    d = tmp_path_factory.mktemp("server")
    cfg = base_config(module_db_url, server={"max_body_bytes": 64 * 1024})
    path = write_config(d / "retention.toml", cfg)
    engine = make_engine(module_db_url)
    with running_server(path) as base:
        yield base, engine
    engine.dispose()


def stored(engine, delivery_id):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.inbox).where(
            t.inbox.c.delivery_id == delivery_id)).scalar()


def post_shopify(base, body: bytes, headers: dict):
    return requests.post(base + "/webhooks/shopify", data=body, headers=headers, timeout=10)


def test_signed_shopify_delivery_is_stored_once(server):
    base, engine = server
    body = dumps(ORDER)
    wid = str(uuid.uuid4())
    r = post_shopify(base, body, shopify_headers(body, "orders/paid", wid))
    assert r.status_code == 200 and r.json()["duplicate"] is False
    r = post_shopify(base, body, shopify_headers(body, "orders/paid", wid))
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert stored(engine, wid) == 1
    with engine.connect() as conn:
        row = conn.execute(select(t.inbox).where(t.inbox.c.delivery_id == wid)).mappings().one()
    assert bytes(row["body"]) == body  # the raw bytes, as signed
    assert row["topic"] == "orders/paid" and row["status"] == "pending" and row["shop"] == SHOP


def test_lower_case_unprefixed_shopify_headers_are_accepted(server):
    base, engine = server
    body = dumps(ORDER)
    wid = str(uuid.uuid4())
    h = {k.lower().replace("x-shopify-", "shopify-"): v for k, v in shopify_headers(body, "orders/create", wid).items()}
    assert "shopify-hmac-sha256" in h
    r = post_shopify(base, body, h)
    assert r.status_code == 200, r.text
    assert stored(engine, wid) == 1


def test_rotated_secret_verifies(make_app, tmp_path):
    # Covered end to end in test_verify; here: the config takes several secrets.
    app = make_app(shopify={"webhook_secrets": ["old", "new"]})
    assert app.settings.section("shopify")["webhook_secrets"] == ["old", "new"]


@pytest.mark.parametrize("mutate, status, reason", [
    (lambda b, h: (b, {**h, "X-Shopify-Hmac-Sha256": shopify_sign(b, "wrong-secret")}), 401, "bad_signature"),
    (lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Shopify-Hmac-Sha256"}), 401, "missing_signature"),
    (lambda b, h: (b, {**h, "X-Shopify-Shop-Domain": "other.myshopify.com"}), 401, "unknown_shop"),
    (lambda b, h: (b, {**h, "X-Shopify-Hmac-Sha256": "%%%not base64%%%"}), 401, "bad_signature"),
    (lambda b, h: (json.dumps(json.loads(b), indent=1).encode(), h), 401, "bad_signature"),  # re-serialised body
    (lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Shopify-Topic"}), 400, "missing_header"),
    (lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Shopify-Webhook-Id"}), 400, "missing_header"),
    (lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Shopify-Shop-Domain"}), 400, "missing_header"),
])
def test_shopify_rejections(server, mutate, status, reason):
    base, engine = server
    body = dumps(ORDER)
    wid = str(uuid.uuid4())
    body, headers = mutate(body, shopify_headers(body, "orders/paid", wid))
    r = post_shopify(base, body, headers)
    assert r.status_code == status
    assert r.json()["error"] == reason
    assert stored(engine, wid) == 0


def test_signed_garbage_is_400_not_stored(server):
    base, engine = server
    deep_array = b"[" * 60_000  # the standard parser gives up with RecursionError, not ValueError
    deep_object = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    for body in (b"not json at all", b"[1, 2, 3]", b"\xff\xfe\x00garbage", deep_array, deep_object):
        wid = str(uuid.uuid4())
        r = post_shopify(base, body, shopify_headers(body, "orders/paid", wid))
        assert r.status_code == 400, body[:40]
        assert r.json()["error"] == "bad_json"
        assert stored(engine, wid) == 0


def test_json_the_worker_reads_is_never_refused(server):
    # The receiver's fast parser is stricter than the worker's in corners; a signed
    # delivery it cannot read must still be stored, not refused (Shopify would retry
    # and in the end drop the subscription).
    base, engine = server
    for body in (b'{"id": 1, "note": "\\ud83d broken emoji"}', b'{"id": 2, "ratio": NaN}',
                 json.dumps({"id": 3, "note": "caf\u00e9"}).encode("utf-16")):
        json.loads(body)  # the standard library takes each of these
        wid = str(uuid.uuid4())
        r = post_shopify(base, body, shopify_headers(body, "orders/paid", wid))
        assert r.status_code == 200, (body, r.text)
        assert stored(engine, wid) == 1


def test_body_over_limit_is_413(server):
    base, engine = server
    body = json.dumps({"pad": "x" * (70 * 1024)}).encode()
    wid = str(uuid.uuid4())
    r = post_shopify(base, body, shopify_headers(body, "orders/paid", wid))
    assert r.status_code == 413
    assert stored(engine, wid) == 0


def test_malformed_requests_never_yield_5xx(server):
    base, _ = server
    body = dumps(ORDER)
    good = shopify_headers(body, "orders/paid")
    attempts = [
        ("POST", "/webhooks/shopify", b"", {}),
        ("POST", "/webhooks/shopify", b"", good),
        ("GET", "/webhooks/shopify", None, {}),
        ("PUT", "/webhooks/zendesk", body, {}),
        ("DELETE", "/healthz", None, {}),
        ("POST", "/nowhere", body, good),
        ("POST", "/webhooks/zendesk", body, {"X-Zendesk-Webhook-Signature": "x",
                                             "X-Zendesk-Webhook-Signature-Timestamp": "yesterday"}),
        ("POST", "/webhooks/zendesk", b"{}", {"X-Zendesk-Webhook-Signature": "\x00\x01",
                                              "X-Zendesk-Webhook-Signature-Timestamp": "9999-99-99T99:99:99Z"}),
        ("POST", "/webhooks/shopify", body, {**good, "X-Shopify-Hmac-Sha256": "é" * 300}),
        ("POST", "/webhooks/shopify", b"x" * (200 * 1024), good),
    ]
    for method, path, data, headers in attempts:
        safe = {k: (v.encode("utf-8") if isinstance(v, str) and not v.isascii() else v) for k, v in headers.items()}
        r = requests.request(method, base + path, data=data, headers=safe, timeout=10)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        assert r.status_code >= 400, (method, path, r.status_code)


def test_content_type_is_not_what_authenticates(server):
    # The signature covers the bytes; a sender's odd Content-Type is no reason to drop a delivery.
    base, engine = server
    body = dumps(ORDER)
    wid = str(uuid.uuid4())
    h = {**shopify_headers(body, "orders/paid", wid), "Content-Type": "text/plain; charset=bogus"}
    assert post_shopify(base, body, h).status_code == 200
    assert stored(engine, wid) == 1


def test_bad_content_length_never_yields_5xx(server):
    import socket
    from urllib.parse import urlparse

    u = urlparse(server[0])
    for raw in (b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}",
                b"GARBAGE\r\n\r\n"):
        with socket.create_connection((u.hostname, u.port), timeout=10) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            head = s.recv(64)
        assert head.startswith(b"HTTP/1.1 4") or head.startswith(b"HTTP/1.0 4"), head


def zendesk_event(event_id=None):
    return {"type": "zen:event-type:ticket.created", "account_id": 1, "id": event_id or str(uuid.uuid4()),
            "time": "2026-03-02T12:00:00Z", "zendesk_event_version": "2022-11-06",
            "subject": "zen:ticket:5158", "detail": {"id": "5158", "status": "NEW", "subject": "Broken"}}


def post_zendesk(base, body, headers):
    return requests.post(base + "/webhooks/zendesk", data=body, headers=headers, timeout=10)


def test_zendesk_event_is_stored_and_deduplicated_on_invocation_id(server):
    base, engine = server
    body = dumps(zendesk_event())
    inv = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    assert post_zendesk(base, body, zendesk_headers(body, now, inv)).status_code == 200
    r = post_zendesk(base, body, zendesk_headers(body, now, inv))
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert stored(engine, inv) == 1


def test_zendesk_dedupes_on_body_id_without_invocation_header(server):
    base, engine = server
    payload = zendesk_event()
    body = dumps(payload)
    now = datetime.now(timezone.utc)
    assert post_zendesk(base, body, zendesk_headers(body, now)).json()["duplicate"] is False
    assert post_zendesk(base, body, zendesk_headers(body, now)).json()["duplicate"] is True
    assert stored(engine, payload["id"]) == 1


def test_zendesk_shipped_trigger_body_is_accepted(server):
    base, engine = server
    body = dumps({"retention_event": "ticket.solved", "ticket": {"id": "5158", "status": "Solved"}})
    inv = str(uuid.uuid4())
    r = post_zendesk(base, body, zendesk_headers(body, datetime.now(timezone.utc), inv))
    assert r.status_code == 200
    with engine.connect() as conn:
        assert conn.execute(select(t.inbox.c.topic).where(t.inbox.c.delivery_id == inv)).scalar() == "ticket.solved"


@pytest.mark.parametrize("shift, reason", [(timedelta(minutes=-6), "stale_timestamp"),
                                           (timedelta(minutes=6), "stale_timestamp")])
def test_zendesk_timestamp_outside_skew_is_401(server, shift, reason):
    base, engine = server
    body = dumps(zendesk_event())
    inv = str(uuid.uuid4())
    r = post_zendesk(base, body, zendesk_headers(body, datetime.now(timezone.utc) + shift, inv))
    assert r.status_code == 401 and r.json()["error"] == reason
    assert stored(engine, inv) == 0


def test_zendesk_bad_signature_is_401(server):
    base, engine = server
    body = dumps(zendesk_event())
    inv = str(uuid.uuid4())
    h = zendesk_headers(body, datetime.now(timezone.utc), inv, secret="not-the-secret")
    r = post_zendesk(base, body, h)
    assert r.status_code == 401 and r.json()["error"] == "bad_signature"
    assert stored(engine, inv) == 0


def test_healthz_and_metrics(server):
    base, _ = server
    assert requests.get(base + "/healthz", timeout=5).json() == {"ok": True, "database": "reachable"}
    body = dumps(ORDER)
    post_shopify(base, body, {**shopify_headers(body, "orders/paid"), "X-Shopify-Hmac-Sha256": "AAAA"})
    wid = str(uuid.uuid4())
    post_shopify(base, body, shopify_headers(body, "orders/paid", wid))
    post_shopify(base, body, shopify_headers(body, "orders/paid", wid))
    assert requests.get(base + "/metrics", timeout=5).status_code == 404  # never on the webhook port
    text = requests.get(base.metrics + "/metrics", timeout=5).text

    def value(prefix):
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(prefix) and not line.startswith("#"))

    assert value('retention_webhooks_received_total{platform="shopify"}') >= 2
    assert value('retention_webhooks_duplicate_total{platform="shopify"}') >= 1
    assert value('retention_webhooks_rejected_total{platform="shopify",reason="bad_signature"}') >= 1
    assert value('retention_inbox_depth{status="pending"}') >= 1
    assert "retention_processing_lag_seconds" in text

"""Shopify webhook and OAuth HMAC verification against published vectors and hostile input."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from retention_plugin.platforms.shopify import verify_oauth_query, verify_webhook

from .helpers import shared_json


def _vectors(kind: str) -> list[dict]:
    return shared_json("fixtures", "signature_vectors.json")[kind]


def _sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# --- every vector in ../shared/fixtures/signature_vectors.json ---------------------------


def test_shared_webhook_vectors():
    vectors = _vectors("shopify_webhook")
    assert vectors, "the shared file lists Shopify webhook vectors"
    for v in vectors:
        body = v["body"].encode("utf-8")
        if "expected_base64" in v:
            assert verify_webhook(body, v["expected_base64"], [v["secret"]]), v["id"]
        if "must_not_verify_against" in v:
            assert not verify_webhook(body, v["must_not_verify_against"], [v["secret"]]), v["id"]


def test_shared_oauth_vectors():
    for v in _vectors("shopify_oauth_query"):
        params = dict(v["params"], hmac=v["expected_hex"])
        assert verify_oauth_query(params, v["secret"]), v["id"]
        # the signed message the vector documents is exactly what we sign
        expected = hmac.new(v["secret"].encode(), v["signed_message"].encode(), hashlib.sha256).hexdigest()
        assert expected == v["expected_hex"]


# --- vectors from elsewhere in the ecosystem, not in the shared file ---------------------

# github:sqlpage/SQLPage@95f228f3833e2c7a01b7c61d707e0928d8ac3096
# tests/sql_test_files/data/hmac_shopify_webhook.sql ("Test Shopify webhook HMAC
# validation with base64 output"): sqlpage.hmac(body, 'test-webhook-secret', 'sha256-base64').
SQLPAGE_BODY = b'{"id":1234567890,"email":"customer@example.com","total_price":"123.45"}'
SQLPAGE_SECRET = "test-webhook-secret"
SQLPAGE_HMAC = "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw="


def test_sqlpage_webhook_vector():
    assert verify_webhook(SQLPAGE_BODY, SQLPAGE_HMAC, [SQLPAGE_SECRET])
    assert not verify_webhook(SQLPAGE_BODY + b" ", SQLPAGE_HMAC, [SQLPAGE_SECRET])


# Shopify's OAuth docs example ("Verify a request": secret "hush", the redirect
# with a state parameter), quoted verbatim by many client test suites, e.g. the
# Go package shopigo's TestValidateHMAC and several Rust/C# OAuth tests.
SHOPIFY_DOCS_OAUTH = {
    "code": "0907a61c0c8d55e99db179b68161bc00",
    "hmac": "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf",
    "shop": "some-shop.myshopify.com",
    "state": "0.6784241404160823",
    "timestamp": "1337178173",
}


def test_shopify_docs_oauth_vector_with_state():
    assert verify_oauth_query(SHOPIFY_DOCS_OAUTH, "hush")
    assert not verify_oauth_query(SHOPIFY_DOCS_OAUTH, "hush2")
    tampered = dict(SHOPIFY_DOCS_OAUTH, shop="evil-shop.myshopify.com")
    assert not verify_oauth_query(tampered, "hush")


def test_oauth_ignores_signature_param_and_accepts_upper_case_hex():
    params = dict(SHOPIFY_DOCS_OAUTH, signature="legacy-ignored")
    assert verify_oauth_query(params, "hush")
    params["hmac"] = params["hmac"].upper()
    assert verify_oauth_query(params, "hush")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"shop": "a.myshopify.com"},
        {"shop": "a.myshopify.com", "hmac": ""},
        {"shop": "a.myshopify.com", "hmac": None},
        {"shop": "a.myshopify.com", "hmac": "zz" * 32},
        {"shop": "a.myshopify.com", "hmac": "é" * 64},
        None,
    ],
)
def test_oauth_garbage_is_false(params):
    assert verify_oauth_query(params, "hush") is False


def test_oauth_without_secret_is_false():
    assert verify_oauth_query(SHOPIFY_DOCS_OAUTH, "") is False


# --- behaviour --------------------------------------------------------------------------


def test_reserialized_body_does_not_verify():
    raw = b'{\n  "id": 820982911946154508,\n  "total_price": "404.95"\n}'
    header = _sign(raw, "s3cret")
    assert verify_webhook(raw, header, ["s3cret"])
    import json

    reserialized = json.dumps(json.loads(raw)).encode()
    assert reserialized != raw
    assert not verify_webhook(reserialized, header, ["s3cret"])


def test_rotated_secrets_either_verifies():
    body = b'{"id": 1}'
    old, new = "old-secret", "new-secret"
    assert verify_webhook(body, _sign(body, new), [old, new])  # second secret verifies
    assert verify_webhook(body, _sign(body, old), [old, new])
    assert not verify_webhook(body, _sign(body, "other"), [old, new])


def test_lone_secret_string_and_empty_entries():
    body = b"{}"
    assert verify_webhook(body, _sign(body, "solo"), "solo")
    assert verify_webhook(body, _sign(body, "solo"), ["", None, "solo"])


def test_header_whitespace_is_tolerated():
    # Ruby's Base64.encode64 appends a newline; proxies may add spaces.
    body = b"{}"
    assert verify_webhook(body, _sign(body, "k") + "\n", ["k"])


def test_body_types():
    body = b"{}"
    header = _sign(body, "k")
    assert verify_webhook(bytearray(body), header, ["k"])
    assert verify_webhook(memoryview(body), header, ["k"])
    assert verify_webhook("{}", header, ["k"]) is False  # text is not the raw body


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "not base64 !!",
        "%%%%",
        base64.b64encode(b"short").decode(),  # valid base64, wrong length
        base64.b64encode(b"x" * 32).decode(),  # right length, wrong digest
        "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g",  # missing padding
        b"B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",  # bytes, not str
        12345,
        "sha256=B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",
    ],
)
def test_garbage_headers_are_false(header):
    assert verify_webhook(b'{"foo": "bar"}', header, ["test_secret_key"]) is False


@pytest.mark.parametrize("secrets", [[], None, [""], [None]])
def test_no_usable_secret_is_false(secrets):
    body = b"{}"
    assert verify_webhook(body, _sign(body, "k"), secrets) is False


@pytest.mark.parametrize("secrets", [5, [{"not": "a secret"}], ["\ud800"], object()])
def test_odd_secret_values_never_raise(secrets):
    body = b"{}"
    assert verify_webhook(body, _sign(body, "k"), secrets) is False


def test_bytes_secret_and_non_ascii_header():
    body = b"{}"
    assert verify_webhook(body, _sign(body, "k"), [b"k"])
    assert verify_webhook(body, "é" * 44, ["k"]) is False
    assert verify_oauth_query(SHOPIFY_DOCS_OAUTH, b"hush")
    assert verify_oauth_query(SHOPIFY_DOCS_OAUTH, None) is False

"""Shopify's OAuth / install query HMAC, rule by rule.

The rules, as Shopify states them (OAuth "HMAC validation": "The characters &
and % are replaced with %26 and %25 respectively in keys and values.
Additionally the = character is replaced with %3D in keys"; pairs sorted and
joined with &; hmac left out) and as its own Python library implements them
(``shopify.Session.calculate_hmac``: ``ids[]=1&ids[]=2`` signed as
``ids=["1", "2"]``). Each expected message below is written out by hand from
those rules, not computed by the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from urllib.parse import urlencode

import pytest

from retention_plugin.platforms.shopify.verify import oauth_query_message, verify_oauth_query

from .helpers import shared_json


def sign(message: str, secret: str = "hush") -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed(params: dict, message: str, secret: str = "hush") -> dict:
    return {**params, "hmac": sign(message, secret)}


def test_every_shared_oauth_vector():
    vectors = shared_json("fixtures", "signature_vectors.json")["shopify_oauth_query"]
    assert vectors
    for v in vectors:
        assert oauth_query_message(v["params"]) == v["signed_message"], v["id"]
        assert verify_oauth_query({**v["params"], "hmac": v["expected_hex"]}, v["secret"]), v["id"]
        assert not verify_oauth_query({**v["params"], "hmac": v["expected_hex"]}, v["secret"] + "x"), v["id"]


def test_shopify_python_library_vector_for_ampersand_and_equals():
    # shopify_python_api test/session_test.py test_hmac_calculation_with_ampersand_and_equal_sign_characters
    params = {"a": "1&b=2", "c=3&d": "4"}
    assert oauth_query_message(params) == "a=1%26b=2&c%3D3%26d=4"
    assert verify_oauth_query(signed(params, "a=1%26b=2&c%3D3%26d=4", "secret"), "secret")


@pytest.mark.parametrize("params, message", [
    # hmac and signature are not signed
    ({"shop": "s.myshopify.com", "signature": "old", "timestamp": "1"}, "shop=s.myshopify.com&timestamp=1"),
    # % is escaped first, so an escape already in a value stays distinguishable
    ({"note": "100%"}, "note=100%25"),
    ({"note": "%26"}, "note=%2526"),
    ({"k%y": "v"}, "k%25y=v"),
    # = is escaped in keys only
    ({"a": "b=c"}, "a=b=c"),
    ({"a=b": "c"}, "a%3Db=c"),
    # nothing else is encoded: not spaces, slashes, colons, plus signs or non-ASCII
    ({"protocol": "https://", "q": "a b+c", "name": "Šilutė"}, "name=Šilutė&protocol=https://&q=a b+c"),
    # arrays: one pair, the name without [], a JSON list of strings with ", " between them
    ({"ids[]": ["1", "2"], "shop": "s"}, 'ids=["1", "2"]&shop=s'),
    ({"ids[]": ["7"]}, 'ids=["7"]'),
    ({"ids[]": ["a&b", "50%"]}, 'ids=["a%26b", "50%25"]'),
    # pairs are sorted as whole "key=value" strings
    ({"b": "1", "a_b": "2", "a": "3"}, "a=3&a_b=2&b=1"),
    # blank values are parameters too
    ({"embedded": "", "shop": "s"}, "embedded=&shop=s"),
])
def test_documented_rules(params, message):
    assert oauth_query_message(params) == message
    assert verify_oauth_query(signed(params, message), "hush")


def test_a_raw_query_string_is_read_as_shopify_sent_it():
    message = 'ids=["1", "2"]&locale=en&shop=s.myshopify.com&timestamp=1552479578'
    query = "ids%5B%5D=1&ids%5B%5D=2&locale=en&shop=s.myshopify.com&timestamp=1552479578&hmac=" + sign(message)
    assert oauth_query_message(query) == message
    assert verify_oauth_query(query, "hush")
    assert verify_oauth_query("?" + query, "hush")
    # the order of the values is part of what was signed
    assert not verify_oauth_query(query.replace("ids%5B%5D=1&ids%5B%5D=2", "ids%5B%5D=2&ids%5B%5D=1"), "hush")


# --- different parameter sets never share a signature --------------------------------------------


@pytest.mark.parametrize("genuine, forged", [
    ({"a": "1&b=2"}, {"a": "1", "b": "2"}),          # a value swallowing a pair
    ({"a=b": "c"}, {"a": "b=c"}),                    # the key/value boundary moved
    ({"shop": "s", "x": "1"}, {"shop": "s&x=1"}),
    ({"n": "%26"}, {"n": "&"}),                      # an escape and what it stands for
])
def test_sets_that_shared_a_signature_before_no_longer_do(genuine, forged):
    token = sign(oauth_query_message(genuine))
    assert verify_oauth_query({**genuine, "hmac": token}, "hush")
    assert not verify_oauth_query({**forged, "hmac": token}, "hush")


def test_ambiguous_queries_are_refused():
    array = {"ids[]": ["1", "2"]}
    token = sign(oauth_query_message(array))
    assert verify_oauth_query({**array, "hmac": token}, "hush")
    # the same message spelled as a plain value
    assert oauth_query_message({"ids": '["1", "2"]'}) is None
    assert not verify_oauth_query({"ids": '["1", "2"]', "hmac": token}, "hush")
    # a name both with and without [], and a plain key given twice
    assert oauth_query_message({"ids[]": ["1"], "ids": "x"}) is None
    assert oauth_query_message("shop=a&shop=b") is None
    # hmac twice
    message = oauth_query_message({"shop": "s"})
    assert not verify_oauth_query(f"shop=s&hmac={sign(message)}&hmac={sign(message)}", "hush")


def _decode(message: str) -> dict:
    """The inverse of the documented escaping: message -> {name: value}."""
    out = {}
    for pair in message.split("&") if message else []:
        key, _, value = pair.partition("=")
        unescape = lambda t: t.replace("%3D", "=").replace("%26", "&").replace("%25", "%")  # noqa: E731
        out[unescape(key)] = unescape(value)
    return out


def test_messages_spell_exactly_one_parameter_set():
    """Random parameter sets over the characters that matter: every accepted set maps to its own message."""
    rng = random.Random(12)
    alphabet = "ab=&%[]\", 1"
    seen: dict[str, tuple] = {}
    for _ in range(5000):
        params = {}
        for _ in range(rng.randint(0, 3)):
            key = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
            if rng.random() < 0.3:
                params[key + "[]"] = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
                                      for _ in range(rng.randint(1, 2))]
            else:
                params[key] = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
        message = oauth_query_message(params)
        if message is None:
            continue
        # As a query string would carry it: each key with its values ("a": "x" is "a": ["x"]).
        canonical = tuple(sorted((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in params.items()
                                 if k not in ("hmac", "signature")))
        assert seen.setdefault(message, canonical) == canonical, (message, seen[message], canonical)
        # and the message reads back as the signed names and values
        decoded = _decode(message)
        assert set(decoded) == {k[:-2] if k.endswith("[]") else k for k, _ in canonical}
    assert len(seen) > 1000


def test_tampering_with_any_parameter_fails():
    params = {"code": "0907a61c0c8d55e99db179b68161bc00", "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZGVtbw",
              "shop": "some-shop.myshopify.com", "state": "n0nce", "timestamp": "1337178173"}
    good = signed(params, oauth_query_message(params))
    assert verify_oauth_query(good, "hush")
    assert verify_oauth_query(urlencode(good), "hush")
    for key in params:
        assert not verify_oauth_query({**good, key: params[key] + "x"}, "hush"), key
    assert not verify_oauth_query({**good, "extra": "1"}, "hush")
    assert not verify_oauth_query({k: v for k, v in good.items() if k != "state"}, "hush")


def test_rotated_secrets_and_odd_input_never_raise():
    params = {"shop": "s.myshopify.com", "timestamp": "1"}
    good = signed(params, oauth_query_message(params), "new")
    assert verify_oauth_query(good, ["old", "new"])
    assert not verify_oauth_query(good, ["old"])
    for odd in (None, 5, [("shop", None)], {"shop": 1, "hmac": "0" * 64}, {"hmac": ["a", "b"]}, "%zz=%%&hmac=x"):
        assert verify_oauth_query(odd, "new") is False

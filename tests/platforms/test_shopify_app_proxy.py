"""The app proxy's signed query: Shopify's documented vectors, an independent signer, and what is refused."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest

from retention_plugin.platforms.shopify.app_proxy import ProxyRejected, proxy_message, sign_proxy, verify_proxy

# Shopify's "Authenticate app proxies" example (secret "hush"); both digests are the ones it prints.
DOC_QUERY = ("extra=1&extra=2&shop=shop-name.myshopify.com&logged_in_customer_id=1"
             "&path_prefix=%2Fapps%2Fawesome_reviews&timestamp=1317327555")
DOC_SIGNATURE = "4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb"
DOC_ANONYMOUS_SIGNATURE = "e072b6d7e6622d85912a5214b860d3100dc1e73d9bc29f43796ac8c9ff8093cb"

SHOP = "retention-test.myshopify.com"
SECRET = "shpss_test_secret"
PREFIX = "/apps/rewards"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
EXTRA = {"format": lambda v: v in ("liquid", "html")}


def shopify_signs(pairs: dict, secret: str = SECRET) -> str:
    """The documented rule written out again, apart from the code under test."""
    text = "".join(sorted(f"{k}={','.join(v if isinstance(v, list) else [v])}" for k, v in pairs.items()))
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def query(customer="42", *, shop=SHOP, prefix=PREFIX, when=NOW, secret=SECRET, **extra) -> str:
    params = {"shop": shop, "logged_in_customer_id": customer, "path_prefix": prefix,
              "timestamp": str(int(when.timestamp())), **extra}
    return urlencode({**params, "signature": shopify_signs(params, secret)})


def verify(q, **kw):
    return verify_proxy(q, [SECRET], shop=SHOP, path_prefix=PREFIX, now=kw.pop("now", NOW), extra=EXTRA, **kw)


def test_the_documented_examples_sign_as_shopify_says():
    assert proxy_message(DOC_QUERY) == ("extra=1,2logged_in_customer_id=1path_prefix=/apps/awesome_reviews"
                                        "shop=shop-name.myshopify.comtimestamp=1317327555")
    assert sign_proxy(DOC_QUERY, "hush") == DOC_SIGNATURE
    assert sign_proxy(DOC_QUERY + "&signature=" + DOC_SIGNATURE, "hush") == DOC_SIGNATURE  # signature left out
    anonymous = DOC_QUERY.replace("logged_in_customer_id=1", "logged_in_customer_id=")
    assert sign_proxy(anonymous, "hush") == DOC_ANONYMOUS_SIGNATURE


def test_a_signed_request_is_read():
    got = verify(query("42", format="html"))
    assert (got.shop, got.customer_id, got.path_prefix, dict(got.extra)) == (SHOP, 42, PREFIX, {"format": "html"})
    assert got.timestamp == NOW
    assert verify(query("")).customer_id is None  # a visitor who is not signed in


def test_a_rotated_secret_still_verifies():
    got = verify_proxy(query("7", secret="old"), ["new", "old"], shop=SHOP, path_prefix=PREFIX, now=NOW)
    assert got.customer_id == 7


@pytest.mark.parametrize("case, q", [
    ("wrong secret", query(secret="not-the-secret")),
    ("another shop, its own valid signature", query(shop="other-shop.myshopify.com")),
    ("another proxy path", query(prefix="/apps/other")),
    ("stale", query(when=NOW - timedelta(minutes=6))),
    ("from the future", query(when=NOW + timedelta(minutes=6))),
    ("customer changed after signing", query("42").replace("logged_in_customer_id=42", "logged_in_customer_id=43")),
    ("no signature", query().split("&signature=")[0]),
    ("signature not hex", query().split("&signature=")[0] + "&signature=zz"),
    ("unknown parameter", query(utm_source="mail")),
    ("bad format value", query(format="json")),
    ("empty", ""),
])
def test_refused(case, q):
    with pytest.raises(ProxyRejected):
        verify(q)


def test_a_parameter_repeated_is_refused_even_when_correctly_signed():
    # extra=1&extra=2 signs as "extra=1,2", the same text as one value "1,2": never trusted.
    params = {"shop": SHOP, "logged_in_customer_id": "1", "path_prefix": PREFIX,
              "timestamp": str(int(NOW.timestamp())), "format": ["html", "html"]}
    q = urlencode({**params, "signature": shopify_signs(params)}, doseq=True)
    with pytest.raises(ProxyRejected, match="repeated"):
        verify(q)


def test_a_signed_query_cut_again_differently_is_refused():
    """No separator: {a: "xlogged_in_customer_id=999mkey="} signs the same text as a query naming customer 999.

    A visitor who is not signed in could ask Shopify to sign the first and replay the second; both are
    refused because only the page's own keys, each strictly shaped, are accepted.
    """
    genuine = {"a": "xlogged_in_customer_id=999mkey=", "logged_in_customer_id": "", "path_prefix": PREFIX,
               "shop": SHOP, "timestamp": str(int(NOW.timestamp()))}
    recut = {"a": "x", "logged_in_customer_id": "999", "mkey": "logged_in_customer_id=", "path_prefix": PREFIX,
             "shop": SHOP, "timestamp": str(int(NOW.timestamp()))}
    assert proxy_message(genuine) == proxy_message(recut)  # the ambiguity is real
    signature = shopify_signs(genuine)
    for params in (genuine, recut):
        with pytest.raises(ProxyRejected, match="unexpected parameter"):
            verify(urlencode({**params, "signature": signature}))
    # The same cut through the page's own keys: format's value would have to swallow the next key.
    genuine = {"format": "htmllogged_in_customer_id=999", "logged_in_customer_id": "", "path_prefix": PREFIX,
               "shop": SHOP, "timestamp": str(int(NOW.timestamp()))}
    with pytest.raises(ProxyRejected, match="format"):
        verify(urlencode({**genuine, "signature": shopify_signs(genuine)}))

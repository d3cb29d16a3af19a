"""Client-credentials tokens against a real local HTTP stub of the shop (issue 15, item 1).

The stub (tests/shopify_token_stub.py) is reached through ``[shopify]
admin_base_url``: real sockets, real form bodies, real 401s. Two worker
processes that need a token at once make one token request between them,
and neither writes a secret to its output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from conftest import SHOP
from retention_plugin.app import Retention
from retention_plugin.platforms.errors import PermanentError
from retention_plugin.platforms.shopify.oauth import TokenRefused
from retention_plugin.shop_tokens import KEY_ENV
from retention_plugin.storage import tables as t
from server_util import write_config
from shopify_token_stub import ShopifyTokenStub, lock_waiters

CLIENT_ID = "5b0c3e2f9a8d4c1b7e6f5a4d3c2b1a0f"
CLIENT_SECRET = "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"


def settings(db_url: str, stub: ShopifyTokenStub, secret: str = CLIENT_SECRET) -> dict:
    return {"database": {"url": db_url},
            "shopify": {"shop": SHOP, "client_id": CLIENT_ID, "client_secret": secret, "admin_base_url": stub.url,
                        "api_version": "2026-07"},
            "actions": {"dry_run": False}}


@pytest.fixture
def stub():
    s = ShopifyTokenStub(CLIENT_ID, CLIENT_SECRET)
    yield s
    s.close()


@pytest.fixture
def make(db_url, clock, token_key):
    made = []

    def build(stub, **kw):
        app = Retention.from_dict(settings(db_url, stub, **kw), entry_points=False, clock=clock)
        made.append(app)
        return app

    yield build
    for app in made:
        app.dispose()


def test_first_token_then_the_stored_one(make, stub):
    app = make(stub)
    assert app.shopify_client().graphql("{ shop { name } }") == {"shop": {"name": "Stub Shop"}}
    make(stub).shopify_client().graphql("{ shop { name } }")  # a second process: reads the database
    assert stub.token_requests == [{"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                    "client_secret": CLIENT_SECRET}]
    assert stub.graphql_tokens == ["shpat_stub_0001", "shpat_stub_0001"]


def test_renewed_before_expiry(make, stub, clock):
    stub.expires_in = 3600
    client = make(stub).shopify_client()
    client.graphql("{ shop { name } }")
    clock.advance(seconds=3600 - 301)
    client.graphql("{ shop { name } }")
    clock.advance(seconds=2)
    client.graphql("{ shop { name } }")
    assert stub.graphql_tokens == ["shpat_stub_0001", "shpat_stub_0001", "shpat_stub_0002"]
    assert len(stub.token_requests) == 2


def test_renewed_once_on_a_401(make, stub):
    client = make(stub).shopify_client()
    client.graphql("{ shop { name } }")
    stub.revoked.add("shpat_stub_0001")  # e.g. the client secret was rotated in the Dev Dashboard
    assert client.graphql("{ shop { name } }") == {"shop": {"name": "Stub Shop"}}
    assert stub.graphql_tokens == ["shpat_stub_0001", "shpat_stub_0001", "shpat_stub_0002"]
    stub.revoked.add("shpat_stub_0002")
    stub.client_secret = "rotated"  # and now the configured secret is refused as well
    with pytest.raises(TokenRefused) as e:
        client.graphql("{ shop { name } }")
    assert e.value.error == "invalid_client" and CLIENT_SECRET not in str(e.value)


def test_a_wrong_secret_is_refused_and_nothing_is_stored(make, stub):
    app = make(stub, secret="shpss_wrong")
    with pytest.raises(PermanentError):
        app.shopify_client().graphql("{ shop { name } }")
    with app.engine.connect() as conn:
        assert conn.execute(select(t.shop_tokens.c.access_token)).scalars().all() in ([], [None])


WORKER = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from retention_plugin.app import Retention
app = Retention.from_config(sys.argv[1], entry_points=False)
client = app.shopify_client()
print("ready", flush=True)
sys.stdin.readline()
print("asking", flush=True)
print(json.dumps(client.graphql("{ shop { name } }")), flush=True)
"""


def test_two_worker_processes_make_one_token_request(db_url, tmp_path, token_key):
    stub = ShopifyTokenStub(CLIENT_ID, CLIENT_SECRET, hold_first=True)
    path = write_config(tmp_path / "retention.toml", settings(db_url, stub))
    env = {**os.environ, KEY_ENV: token_key}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    try:
        for w in workers:
            assert w.stdout.readline().strip() == "ready", w.stderr.read()
        a, b = workers
        a.stdin.write("go\n")
        a.stdin.flush()
        assert stub.first_arrived.wait(60)  # A holds the shop's lock, its token request on the wire
        b.stdin.write("go\n")
        b.stdin.flush()
        assert b.stdout.readline().strip() == "asking"
        if "postgresql" in db_url:
            deadline = time.monotonic() + 60
            while not lock_waiters(db_url) and len(stub.token_requests) == 1:
                assert time.monotonic() < deadline, "worker B neither waited for the lock nor asked"
                time.sleep(0.01)  # readiness poll of B's database session, not a timing assumption
        stub.release.set()
        outputs = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        stub.close()
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
        assert json.loads(out.splitlines()[-1]) == {"shop": {"name": "Stub Shop"}}
        for secret in (CLIENT_SECRET, "shpat_stub_0001", token_key):
            assert secret not in out and secret not in err
    assert "new access token" in outputs[0][1] + outputs[1][1]
    assert len(stub.token_requests) == 1
    assert stub.graphql_tokens == ["shpat_stub_0001", "shpat_stub_0001"]

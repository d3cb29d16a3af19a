"""`retention events show` prints whatever body was stored, as the operator's terminal receives it."""

import json
import os
import subprocess
import sys

from conftest import base_config
from server_util import write_config
from retention_plugin.inbox import store_delivery

# Each was accepted by the receiver (its JSON check follows the standard library, which takes
# all of them), so each can be in the inbox when an operator looks.
BODIES = {
    "lone surrogate": b'{"id": 1, "note": "\\ud83d broken emoji"}',
    "NaN": b'{"id": 2, "ratio": NaN}',
    "utf-16": json.dumps({"id": 3, "note": "caf\u00e9"}).encode("utf-16"),
    "not json": b"\xff\xfe\x00garbage",
}


def show(config, row_id, **env):
    # A real process: the terminal's encoding is what broke, not click's test runner.
    return subprocess.run([sys.executable, "-m", "retention_plugin", "--config", str(config), "events", "show",
                           str(row_id)], capture_output=True, env={**os.environ, **env}, timeout=60)


def test_events_show_prints_every_stored_body(app, tmp_path, db_url):
    config = write_config(tmp_path / "retention.toml", base_config(db_url))
    for name, body in BODIES.items():
        row_id = store_delivery(app.engine, platform="shopify", shop="retention-test.myshopify.com",
                                delivery_id=f"odd-{name}", topic="orders/paid", body=body, now=app.now())
        r = show(config, row_id, PYTHONIOENCODING="utf-8")
        assert r.returncode == 0, (name, r.stderr.decode(errors="replace")[-600:])
        shown = json.loads(r.stdout)  # still one JSON document
        assert shown["id"] == row_id and shown["delivery_id"] == f"odd-{name}"
        if name == "lone surrogate":
            assert shown["body"]["note"] == "\ud83d broken emoji"  # the escape survives, exactly
        elif name == "not json":
            assert isinstance(shown["body"], str) and "garbage" in shown["body"]
        else:
            assert shown["body"]["id"] == json.loads(body)["id"]


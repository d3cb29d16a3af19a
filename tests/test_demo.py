"""`retention demo`, the README's first command: the whole product, end to end, in one process tree."""

import subprocess
import sys


def test_demo_runs_the_product_end_to_end_without_credentials(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no RETENTION_* and no credentials
    r = subprocess.run([sys.executable, "-m", "retention_plugin", "demo"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    # Webhooks were received, verified, processed; each feature left its mark; nothing left the machine.
    assert "loyalty points:" in out and "'gold'" in out
    assert "reward (loyalty): amount 5.00 EUR code LOYAL-" in out
    assert "would call zendesk: ticket_comment" in out and "would call shopify: discount_code_basic_create" in out
    assert "message thank_you" in out and "sent" in out and "suppressed (no marketing consent" in out
    assert "service recovery after bad_rating: offered" in out
    assert list(tmp_path.iterdir()) == [] or all(p.name.startswith(".") for p in tmp_path.iterdir())

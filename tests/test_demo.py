"""`retention demo`, the README's first command: the whole product, end to end, in one process tree."""

import re
import subprocess
import sys


def test_demo_runs_the_product_end_to_end_without_credentials(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no RETENTION_* and no credentials
    r = subprocess.run([sys.executable, "-m", "retention_plugin", "demo"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    # Webhooks were received, verified, processed; each feature left its mark; nothing left the machine.
    assert re.search(r"^ann@example\.com +430 +gold$", out, re.M)
    assert re.search(r"^loyalty +5\.00 EUR off +LOYAL-", out, re.M)
    assert re.search(r"^zendesk +ticket comment +\d+$", out, re.M)
    assert re.search(r"^shopify +discount code basic create +\d+$", out, re.M)
    assert re.search(r"^thank you +ben@example\.com +sl +suppressed +the customer unsubscribed", out, re.M)
    assert "no marketing consent" in out
    assert re.search(r"^bad rating +offered +10\.00", out, re.M)
    # Read by a person: headed tables, no Python reprs or internal idempotency keys, and what to do next.
    for header in ("customer  ", "feature  ", "message  ", "platform  ", "reminder  ", "after  "):
        assert re.search(rf"^{header}", out, re.M), header
    assert "{'" not in out and "Decimal(" not in out and "key loyalty:" not in out and "dry_run  key" not in out
    nxt = out.split("\nNext\n", 1)[1]
    assert "http://127.0.0.1:8000/admin" in nxt and "retention config check" in nxt and "create-user" in nxt
    assert list(tmp_path.iterdir()) == [] or all(p.name.startswith(".") for p in tmp_path.iterdir())

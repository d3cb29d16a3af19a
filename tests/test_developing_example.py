"""The plugin test in docs/developing.md runs as a plugin author runs it: pytest in a project of its own.

No conftest.py of ours is involved: the fixtures come from retention_plugin's pytest11 entry point, so
these tests also prove the entry point is installed and the fixtures work on both databases.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def example_code() -> str:
    doc = (ROOT / "docs" / "developing.md").read_text()
    section = doc.split("## Testing a plugin", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the 'Testing a plugin' section should hold exactly one python example"
    return blocks[0]


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
                          cwd=directory, capture_output=True, text=True, timeout=300)


def test_the_documented_plugin_test_passes_on_both_databases(tmp_path):
    (tmp_path / "test_big_spender.py").write_text(example_code())
    res = run_pytest(tmp_path, "--retention-db=sqlite,postgresql")
    out = res.stdout + res.stderr
    tests = ("test_a_big_order_tags_the_customer_once", "test_the_thank_you_waits_for_its_delay")
    for name in tests:
        assert f"{name}[sqlite] PASSED" in out, out
        pg = re.search(rf"{name}\[postgresql\] (\w+)", out)
        assert pg, out
        allowed = {"PASSED"} if os.environ.get("CI", "").lower() == "true" else {"PASSED", "SKIPPED"}
        assert pg.group(1) in allowed, out
    assert res.returncode == 0, out


def test_sqlite_is_the_default_and_an_unknown_database_is_a_usage_error(tmp_path):
    (tmp_path / "test_one.py").write_text(
        "def test_db(retention_db_url, retention_app):\n"
        "    assert retention_db_url.startswith('sqlite:///') and retention_app.settings.database_url\n")
    res = run_pytest(tmp_path)
    assert "test_db[sqlite] PASSED" in res.stdout and "postgresql" not in res.stdout, res.stdout + res.stderr
    assert res.returncode == 0

    res = run_pytest(tmp_path, "--retention-db=mysql")
    assert res.returncode == 4  # pytest's usage error
    assert "--retention-db / retention_databases: expected sqlite or postgresql, got mysql" in res.stderr

"""The plugins in docs/developing.md run as their authors run them: pytest in a project of their own.

No conftest.py of ours is involved: the fixtures come from retention_plugin's pytest11 entry point, so
these tests also prove the entry point is installed and the fixtures work on both databases. The
package example ("A plugin as a package": a page, a table, a merge and an erasure step) is built into
a wheel, installed into a directory of its own, and tested from there, found through its entry point.
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


def run_pytest(directory: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
                          cwd=directory, capture_output=True, text=True, timeout=300, env=env)


def assert_passed_on_both_databases(out: str, tests) -> None:
    for name in tests:
        assert f"{name}[sqlite] PASSED" in out, out
        pg = re.search(rf"{re.escape(name)}\[postgresql\] (\w+)", out)
        assert pg, out
        allowed = {"PASSED"} if os.environ.get("CI", "").lower() == "true" else {"PASSED", "SKIPPED"}
        assert pg.group(1) in allowed, out


def package_files() -> dict[str, str]:
    doc = (ROOT / "docs" / "developing.md").read_text()
    section = doc.split("## A plugin as a package", 1)[1].split("\n## ", 1)[0]
    files = dict(re.findall(r"```\w+ file=(\S+)\n(.*?)```", section, re.S))
    assert set(files) == {"pyproject.toml", "partner_notes.py", "test_partner_notes.py"}, set(files)
    return files


def test_the_documented_plugin_test_passes_on_both_databases(tmp_path):
    (tmp_path / "test_big_spender.py").write_text(example_code())
    res = run_pytest(tmp_path, "--retention-db=sqlite,postgresql")
    out = res.stdout + res.stderr
    assert_passed_on_both_databases(out, ("test_a_big_order_tags_the_customer_once",
                                          "test_the_thank_you_waits_for_its_delay"))
    assert res.returncode == 0, out


def pip(*args: str, cwd: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_documented_package_works_installed_from_its_wheel(tmp_path):
    """Page, table, merge and erasure of an installed third-party package, on both databases."""
    files = package_files()
    source, wheels, site, tests = (tmp_path / d for d in ("source", "wheels", "site", "tests"))
    for d in (source, tests):
        d.mkdir()
    for name in ("pyproject.toml", "partner_notes.py"):
        (source / name).write_text(files[name])
    # No build isolation: the build backend comes from the test extra, nothing is downloaded.
    pip("wheel", "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", str(wheels), str(source), cwd=tmp_path)
    [wheel] = wheels.glob("*.whl")
    assert wheel.name.startswith("retention_partner_notes-0.1.0-"), wheel.name
    pip("install", "--no-deps", "--no-index", "--quiet", "--target", str(site), str(wheel), cwd=tmp_path)
    assert (site / "partner_notes.py").is_file()
    # The test runs where the source is not: partner_notes can only come from the installed wheel.
    (tests / "test_partner_notes.py").write_text(files["test_partner_notes.py"])
    (tests / "conftest.py").write_text(
        "import partner_notes\n\n"
        f"assert partner_notes.__file__.startswith({str(site)!r}), partner_notes.__file__\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    res = run_pytest(tests, "--retention-db=sqlite,postgresql", env=env)
    out = res.stdout + res.stderr
    assert_passed_on_both_databases(out, ("test_the_page_stores_a_note_and_refuses_other_links",
                                          "test_notes_follow_a_merge",
                                          "test_erasure_and_the_shops_deletion_take_the_notes"))
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

"""The first hour, tried as a new user would (issue 16): each item has a test here."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from server_util import wait_ready, write_config

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


# --- a fresh clone without ../shared -----------------------------------------------------------------


def _shared_users() -> list[str]:
    """Test files that read ../shared (directly, or through the helpers that skip without it)."""
    pattern = re.compile(r"shared_path|shared_file|shared_json|fixture_payload|\bSHARED\b|cdnow_")
    return sorted(str(p.relative_to(ROOT)) for p in TESTS.rglob("test_*.py")
                  if p.name != Path(__file__).name and pattern.search(p.read_text()))


def test_only_shared_dir_knows_where_shared_is():
    # One place computes the path, so RETENTION_SHARED_DIR moves it for every test; a file that builds
    # "../shared" itself would read it unguarded and crash in a fresh clone (test_loyalty did).
    mine = ("shared_dir.py", "test_first_hour.py")
    offenders = [str(p.relative_to(ROOT)) for p in TESTS.rglob("*.py")
                 if p.name not in mine and re.search(r"""["']shared["']""", p.read_text())]
    assert offenders == []


def test_a_sample_payload_test_skips_with_a_reason_without_shared(tmp_path):
    env = dict(os.environ, RETENTION_SHARED_DIR=str(tmp_path))  # an empty folder: no fixtures at all
    test = "tests/features/test_loyalty.py::test_shopifys_own_sample_payloads_earn_and_reverse"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b\d+ skipped", run.stdout) and "passed" not in run.stdout, run.stdout
    assert "orders_paid.json is absent" in run.stdout and "RETENTION_SHARED_DIR" in run.stdout


@pytest.mark.slow
def test_fresh_clone_without_shared_passes_the_shared_tests(tmp_path, request):
    """A clone of HEAD with no ../shared beside it: every test that uses ../shared passes or skips."""
    expr = request.config.getoption("-m") or ""
    if not (("slow" in expr and "not" not in expr) or os.environ.get("RETENTION_SLOW_TESTS") == "1"):
        pytest.skip("slow (minutes): select it with -m slow or RETENTION_SLOW_TESTS=1")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "retention-plugin"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(clone)], check=True, timeout=300)
    assert not (tmp_path / "shared").exists()
    # Never this file, nor any slow test, in the clone: each would start another clone and run.
    env = {k: v for k, v in os.environ.items() if k not in ("RETENTION_SHARED_DIR", "RETENTION_SLOW_TESTS")}
    # The installed package is this checkout's; the clone's tests run against its own sources.
    env["PYTHONPATH"] = str(clone / "src")
    files = [f for f in _shared_users() if (clone / f).exists()]
    assert files and not any(f.endswith("test_first_hour.py") for f in files)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *files],
                         cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert "skipped" in run.stdout


# --- the server-readiness helper -------------------------------------------------------------------------


def _flaky_server(replies: list[bytes | None]):
    """A listener that answers its n-th connection with replies[n]: bytes, or None to hang up at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    seen: list[int] = []

    def serve():
        for reply in replies:
            conn, _ = sock.accept()
            with conn:
                conn.recv(65536)
                seen.append(1)
                if reply is not None:
                    conn.sendall(reply)
        sock.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}/healthz", seen


def test_readiness_treats_every_request_error_as_not_yet():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    url, seen = _flaky_server([
        None,                                   # reset: the listener is up, the worker is not
        b"garbage that is not HTTP\r\n\r\n",    # a broken response
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ok,
    ])
    wait_ready(url, timeout=30, request_timeout=5)
    assert len(seen) == 4


def test_readiness_gives_up_on_a_dead_server():
    with pytest.raises(RuntimeError, match="exited"):
        wait_ready("http://127.0.0.1:9/healthz", alive=lambda: False, died=lambda: "server exited: boom")


# --- database mistakes: one line with the fix -----------------------------------------------------------


def _cli(tmp_path, url, *args, extra=None):
    from click.testing import CliRunner

    from retention_plugin.cli import cli, register_plugin_commands

    register_plugin_commands([])  # the features' commands (loyalty, recall, ...) come from their plugins
    cfg = {"database": {"url": url}, **(extra or {})}
    path = write_config(tmp_path / "retention.toml", cfg)
    return CliRunner().invoke(cli, ["--config", str(path), *args])


def _one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_missing_sqlite_folder_names_it_and_the_fix(tmp_path):
    for args in (("events", "list"), ("db", "upgrade")):
        line = _one_line_error(_cli(tmp_path, "sqlite:///no/such/folder/retention.db", *args))
        assert str(tmp_path / "no" / "such" / "folder") in line and "mkdir -p" in line


def test_missing_postgresql_database_says_create_it(tmp_path, retention_pg_url):
    from sqlalchemy import make_url

    url = make_url(retention_pg_url).set(database="retention_first_hour_absent")
    line = _one_line_error(_cli(tmp_path, url.render_as_string(hide_password=False), "db", "upgrade"))
    assert "'retention_first_hour_absent' does not exist" in line and "createdb" in line


def test_unreachable_postgresql_host_is_one_line(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        line = _one_line_error(_cli(tmp_path, f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=3",
                                    "events", "list"))
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in line and "[database] url" in line


def test_unsupported_scheme_is_a_config_error(tmp_path):
    from retention_plugin.storage.db import make_engine

    result = _cli(tmp_path, "mysql://u@h/db", "events", "list")
    assert result.exit_code == 2
    assert "[database].url: unsupported scheme 'mysql'" in result.output and "postgresql://" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(ValueError, match="unsupported scheme 'mysql'"):
        make_engine("mysql://u@h/db")


def test_missing_psycopg_names_the_extra(tmp_path, monkeypatch):
    # An install without the [postgres] extra has no psycopg: importing it fails just like this.
    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    line = _one_line_error(_cli(tmp_path, "postgresql://postgres@127.0.0.1:5432/test", "events", "list"))
    assert "psycopg" in line and "pip install 'retention-plugin[postgres]'" in line


READING_COMMANDS = [
    ("events", "list"), ("events", "show", "1"), ("events", "replay", "--status", "dead"), ("actions", "list"),
    ("actions", "retry", "--status", "failed"), ("customers", "show", "a@example.com"),
    ("loyalty", "show", "a@example.com"), ("messages", "list"), ("recall", "list"), ("recovery", "report"),
    ("recovery", "pending"), ("privacy", "shop-redact"), ("privacy", "export", "a@example.com"),
    ("worker", "--burst"),
]


@pytest.mark.parametrize("args", READING_COMMANDS, ids=lambda a: " ".join(a))
def test_commands_on_an_empty_database_say_run_db_upgrade(tmp_path, args):
    line = _one_line_error(_cli(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}", *args))
    assert "schema is empty" in line and "run `retention db upgrade`" in line


def test_an_old_schema_says_run_db_upgrade(db_url, tmp_path):
    from alembic import command
    from alembic.script import ScriptDirectory

    from retention_plugin.storage.db import alembic_config, head_revision, make_engine, upgrade

    previous = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision()).down_revision
    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:  # one migration behind: every table but the newest one's is there
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, previous)
    try:
        for args in (("events", "list"), ("privacy", "shop-redact")):
            line = _one_line_error(_cli(tmp_path, db_url, *args))
            assert f"at revision {previous}, this version needs {head_revision()}" in line
            assert "run `retention db upgrade`" in line
    finally:
        upgrade(engine)  # the PostgreSQL database is the session's: the next test needs it at head
        engine.dispose()


# --- config check ----------------------------------------------------------------------------------------

EXAMPLE = ROOT / "config" / "retention.example.toml"


def test_config_check_rejects_a_quoted_boolean(tmp_path):
    assert _cli(tmp_path, "sqlite:///x.db", "config", "check", extra={"actions": {"dry_run": True}}).exit_code == 0
    for value in ("false", "true", 0, "no"):  # marshmallow alone reads each of these as a boolean
        result = _cli(tmp_path, "sqlite:///x.db", "config", "check", extra={"actions": {"dry_run": value}})
        assert result.exit_code == 2, result.output
        assert f"[actions].dry_run: expected true or false (a TOML boolean, without quotes), got {value!r}" \
            in result.output


def test_a_quoted_boolean_in_a_plugin_section_and_a_nested_table_is_named(tmp_path):
    from retention_plugin.config import ConfigError, from_dict
    from retention_plugin.testing import base_config

    from retention_plugin.app import Retention

    raw = base_config(f"sqlite:///{tmp_path / 'x.db'}")
    raw["recalls"] = {"zendesk_tickets": "false", "confirm_ack": "yes"}
    with pytest.raises(ConfigError) as e:
        Retention(from_dict(raw))
    keys = {k for k, _ in e.value.problems}
    assert {"[recalls].zendesk_tickets", "[recalls].confirm_ack"} <= keys


def test_config_check_names_an_unknown_channel(tmp_path):
    result = _cli(tmp_path, "sqlite:///x.db", "config", "check", extra={"messages": {"default_channel": "emial"}})
    assert result.exit_code == 1
    assert "[messages].default_channel: unknown channel 'emial' (known: email, log, shopify, zendesk)" in result.output
    assert _cli(tmp_path, "sqlite:///x.db", "config", "check", extra={"messages": {"default_channel": "log"}}
                ).exit_code == 0


def test_config_check_names_unknown_message_kinds(tmp_path):
    extra = {"contact_policy": {"safety_kinds": ["recal"], "courtesy_kinds": ["thank_you"]},
             "reminders": {"rules": [{"name": "ink", "skus": ["INK"], "interval_days": 30, "kind": "remindr"}]}}
    result = _cli(tmp_path, "sqlite:///x.db", "config", "check", extra=extra)
    assert result.exit_code == 1
    assert "[contact_policy].safety_kinds: unknown message kind 'recal' (known: " in result.output
    assert "[reminders].rules[0].kind: unknown message kind 'remindr'" in result.output
    assert "courtesy_kinds" not in result.output.split("problem:", 1)[1]


def test_the_example_config_names_only_known_channels_and_kinds(tmp_path, monkeypatch):
    from retention_plugin.app import Retention
    from retention_plugin.install.first_run import enumeration_problems

    for name in set(re.findall(r"\$\{([A-Z_]+)\}", EXAMPLE.read_text())):
        monkeypatch.setenv(name, "x" * 40)
    assert enumeration_problems(Retention.from_config(EXAMPLE)) == []


def test_config_check_lists_every_missing_variable_at_once(tmp_path, monkeypatch):
    names = sorted(set(re.findall(r"\$\{([A-Z_]+)\}", _uncommented(EXAMPLE.read_text()))))
    for name in names:
        monkeypatch.delenv(name, raising=False)
    from click.testing import CliRunner

    from retention_plugin.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(EXAMPLE), "config", "check"])
    assert result.exit_code == 2
    assert f"{len(names)} problems" in result.output
    for name in names:
        assert f"environment variable {name} is not set" in result.output


def _uncommented(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_readme_exports_every_variable_the_example_config_reads():
    in_example = set(re.findall(r"\$\{([A-Z_]+)\}", _uncommented(EXAMPLE.read_text())))
    readme = (ROOT / "README.md").read_text()
    exported = {name for line in readme.splitlines() if line.startswith("export ")
                for name in re.findall(r"\b([A-Z][A-Z0-9_]+)=", line)}
    # RETENTION_TOKEN_KEY is read by the code (token encryption), not through the file.
    assert exported - {"RETENTION_TOKEN_KEY"} == in_example
    assert "RETENTION_TOKEN_KEY" in exported


def test_configuration_doc_lists_exactly_the_sections_there_are(tmp_path):
    from retention_plugin.app import Retention
    from retention_plugin.config import CORE_SECTIONS, from_dict
    from retention_plugin.plugins import collect
    from retention_plugin.testing import base_config

    app = Retention(from_dict(base_config(f"sqlite:///{tmp_path / 'x.db'}")))
    sections = set(CORE_SECTIONS) | {name for name, _ in collect(app.pm, "register_config_sections")}
    doc = (ROOT / "docs" / "configuration.md").read_text()
    overview = doc.split("| section | what | documented in |", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"^\| `\[(\w+)\]`", overview, re.M)) == sections
    example_sections = set(re.findall(r"^\[\[?(\w+)", EXAMPLE.read_text(), re.M))
    assert example_sections <= sections


# --- readable output ---------------------------------------------------------------------------------------
# `retention demo`'s summary is asserted in tests/test_demo.py (tables, no reprs or keys, the Next block).


def _retention(*args, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    return subprocess.run([sys.executable, "-m", "retention_plugin", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_alembic_is_silent_unless_verbose(tmp_path):
    write_config(tmp_path / "retention.toml", {"database": {"url": "sqlite:///quiet.db"}})
    quiet = _retention("--config", "retention.toml", "db", "upgrade", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("schema: empty -> ") and "alembic" not in quiet.stdout + quiet.stderr
    write_config(tmp_path / "retention.toml", {"database": {"url": "sqlite:///loud.db"}})
    loud = _retention("--config", "retention.toml", "-v", "db", "upgrade", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "INFO alembic.runtime.migration" in loud.stderr


def test_serve_says_where_it_listens(tmp_path):
    from server_util import running_server

    from retention_plugin.storage.db import make_engine, upgrade
    from retention_plugin.testing import base_config

    url = f"sqlite:///{tmp_path / 'serve.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    with running_server(write_config(tmp_path / "retention.toml", base_config(url)), workers=1) as base:
        log = base.log_text()
    assert f"listening on {base} (webhooks: {base}/webhooks/shopify" in log
    assert f"/metrics on {base.metrics}/metrics" in log


def _table_lines(text: str) -> list[str]:
    lines = text.splitlines()
    assert len(lines) >= 3 and set(lines[1].replace(" ", "")) == {"-"}, text
    return lines


def test_list_commands_print_headed_tables_and_json_is_unchanged(app, db_url, tmp_path):
    import json

    from click.testing import CliRunner

    from payloads import order
    from retention_plugin.cli import cli
    from retention_plugin.testing import base_config, deliver_shopify

    config = write_config(tmp_path / "retention.toml", base_config(db_url))
    deliver_shopify(app, "orders/paid", order(1), webhook_id="wh-1")
    deliver_shopify(app, "orders/paid", {"id": "garbage"}, webhook_id="wh-2")

    def run(*args):
        r = CliRunner().invoke(cli, ["--config", str(config), *args])
        assert r.exit_code == 0, r.output
        return r.output

    run("worker", "--burst")
    lines = _table_lines(run("events", "list"))
    assert lines[0].split() == ["id", "received", "(UTC)", "platform", "topic", "status", "attempts", "last", "error"]
    assert any(re.search(r"\borders/paid +dead +\d+ +bad payload", line) for line in lines[2:]), lines
    rows = json.loads(run("events", "list", "--json"))
    assert {"id", "platform", "shop", "topic", "delivery_id", "status", "attempts", "received_at",
            "next_attempt_at", "processed_at", "last_error"} == set(rows[0])
    assert run("events", "list", "--status", "ignored").strip() == "no deliveries with status ignored"

    lines = _table_lines(run("actions", "list"))
    assert lines[0].split()[:4] == ["id", "created", "(UTC)", "platform"]
    assert set(json.loads(run("actions", "list", "--json"))[0]) == {
        "id", "platform", "kind", "key", "status", "attempts", "request", "result", "last_error", "created_at",
        "updated_at"}

    lines = _table_lines(run("plugins"))
    assert lines[0].split() == ["plugin", "from", "hooks"]
    assert any(line.startswith("loyalty ") and "order_paid" in line for line in lines[2:])


def test_table_helper():
    from retention_plugin.clihelp import table

    text = table([{"name": "a", "n": 5, "note": None}, {"name": "bb", "n": 12, "note": "x" * 80}],
                 ["name", "n", "note"], headers={"n": "count"}, max_width=10)
    assert text.splitlines() == [
        "name  count  note",
        "----  -----  ----------",
        "a         5  -",
        "bb       12  xxxxxxxxx…",
    ]
    assert table([], ["x"], empty="nothing") == "nothing"

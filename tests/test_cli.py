"""The operator's commands, run as a user would (through click, against a config file)."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config
from payloads import order
from server_util import write_config
from retention_plugin.cli import cli
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine
from retention_plugin.testing import deliver_shopify


@pytest.fixture
def config(db_url, tmp_path):
    return write_config(tmp_path / "retention.toml", base_config(db_url))


def run(config, *args):
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    return result


def test_events_list_show_and_replay(app, config):
    deliver_shopify(app, "orders/paid", order(1), webhook_id="wh-1")
    deliver_shopify(app, "orders/paid", {"id": "garbage"}, webhook_id="wh-2")
    r = run(config, "worker", "--burst")
    assert r.exit_code == 0, r.output
    assert "processed 1" in r.output and "dead 1" in r.output

    r = run(config, "events", "list", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {"id", "platform", "topic", "status", "attempts", "received_at"} <= set(rows[0])
    by_status = {row["status"]: row for row in rows}
    assert set(by_status) == {"done", "dead"}
    dead = by_status["dead"]
    assert "bad payload" in dead["last_error"]

    r = run(config, "events", "list", "--status", "dead", "--json")
    assert [x["id"] for x in json.loads(r.output)] == [dead["id"]]

    r = run(config, "events", "show", str(dead["id"]))
    assert r.exit_code == 0 and json.loads(r.output)["body"] == {"id": "garbage"}

    r = run(config, "events", "replay", "--status", "dead")
    assert r.exit_code == 0 and "queued 1" in r.output
    r = run(config, "events", "list", "--status", "pending", "--json")
    assert [x["id"] for x in json.loads(r.output)] == [dead["id"]]

    r = run(config, "events", "show", "999999")
    assert r.exit_code == 2 and "no delivery with id 999999" in r.output


def test_events_list_rejects_an_unknown_status(config):
    r = run(config, "events", "list", "--status", "lost")
    assert r.exit_code == 2 and "--status" in r.output


def test_actions_list_shows_requests_in_dry_run(app, config):
    from retention_plugin.context import HookContext

    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=app.now())
        ctx.enqueue_action("zendesk", "ticket_update", "test:1", {"method": "PUT", "path": "/api/v2/tickets/1.json",
                                                                   "json": {"ticket": {"priority": "urgent"}}})
        ctx.enqueue_action("zendesk", "ticket_update", "test:1", {"method": "PUT", "path": "/ignored"})
    r = run(config, "worker", "--burst")
    assert r.exit_code == 0, r.output
    r = run(config, "actions", "list", "--json")
    rows = json.loads(r.output)
    assert len(rows) == 1
    a = rows[0]
    assert {"id", "platform", "kind", "key", "status", "attempts", "request"} <= set(a)
    assert a["status"] == "dry_run" and a["request"]["path"] == "/api/v2/tickets/1.json"
    with app.engine.connect() as conn:
        attempts = conn.execute(select(t.action_attempts)).mappings().all()
    assert [x["outcome"] for x in attempts] == ["dry_run"]


def test_serve_and_worker_refuse_an_outdated_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    config = write_config(tmp_path / "retention.toml", base_config(url))
    for args in (["worker", "--burst"], ["serve", "--port", "1"]):
        r = run(config, *args)
        assert r.exit_code == 1
        assert "retention db upgrade" in r.output and "empty" in r.output
    r = run(config, "db", "status")
    assert r.exit_code == 1 and "OUTDATED" in r.output
    r = run(config, "db", "upgrade")
    assert r.exit_code == 0, r.output
    r = run(config, "db", "status")
    assert r.exit_code == 0 and "OK" in r.output
    assert run(config, "worker", "--burst").exit_code == 0


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()


def test_help_needs_no_configuration(tmp_path):
    out = subprocess.run([sys.executable, "-m", "retention_plugin", "--help"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0 and "worker" in out.stdout


def test_customers_show_links_orders_tickets_and_feature_facts(app, config):
    from payloads import rating_values, zendesk_trigger
    from retention_plugin.testing import deliver_zendesk

    deliver_shopify(app, "orders/paid", order(71, customer_id=5501, email="Link.Me@Example.com"))
    # The shipped trigger body carries the requester's email, which links the Zendesk user to the buyer.
    values = rating_values(7001, "", email="link.me@example.com", requester_id=8801, status="new")
    deliver_zendesk(app, zendesk_trigger("ticket_created", values), invocation_id="inv-7001")
    assert run(config, "worker", "--burst").exit_code == 0
    for ref in ("link.me@example.com", "5501"):
        r = run(config, "customers", "show", ref, "--json")
        assert r.exit_code == 0, r.output
        data = json.loads(r.output)
        assert data["customer"]["shopify_id"] == 5501 and data["customer"]["zendesk_user_id"] == 8801
        assert [o["shopify_id"] for o in data["orders"]] == [71]
        assert [t_["zendesk_id"] for t_ in data["tickets"]] == [7001]
        assert data["lifetime_spend"] == {"USD": "100.0000"} or data["lifetime_spend"] == {"USD": "100.00"}
        assert "loyalty" in data["features"]
    r = run(config, "customers", "show", "nobody@example.com")
    assert r.exit_code == 2 and "no customer matches" in r.output


def test_serve_threads_come_from_the_option_the_config_or_the_engine(db_url, tmp_path, monkeypatch):
    import retention_plugin.server as server

    started = []
    monkeypatch.setattr(server, "run_gunicorn", lambda path, host, port, workers, threads, metrics_bind="": started.append(
        (host, port, workers, threads)))
    plain = write_config(tmp_path / "plain.toml", base_config(db_url))
    assert run(plain, "serve").exit_code == 0
    assert run(plain, "serve", "--threads", "3", "--workers", "5").exit_code == 0
    tuned = write_config(tmp_path / "tuned.toml", base_config(db_url, server={"threads": 6}))
    assert run(tuned, "serve").exit_code == 0
    engine_default = 4  # threads waiting on a commit share its sync, on either engine
    assert started == [("127.0.0.1", 8000, 2, engine_default), ("127.0.0.1", 8000, 5, 3), ("127.0.0.1", 8000, 2, 6)]
    bad = write_config(tmp_path / "bad.toml", base_config(db_url, server={"threads": 0}))
    r = run(bad, "serve")
    assert r.exit_code == 2 and "threads" in r.output


def test_events_show_prints_a_body_too_deep_to_parse_as_text(app, config):
    from retention_plugin.inbox import store_delivery

    deep = b'{"a":' * 1010 + b"1" + b"}" * 1010
    row_id = store_delivery(app.engine, platform="shopify", shop="example.myshopify.com", delivery_id="deep",
                            topic="orders/paid", body=deep, now=app.now())
    r = run(config, "events", "show", str(row_id))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["body"] == deep.decode()

"""Receiver defects from issue 12, each through a real server: 503 not HTML 500, 408, 100-continue, /metrics."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from click.testing import CliRunner

from conftest import base_config, dumps, shopify_headers
from server_util import free_port, http_bytes, raw_http, running_server, write_config
from retention_plugin.cli import cli
from retention_plugin.config import ConfigError, from_dict
from retention_plugin.server import WORKER_CLASS

ORDER = dumps({"id": 1, "email": "a@example.com"})


# --- a receiver that cannot start answers the documented 503 ----------------------------------------


@contextmanager
def gunicorn_hosting_web_app(config: Path):
    """`gunicorn retention_plugin.web:app`, as docs/operations.md shows for running without `retention serve`."""
    port = free_port()
    log = config.with_name(f"gunicorn-{port}.log")
    env = {**os.environ, "RETENTION_CONFIG": str(config)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", WORKER_CLASS, "-w", "1", "-b",
                                 f"127.0.0.1:{port}", "retention_plugin.web:app"], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text())
                time.sleep(0.05)  # readiness poll
        yield base, log
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.parametrize("url", ["sqlite", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"],
                         ids=["sqlite-without-schema", "postgresql-unreachable"])
def test_a_receiver_without_its_database_answers_json_503(tmp_path, url):
    if url == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"  # no tables: the schema check fails
    config = write_config(tmp_path / "retention.toml", base_config(url))
    with gunicorn_hosting_web_app(config) as (base, log):
        health = requests.get(base + "/healthz", timeout=30)
        assert health.status_code == 503, health.text
        assert health.headers["Content-Type"].startswith("application/json")
        assert health.json()["ok"] is False
        delivery = requests.post(base + "/webhooks/shopify", data=ORDER,
                                 headers=shopify_headers(ORDER, "orders/paid"), timeout=30)
        assert delivery.status_code == 503 and delivery.headers["Retry-After"]  # Shopify retries later
        assert delivery.json()["error"] == "unavailable"
    text = log.read_text()
    assert "receiver cannot start" in text and "Traceback" not in text


# --- slow and hesitant clients ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_timeout_server(module_db_url, tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("hardening") / "retention.toml",
                        base_config(module_db_url, server={"read_timeout_seconds": 1}))
    with running_server(path) as base:
        yield base


def test_a_request_that_never_finishes_gets_408(quick_timeout_server):
    base = quick_timeout_server
    u = urlparse(base)
    for opening in (b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\n",
                    b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"):
        with socket.create_connection((u.hostname, u.port), timeout=30) as s:
            s.sendall(opening)
            answer = s.recv(4096)  # blocks until the server gives up on us
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
    # and the server is none the worse
    assert requests.post(base + "/webhooks/shopify", data=ORDER, headers=shopify_headers(ORDER, "orders/paid"),
                         timeout=10).status_code == 200
    assert "Traceback" not in base.log_text()


def test_expect_100_continue_is_answered_before_the_body_is_sent(quick_timeout_server):
    base = quick_timeout_server
    u = urlparse(base)
    headers = shopify_headers(ORDER, "orders/paid") | {"Expect": "100-continue"}
    head = http_bytes("POST", "/webhooks/shopify", list(headers.items()), ORDER)
    head, body = head[:-len(ORDER)], head[-len(ORDER):]
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(head)
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(body)
        answer = b""
        while b'"duplicate"' not in answer:
            part = s.recv(4096)
            assert part, answer
            answer += part
    assert b" 200 OK" in answer


# --- /metrics is not on the webhook port ---------------------------------------------------------------


def test_metrics_only_on_the_metrics_listener(quick_timeout_server):
    base = quick_timeout_server
    metrics_port = urlparse(base.metrics).port
    assert requests.get(base + "/metrics", timeout=10).status_code == 404
    # A Host header naming the metrics port changes nothing: the connection's own port decides.
    status, _ = raw_http(base, http_bytes("GET", "/metrics", [("Host", f"127.0.0.1:{metrics_port}")]))
    assert status == 404
    r = requests.get(base.metrics + "/metrics", timeout=10)
    assert r.status_code == 200 and "retention_inbox_depth" in r.text
    assert requests.get(base.metrics + "/healthz", timeout=10).json()["ok"] is True


def test_metrics_bind_is_validated(db_url, tmp_path):
    with pytest.raises(ConfigError) as e:
        from_dict(base_config(db_url, server={"metrics_bind": "everywhere"}))
    assert "[server].metrics_bind" in str(e.value)
    assert from_dict(base_config(db_url, server={"metrics_bind": ""})).section("server")["metrics_bind"] == ""
    assert from_dict(base_config(db_url)).section("server")["metrics_bind"] == "127.0.0.1:9412"
    config = write_config(tmp_path / "retention.toml", base_config(db_url, server={"port": 8123,
                                                                                   "metrics_bind": "0.0.0.0:8123"}))
    r = CliRunner().invoke(cli, ["--config", str(config), "serve"])
    assert r.exit_code == 2 and "webhook port" in r.output


def test_no_metrics_listener_means_no_metrics(sqlite_url, tmp_path):
    config = write_config(tmp_path / "retention.toml", base_config(sqlite_url))
    with running_server(config, extra_args=("--metrics-bind", "")) as base:
        assert requests.get(base + "/metrics", timeout=10).status_code == 404
        with pytest.raises(requests.ConnectionError):
            requests.get(base.metrics + "/metrics", timeout=10)
        webhook_id = str(uuid.uuid4())
        assert requests.post(base + "/webhooks/shopify", data=ORDER,
                             headers=shopify_headers(ORDER, "orders/paid", webhook_id), timeout=10).status_code == 200

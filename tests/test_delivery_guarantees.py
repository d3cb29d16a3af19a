"""Acceptance for the spine: concurrent duplicated deliveries, and a worker killed mid-batch."""

import random
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select

from conftest import base_config, dumps, shopify_headers
from payloads import order
from server_util import running_server, write_config
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

COUNTER_PLUGIN = '''
from retention_plugin import hookimpl

@hookimpl
def order_paid(event, ctx):
    # Deliberately not idempotent: value + 1 shows any effect committed twice.
    key = str(event.order.shopify_id)
    ctx.state_set("counter", key, ctx.state_get("counter", key, 0) + 1)
'''

UNIQUE, DUPLICATES = 800, 200


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling for a condition, not a timing assumption


def test_concurrent_duplicates_and_sigkilled_worker(module_db_url, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "counter.py").write_text(COUNTER_PLUGIN)
    cfg = base_config(module_db_url, plugins={"dirs": ["hooks"]},
                      worker={"lease_seconds": 2, "batch_size": 25, "poll_seconds": 0.05})
    config_path = write_config(tmp_path / "retention.toml", cfg)
    engine = make_engine(module_db_url)
    with engine.begin() as conn:  # the module database is shared: start from an empty inbox
        for table in (t.plugin_state, t.order_lines, t.orders, t.customers, t.inbox):
            conn.execute(table.delete())

    deliveries = []
    for i in range(UNIQUE):
        body = dumps(order(5_000_000 + i, customer_id=90_000 + i % 97, email=f"c{i % 97}@example.com"))
        deliveries.append((body, shopify_headers(body, "orders/paid", f"wh-{uuid.uuid4()}")))
    deliveries += random.Random(7).sample(deliveries, DUPLICATES)
    random.Random(8).shuffle(deliveries)

    with running_server(config_path, workers=2, threads=4) as base:
        session = requests.Session()

        def post(d):
            return requests.post(base + "/webhooks/shopify", data=d[0], headers=d[1], timeout=30).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(post, deliveries))
        session.close()
    assert statuses.count(200) == UNIQUE + DUPLICATES

    def count(status=None):
        q = select(func.count()).select_from(t.inbox)
        if status:
            q = q.where(t.inbox.c.status == status)
        with engine.connect() as conn:
            return conn.execute(q).scalar()

    assert count() == UNIQUE

    cmd = [sys.executable, "-m", "retention_plugin", "--config", str(config_path), "worker"]
    # The worker logs a line per delivery: to a file, since an unread pipe would fill and stall it.
    log = open(tmp_path / "worker.log", "wb")
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(lambda: count("done") >= UNIQUE // 4, 120, "the first worker to make progress")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert count("done") < UNIQUE, "killed too late to prove anything; lower the threshold"

    second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(lambda: count("done") == UNIQUE, 180, "every delivery to be processed after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        rc = second.wait(30)
    log.close()
    assert rc == 0, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]

    with engine.connect() as conn:
        values = [v for (v,) in conn.execute(select(t.plugin_state.c.value).where(
            t.plugin_state.c.plugin == "counter"))]
        orders = conn.execute(select(func.count()).select_from(t.orders)).scalar()
    engine.dispose()
    assert len(values) == UNIQUE and set(values) == {1}, "an effect was lost or committed twice"
    assert orders == UNIQUE

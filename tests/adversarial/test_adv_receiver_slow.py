"""Slow clients against the receiver's defaults: 50 of them, while 100 deliveries must each be answered in 5 s.

Shopify waits five seconds for a webhook's answer, then counts a failure (and
in the end drops the subscription). Fifty attackers here hold connections open
and feed them a byte now and then: half a request line, a head with a body
that never comes, a chunked body a chunk at a time, nothing at all, an
``Expect: 100-continue`` they never follow. Whenever the server closes one,
it reconnects. Meanwhile 100 signed deliveries go in, ten at a time, through
`retention serve` with its default workers and threads; each must be answered
200 within Shopify's five seconds, and stored.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from urllib.parse import urlparse

import pytest
import requests
from sqlalchemy import func, select

from conftest import base_config, dumps, shopify_headers, zendesk_headers
from server_util import running_server, write_config
from retention_plugin.storage import tables as t
from retention_plugin.storage.db import make_engine

SLOW_CLIENTS = 50
DELIVERIES = 100
SHOPIFY_DEADLINE = 5.0

OPENINGS = [
    # half a request, then one more header line every so often
    (b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"),
    # a whole head, then the body a byte at a time
    (b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{", b" "),
    # chunked, a chunk at a time
    (b"POST /webhooks/zendesk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"1\r\n \r\n"),
    # connect, say nothing
    (b"", b""),
    # ask to continue, never send the body
    (b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 50\r\n\r\n", b""),
]


class SlowClients:
    def __init__(self, base: str, n: int):
        u = urlparse(base)
        self.addr = (u.hostname, u.port)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.open = 0
        self.started = threading.Semaphore(0)
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(n)]

    def run(self, i: int) -> None:
        opening, trickle = OPENINGS[i % len(OPENINGS)]
        first = True
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(self.addr, timeout=60)
            except OSError:
                continue
            with self.lock:
                self.open += 1
            try:
                sock.sendall(opening)
                if first:
                    self.started.release()
                    first = False
                # The attacker's pace, not a test timing: a byte every half second.
                while not self.stop.wait(0.5):
                    if trickle:
                        sock.sendall(trickle)
                    elif sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                        break
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                pass  # closed by the server (408): reconnect
            finally:
                with self.lock:
                    self.open -= 1
                sock.close()

    def __enter__(self):
        for th in self.threads:
            th.start()
        for _ in self.threads:  # every attacker connected and sent its opening
            assert self.started.acquire(timeout=60)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for th in self.threads:
            th.join(10)


@pytest.fixture
def server(db_url, tmp_path):
    path = write_config(tmp_path / "retention.toml", base_config(db_url))  # [server] defaults
    engine = make_engine(db_url)
    with running_server(path, threads=None) as base:  # `retention serve`'s own thread default
        yield base, engine
    engine.dispose()


def test_fifty_slow_clients_do_not_delay_deliveries(server):
    base, engine = server
    ids = []

    def deliver(i: int) -> tuple[int, float]:
        if i % 2:
            body = dumps({"id": 900000 + i, "email": f"slow{i}@example.com", "total_price": "1.00", "currency": "EUR"})
            webhook_id = str(uuid.uuid4())
            headers, url = shopify_headers(body, "orders/paid", webhook_id), base + "/webhooks/shopify"
        else:
            webhook_id = str(uuid.uuid4())
            body = dumps({"type": "zen:event-type:ticket.created", "id": webhook_id, "detail": {"id": str(i)}})
            headers, url = zendesk_headers(body, datetime.now(timezone.utc), webhook_id), base + "/webhooks/zendesk"
        ids.append(webhook_id)
        start = time.monotonic()
        try:
            status = requests.post(url, data=body, headers=headers, timeout=SHOPIFY_DEADLINE).status_code
        except requests.Timeout:
            status = None
        return status, time.monotonic() - start

    with SlowClients(base, SLOW_CLIENTS) as attackers:
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(deliver, range(DELIVERIES)))
        still_attacking = attackers.open
    late = [(i, status, round(took, 2)) for i, (status, took) in enumerate(results)
            if status != 200 or took >= SHOPIFY_DEADLINE]
    assert not late, late
    assert still_attacking >= SLOW_CLIENTS * 0.9  # the attack was on throughout
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.inbox).where(t.inbox.c.delivery_id.in_(ids))).scalar() \
            == DELIVERIES
    assert "Traceback" not in base.log_text()

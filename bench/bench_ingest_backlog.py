"""The receiver's answer time while one worker drains a backlog on SQLite.

SQLite has one writer. A worker groups up to ``[worker] deliveries_per_commit`` deliveries in one
transaction (committed early after ``commit_interval_ms``), and the receiver's insert waits for that
lock. This measures how long a delivery posted meanwhile waits for its answer.

For each ``deliveries_per_commit`` value (default ``1,50``), in a fresh SQLite database (a temporary
file, ``[database] sqlite_synchronous`` at its default, ``full``):

1. stores a backlog of N real-shaped signed deliveries (bench/bench_worker.py's ingest: ``orders/paid``
   bodies from tests/payloads.py, every tenth order also refunded, customers buying about four
   times each; the same features on as there: loyalty, offers, messages to the ``log`` channel,
   reminders);
2. starts `retention serve` (gunicorn, as an operator would, with `retention serve`'s default threads)
   on that database, with that value in the config file's ``[worker]`` section, and posts a few
   deliveries unmeasured (a receiver process's first request pays for its imports);
3. starts `retention worker --burst` as a subprocess on the backlog, and meanwhile a client thread
   posts signed ``orders/paid`` deliveries (each a new order and webhook id) to the receiver at a
   fixed rate (``--rate``, default 50/s). Latency counts from each request's scheduled moment, so a
   stalled receiver cannot hide its queue (a small pool of senders keeps the schedule);
4. once every backlog row has been taken (none pending unattempted or in a worker's hands; the bench
   reads the database file read-only, so it takes no lock of its own) it stops posting and sends
   the worker SIGTERM (it finishes the batch in hand: the posted deliveries would otherwise keep a
   burst going as long as they arrive faster than it drains).

A first row, ``idle``, posts the same way for ``--idle-seconds`` with no worker running: the
receiver's own latency on this machine at this moment, to read the others against.

Prints, per row: the backlog, the seconds the drain took and the worker's deliveries/s over it,
deliveries posted, p50/p95/p99/max receiver latency in ms from the scheduled moment, how many of
those took over 5 s (Shopify's timeout for a delivery), the responses that were not 2xx (failed
connections and timeouts included; must be 0), and p50/p99 from the moment each request was actually
sent (without the wait for a free sender thread). Timing only: on a shared machine compare rows of
one run, not runs.

    python bench/bench_ingest_backlog.py [--backlog 2000] [--per-commit 1,50] [--rate 50]
                                         [--senders 32] [--idle-seconds 5] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_worker  # noqa: E402
from bench_ingest import start, stop  # noqa: E402
from conftest import shopify_headers  # noqa: E402
from payloads import order  # noqa: E402
from server_util import free_port, write_config  # noqa: E402

#: Orders the client posts are numbered from here, clear of the backlog's (bench_worker: 5,000,001 on).
POSTED_ORDER_IDS = 60_000_000


class Sender:
    """Posts signed new orders at ``rate`` per second until stopped; records each answer."""

    def __init__(self, base: str, rate: float, senders: int):
        self.url = base + "/webhooks/shopify"
        self.rate, self.senders = rate, senders
        #: (ms from the scheduled moment, ms from the send, status; 0: no answer)
        self.results: list[tuple[float, float, int]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._start = time.monotonic() + 0.2
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.senders)]
        for th in self._threads:
            th.start()

    def stop(self) -> None:
        self.stopping.set()
        for th in self._threads:
            th.join()

    def _run(self) -> None:
        session = requests.Session()
        while True:
            with self._lock:
                i = self._next
                self._next += 1
            due = self._start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                # pacing the offered load; a stop during the wait sends nothing more
                if self.stopping.wait(delay):
                    return
            elif self.stopping.is_set():
                return
            oid = POSTED_ORDER_IDS + i
            body = json.dumps(order(oid, customer_id=9_500_000 + oid % 500, email=f"p{oid % 500}@example.com",
                                    subtotal=Decimal(40 + oid % 80))).encode()
            headers = shopify_headers(body, "orders/paid", f"backlog-bench-{uuid.uuid4()}")
            sent = time.monotonic()
            try:
                status = session.post(self.url, data=body, headers=headers, timeout=60).status_code
            except requests.RequestException:
                status = 0
            done = time.monotonic()
            with self._lock:
                self.results.append(((done - due) * 1000, (done - sent) * 1000, status))


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest rank: the value at or below which ``p`` percent of the answers fall."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, -(-len(sorted_ms) * p // 100))
    return sorted_ms[int(rank) - 1]


def summary(results: list[tuple[float, float, int]]) -> dict:
    ms = sorted(m for m, _, _ in results)
    answer = sorted(a for _, a, _ in results)
    return {"posted": len(results), "p50": percentile(ms, 50), "p95": percentile(ms, 95),
            "p99": percentile(ms, 99), "max": ms[-1] if ms else float("nan"),
            "answer_p50": percentile(answer, 50), "answer_p99": percentile(answer, 99),
            "over_5s": sum(1 for m in ms if m > 5000), "non_2xx": sum(1 for _, _, s in results if not 200 <= s < 300)}


def backlog_left(db: Path, last_id: int) -> int:
    """Backlog rows not yet taken by the worker: unattempted and pending, or claimed and in hand."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM inbox WHERE id <= ? AND (status = 'processing' OR "
                            "(status = 'pending' AND attempts = 0))", (last_id,)).fetchone()[0]
    finally:
        conn.close()


def last_backlog_id(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT max(id) FROM inbox").fetchone()[0] or 0
    finally:
        conn.close()


def warm_up(base: str, n: int) -> None:
    """A few deliveries first, so that no measured request pays for a receiver process's first one."""
    for i in range(4 * n):
        body = json.dumps(order(POSTED_ORDER_IDS - 1 - i)).encode()
        requests.post(base + "/webhooks/shopify", data=body, headers=shopify_headers(body, "orders/paid"),
                      timeout=30).raise_for_status()


def serve(config: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "retention_plugin", "--config", str(config), "serve", "--host", "127.0.0.1",
           "--port", str(port), "--metrics-bind", ""]
    return start(cmd, env, base), base


def measure(per_commit: int | None, args, env: dict) -> dict:
    """One row: a fresh database; with ``per_commit`` None, no backlog and no worker (the idle row)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-backlog-"))
    try:
        url = bench_worker.fresh_database("sqlite", tmp)
        db = Path(url.removeprefix("sqlite:///"))
        cfg = bench_worker.sections(url)
        cfg["worker"] = {**cfg["worker"], "deliveries_per_commit": per_commit or 1}
        cfg["logging"] = {"level": "WARNING"}
        config = write_config(tmp / "retention.toml", cfg)
        if per_commit is not None:
            bench_worker.run("ingest", url, str(args.backlog))
        last_id = last_backlog_id(db)
        receiver, base = serve(config, env)
        try:
            warm_up(base, args.senders)
            sender = Sender(base, args.rate, args.senders)
            if per_commit is None:
                sender.start()
                time.sleep(args.idle_seconds)  # the idle row's length: posting at the fixed rate meanwhile
                sender.stop()
                return {"backlog": 0, "drain_s": float("nan"), "drained": 0, **summary(sender.results)}
            worker = subprocess.Popen([sys.executable, "-m", "retention_plugin", "--config", str(config),
                                       "worker", "--burst"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env)
            began = time.monotonic()
            sender.start()
            try:
                while backlog_left(db, last_id) and worker.poll() is None:
                    if time.monotonic() - began > args.timeout:
                        raise SystemExit(f"the backlog was not drained in {args.timeout} s")
                    time.sleep(0.25)  # polling the database file, read-only
                drained_in = time.monotonic() - began
            finally:
                sender.stop()
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)  # finishes the batch in hand, then exits
                out, err = worker.communicate(timeout=args.timeout)
            if worker.returncode != 0:
                raise SystemExit(f"the worker failed ({worker.returncode}):\n{err}")
            return {"backlog": last_id, "drain_s": drained_in, "drained": last_id, "worker": out.strip(),
                    **summary(sender.results)}
        finally:
            stop(receiver)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", type=int, default=2000, help="deliveries stored before the worker starts")
    ap.add_argument("--per-commit", default="1,50", help="[worker] deliveries_per_commit values, one row each")
    ap.add_argument("--rate", type=float, default=50, help="deliveries posted per second during the drain")
    ap.add_argument("--senders", type=int, default=32, help="client threads keeping the schedule")
    ap.add_argument("--idle-seconds", type=float, default=5, help="the idle row's length; 0: no idle row")
    ap.add_argument("--timeout", type=float, default=900, help="seconds a drain may take before giving up")
    args = ap.parse_args()
    env = {**os.environ}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.setdefault("PYTHONHASHSEED", "0")

    plan: list[int | None] = ([None] if args.idle_seconds > 0 else []) + [int(v) for v in args.per_commit.split(",")]
    rows = [(k, measure(k, args, env)) for k in plan]

    print(f"\nSQLite (sqlite_synchronous full); signed orders/paid posted at {args.rate:g}/s by {args.senders} "
          f"sender threads; latency from each request's scheduled moment")
    print(f"{'per_commit':>10} {'backlog':>8} {'drain s':>8} {'worker/s':>8} {'posted':>7} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7} {'max ms':>8} {'>5 s':>5} {'non-2xx':>7} | {'send p50':>8} {'send p99':>8}")
    for k, r in rows:
        rate = r["drained"] / r["drain_s"] if r["drained"] else float("nan")
        print(f"{'idle' if k is None else k:>10} {r['backlog']:>8} {r['drain_s']:>8.1f} {rate:>8.1f} "
              f"{r['posted']:>7} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['p99']:>7.1f} {r['max']:>8.1f} "
              f"{r['over_5s']:>5} {r['non_2xx']:>7} | {r['answer_p50']:>8.1f} {r['answer_p99']:>8.1f}")
    for k, r in rows:
        if r.get("worker"):
            print(f"deliveries_per_commit {k}: worker: {r['worker']}")
    if any(r["non_2xx"] for _, r in rows):
        raise SystemExit("some deliveries were not answered 2xx")


if __name__ == "__main__":
    main()

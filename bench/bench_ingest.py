"""Sustained signed-webhook ingest through the real receiver, against its ceiling.

For each backend (SQLite, PostgreSQL) it starts `retention serve` (gunicorn)
and measures:

- throughput: `wrk` (Debian package `wrk`) posts a signed orders/paid body as
  fast as the server takes it for --seconds, each request with a fresh
  X-Shopify-Webhook-Id (the HMAC covers only the body, so every request is
  a new delivery that is verified and inserted);
- latency at a fixed offered rate (--rate, default 300/s): an open-loop
  generator sends on schedule and measures from the scheduled moment, so a
  stalled server cannot hide its queueing (no coordinated omission).

The ceiling is the same gunicorn configuration serving bench/empty_app.py,
which reads the body and answers 200. Prints one table.

    python bench/bench_ingest.py [--seconds 20] [--rate 300] [--workers 2] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from conftest import PG_ADMIN_URL, SHOP, base_config, shopify_headers  # noqa: E402
from payloads import order  # noqa: E402
from server_util import free_port, write_config  # noqa: E402

LUA = r"""
local counter = 0
local prefix = ""
local threads = {}
function setup(thread)
  thread:set("tid", tostring(#threads))
  table.insert(threads, thread)
end
function init(args)
  prefix = tid .. "-" .. tostring(math.random(1, 1e9)) .. "-"
end
request = function()
  counter = counter + 1
  wrk.headers["X-Shopify-Webhook-Id"] = prefix .. counter
  return wrk.format("POST", "/webhooks/shopify", nil, wrk.body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %f %f %f\n", summary.requests, summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def start(cmd, env, base):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(proc.stderr.read().decode())
        try:
            requests.post(base + "/healthz", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wrk_run(base, body, headers, seconds, connections=32, threads=2):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
        script = f.name
    hdr_args = []
    for k, v in headers.items():
        if k != "X-Shopify-Webhook-Id":
            hdr_args += ["-H", f"{k}: {v}"]
    body_file = script + ".body"
    Path(body_file).write_bytes(body)
    # wrk takes the body from the script; pass it through wrk.body set in a small prelude.
    prelude = Path(script).read_text()
    Path(script).write_text(f"wrk.method = 'POST'\nwrk.body = io.open('{body_file}', 'rb'):read('*a')\n" + prelude)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "-s", script,
                          *hdr_args, base + "/webhooks/shopify"], capture_output=True, text=True, check=True).stdout
    os.unlink(script)
    os.unlink(body_file)
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    _, n, errors, duration, p50, p99 = line.split()
    n, errors, duration = int(n), int(errors), float(duration)
    return {"rps": n / duration, "errors": errors, "p50_ms": float(p50), "p99_ms": float(p99), "requests": n}


def open_loop(base, body, headers, rate, seconds, threads=32):
    """Send at a fixed schedule; latency counts from the scheduled time."""
    total = int(rate * seconds)
    start = time.monotonic() + 0.5
    latencies, failures = [], []
    lock = threading.Lock()
    nxt = [0]

    def worker():
        session = requests.Session()
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= total:
                return
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the offered load (this is the load generator, not a test)
            h = dict(headers)
            h["X-Shopify-Webhook-Id"] = f"ol-{uuid.uuid4()}"
            try:
                r = session.post(base + "/webhooks/shopify", data=body, headers=h, timeout=10)
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            done = time.monotonic()
            with lock:
                latencies.append((done - due) * 1000)
                if not ok:
                    failures.append(i)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t_ in ts:
        t_.start()
    for t_ in ts:
        t_.join()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"offered": rate, "p50_ms": q[49], "p99_ms": q[98], "failures": len(failures), "requests": total}


def database(backend, tmp):
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"retention_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--no-ceilings", action="store_true", help="measure only the receiver (for A/B runs)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    from retention_plugin.storage.db import make_engine, upgrade

    body = json.dumps(order(820982911946154508)).encode()
    headers = shopify_headers(body, "orders/paid")
    rows = []
    env = {**os.environ}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    # Ceilings: the same gunicorn with an empty WSGI callable, and with the receiver's Falcon stack
    # and an empty responder (the same server answering 200 from an empty handler).
    ceilings = (("gunicorn, bare WSGI 200", "empty_app:app"), ("gunicorn+Falcon, empty handler", "empty_falcon:app"))
    for label, module in ceilings[:0] if args.no_ceilings else ceilings:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(HERE), "-w", str(args.workers), "--threads",
               str(args.threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning", module]
        proc = start(cmd, env, base)
        try:
            ceiling = wrk_run(base, body, headers, args.seconds)
            ceiling_ol = open_loop(base, body, headers, args.rate, min(args.seconds, 20))
        finally:
            stop(proc)
        rows.append((label, ceiling, ceiling_ol))

    for backend in args.backends.split(","):
        tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        url, drop = database(backend, tmp)
        try:
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            cfg = base_config(url, server={"workers": args.workers}, logging={"level": "WARNING"})
            path = write_config(tmp / "retention.toml", cfg)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            serve = [sys.executable, "-m", "retention_plugin", "--config", str(path), "serve", "--host",
                     "127.0.0.1", "--port", str(port), "--workers", str(args.workers), "--threads", str(args.threads)]
            proc = start(serve, env, base)
            try:
                sustained = wrk_run(base, body, headers, args.seconds)
                fixed = open_loop(base, body, headers, args.rate, min(args.seconds, 20))
            finally:
                stop(proc)
            engine = make_engine(url)
            from sqlalchemy import func, select

            from retention_plugin.storage import tables as t

            with engine.connect() as c:
                stored = c.execute(select(func.count()).select_from(t.inbox)).scalar()
            engine.dispose()
            sustained["stored"] = stored
            rows.append((f"retention serve, {backend}", sustained, fixed))
        finally:
            drop()
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nsigned orders/paid body of {len(body)} bytes; gunicorn {args.workers} sync workers x "
          f"{args.threads} thread(s); wrk 2 threads, 32 connections, {args.seconds} s; open loop at {args.rate}/s")
    print(f"{'server':<32} {'req/s':>8} {'% ceil':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} | "
          f"{'@rate p50':>9} {'@rate p99':>9} {'fail':>5}")
    top = rows[1][1]["rps"] if not args.no_ceilings else float("nan")  # % of the same server's empty handler
    for name, s, f in rows:
        print(f"{name:<32} {s['rps']:>8.0f} {100 * s['rps'] / top:>6.0f}% {s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} "
              f"{s['errors']:>6} | {f['p50_ms']:>9.1f} {f['p99_ms']:>9.1f} {f['failures']:>5}")
    for name, s, f in rows[0 if args.no_ceilings else 2:]:
        print(f"{name}: {s['stored']} deliveries stored for {s['requests'] + f['requests']} requests answered 200")


if __name__ == "__main__":
    main()

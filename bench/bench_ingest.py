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

On SQLite each receiver row is measured for every ``--synchronous`` value
(``[database] sqlite_synchronous``): ``full``, the default, syncs the WAL at
every commit so that an answered delivery survives a power cut; ``normal``
syncs at checkpoints only.

The ceiling is the same gunicorn configuration (workers, threads) serving
bench/empty_falcon.py: the receiver's Falcon stack with a responder that reads
the body and answers 200 ("% ceil"). bench/empty_app.py, a bare WSGI callable,
shows what Falcon itself costs. Each configuration is measured --repeat times
in rotation and reported by its median round. Prints one table.

    python bench/bench_ingest.py [--seconds 10] [--repeat 3] [--rate 300] [--workers 2]
                                 [--threads N] [--backends sqlite,postgresql] [--synchronous full,normal]
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
from conftest import base_config, shopify_headers  # noqa: E402
from retention_plugin.testing.databases import pg_admin_url  # noqa: E402
from payloads import order  # noqa: E402
from server_util import free_port, write_config  # noqa: E402

from retention_plugin.server import WORKER_CLASS  # noqa: E402  (the ceiling runs the receiver's worker class)

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
            requests.post(base + "/healthz", timeout=5)
            return proc
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or building the app
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

    admin = create_engine(pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"retention_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


def default_threads(backend: str) -> int:
    """What `retention serve` picks when [server] threads is unset."""
    return 4


def measure_ceiling(module, threads, args, body, headers, env):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(HERE), "-k", WORKER_CLASS, "-w", str(args.workers),
           "--threads", str(threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning", module]
    proc = start(cmd, env, base)
    try:
        return wrk_run(base, body, headers, args.seconds), open_loop(base, body, headers, args.rate, args.seconds)
    finally:
        stop(proc)


def measure_receiver(target, threads, args, body, headers, env):
    from sqlalchemy import func, select

    from retention_plugin.storage import tables as t
    from retention_plugin.storage.db import make_engine, upgrade

    backend, synchronous = target
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    url, drop = database(backend, tmp)
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        cfg = base_config(url, server={"workers": args.workers}, logging={"level": "WARNING"},
                          database={"sqlite_synchronous": synchronous},
                          plugins={"disabled": [p for p in args.disable.split(",") if p]})
        path = write_config(tmp / "retention.toml", cfg)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve = [sys.executable, "-m", "retention_plugin", "--config", str(path), "serve", "--host",
                 "127.0.0.1", "--port", str(port), "--workers", str(args.workers), "--threads", str(threads),
                 "--metrics-bind", ""]
        proc = start(serve, env, base)
        try:
            sustained = wrk_run(base, body, headers, args.seconds)
            fixed = open_loop(base, body, headers, args.rate, args.seconds)
        finally:
            stop(proc)
        engine = make_engine(url)
        with engine.connect() as c:
            sustained["stored"] = c.execute(select(func.count()).select_from(t.inbox)).scalar()
        engine.dispose()
        return sustained, fixed
    finally:
        drop()
        shutil.rmtree(tmp, ignore_errors=True)


def median_run(runs):
    """The run with the median throughput (its latencies come with it), and the spread."""
    ordered = sorted(runs, key=lambda r: r[0]["rps"])
    return ordered[len(ordered) // 2], (ordered[0][0]["rps"], ordered[-1][0]["rps"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="each wrk run and each open-loop run")
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads per worker; default: what `retention serve` picks (4)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each row reports its median round")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--disable", default="", metavar="PLUGINS",
                    help="plugins to switch off in the receiver, comma-separated (an A/B of a plugin's routes)")
    ap.add_argument("--no-ceilings", action="store_true", help="measure only the receiver (for A/B runs)")
    ap.add_argument("--synchronous", default="full,normal",
                    help="SQLite [database] sqlite_synchronous values to measure (PostgreSQL: not applicable)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    body = json.dumps(order(820982911946154508)).encode()
    headers = shopify_headers(body, "orders/paid")
    env = {**os.environ}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    backends = args.backends.split(",")
    threads_of = {b: args.threads or default_threads(b) for b in backends}

    # Ceilings, for each thread count a receiver runs with: the same gunicorn with an empty WSGI
    # callable, and with the receiver's Falcon stack and an empty responder (the same server
    # answering 200 from an empty handler: the ceiling the ratio is taken against).
    plan = []
    if not args.no_ceilings:
        for threads in sorted(set(threads_of.values())):
            plan.append((f"bare WSGI 200, {threads} thr", "ceiling", "empty_app:app", threads))
            plan.append((f"Falcon empty handler, {threads} thr", "ceiling", "empty_falcon:app", threads))
    for b in backends:
        for sync in (args.synchronous.split(",") if b == "sqlite" else ["full"]):
            label = f"retention serve, {b}" + (f" {sync}" if b == "sqlite" else "") + f", {threads_of[b]} thr"
            plan.append((label, "receiver", (b, sync), threads_of[b]))

    # Rounds rotate through every configuration, so drift in the machine's speed hits all alike.
    runs = {name: [] for name, *_ in plan}
    for _ in range(args.repeat):
        for name, what, target, threads in plan:
            fn = measure_ceiling if what == "ceiling" else measure_receiver
            runs[name].append(fn(target, threads, args, body, headers, env))

    print(f"\nsigned orders/paid body of {len(body)} bytes; gunicorn {args.workers} workers; wrk 2 threads, "
          f"32 connections, {args.seconds} s; open loop at {args.rate}/s for {args.seconds} s; "
          f"median of {args.repeat} rounds (min-max req/s in brackets)")
    print(f"{'server':<36} {'req/s':>6} {'(min-max)':>13} {'% ceil':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} | "
          f"{'@rate p50':>9} {'@rate p99':>9} {'fail':>5}")
    ceiling_rps = {threads: median_run(runs[name])[0][0]["rps"]
                   for name, what, target, threads in plan if target == "empty_falcon:app"}
    for name, what, target, threads in plan:
        (s, f), (lo, hi) = median_run(runs[name])
        top = ceiling_rps.get(threads, float("nan"))
        print(f"{name:<36} {s['rps']:>6.0f} {f'({lo:.0f}-{hi:.0f})':>13} {100 * s['rps'] / top:>6.0f}% "
              f"{s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} {s['errors']:>6} | {f['p50_ms']:>9.1f} {f['p99_ms']:>9.1f} "
              f"{f['failures']:>5}")
    if ceiling_rps:
        best = max(ceiling_rps.values())
        for name, what, target, threads in plan:
            if what == "receiver":
                rps = median_run(runs[name])[0][0]["rps"]
                print(f"{name}: {100 * rps / best:.0f}% of the fastest empty-handler ceiling ({best:.0f} req/s)")
    for name, what, target, threads in plan:
        if what == "receiver":
            for s, f in runs[name]:
                print(f"{name}: {s['stored']} deliveries stored for {s['requests'] + f['requests']} requests "
                      f"answered 200 (wrk counts no request still in flight when it stops)")


if __name__ == "__main__":
    main()

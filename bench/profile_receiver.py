"""What one delivery costs the receiver in process, without HTTP: a companion to bench_ingest.py.

Calls the receiver's WSGI app directly (SQLite, a fresh database) with a
signed orders/paid delivery under a fresh webhook id each time, beside
bench/empty_falcon.py, and prints microseconds per delivery. With --profile
it prints the cProfile functions that take the most time instead.

    python bench/profile_receiver.py [--n 20000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from conftest import base_config, shopify_headers  # noqa: E402
from payloads import order  # noqa: E402
from server_util import write_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    from retention_plugin.storage.db import make_engine, upgrade

    tmp = Path(tempfile.mkdtemp(prefix="profile-receiver-"))
    try:
        url = f"sqlite:///{tmp / 'retention.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        os.environ["RETENTION_CONFIG"] = str(write_config(tmp / "retention.toml",
                                                          base_config(url, logging={"level": "WARNING"})))
        import empty_falcon
        from retention_plugin import web

        body = json.dumps(order(820982911946154508)).encode()
        headers = shopify_headers(body, "orders/paid")

        def environ(delivery: int) -> dict:
            env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/shopify", "SERVER_NAME": "bench",
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
                   "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json"}
            for name, value in headers.items():
                env["HTTP_" + name.upper().replace("-", "_")] = value
            env["HTTP_X_SHOPIFY_WEBHOOK_ID"] = f"profile-{delivery}"
            return env

        def start_response(status, response_headers, exc_info=None):
            if not status.startswith("200"):
                raise SystemExit(f"the receiver answered {status}")

        def run(app, n: int, first: int) -> float:
            started = time.perf_counter()
            for i in range(first, first + n):
                b"".join(app(environ(i), start_response))
            return (time.perf_counter() - started) / n * 1e6

        run(web.app, 100, 0)  # builds the app and opens the connection
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run, web.app, args.n, 1_000)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            return
        empty = run(empty_falcon.app, args.n, 0)
        receiver = run(web.app, args.n, 10**6)
        print(f"{'app':<28}{'µs per delivery':>16}")
        print(f"{'Falcon empty handler':<28}{empty:>16.1f}")
        print(f"{'retention receiver, SQLite':<28}{receiver:>16.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Hosting the receiver under gunicorn, in-process, with the settings from the config file."""

from __future__ import annotations

import os
import sys
import tempfile

from gunicorn.app.base import BaseApplication

from .binding import METRICS_BIND_ENV, split_bind

WORKER_CLASS = "retention_plugin.buffered_worker.RequestBufferingWorker"


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from .web import app

        return app




def join_bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listening_message(host: str, port: int, metrics_bind: str = "") -> str:
    base = f"http://{join_bind(host, port)}"
    metrics = f"; /metrics on http://{metrics_bind}/metrics" if metrics_bind else ""
    return (f"listening on {base} (webhooks: {base}/webhooks/shopify and {base}/webhooks/zendesk; "
            f"admin console: {base}/admin){metrics}; Ctrl-C stops")


def _announce(message: str):
    def when_ready(_server) -> None:
        # Said once the sockets are bound, so a "listening on" line is true when it appears.
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    return when_ready


def run_gunicorn(config_path: str, host: str, port: int, workers: int, threads: int = 1,
                 metrics_bind: str = "") -> None:
    """Serve the webhooks on host:port and, when given, /metrics on its own ``metrics_bind`` listener.

    Prints where it listens once it does.

    :raises ValueError: when metrics_bind is the webhook port itself (it would publish /metrics).
    """
    if metrics_bind and split_bind(metrics_bind)[1] == port:
        raise ValueError(f"[server] metrics_bind {metrics_bind} uses the webhook port {port}: "
                         "give /metrics a port of its own (or metrics_bind = \"\" for none)")
    os.environ["RETENTION_CONFIG"] = os.path.abspath(config_path)
    os.environ[METRICS_BIND_ENV] = metrics_bind
    # Each gunicorn worker counts its own deliveries; a shared directory lets /metrics add them up.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="retention-metrics-")
    _Gunicorn({
        "bind": [join_bind(host, port)] + ([metrics_bind] if metrics_bind else []),
        "workers": workers,
        "threads": threads,
        # gthread with each request read whole in the event loop before a thread takes it,
        # so slow or stalled clients cost no thread (buffered_worker.py).
        "worker_class": WORKER_CLASS,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "when_ready": _announce(listening_message(host, port, metrics_bind)),
    }).run()

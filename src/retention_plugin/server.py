"""Hosting the receiver under gunicorn, in-process, with the settings from the config file."""

from __future__ import annotations

import os
import tempfile

from gunicorn.app.base import BaseApplication


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


def run_gunicorn(config_path: str, host: str, port: int, workers: int, threads: int = 1) -> None:
    os.environ["RETENTION_CONFIG"] = os.path.abspath(config_path)
    # Each gunicorn worker counts its own deliveries; a shared directory lets /metrics add them up.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="retention-metrics-")
    _Gunicorn({
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
    }).run()

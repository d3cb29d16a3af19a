"""Prometheus metrics: counters kept by the receiver, gauges read from storage at scrape time.

Under gunicorn every worker process counts for itself; ``retention serve``
sets PROMETHEUS_MULTIPROC_DIR so that /metrics sums them all.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from .storage import tables as t
from .storage.db import read_only

RECEIVED = Counter("retention_webhooks_received", "Verified webhook deliveries accepted", ["platform"])
DUPLICATE = Counter("retention_webhooks_duplicate", "Deliveries whose id was already stored", ["platform"])
REJECTED = Counter("retention_webhooks_rejected", "Deliveries refused, by reason", ["platform", "reason"])


class StorageCollector:
    """Inbox and outbox depth by status, and how far processing lags behind."""

    def __init__(self, retention):
        self.retention = retention

    def collect(self):
        depth = GaugeMetricFamily("retention_inbox_depth", "Inbox deliveries by status", labels=["status"])
        actions = GaugeMetricFamily("retention_actions", "Outbound actions by status", labels=["status"])
        lag = GaugeMetricFamily("retention_processing_lag_seconds",
                                "Age of the oldest delivery not yet processed")
        up = GaugeMetricFamily("retention_database_up", "1 when the database answered this scrape")
        try:
            # A scrape waits for no worker's group, nor takes the receivers' turn (storage.db.read_only).
            with read_only(self.retention.engine) as conn:
                for status, n in conn.execute(select(t.inbox.c.status, func.count()).group_by(t.inbox.c.status)):
                    depth.add_metric([status], n)
                for status, n in conn.execute(select(t.actions.c.status, func.count()).group_by(t.actions.c.status)):
                    actions.add_metric([status], n)
                oldest = conn.execute(select(func.min(t.inbox.c.received_at)).where(
                    t.inbox.c.status.in_(["pending", "processing"]))).scalar()
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        if oldest is not None:
            oldest = t.UTCDateTime().process_result_value(oldest, self.retention.engine.dialect)
        lag.add_metric([], max(0.0, (self.retention.now() - oldest).total_seconds()) if oldest else 0.0)
        up.add_metric([], 1)
        yield from (depth, actions, lag, up)


def render(retention) -> tuple[bytes, str]:
    """The exposition text: this process's (or every gunicorn worker's) counters plus storage gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for counter in (RECEIVED, DUPLICATE, REJECTED):
            registry.register(counter)
    registry.register(StorageCollector(retention))
    return generate_latest(registry), CONTENT_TYPE_LATEST

"""Where the servers listen: ``host:port`` parsing shared by ``serve`` and the receiver.

Apart from both so the receiver (``web``) and its launcher (``server``) need not import each other.
"""

from __future__ import annotations

#: Set by `retention serve` for its workers: the listener that alone answers /metrics ("" for none).
METRICS_BIND_ENV = "RETENTION_METRICS_BIND"


def split_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as (host, port).

    :raises ValueError: for anything else, saying what is expected.
    """
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{bind!r} is not host:port (e.g. 127.0.0.1:9412)")
    return host.strip("[]"), int(port)

"""Running the real receiver (gunicorn via `retention serve`) for tests and benchmarks."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_key(k: str) -> str:
    """A bare key, or a quoted one (a shop domain has dots)."""
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else '"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, cfg: dict) -> Path:
    lines = []
    for section, values in cfg.items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            lines.append(f"{toml_key(k)} = {toml_value(v)}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class ServerURL(str):
    """The receiver's base URL, plus where its metrics listener is and where its log goes."""

    metrics: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_ready(url: str, *, alive=lambda: True, timeout: float = 30.0, request_timeout: float = 5.0,
               died=lambda: "server exited") -> None:
    """Poll ``url`` until it answers 200; any request error, or any other status, means "not yet".

    A server under load may accept the connection and then be slow, reset it, or answer 503 while
    its workers start: none of that is a failure until ``timeout`` has passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError(died())
        try:
            if requests.get(url, timeout=request_timeout).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening, reset, too slow to answer, a broken response: all mean "not yet"
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become healthy in {timeout:g}s")
        time.sleep(0.05)  # readiness poll, not a timing assumption


@contextmanager
def running_server(config_path: Path, *, workers: int = 2, threads: int | None = 1, timeout: float = 30.0,
                   extra_args: tuple[str, ...] = ()):
    """`retention serve` on free ports; ``threads=None`` leaves the thread count to its default."""
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # The log goes to a file: a pipe nobody reads fills up and then blocks the server mid-test.
    log = Path(config_path).with_name(f"server-{port}.log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "retention_plugin", "--config", str(config_path), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), *(["--threads", str(threads)] if threads else []),
             "--metrics-bind", f"127.0.0.1:{metrics_port}", *extra_args],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    base = ServerURL(f"http://127.0.0.1:{port}")
    base.metrics = f"http://127.0.0.1:{metrics_port}"
    base.log = log
    try:
        wait_ready(base + "/healthz", alive=lambda: proc.poll() is None, timeout=timeout,
                   died=lambda: f"server exited: {base.log_text()}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- raw HTTP: what a hostile or broken client can send ------------------------------------------


def http_bytes(method: str, path: str, headers: list[tuple[str, str | bytes]], body: bytes | None = None, *,
               chunks: list[bytes] | None = None, content_length: bool = True, version: str = "HTTP/1.1") -> bytes:
    """One request, byte for byte: repeated headers stay repeated, nothing is normalised.

    ``chunks`` sends the body with ``Transfer-Encoding: chunked`` in those pieces.
    """
    lines = [f"{method} {path} {version}".encode()]
    if not any(name.lower() == "host" for name, _ in headers):
        lines.append(b"Host: 127.0.0.1")
    for name, value in headers:
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode("utf-8")))
    if chunks is not None:
        lines.append(b"Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
    else:
        payload = body or b""
        if content_length and body is not None:
            lines.append(b"Content-Length: %d" % len(payload))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def raw_http(base: str, data: bytes, timeout: float = 15.0) -> tuple[int | None, bytes]:
    """Send ``data`` on a new connection; the final status (None if the server just closed) and body."""
    from urllib.parse import urlparse

    u = urlparse(base)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and stopped reading; its answer may still be there
        received = b""
        while True:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            received += part
            status, body, done = _parse_response(received)
            if done:
                return status, body
    status, body, _ = _parse_response(received)
    return status, body


def _parse_response(data: bytes) -> tuple[int | None, bytes, bool]:
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0 or not data.startswith(b"HTTP/"):
            return None, b"", False
        head = data[:end].split(b"\r\n")
        status = int(head[0].split(b" ")[1])
        rest = data[end + 4:]
        if 100 <= status < 200:  # 100 Continue: the answer follows
            data = rest
            continue
        length = next((int(line.split(b":", 1)[1]) for line in head[1:]
                       if line.lower().startswith(b"content-length:")), None)
        if length is None or len(rest) >= length:
            return status, rest[:length] if length is not None else rest, length is not None
        return status, rest, False

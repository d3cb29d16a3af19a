"""A gunicorn worker that reads each request whole before a thread serves it.

gunicorn's threaded worker (``gthread``) gives a connection to a thread as
soon as it turns readable, and the thread then blocks until the request has
arrived. A client that sends half a request holds that thread for as long as
it likes: with the SQLite default of one thread per process, two such
clients stalled every delivery, eight with PostgreSQL's four. gunicorn's
answer is a buffering proxy in front (nginx), and that remains the advice for
production (docs/operations.md), but a receiver reachable without one must
not fall to two idle sockets.

:class:`RequestBufferingWorker` is ``gthread`` with the request read in its
event loop instead: the loop reads whatever each connection has sent, without
blocking, until the head and the whole body (``Content-Length`` bytes, or a
``chunked`` body up to its last chunk) are in memory, and only then hands the
request to a thread, whose parser finds every byte already there. A client
that has not sent its request within ``[server] read_timeout_seconds`` of
starting it is answered 408 and closed; a body past ``[server]
max_body_bytes`` is answered 413 without reading the rest. Closing a
connection no longer waits in the event loop for the client's FIN either
(gunicorn lingers up to two seconds there): the linger happens in the loop
too, a socket at a time, without blocking.

It relies on gthread's internals (``enqueue_req``, ``murder_pending``, the
``poller``), which is why ``pyproject.toml`` pins gunicorn to one major
version; ``tests/adversarial/test_adv_receiver_slow.py`` proves the behaviour
against the real server.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque

from gunicorn.workers.gthread import TConn, ThreadWorker

log = logging.getLogger("retention_plugin.web")

#: A request head (request line and header fields) longer than this is refused with 431.
MAX_HEAD_BYTES = 64 * 1024
#: A chunk-size line longer than this is not one (gunicorn's parser gets it, and refuses it).
MAX_CHUNK_LINE = 1024
#: How long a closing connection may take to send its FIN, as gunicorn's own graceful close.
LINGER_SECONDS = 2.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_BODY = 2 * 1024 * 1024

INCOMPLETE, COMPLETE, HEAD_TOO_LARGE, TOO_LARGE = "incomplete", "complete", "head_too_large", "too_large"


class RequestFrame:
    """Where one HTTP/1.x request ends, decided incrementally as bytes arrive.

    ``state(buf)`` is called with the whole buffer each time more arrived and
    resumes where it stopped, so a body sent in a million one-byte chunks
    costs one pass, not a million. It only needs to know when to stop
    reading: anything it cannot frame (a bad ``Content-Length``, both
    ``Content-Length`` and ``Transfer-Encoding``, a chunk size that is no
    number) is ``COMPLETE`` at once, and gunicorn's parser, which gets the
    bytes next, refuses it with a 400.
    """

    def __init__(self, max_body: int):
        self.max_body = max_body
        self.body_start: int | None = None
        self.length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.chunk_pos = 0  # next chunk-size line
        self.chunk_data = 0  # bytes of complete chunks so far

    def state(self, buf: bytes | bytearray) -> str:
        if self.body_start is None:
            verdict = self._head(buf)
            if verdict is not None:
                return verdict
        if self.chunked:
            return self._chunks(buf)
        if self.length is None:
            return COMPLETE
        if self.length > self.max_body:
            return TOO_LARGE
        return COMPLETE if len(buf) - self.body_start >= self.length else INCOMPLETE

    def _head(self, buf) -> str | None:
        start = 0
        while buf.startswith(b"\r\n", start):  # RFC 9112 2.2: empty lines before a request line are ignored
            start += 2
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            return HEAD_TOO_LARGE if len(buf) - start > MAX_HEAD_BYTES else INCOMPLETE
        if end - start > MAX_HEAD_BYTES:
            return HEAD_TOO_LARGE
        self.body_start = end + 4
        version_11 = buf[start:buf.find(b"\r\n", start)].rstrip().endswith(b"HTTP/1.1")
        transfer_encoding = None
        for line in bytes(buf[start:end]).split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                return COMPLETE  # malformed: gunicorn's parser refuses it
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                if self.length is not None or not value.isdigit():
                    return COMPLETE
                self.length = int(value)
            elif name == b"transfer-encoding":
                transfer_encoding = value.lower()
            elif name == b"expect" and version_11:
                self.expect_continue = value.lower() == b"100-continue"
        if transfer_encoding is not None:
            if self.length is not None or transfer_encoding.split(b",")[-1].strip() != b"chunked":
                return COMPLETE  # ambiguous framing: refused by the parser
            self.chunked = True
            self.chunk_pos = self.body_start
        return None

    def _chunks(self, buf) -> str:
        while True:
            eol = buf.find(b"\r\n", self.chunk_pos)
            if eol < 0:
                return COMPLETE if len(buf) - self.chunk_pos > MAX_CHUNK_LINE else INCOMPLETE
            size_text = bytes(buf[self.chunk_pos:eol]).split(b";", 1)[0].strip()
            if not size_text or len(size_text) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                return COMPLETE
            size = int(size_text, 16)
            data_start = eol + 2
            if size == 0:
                # Optional trailer fields, then an empty line.
                if buf.startswith(b"\r\n", data_start) or buf.find(b"\r\n\r\n", data_start) >= 0:
                    return COMPLETE
                return HEAD_TOO_LARGE if len(buf) - data_start > MAX_HEAD_BYTES else INCOMPLETE
            if self.chunk_data + size > self.max_body:
                return TOO_LARGE
            if len(buf) < data_start + size + 2:
                return INCOMPLETE
            if buf[data_start + size:data_start + size + 2] != b"\r\n":
                return COMPLETE
            self.chunk_data += size
            self.chunk_pos = data_start + size + 2


def _answer(status: str, error: str, detail: str) -> bytes:
    body = ('{"error": "%s", "detail": "%s"}' % (error, detail)).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class _Reading:
    """A connection whose request is still arriving."""

    __slots__ = ("conn", "buf", "frame", "deadline", "continued")

    def __init__(self, conn, buf: bytes, max_body: int, deadline: float):
        self.conn = conn
        self.buf = bytearray(buf)
        self.frame = RequestFrame(max_body)
        self.deadline = deadline
        self.continued = False


class _Conn(TConn):
    """gthread's connection, whose graceful close lingers in the worker's loop instead of blocking it."""

    def __init__(self, worker, *args):
        super().__init__(*args)
        self.worker = worker

    def close(self, graceful=False):
        # gthread closes gracefully from its event loop (finish_request), the one thread that
        # may touch the poller; anywhere else keeps gunicorn's own close.
        if graceful and threading.current_thread() is threading.main_thread():
            self.worker.linger(self.sock)
        else:
            super().close(graceful)


class RequestBufferingWorker(ThreadWorker):
    read_timeout = DEFAULT_READ_TIMEOUT
    max_body = DEFAULT_MAX_BODY

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reading: dict[int, _Reading] = {}
        self.lingering: deque[tuple[float, socket.socket]] = deque()

    def init_process(self):
        self.read_timeout, self.max_body = limits_from_config()
        super().init_process()

    # --- connections in -----------------------------------------------------------------

    def accept(self, listener):
        try:
            sock, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        # A backstop for the thread's reads, which should find every byte already
        # buffered: a blocking recv gives up after this long instead of never.
        seconds = max(1, int(self.read_timeout))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, 0))
        except OSError:
            pass
        self.enqueue_req(_Conn(self, self.cfg, sock, addr, listener.getsockname()))

    def enqueue_req(self, conn):
        """Every request passes here first: new connections, kept-alive ones, pipelined leftovers."""
        if self.cfg.is_ssl:  # TLS bytes cannot be framed here; terminate TLS in front (docs/operations.md)
            super().enqueue_req(conn)
            return
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.sock.setblocking(False)
        reading = _Reading(conn, leftover, self.max_body, time.monotonic() + self.read_timeout)
        if leftover and self._advance(reading):
            return
        self.reading[conn.sock.fileno()] = reading
        self.poller.register(conn.sock, selectors.EVENT_READ, lambda _sock, r=reading: self._readable(r))
        self._readable(reading)

    def _readable(self, reading: _Reading) -> None:
        sock = reading.conn.sock
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(reading)
                return
            if not data:  # the client went away before its request was whole
                self._drop(reading)
                return
            reading.buf += data
            if self._advance(reading):
                return

    def _advance(self, reading: _Reading) -> bool:
        """Act on the buffer; True once the connection left the reading state."""
        if len(reading.buf) > 4 * self.max_body + MAX_HEAD_BYTES:
            # Only a body of tiny chunks gets here (their framing outweighs the data).
            _count_too_large(reading.buf)
            self._refuse(reading, "413 Content Too Large", "too_large", f"body exceeds {self.max_body} bytes")
            return True
        state = reading.frame.state(reading.buf)
        if state == INCOMPLETE:
            if reading.frame.expect_continue and not reading.continued:
                reading.continued = True
                self._send(reading.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            return False
        if state == COMPLETE:
            self._dispatch(reading)
        elif state == TOO_LARGE:
            # Answered here, not by the application: gunicorn ignores an application's
            # "Connection: close" and would drain the unread body in a thread, waiting on
            # the client to send it.
            _count_too_large(reading.buf)
            self._refuse(reading, "413 Content Too Large", "too_large", f"body exceeds {self.max_body} bytes")
        elif state == HEAD_TOO_LARGE:
            self._refuse(reading, "431 Request Header Fields Too Large", "header_too_large",
                         f"request head exceeds {MAX_HEAD_BYTES} bytes")
        return True

    def _unregister(self, reading: _Reading) -> None:
        fd = reading.conn.sock.fileno()
        if self.reading.pop(fd, None) is not None:
            try:
                self.poller.unregister(reading.conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _dispatch(self, reading: _Reading) -> None:
        self._unregister(reading)
        conn = reading.conn
        if conn.parser is None:
            conn.init()  # creates gthread's parser; no TLS here, so it reads nothing
        conn.parser.unreader.unread(bytes(reading.buf))
        conn.data_ready = True
        super().enqueue_req(conn)

    def _drop(self, reading: _Reading) -> None:
        self._unregister(reading)
        self.nr_conns -= 1
        try:
            reading.conn.sock.close()
        except OSError:
            pass

    def _refuse(self, reading: _Reading, status: str, error: str, detail: str) -> None:
        self._unregister(reading)
        self.nr_conns -= 1
        self._send(reading.conn.sock, _answer(status, error, detail))
        self.linger(reading.conn.sock)

    @staticmethod
    def _send(sock, data: bytes) -> None:
        try:
            sock.send(data)  # non-blocking; a small answer fits in any socket buffer
        except OSError:
            pass

    # --- timeouts -------------------------------------------------------------------------

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for reading in [r for r in self.reading.values() if r.deadline <= now]:
            self._refuse(reading, "408 Request Timeout", "request_timeout",
                         f"the request did not arrive within {self.read_timeout:g} seconds")
        while self.lingering and self.lingering[0][0] <= now:
            _, sock = self.lingering.popleft()
            self._close_lingering(sock)

    # --- closing without blocking ------------------------------------------------------------

    def linger(self, sock) -> None:
        """Half-close, let the client read our answer and hang up; give up after LINGER_SECONDS."""
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, self._drain)
        except (OSError, KeyError, ValueError):
            self._close_lingering(sock)
            return
        self.lingering.append((time.monotonic() + LINGER_SECONDS, sock))

    def _drain(self, sock) -> None:
        try:
            while sock.recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close_lingering(sock)  # EOF or error: the client is done

    def _close_lingering(self, sock) -> None:
        if sock.fileno() < 0:
            return
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        try:
            sock.close()
        except OSError:
            pass


def _count_too_large(buf) -> None:
    """The receiver's rejection counter and log line, as when the application refuses a body."""
    path = bytes(buf[:512]).lstrip(b"\r\n").split(b" ", 2)[1:2]
    platform = {b"/webhooks/shopify": "shopify", b"/webhooks/zendesk": "zendesk"}.get(path[0] if path else b"")
    if platform is None:
        return
    from . import metrics

    metrics.REJECTED.labels(platform, "too_large").inc()
    log.warning("rejected %s webhook: body too large", platform)


def limits_from_config() -> tuple[float, int]:
    """``[server] read_timeout_seconds`` and ``max_body_bytes`` of the config named by RETENTION_CONFIG.

    With no readable configuration the defaults apply; the application then
    answers 503 to everything and says why.
    """
    path = os.environ.get("RETENTION_CONFIG")
    if not path:
        return DEFAULT_READ_TIMEOUT, DEFAULT_MAX_BODY
    from .config import ConfigError, load_core, read_raw, resolve_path

    try:
        server = load_core(read_raw(resolve_path(path)), resolve_path(path)).section("server")
    except ConfigError:
        return DEFAULT_READ_TIMEOUT, DEFAULT_MAX_BODY
    return float(server["read_timeout_seconds"]), int(server["max_body_bytes"])

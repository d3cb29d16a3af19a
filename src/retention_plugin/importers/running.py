"""Running a file parser and the batch writer: in one process, or the parser in a second one for big files."""

from __future__ import annotations

import gc
import multiprocessing
import os
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator

from .report import ImportFileError, ImportReport
from .writer import ImportOrder, OrderWriter


#: By default, files at least this big are parsed in a second process while this one writes,
#: on machines with at least PARALLEL_MIN_CPUS processors (below that the second process only
#: competes for the same CPU: on a busy 2-vCPU machine it measured no faster).
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
PARALLEL_MIN_CPUS = 4


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

Parser = Callable[..., Iterator[ImportOrder]]


def import_orders(parse: Parser, parse_kwargs: dict, engine, now: datetime, *, strict: bool = False,
                  parallel: bool | None = None, chunk_size: int = 5000,
                  on_read: Callable[[int], None] | None = None,
                  on_restart: Callable[[], None] | None = None, app=None) -> ImportReport:
    """Run ``parse(**parse_kwargs, report=, on_read=)`` and write what it yields.

    :param strict: read everything first and write nothing if any row is rejected
        (``report.extra["written"]`` says whether anything was written).
    :param parallel: parse in a second process; ``None`` decides by file size and CPUs.
    :param on_read: progress callback with the bytes read so far (per call, the increment).
    :param on_restart: called between the strict check and the import, to reset progress.
    :param app: the Retention app, whose plugins move their rows when the import merges two customers.
    """
    with paused_gc():
        return _import_orders(parse, parse_kwargs, engine, now, strict=strict, parallel=parallel,
                              chunk_size=chunk_size, on_read=on_read, on_restart=on_restart, app=app)


@contextmanager
def paused_gc():
    """No cyclic garbage collection while importing.

    The import makes millions of short-lived objects and keeps a few hundred
    thousand (customers, keys seen); every full collection would walk them
    all again. Nothing here makes reference cycles that matter; one
    collection runs at the end.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
            gc.collect()


def _import_orders(parse, parse_kwargs, engine, now, *, strict, parallel, chunk_size, on_read, on_restart, app):
    report = ImportReport()
    if strict:
        for _ in parse(**parse_kwargs, report=report, on_read=on_read):
            pass
        if report.rejected_rows:
            report.extra["written"] = False
            return report
        report = ImportReport()
        if on_restart is not None:
            on_restart()
    if parallel is None:
        path = parse_kwargs.get("path")
        try:
            size = os.path.getsize(path) if path is not None else 0
        except OSError:
            size = 0
        parallel = size >= PARALLEL_MIN_BYTES and _cpus() >= PARALLEL_MIN_CPUS
    with OrderWriter(engine, now, report, chunk_size=chunk_size, app=app) as writer:
        if parallel:
            _import_parallel(parse, parse_kwargs, writer, report, on_read, chunk_size)
        else:
            for order in parse(**parse_kwargs, report=report, on_read=on_read):
                writer.add(order)
    report.extra["written"] = True
    return report


def _import_parallel(parse, parse_kwargs, writer, report, on_read, chunk_size) -> None:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue(maxsize=4)
    child = ctx.Process(target=_parse_child, args=(parse, parse_kwargs, q, chunk_size),
                        name="retention-import-parser", daemon=True)
    child.start()
    try:
        while True:
            try:
                kind, payload, read, rejects, rejected_rows = q.get(timeout=5)
            except Exception:  # queue.Empty: is the child still there?
                if not child.is_alive():
                    raise RuntimeError(f"the parser process died (exit code {child.exitcode})") from None
                continue
            report.rejects.extend(rejects)
            report.rejected_rows += rejected_rows
            if read and on_read is not None:
                on_read(read)
            if kind == "orders":
                for order in payload:
                    writer.add(order)
            elif kind == "done":
                return
            else:  # "error": (exception class name, message)
                name, message = payload
                raise ImportFileError(message) if name == "ImportFileError" else RuntimeError(
                    f"parsing failed: {name}: {message}")
    finally:
        if child.is_alive():
            child.terminate()
        child.join()


def _parse_child(parse, parse_kwargs, q, chunk_size) -> None:
    gc.disable()  # see paused_gc
    report = ImportReport()
    state = {"read": 0, "rejects": 0, "rows": 0}

    def on_read(n):
        state["read"] += n

    def send(kind, payload):
        new_rejects = report.rejects[state["rejects"]:]
        state["rejects"] = len(report.rejects)
        rows = report.rejected_rows - state["rows"]
        state["rows"] = report.rejected_rows
        read, state["read"] = state["read"], 0
        q.put((kind, payload, read, new_rejects, rows))

    try:
        batch = []
        for order in parse(**parse_kwargs, report=report, on_read=on_read):
            batch.append(order)
            if len(batch) >= chunk_size:
                send("orders", batch)
                batch = []
        if batch:
            send("orders", batch)
        send("done", None)
    except BaseException as e:  # reported to the parent, which raises
        send("error", (type(e).__name__, str(e)))

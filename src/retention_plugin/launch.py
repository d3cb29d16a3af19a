"""The ``retention`` console script: a short way in for commands that need no plugins.

``retention analyze fit`` and ``retention analyze evaluate`` read a CSV and
print numbers; they use neither the configuration nor any plugin. Loading
the plugin manager first (every built-in feature, SQLAlchemy, Alembic,
marshmallow...) costs about a second, more than the whole fit of 200,000
customers, so those two go straight to the ``analyze`` group. Everything
else, ``--help`` included, goes through :func:`retention_plugin.cli.main`.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]

#: ``analyze`` subcommands that read only their own options and files.
STANDALONE = {"fit", "evaluate", "score"}


def standalone_args(argv: list[str]) -> list[str] | None:
    """The arguments after ``analyze`` when ``argv`` runs a standalone command, else None."""
    i = 0
    while i < len(argv) and (argv[i].startswith("--config") or argv[i] in ("-v", "--verbose")):
        i += 1 if "=" in argv[i] or not argv[i].startswith("--config") else 2
    if argv[i:i + 1] == ["analyze"] and len(argv) > i + 1 and argv[i + 1] in STANDALONE:
        return argv[i + 1:]
    return None


def _exit_now(code: int) -> None:
    """End the process once what it printed is out, skipping the interpreter's teardown.

    The command's files are written and closed by then and it registers no exit handler; what
    the teardown would do (freeing numpy's and pyarrow's modules, pyarrow's thread pools and
    memory pool) took 20-30 ms, about a twentieth of a fit of 200,000 customers.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: the reader is gone, and the exit says something went wrong
        code = code or 1
    os._exit(code)


def _reuse_freed_memory() -> None:
    """Have glibc's allocator keep the blocks numpy frees, for the next array of the same size.

    By default an array of more than a few MB is mapped fresh from the kernel and unmapped when
    freed, so each of the summary's and the fit's temporaries is zeroed page by page again. Below
    32 MB (glibc's ceiling for this threshold: two million int64 are 17 MB) they now come from the
    heap, which is not trimmed while the command runs. Only the command's own process is changed,
    and nothing happens on a C library without ``mallopt``.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):  # not glibc (musl has no such knobs; Windows no CDLL(None))
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 1 << 30)


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    rest = standalone_args(args)
    if rest is not None:
        # numpy's OpenBLAS starts a thread per core at import, about 0.1 s of CPU (a sixth of a fit
        # of 200,000 customers, docs/performance.md), for matrix products these commands never make
        # large enough to share out. A value the user set is kept.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        if argv is None:  # the console script's own process, not a program that calls main()
            _reuse_freed_memory()
        # pyarrow parses the file on its own threads while numpy, click and the command import.
        from .analysis import readahead

        readahead.start(rest[1:])
        from .analysis.commands import analyze

        if argv is not None:  # called from Python (tests, scripts): an ordinary return
            return analyze.main(args=rest, prog_name="retention analyze")
        try:
            analyze.main(args=rest, prog_name="retention analyze")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        _exit_now(code)
    from .cli import main as full_main

    return full_main(argv)

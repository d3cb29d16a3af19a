"""Wall time and peak memory of one command run as its own process, for the bench scripts.

The peak comes from GNU time (`/usr/bin/time -f %M`), which forks the command
itself: a child forked straight from a bench script would report the
script's own peak instead (Linux carries the parent's high-water mark into
a forked child across exec, and the generated data makes that large).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time

__all__ = ["run_measured", "spread"]

GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak resident MB, standard output and error) of ``cmd``; raises if it fails."""
    if GNU_TIME is None:
        raise SystemExit("GNU time is needed for peak memory: apt-get install time")
    with tempfile.NamedTemporaryFile("w+", suffix=".time") as report, tempfile.TemporaryFile("w+") as out:
        t = time.perf_counter()
        proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", report.name, *cmd], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=None if env is None else {**os.environ, **env})
        wall = time.perf_counter() - t
        out.seek(0)
        text = out.read()
        report.seek(0)
        peak_kb = report.read().strip().splitlines()[-1]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return wall, int(peak_kb) / 1024, text


def spread(values) -> str:
    """Median (min-max)."""
    return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"

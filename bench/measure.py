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

__all__ = ["run_measured", "run_counted", "spread"]

GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak resident MB, standard output and error) of ``cmd``; raises if it fails."""
    wall, peak, _, text = run_counted(cmd, env)
    return wall, peak, text


def run_counted(cmd: list[str], env: dict | None = None) -> tuple[float, float, float, str]:
    """(wall seconds, peak resident MB, CPU seconds (user + system), output) of ``cmd``.

    On a shared machine CPU seconds move less than wall time: they leave out the
    time spent waiting for a core (but also what threads saved by running at once).
    """
    if GNU_TIME is None:
        raise SystemExit("GNU time is needed for peak memory: apt-get install time")
    with tempfile.NamedTemporaryFile("w+", suffix=".time") as report, tempfile.TemporaryFile("w+") as out:
        t = time.perf_counter()
        proc = subprocess.run([GNU_TIME, "-f", "%M %U %S", "-o", report.name, *cmd], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=None if env is None else {**os.environ, **env})
        wall = time.perf_counter() - t
        out.seek(0)
        text = out.read()
        report.seek(0)
        peak_kb, user, system = report.read().strip().splitlines()[-1].split()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return wall, int(peak_kb) / 1024, float(user) + float(system), text


def spread(values) -> str:
    """Median (min-max)."""
    return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"

"""Where one worker's time and statements go: N stored deliveries through `Worker.run(burst=True)` in process.

The same deliveries and configuration as ``bench_worker.py`` (built-ins on), on a fresh SQLite or
PostgreSQL database, but the worker runs in this process so that it can be profiled. Prints the
worker's CPU ms per event and statements per event, then the most frequent statements per event
(the first 100 characters of each), and with ``--profile`` the functions with the most cumulative
time (cProfile; the profiler roughly doubles the CPU time, so take the CPU figure from a run
without it).

    python bench/profile_worker.py [--events 500] [--db sqlite] [--top 25] [--profile]

To compare two trees, run the same command with ``PYTHONPATH=<other tree>/src``.
"""

from __future__ import annotations

import argparse
import cProfile
import collections
import io
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_worker  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=500)
    p.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()

    from sqlalchemy import event

    from retention_plugin.worker import Worker

    with tempfile.TemporaryDirectory() as tmp:
        url = bench_worker.fresh_database(a.db, Path(tmp))
        try:
            bench_worker.child_ingest(url, a.events)
            app = bench_worker.make_app(url)
            seen: collections.Counter[str] = collections.Counter()

            @event.listens_for(app.engine, "before_cursor_execute")
            def count(conn, cursor, statement, parameters, context, executemany):
                seen[re.sub(r"\s+", " ", statement)[:100]] += 1

            worker = Worker(app, name="profile")
            profiler = cProfile.Profile() if a.profile else None
            cpu = time.process_time()
            if profiler:
                profiler.enable()
            counts = worker.run(burst=True)
            if profiler:
                profiler.disable()
            cpu = time.process_time() - cpu
            app.dispose()
        finally:
            bench_worker.drop_database(a.db, url)
    n = max(1, counts.processed)
    print(f"{'db':<11}{'events':>7}{'CPU ms/ev':>10}{'SQL/event':>10}{'profiled':>9}")
    print(f"{a.db:<11}{counts.processed:>7}{1000 * cpu / n:>10.2f}{sum(seen.values()) / n:>10.1f}"
          f"{'yes' if profiler else 'no':>9}")
    print(f"\n{'per event':>9}  statement")
    for statement, k in seen.most_common(a.top):
        print(f"{k / n:>9.2f}  {statement}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(a.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()

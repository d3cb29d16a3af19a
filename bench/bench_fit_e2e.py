"""End to end: CSV of orders -> BG/NBD parameters, `retention analyze fit` against `lifetimes`.

    python bench/bench_fit_e2e.py [--customers 200000] [--runs 5] [--venv /tmp/lifetimes-venv]
                                  [--readers] [--steps] [--skip-lifetimes]

Both sides run as a user runs them, as whole processes on the same file:

- ours: the `retention` console script of this environment,
  `retention analyze fit --transactions F --calibration-end D --model bgnbd --json`;
- lifetimes: a script (written next to the file, `fit_lifetimes.py`) doing what
  its documentation shows: `pandas.read_csv(..., parse_dates=["date"])`,
  `summary_data_from_transaction_data(..., freq="D", freq_multiplier=7)` (the
  exact recency and T in weeks that the published CDNOW table uses, so both sides
  fit the same numbers) and `BetaGeoFitter().fit(...)`, printing the parameters.
  `lifetimes` is not a dependency of this project: the script makes its own
  virtual environment for it (`pip install lifetimes`: 0.11.3 runs with current
  pandas, numpy, scipy and autograd; `--lifetimes-pins` installs other versions
  there if a release breaks it).

The two commands run in turn (ours, lifetimes, ours, ...) so a change in the
machine's speed hits both; each run's wall time is measured around the child,
its CPU seconds (user + system) and peak resident memory are GNU time's
(bench/measure.py says why). The table gives medians with min-max and the ratio
of each pair. On a machine shared with other work, CPU seconds are the steadier
figure: waiting for a core does not count in them.

Both sides fit at the file's last order day (rows are in date order: the last
row's date), the latest cut-off `retention analyze fit` accepts.

The file (`--customers` N; 200,000 by default, about 2.1 million rows, 65 MB):
customers are drawn from a BG/NBD population (purchase rate ~ Gamma(r=0.6,
rate 3.5) per week, dropout probability after each purchase ~ Beta(0.4, 4)),
born on a uniformly drawn day of the first 12 weeks of 2023 and watched to
2024-12-29; each customer's orders are their first purchase plus the BG/NBD
repeat purchases (Poisson arrivals until dropout) on whole days, so some days
hold two orders. Order values are Gamma-Gamma (p=6.25, q=3.74, gamma=15.44,
the published CDNOW spend fit), in cents. Customer ids are 13-digit numbers
like Shopify's; rows are in date order, as a shop's export is. Fixed seed:
the same N gives the same file.

`--readers` adds the measurement behind the choice of reader: the same file
read into numpy columns (ids, days, amounts) by pyarrow's CSV reader as
`read_transactions_csv` does it, by polars (`pip install polars` to include
it), and by the standard library's `csv` module (the reader before pyarrow),
each as a whole process.

`--steps` says where each side's time goes: each command run once more per
round inside a small harness that reads CPU seconds and the clock around its
steps (ours: the reading functions of analysis/transactions.py, the summary,
the fit; lifetimes: its imports, `read_csv`, the summary, the fit), with the
interpreter's own start-up measured as `python -c pass`, and the import floor
of our command, `python -c "import numpy, click, pyarrow.csv, pyarrow._compute"`,
as whole processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_counted, run_measured as run, spread  # noqa: E402

START, END = np.datetime64("2023-01-02"), np.datetime64("2024-12-29")

LIFETIMES_SCRIPT = '''\
import json, sys
import pandas as pd
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data

path, cal_end = sys.argv[1], sys.argv[2]
df = pd.read_csv(path, parse_dates=["date"])
s = summary_data_from_transaction_data(df, "customer_id", "date", observation_period_end=cal_end,
                                       freq="D", freq_multiplier=7)
f = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
print(json.dumps({"customers": len(s), "params": {k: float(v) for k, v in f.params_.items()}}))
'''

# Ours, step by step: the command run in process, CPU seconds and the clock read around the
# functions that do each step. Printed as JSON {step: [wall, cpu]}.
STEPS_OURS = '''
import json, resource, sys, time


def now():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime


steps = {}
start = now()
from retention_plugin import launch  # noqa: E402
from retention_plugin.analysis import commands, summary, transactions  # noqa: E402,F401
import pyarrow.csv  # noqa: E402
from retention_plugin.analysis.models import bgnbd  # noqa: E402
after_imports = now()


def timed(owner, name, step, method=False):
    f = getattr(owner, name)
    f = f.__func__ if method else f

    def run(*a, **k):
        t = now()
        try:
            return f(*a, **k)
        finally:
            u = now()
            w, c = steps.get(step, (0.0, 0.0))
            steps[step] = (w + u[0] - t[0], c + u[1] - t[1])
    setattr(owner, name, classmethod(run) if method else run)


timed(pyarrow.csv, "read_csv", "parse: pyarrow read_csv (ids as text, dates, amounts)")
# The amounts and days are copied out on one thread while the ids are cast on two: one step.
timed(transactions, "_both", "amounts, days, ids to integers (cast, canonical check), at once")
timed(transactions, "_codes", "customer codes: pyarrow hash (text ids only)")
timed(summary, "_summarize_codes", "summary: ids and days in one sort (distinct days)")
timed(summary.Summary, "distinct_rows", "distinct (x, t_x, T) rows with weights")
timed(bgnbd.BGNBD, "fit", "BG/NBD fit: Newton, Hessian, standard errors", method=True)
import contextlib, io  # noqa: E402,E401
launch._reuse_freed_memory()  # as the console script does in its own process
with contextlib.redirect_stdout(io.StringIO()):
    try:
        launch.main(["analyze", "fit", "--transactions", sys.argv[1], "--calibration-end", sys.argv[2],
                     "--model", "bgnbd", "--json"])
    except SystemExit as exc:
        assert not exc.code, exc.code
end = now()
out = {"imports (numpy, click, pyarrow, ours) after the interpreter": (after_imports[0] - start[0],
                                                                      after_imports[1] - start[1])}
out.update(steps)
out["everything else (checks, JSON, the rest of reading)"] = tuple(
    (end[i] - after_imports[i]) - sum(v[i] for v in steps.values()) for i in (0, 1))
print(json.dumps(out))
'''

STEPS_LIFETIMES = '''
import json, resource, sys, time


def now():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime


marks = [now()]
import pandas as pd  # noqa: E402
from lifetimes import BetaGeoFitter  # noqa: E402
from lifetimes.utils import summary_data_from_transaction_data  # noqa: E402
marks.append(now())
df = pd.read_csv(sys.argv[1], parse_dates=["date"])
marks.append(now())
s = summary_data_from_transaction_data(df, "customer_id", "date", observation_period_end=sys.argv[2],
                                       freq="D", freq_multiplier=7)
marks.append(now())
BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
marks.append(now())
names = ["imports (pandas, lifetimes, scipy, autograd) after the interpreter", "read_csv with parse_dates",
         "summary_data_from_transaction_data", "BetaGeoFitter().fit"]
print(json.dumps({n: (b[0] - a[0], b[1] - a[1]) for n, a, b in zip(names, marks, marks[1:])}))
'''

IMPORT_FLOOR = "import numpy, click, pyarrow.csv, pyarrow._compute"

READERS = {
    "pyarrow (read_transactions_csv)": '''
import sys
from retention_plugin.analysis.transactions import read_transactions_csv
tx = read_transactions_csv(sys.argv[1])
print(len(tx.days), len(tx.customer_ids))  # integer ids come back as int64 ids, not codes
''',
    "polars read_csv": '''
import sys
import numpy as np, polars as pl
df = pl.read_csv(sys.argv[1], schema_overrides={"customer_id": pl.Int64, "date": pl.Date, "amount": pl.Float64})
ids = df["customer_id"].to_numpy()
days = df["date"].to_physical().to_numpy().astype(np.int64)
amounts = df["amount"].to_numpy()
print(len(days), len(ids))
''',
    "stdlib csv (the reader before)": '''
import sys
from pathlib import Path
from retention_plugin.analysis.transactions import _read_python
tx = _read_python(Path(sys.argv[1]), ["customer_id", "date", "amount"], {"customer": 0, "date": 1, "amount": 2},
                  {"customer": "customer_id", "date": "date", "amount": "amount"}, ",")
print(len(tx.days))
''',
}


def generate(path: Path, customers: int, seed: int = 18) -> int:
    """Write the orders of ``customers`` simulated customers to ``path``; returns the row count."""
    rng = np.random.default_rng(seed)
    start, end = START.astype(np.int64), END.astype(np.int64)
    birth = start + rng.integers(0, 84, customers)
    T = (end - birth) / 7.0  # weeks watched after the first purchase
    lam = rng.gamma(0.6, 1 / 3.5, customers)
    p = np.clip(rng.beta(0.4, 4.0, customers), 1e-9, 1.0)
    n = rng.poisson(lam * T)  # purchases a never-leaving customer would make
    x = np.minimum(n, rng.geometric(p))  # ... cut at the purchase after which they leave
    who = np.repeat(np.arange(customers), n)
    when = rng.random(len(who)) * np.repeat(T, n)
    order = np.lexsort((when, who))
    who, when = who[order], when[order]
    rank = np.arange(len(who)) - np.repeat(np.cumsum(n) - n, n)
    keep = rank < np.repeat(x, n)  # the first x of the n arrivals
    who, when = who[keep], when[keep]
    cust = np.concatenate([np.arange(customers), who])
    day = np.concatenate([birth, birth[who] + np.floor(when * 7).astype(np.int64)])
    nu = rng.gamma(3.74, 1 / 15.44, customers)
    amount = np.round(rng.gamma(6.25, 1 / nu[cust]), 2)
    ids = 6_000_000_000_000 + rng.choice(10**9, customers, replace=False)
    order = np.lexsort((cust, day))
    cust, day, amount = cust[order], day[order], amount[order]
    dates = day.astype("datetime64[D]").astype(str)
    with path.open("w") as fh:
        fh.write("customer_id,date,amount\n")
        step = 200_000
        for i in range(0, len(cust), step):
            part = slice(i, i + step)
            fh.writelines(f"{c},{d},{a:.2f}\n" for c, d, a in
                          zip(ids[cust[part]].tolist(), dates[part].tolist(), amount[part].tolist()))
    return len(cust)


def last_date(path: Path) -> str:
    """The date on the file's last row (the rows are in date order)."""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 200))
        return fh.read().decode().strip().splitlines()[-1].split(",")[1]


def step_table(cmd: list[str], runs: int) -> dict:
    """{step: (median wall, median CPU)} over ``runs`` runs of a child that prints {step: [wall, cpu]}."""
    import statistics

    rounds = [json.loads(run(cmd)[2].strip().splitlines()[-1]) for _ in range(runs)]
    return {k: (statistics.median(r[k][0] for r in rounds), statistics.median(r[k][1] for r in rounds))
            for k in rounds[0]}


def print_steps(args, csv_path: Path, cal_end: str, theirs_py: Path | None) -> None:
    import statistics

    def whole(cmd):
        rs = [run_counted(cmd)[2] for _ in range(args.runs)]
        return statistics.median(rs)

    print(f"\nwhere the time goes (medians of {args.runs} runs; CPU = user + system seconds)")
    print(f"{'step':<72} {'wall s':>7} {'CPU s':>7}")
    print(f"{'interpreter start-up (python -c pass, whole process)':<72} {'':>7} "
          f"{whole([sys.executable, '-c', 'pass']):>7.3f}")
    rows = step_table([sys.executable, "-c", STEPS_OURS, str(csv_path), cal_end], args.runs)
    for k, (w, c) in rows.items():
        print(f"{'ours: ' + k:<72} {w:>7.3f} {c:>7.3f}")
    floor = f'ours: the import floor alone (python -c "{IMPORT_FLOOR}")'
    print(f"{floor:<72} {'':>7} {whole([sys.executable, '-c', IMPORT_FLOOR]):>7.3f}")
    if theirs_py is not None:
        print(f"{'lifetimes: interpreter start-up (python -c pass)':<72} {'':>7} "
              f"{whole([str(theirs_py), '-c', 'pass']):>7.3f}")
        for k, (w, c) in step_table([str(theirs_py), "-c", STEPS_LIFETIMES, str(csv_path), cal_end],
                                    args.runs).items():
            print(f"{'lifetimes: ' + k:<72} {w:>7.3f} {c:>7.3f}")


def ensure_lifetimes(venv: Path, pins: list[str]) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(py), "-c", "import lifetimes"], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "lifetimes", *pins], check=True)
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench-fit-e2e"))
    ap.add_argument("--venv", type=Path, default=Path("/tmp/lifetimes-venv"))
    ap.add_argument("--lifetimes-pins", nargs="*", default=[], help='e.g. "pandas<2.2" "numpy<2"')
    ap.add_argument("--skip-lifetimes", action="store_true")
    ap.add_argument("--readers", action="store_true", help="also time the CSV readers on their own")
    ap.add_argument("--steps", action="store_true", help="also say where each side's time goes, step by step")
    args = ap.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    csv_path = args.dir / f"orders-{args.customers}.csv"
    if not csv_path.exists():
        t = time.perf_counter()
        rows = generate(csv_path, args.customers)
        print(f"generated {csv_path} in {time.perf_counter() - t:.1f} s")
    else:
        with csv_path.open("rb") as fh:
            rows = sum(1 for _ in fh) - 1
    cal_end = last_date(csv_path)
    print(f"file: {args.customers:,} customers, {rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB; "
          f"fitted at {cal_end}, its last order day\n")

    retention = shutil.which("retention", path=str(Path(sys.executable).parent)) or shutil.which("retention")
    ours_cmd = [retention, "analyze", "fit", "--transactions", str(csv_path), "--calibration-end", cal_end,
                "--model", "bgnbd", "--json"]
    theirs_cmd = py = None
    if not args.skip_lifetimes:
        py = ensure_lifetimes(args.venv, args.lifetimes_pins)
        script = args.dir / "fit_lifetimes.py"
        script.write_text(LIFETIMES_SCRIPT)
        theirs_cmd = [str(py), str(script), str(csv_path), cal_end]

    results = {"ours": [], "lifetimes": []}
    outputs = {}
    run(ours_cmd)  # warm the page cache and the bytecode caches, uncounted
    if theirs_cmd:
        run(theirs_cmd)
    for _ in range(args.runs):
        for name, cmd in (("ours", ours_cmd), ("lifetimes", theirs_cmd)):
            if cmd:
                wall, peak, cpu, text = run_counted(cmd)
                results[name].append((wall, peak, cpu))
                outputs[name] = text

    print(f"{'command':<46} {'wall s median (min-max)':>24} {'CPU s median (min-max)':>23} "
          f"{'peak MB median (min-max)':>26}")
    labels = {"ours": "retention analyze fit --model bgnbd",
              "lifetimes": "lifetimes: read_csv + summary + BetaGeoFitter"}
    for name, rs in results.items():
        if rs:
            print(f"{labels[name]:<46} {spread([r[0] for r in rs]):>24} {spread([r[2] for r in rs]):>23} "
                  f"{spread([r[1] for r in rs]):>26}")
    ours_out = json.loads(outputs["ours"][outputs["ours"].index("{"):])
    if results["lifetimes"]:
        pairs = list(zip(results["ours"], results["lifetimes"]))
        wall = [lt[0] / us[0] for us, lt in pairs]
        cpu = [lt[2] / us[2] for us, lt in pairs]
        mem = [lt[1] / us[1] for us, lt in pairs]
        print(f"\nlifetimes / ours, per pair: wall {spread(wall).strip()}x; CPU {spread(cpu).strip()}x; "
              f"peak memory {spread(mem).strip()}x")
        theirs_out = json.loads(outputs["lifetimes"].strip().splitlines()[-1])
        diff = max(abs(ours_out["params"][k] - v) / abs(v) for k, v in theirs_out["params"].items())
        print(f"customers: ours {ours_out['customers']:,}, lifetimes {theirs_out['customers']:,}; "
              f"largest relative parameter difference {diff:.1e}")
    print("params: " + ", ".join(f"{k}={v:.6g}" for k, v in ours_out["params"].items()))

    if args.steps:
        print_steps(args, csv_path, cal_end, py)

    if args.readers:
        print(f"\n{'reader (whole process: import + read to numpy)':<48} {'wall s median (min-max)':>25} "
              f"{'CPU s median (min-max)':>25} {'peak MB median (min-max)':>26}")
        for name, code in READERS.items():
            if name.startswith("polars") and subprocess.run([sys.executable, "-c", "import polars"],
                                                            capture_output=True).returncode:
                print(f"{name:<48} {'(polars not installed)':>25}")
                continue
            runs = 1 if name.startswith("stdlib") else args.runs
            rs = [run_counted([sys.executable, "-c", code, str(csv_path)])[:3] for _ in range(runs)]
            print(f"{name:<48} {spread([w for w, _, _ in rs]):>25} {spread([c for _, _, c in rs]):>25} "
                  f"{spread([p for _, p, _ in rs]):>26}")
    print(f"\nmachine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the end; "
          f"python {sys.version.split()[0]}; numpy {np.__version__}")


if __name__ == "__main__":
    main()

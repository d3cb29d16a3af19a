"""Benchmark of retention_plugin.analysis against the `lifetimes` package.

    python bench/bench_analysis.py [--venv /tmp/lifetimes-venv] [--skip-lifetimes]

`lifetimes` (pandas, autograd) is not a dependency of the project: the script
creates its own virtual environment for it and runs it there in a
subprocess, exchanging data through .npz files. It prints one table:

- parameters on CDNOW (when ../shared is beside the checkout) and on 200,000
  customers simulated from the CDNOW BG/NBD fit: largest relative difference;
- BG/NBD fit time at 200,000 customers, ours and lifetimes';
- Pareto/NBD fit time at 1,000,000 customers (lifetimes only at 200,000: at
  a million it runs for many minutes);
- summary of 5,000,000 transactions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from retention_plugin.analysis.models import BGNBD, MBGNBD, GammaGamma, ParetoNBD  # noqa: E402
from retention_plugin.analysis.models.simulate import simulate_bgnbd, simulate_pnbd  # noqa: E402
from retention_plugin.analysis.summary import summarize  # noqa: E402

CDNOW = REPO / ".." / "shared" / "data" / "cdnow" / "CDNOW_sample.txt"
# Published CDNOW estimates: the populations the benchmarks simulate.
BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PNBD = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}

LIFETIMES_RUNNER = r'''
import json, sys, time, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data
job = json.loads(sys.argv[1]); d = np.load(job["data"], allow_pickle=True); out = {}
if job["kind"] == "summary":
    df = pd.DataFrame({"id": d["ids"], "date": pd.to_datetime(d["days"].astype("datetime64[D]")), "amount": d["amt"]})
    t = time.perf_counter()
    summary_data_from_transaction_data(df, "id", "date", monetary_value_col="amount", freq="D")
    out["seconds"] = time.perf_counter() - t
else:
    for name in job["models"]:
        cls = {"bgnbd": BetaGeoFitter, "mbgnbd": ModifiedBetaGeoFitter, "pnbd": ParetoNBDFitter, "gg": GammaGammaFitter}[name]
        t = time.perf_counter()
        if name == "gg":
            m = d["x"] > 0
            f = cls().fit(pd.Series(d["x"][m]), pd.Series(d["m"][m]))
        else:
            f = cls().fit(pd.Series(d["x"]), pd.Series(d["t_x"]), pd.Series(d["T"]))
        out[name] = {"seconds": time.perf_counter() - t, "params": {k: float(v) for k, v in f.params_.items()}}
print(json.dumps(out))
'''

NAMES = {"v": "gamma"}  # lifetimes calls Gamma-Gamma's gamma "v"


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(py), "-c", "import lifetimes"], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "lifetimes"], check=True)
    return py


def run_lifetimes(py: Path, kind: str, data: dict, models=(), timeout=1800) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **data)
        job = json.dumps({"kind": kind, "data": path, "models": list(models)})
        res = subprocess.run([str(py), "-c", LIFETIMES_RUNNER, job], capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        out = json.loads(res.stdout.strip().splitlines()[-1])
    for m in out.values():
        if isinstance(m, dict) and "params" in m:
            m["params"] = {NAMES.get(k, k): v for k, v in m["params"].items()}
    return out


def timed(fn, repeat=1):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return result, best


def rel_diff(ours: dict, theirs: dict) -> float:
    return max(abs(ours[k] - theirs[k]) / abs(theirs[k]) for k in ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", default="/tmp/lifetimes-venv", type=Path)
    ap.add_argument("--skip-lifetimes", action="store_true")
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    py = None if args.skip_lifetimes else ensure_venv(args.venv)
    rng = np.random.default_rng(args.seed)
    rows = []  # (what, ours, lifetimes, note)

    if CDNOW.exists():
        raw = np.loadtxt(CDNOW, dtype=str)
        s = summarize(raw[:, 1].astype(int), raw[:, 2], raw[:, 4].astype(float), calibration_end="1997-09-30")
        fits = {"bgnbd": BGNBD.fit(s.x, s.t_x, s.T), "mbgnbd": MBGNBD.fit(s.x, s.t_x, s.T),
                "pnbd": ParetoNBD.fit(s.x, s.t_x, s.T), "gg": GammaGamma.fit(s.x, s.monetary)}
        lt = run_lifetimes(py, "fit", {"x": s.x, "t_x": s.t_x, "T": s.T, "m": s.monetary}, fits) if py else {}
        for name, f in fits.items():
            ps = ", ".join(f"{k}={v:.4f}" for k, v in f.params.items())
            note = f"LL {f.loglik:.2f}; {ps}"
            rows.append((f"CDNOW {name}: max rel. param diff", "", f"{rel_diff(f.params, lt[name]['params']):.1e}"
                         if name in lt else "-", note))
    else:
        rows.append(("CDNOW", "skipped", "", f"{CDNOW} not found"))

    # BG/NBD at 200,000 customers of a cohort acquired over 12 weeks, observed for 39 to 52 weeks (whole days).
    n = 200_000
    T = rng.integers(39 * 7, 52 * 7 + 1, n) / 7
    x, t_x = simulate_bgnbd(BG, T, rng, resolution=1 / 7)
    ours, t_ours = timed(lambda: BGNBD.fit(x, t_x, T), repeat=3)
    _, t_noagg = timed(lambda: BGNBD.fit(x, t_x, T, aggregate_rows=False), repeat=3)
    lt = run_lifetimes(py, "fit", {"x": x, "t_x": t_x, "T": T}, ["bgnbd"]) if py else {}
    if lt:
        rows.append(("BG/NBD 200k: fit seconds", f"{t_ours:.3f}", f"{lt['bgnbd']['seconds']:.2f}",
                     f"{lt['bgnbd']['seconds'] / t_ours:.0f}x faster; without row aggregation {t_noagg:.3f} s "
                     f"({lt['bgnbd']['seconds'] / t_noagg:.0f}x)"))
        rows.append(("BG/NBD 200k: max rel. param diff", "", f"{rel_diff(ours.params, lt['bgnbd']['params']):.1e}",
                     "same data, both maximum likelihood"))
    else:
        rows.append(("BG/NBD 200k: fit seconds", f"{t_ours:.3f}", "-", f"without aggregation {t_noagg:.3f} s"))

    # Pareto/NBD at 1,000,000 customers; lifetimes compared on the first 200,000.
    n = 1_000_000
    T = rng.integers(39 * 7, 78 * 7 + 1, n) / 7
    x, t_x = simulate_pnbd(PNBD, T, rng, resolution=1 / 7)
    big, t_big = timed(lambda: ParetoNBD.fit(x, t_x, T))
    rows.append(("Pareto/NBD 1M: fit seconds", f"{t_big:.2f}", "-",
                 "params " + ", ".join(f"{k}={v:.3f}" for k, v in big.params.items())))
    if py:
        k = 200_000
        small, t_small = timed(lambda: ParetoNBD.fit(x[:k], t_x[:k], T[:k]))
        lt = run_lifetimes(py, "fit", {"x": x[:k], "t_x": t_x[:k], "T": T[:k]}, ["pnbd"])
        rows.append(("Pareto/NBD 200k: fit seconds", f"{t_small:.2f}", f"{lt['pnbd']['seconds']:.1f}",
                     f"max rel. param diff {rel_diff(small.params, lt['pnbd']['params']):.1e}"))

    # Summary of 5,000,000 transactions by 1,000,000 customers over two years.
    m = 5_000_000
    ids = rng.integers(0, 1_000_000, m)
    days = rng.integers(19000, 19730, m)
    amt = np.round(rng.gamma(2, 20, m), 2)
    dates = days.astype("datetime64[D]")
    _, t_sum = timed(lambda: summarize(ids, dates, amt, calibration_end=19500, holdout_end=19729), repeat=3)
    lt_sum = "-"
    if py:
        try:
            lt_sum = f"{run_lifetimes(py, 'summary', {'ids': ids, 'days': days, 'amt': amt}, timeout=900)['seconds']:.1f}"
        except subprocess.TimeoutExpired:
            lt_sum = "> 900"
    rows.append(("summary 5M transactions: seconds", f"{t_sum:.2f}", lt_sum, "1M customers, with holdout counts"))

    w = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{w}}  {'ours':>8}  {'lifetimes':>9}  note")
    for what, o, lt_, note in rows:
        print(f"{what:<{w}}  {o:>8}  {lt_:>9}  {note}")
    print(f"\nmachine: {os.cpu_count()} cores; python {sys.version.split()[0]}; numpy {np.__version__}")


if __name__ == "__main__":
    main()

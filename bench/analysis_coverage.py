"""Coverage of the adjusted model's 95% interval for a planted cause of leaving.

    python bench/analysis_coverage.py [--runs 100] [--customers 2000] [--rate-ratio 2]

Simulates stores where complaints multiply the rate of leaving by a known factor
(tests/analysis/analysis_hazardsim.py), fits the discrete-time hazard model of
retention_plugin.analysis.hazard to each, and prints how often the interval for
``complaint`` covers the factor, with the spread of the estimates. The slow test
suite asserts at least 90 of 100.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests" / "analysis")]

from analysis_hazardsim import simulate_complaints  # noqa: E402
from retention_plugin.analysis.hazard import adjusted_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--rate-ratio", type=float, default=2.0)
    a = ap.parse_args()
    est, covered, width, t0 = [], 0, [], time.perf_counter()
    for seed in range(a.runs):
        history, _ = simulate_complaints(n=a.customers, seed=seed, rate_ratio=a.rate_ratio)
        res = adjusted_model(history)
        c = next(r for r in res["signals"] if r["signal"] == "complaint")
        est.append(c["rate_ratio"])
        width.append(c["ci_high"] / c["ci_low"])
        covered += c["ci_low"] <= a.rate_ratio <= c["ci_high"]
    log = np.log(est)
    print(f"{'runs':<34}{a.runs:>10}")
    print(f"{'customers per store':<34}{a.customers:>10,}")
    print(f"{'planted rate ratio':<34}{a.rate_ratio:>10.2f}")
    print(f"{'intervals covering it':<34}{covered:>10}")
    print(f"{'geometric mean of estimates':<34}{np.exp(log.mean()):>10.3f}")
    print(f"{'sd of log estimate (runs)':<34}{log.std(ddof=1):>10.3f}")
    print(f"{'median interval (high / low)':<34}{np.median(width):>10.2f}")
    print(f"{'seconds per store':<34}{(time.perf_counter() - t0) / a.runs:>10.2f}")


if __name__ == "__main__":
    main()

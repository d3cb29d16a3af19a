"""Charts for the report, as inline PNG (base64) so report.html opens offline."""

from __future__ import annotations

import base64
import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display on servers and workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["cohort_heatmap", "score_distribution", "segment_sizes", "reasons_forest", "revenue_at_stake",
           "gap_histogram", "tracking_plot", "reliability_plot", "hazard_forest", "png_bytes"]

STATE_COLOURS = {"active": "#2a9d8f", "at_risk": "#e9c46a", "lost": "#e76f51"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def cohort_heatmap(cohorts: dict) -> str | None:
    if not cohorts["cohorts"]:
        return None
    data = np.array([[np.nan if v is None else v for v in row] for row in cohorts["retention"]], dtype=float)
    data = data[:, 1:] if data.shape[1] > 1 else data  # month 0 is 100% by definition
    fig, ax = plt.subplots(figsize=(min(14, 2 + 0.45 * data.shape[1]), 1.5 + 0.3 * data.shape[0]))
    im = ax.imshow(data * 100, aspect="auto", cmap="YlGnBu", vmin=0, vmax=max(1, np.nanmax(data) * 100))
    ax.set_yticks(range(len(cohorts["cohorts"])))
    ax.set_yticklabels([f"{c} ({n})" for c, n in zip(cohorts["cohorts"], cohorts["sizes"])], fontsize=8)
    offsets = cohorts["offsets"][1:] if len(cohorts["offsets"]) > 1 else cohorts["offsets"]
    ax.set_xticks(range(len(offsets)))
    ax.set_xticklabels(offsets, fontsize=8)
    ax.set_xlabel("months after the first order")
    ax.set_ylabel("first-order month (customers)")
    if data.size <= 400:
        for (i, j), v in np.ndenumerate(data):
            if not np.isnan(v):
                ax.text(j, i, f"{v * 100:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v > np.nanmax(data) * 0.6 else "black")
    fig.colorbar(im, ax=ax, label="% of the cohort buying that month")
    ax.set_title("Who comes back: share of each cohort buying again, by month")
    return _png(fig)


def score_distribution(p_alive: np.ndarray, lost_score: np.ndarray, at_risk: float, lost: float) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].hist(p_alive, bins=np.linspace(0, 1, 21), color="#264653")
    axes[0].set_xlabel("P(alive)")
    axes[0].set_ylabel("customers")
    axes[0].set_title("P(alive): how likely each customer still buys from you")
    axes[1].hist(lost_score, bins=np.linspace(0, 1, 21), color="#8d99ae")
    for x, name in ((at_risk, "at risk"), (lost, "lost")):
        axes[1].axvline(x, color="#e76f51", ls="--")
        axes[1].text(x, axes[1].get_ylim()[1] * 0.95, f" {name}", color="#e76f51", va="top")
    axes[1].set_xlabel("lost score: P(no purchase in the horizon)")
    axes[1].set_title("Lost score, with the segment thresholds")
    return _png(fig)


def segment_sizes(table: list[dict]) -> str:
    lifecycles = ["new", "repeat", "loyal"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bottom = np.zeros(len(lifecycles))
    for st in ("active", "at_risk", "lost"):
        vals = np.array([sum(r["customers"] for r in table if r["lifecycle"] == lc and r["state"] == st)
                         for lc in lifecycles])
        ax.bar(lifecycles, vals, bottom=bottom, color=STATE_COLOURS[st], label=st.replace("_", " "))
        bottom += vals
    ax.set_ylabel("customers")
    ax.legend()
    ax.set_title("Segment sizes")
    return _png(fig)


def revenue_at_stake(table: list[dict], currency: str | None) -> str:
    lifecycles = ["new", "repeat", "loyal"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(lifecycles))
    for k, st in enumerate(("at_risk", "lost")):
        vals = [sum(r["yearly_revenue_at_stake"] for r in table if r["lifecycle"] == lc and r["state"] == st)
                for lc in lifecycles]
        ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, color=STATE_COLOURS[st], label=st.replace("_", " "))
    ax.set_xticks(x)
    ax.set_xticklabels(lifecycles)
    ax.set_ylabel(f"yearly revenue ({currency})" if currency else "yearly revenue")
    ax.legend()
    ax.set_title("Revenue at stake: what these customers bought in a year while active")
    return _png(fig)


def _forest(rows: list[dict], key: str, strong, xlabel: str, title: str) -> str | None:
    """Ratios with their 95% intervals on a log scale, one row per signal; ``strong(row)`` colours a row."""
    rows = [r for r in rows if r.get(key) is not None][:15]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.42 * len(rows)))
    y = np.arange(len(rows))[::-1]
    rr = np.array([r[key] for r in rows])
    lo = np.array([r["ci_low"] for r in rows])
    hi = np.array([r["ci_high"] for r in rows])
    colours = ["#e76f51" if strong(r) and l > 1 else ("#2a9d8f" if strong(r) and h < 1 else "#8d99ae")
               for r, l, h in zip(rows, lo, hi)]
    ax.hlines(y, lo, hi, colors=colours, lw=2)
    ax.scatter(rr, y, color=colours, zorder=3)
    ax.axvline(1, color="black", lw=0.8)
    ax.set_xscale("log")
    ticks = [t for t in (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8) if lo.min() / 1.2 <= t <= hi.max() * 1.2]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['signal']}  (n={r['customers_with']})" for r in rows], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _png(fig)


def reasons_forest(rows: list[dict]) -> str | None:
    return _forest(rows, "rr", lambda r: True,
                   "relative risk of being lost, with 95% interval (log scale; 1 = no difference)",
                   "What the lost customers had in common")


def gap_histogram(gaps: dict) -> str | None:
    hist = gaps.get("histogram")
    if not hist:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(hist["bins"], hist["counts"], color="#457b9d")
    ax.set_xlabel("days between purchases")
    ax.set_ylabel("gaps")
    ax.set_title("Time between orders")
    return _png(fig)


MODEL_TITLES = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pnbd": "Pareto/NBD"}


def png_bytes(b64: str) -> bytes:
    """The PNG itself, for writing a chart to a file."""
    return base64.b64decode(b64)


def tracking_plot(tr: dict | None) -> str | None:
    """Cumulative repeat purchases of the cohort, actual against each model (FHL 2005, figure 2)."""
    if not tr or not tr["t"]:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    t = np.array(tr["t"])
    ax.plot(t, tr["actual"], color="black", lw=2, label="actual")
    for (name, values), style in zip(tr["expected"].items(), ("--", ":", "-.")):
        ax.plot(t, values, ls=style, lw=1.6, label=MODEL_TITLES.get(name, name))
    ax.axvline(tr["calibration_t"], color="#8d99ae", lw=1)
    ax.text(tr["calibration_t"], ax.get_ylim()[1] * 0.97, " calibration | holdout ", color="#555", ha="center",
            va="top", fontsize=8, backgroundcolor="white")
    ax.set_xlabel(f"{tr['time_unit']} since the cohort's first purchase")
    ax.set_ylabel("cumulative repeat purchases")
    ax.set_title(f"Tracking: {tr['cohort_customers']:,} customers acquired by {tr['calibration_end']}")
    ax.legend()
    return _png(fig)


def reliability_plot(curves: dict[str, list[dict]]) -> str | None:
    """Observed share without a purchase against the predicted probability, per score."""
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.plot([0, 1], [0, 1], color="#8d99ae", lw=1, label="perfect calibration")
    for name, rows in curves.items():
        pred = [r["predicted"] for r in rows]
        obs = [r["observed"] for r in rows]
        # Clipped at 0: a Wilson bound can sit a rounding error on the wrong side of the rate.
        err = [[max(r["observed"] - r["observed_low"], 0.0) for r in rows],
               [max(r["observed_high"] - r["observed"], 0.0) for r in rows]]
        ax.errorbar(pred, obs, yerr=err, marker="o", ms=4, capsize=2, lw=1.2, label=MODEL_TITLES.get(name, name))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(no purchase in the holdout)")
    ax.set_ylabel("observed share with no purchase (95% interval)")
    ax.set_title("Reliability")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def hazard_forest(rows: list[dict]) -> str | None:
    """Adjusted rate ratios of the signals with their 95% intervals; coloured when significant after BH."""
    return _forest(rows, "rate_ratio", lambda r: r["significant"],
                   "lapse rate ratio, adjusted for recency, frequency, tenure and spend (95% interval, log scale)",
                   "After adjustment (coloured: significant with Benjamini-Hochberg control)")

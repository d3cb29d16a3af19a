"""The lost-customer report: report.html (self-contained), customers.csv, summary.json."""

from __future__ import annotations

import csv
import html
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import charts
from .cohorts import cohort_retention, time_between_orders
from .dates import day_to_iso
from .history import History
from .models import COUNT_MODELS
from .reasons import why_they_left
from .scoring import ScoreSettings, choose_lost_score, score_customers
from .segments import segment_table
from .signals import SignalSettings
from .tracking import tracking

__all__ = ["build_report", "REPORT_STEPS"]

REPORT_STEPS = ("choosing the lost score", "scoring customers", "finding reasons", "cohorts", "charts", "writing")


def build_report(history: History, out_dir, *, settings: ScoreSettings = ScoreSettings(),
                 signal_settings: SignalSettings = SignalSettings(), extra_signals: dict | None = None,
                 progress=None) -> dict:
    """Analyse ``history`` and write the three files into ``out_dir``; returns the summary.

    ``progress(label)`` is called as each of :data:`REPORT_STEPS` starts.
    """
    step = progress or (lambda label: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    step(REPORT_STEPS[0])
    choice = choose_lost_score(history, settings)
    step(REPORT_STEPS[1])
    scores = score_customers(history, settings, choice=choice, intervals=True)
    c = scores.columns
    step(REPORT_STEPS[2])
    reasons = why_they_left(history, window_days=settings.horizon_days, extra_signals=extra_signals,
                            settings=signal_settings)
    step(REPORT_STEPS[3])
    cohorts = cohort_retention(history.orders.customer, history.orders.day)
    gaps = time_between_orders(history.orders.customer, history.orders.day)
    segments = segment_table(c["lifecycle"], c["state"], c["historic_value"], c["predicted_value"],
                             c["yearly_revenue_if_active"] * (c["state"] != "active"))

    summary = _summary(history, scores, reasons, cohorts, gaps, segments, settings)
    ev = summary["evaluation"]
    if ev:
        # The models of the last evaluation window, fitted up to its start, against what then happened.
        fitted = {k: COUNT_MODELS[k](m["params"]) for k, m in ev["models"].items() if "params" in m}
        ev["tracking"] = tracking(history.orders.customer, history.orders.day, fitted,
                                  calibration_end=history.as_of - settings.horizon_days, end=history.as_of,
                                  time_unit=settings.time_unit)
    step(REPORT_STEPS[4])
    images = {
        "scores": charts.score_distribution(c["p_alive"], c["lost_score"], settings.segments.at_risk_from,
                                            settings.segments.lost_from),
        "segments": charts.segment_sizes(segments),
        "revenue": charts.revenue_at_stake(segments, history.currency),
        "reasons": charts.reasons_forest(reasons["rows"]),
        "adjusted": charts.hazard_forest(reasons["adjusted"].get("signals", [])),
        "tracking": charts.tracking_plot(ev.get("tracking")) if ev else None,
        "reliability": charts.reliability_plot(
            {**(ev.get("reliability") or {}),
             **({"lost score": summary["lost_score"]["reliability"]} if summary["lost_score"].get("reliability")
                else {})}) if ev else None,
        "cohorts": charts.cohort_heatmap(cohorts),
        "gaps": charts.gap_histogram(gaps),
    }
    step(REPORT_STEPS[5])
    _write_customers(out / "customers.csv", scores)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default), encoding="utf-8")
    (out / "report.html").write_text(_html(summary, images), encoding="utf-8")
    return summary


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _money(v) -> float:
    return round(float(v), 2)


def _summary(history, scores, reasons, cohorts, gaps, segments, st: ScoreSettings) -> dict:
    c = scores.columns
    states = {s: int((c["state"] == s).sum()) for s in ("active", "at_risk", "lost")}
    life = {s: int((c["lifecycle"] == s).sum()) for s in ("new", "repeat", "loyal")}
    choice = dict(scores.choice)
    evaluation = choice.pop("evaluation", None)
    choice.pop("calibration", None)  # the isotonic map itself: hundreds of knots, not a figure
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "as_of": day_to_iso(history.as_of),
        "currency": history.currency,
        "notes": list(history.notes),
        "customers": int(len(scores)),
        "horizon_days": st.horizon_days,
        "thresholds": {**st.segments.describe(), "repeat_min_purchases": st.segments.repeat_min_purchases,
                       "loyal_min_purchases": st.segments.loyal_min_purchases,
                       "at_risk_from": st.segments.at_risk_from, "lost_from": st.segments.lost_from},
        "lost_score": choice,
        "evaluation": evaluation,
        "models": scores.models,
        "states": states,
        "lifecycle": life,
        "segments": segments,
        "value": {
            "historic": _money(c["historic_value"].sum()),
            "predicted": _money(c["predicted_value"].sum()),
            "predicted_months": st.value_months,
            "annual_discount_rate": st.annual_discount_rate,
            "yearly_revenue_at_risk": _money(c["yearly_revenue_if_active"][c["state"] == "at_risk"].sum()),
            "yearly_revenue_lost": _money(c["yearly_revenue_if_active"][c["state"] == "lost"].sum()),
        },
        "reasons": reasons,
        "cohorts": cohorts,
        "time_between_orders": gaps,
    }


CSV_COLUMNS = [
    ("first_order", "day"), ("last_order", "day"), ("purchase_days", "int"), ("days_since_last", "int"),
    ("historic_value", "money"), ("lost_score", "p"), ("p_alive", "p"), ("p_alive_low", "p"), ("p_alive_high", "p"),
    ("expected_purchases_horizon", "f"), ("expected_purchases_horizon_low", "f"),
    ("expected_purchases_horizon_high", "f"),
    ("expected_spend", "money"), ("predicted_value", "money"), ("yearly_revenue_if_active", "money"),
    ("lifecycle", "str"), ("state", "str"),
]


def _write_customers(path: Path, scores) -> None:
    c = scores.columns
    fmt = {"day": lambda v: day_to_iso(v), "int": lambda v: str(int(v)), "money": lambda v: f"{v:.2f}",
           "p": lambda v: "" if v != v else f"{v:.4f}", "f": lambda v: "" if v != v else f"{v:.3f}", "str": str}
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id"] + [name for name, _ in CSV_COLUMNS])
        cols = [(c[name], fmt[kind]) if name in c else (np.full(len(scores), np.nan), fmt[kind])
                for name, kind in CSV_COLUMNS]
        for i, cid in enumerate(scores.customer_ids):
            w.writerow([cid] + [f(col[i]) for col, f in cols])


# --- HTML ---------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #264653;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f1f3f5}td:first-child,th:first-child{text-align:left}
.verdict{padding:.8em 1em;border-left:6px solid;margin:1em 0;font-size:1.05em}
.good{border-color:#2a9d8f;background:#e9f5f3}.bad{border-color:#e76f51;background:#fdf0ec}
.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{background:#f1f3f5;padding:.8em 1.2em;border-radius:6px;min-width:150px}
.card b{display:block;font-size:1.5em}img{max-width:100%}.muted{color:#666;font-size:.9em}
"""


def _e(v) -> str:
    return html.escape(str(v))


def _num(v, digits=0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def _pct(v) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _img(b64: str | None, alt: str) -> str:
    if not b64:
        return f'<p class="muted">{_e(alt)}: not enough data for this chart.</p>'
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _se(m: dict, p: str) -> str:
    v = (m.get("standard_errors") or {}).get(p)
    return "–" if v is None else f"{v:.3g}"


def _iv(m: dict, p: str) -> str:
    v = (m.get("intervals") or {}).get(p)
    return "–" if v is None else f"{v[0]:.4g} – {v[1]:.4g}"


def _f3(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _evaluation_html(ev: dict, ls: dict, img: dict) -> str:
    out = [f"<p>How this was decided. Candidate scores competed on earlier windows; the one that ranked customers "
           f"best there was chosen, and is judged here on the last window: the models were fitted on orders up to "
           f"{_e(ev['calibration_end'])} and asked who would make no purchase by {_e(ev['holdout_end'])} "
           f"({ev['no_purchase_in_holdout']:,} of {ev['customers']:,} customers did not). AUC is the chance that the "
           f"score ranks a customer who did not come back above one who did (0.5 = guessing, 1 = perfect).</p>"]
    if not ev.get("enough_data", True):
        out.append(f"<p class='muted'>{_e(ev.get('reason'))}</p>")
    if ev.get("selection"):
        out.append(_table(["earlier window", "customers", "no purchase"],
                          [[f"{w['calibration_end']} → {w['holdout_end']}", f"{w['customers']:,}",
                            f"{w['no_purchase_in_holdout']:,}"] for w in ev["selection"]]))
    for sk in ev.get("skipped_origins", []):
        out.append(f"<p class='muted'>Earlier window from {_e(sk['calibration_end'])} not used: {_e(sk['reason'])}</p>")
    out.append(_table(["score", "mean AUC, earlier windows (chose)", "AUC, last window (judges)"],
                      [[c["label"] + (" ← chosen" if c["score"] == ls.get("score") else ""),
                        _f3(c.get("selection_auc")), _f3(c["auc"])] for c in ev["candidates"]]))
    out.append(_table(["model", "mean abs. error of purchases", "correlation", "Brier score", "Brier skill",
                       "predicted purchases", "actual"],
                      [[k, f"{m['mae']:.3f}", _f3(m["correlation"]), _f3(m["brier"]["brier"]),
                        _f3(m["brier"]["skill"]), _num(m["predicted_purchases"]), _num(m["actual_purchases"])]
                       for k, m in ev["models"].items() if "mae" in m]
                      + [["baseline (past rate)", f"{ev['baseline']['mae']:.3f}", _f3(ev["baseline"]["correlation"]),
                          "", "", "", ""]]))
    b = ls.get("brier")
    if b:
        out.append(f"<p>Calibration of the lost score on the last window: Brier score {_f3(b['brier'])} against "
                   f"{_f3(b['reference'])} for always predicting the average (skill {_f3(b['skill'])}; 0 = no better "
                   f"than the average, 1 = perfect).</p>")
    elif ls.get("brier_note"):
        out.append(f"<p class='muted'>No Brier score for the lost score: {_e(ls['brier_note'])}.</p>")
    out.append("<p class='muted'>Correlation: between each customer's predicted and actual purchases in the window, "
               "the figure Fader, Hardie &amp; Lee (2005) report (.63 on CDNOW). Brier score: mean squared "
               "error of P(no purchase).</p>")
    out.append(_img(img.get("tracking"), "tracking: cumulative repeat purchases, actual and expected"))
    out.append(_img(img.get("reliability"), "reliability curve"))
    return "\n".join(out)


def _adjusted_html(a: dict, img: dict) -> str:
    if not a.get("fitted"):
        return f"<p class='muted'>No adjusted model: {_e(a.get('reason'))}.</p>"
    out = [f"<p>All signs together, adjusted for recency, frequency, tenure, spend and the period: a discrete-time "
           f"hazard model of lapsing (no purchase for {a['lapse_days']} days) over {len(a['periods'])} periods of "
           f"{a['period_days']} days, {a['rows']:,} customer-periods of {a['customers']:,} customers, "
           f"{a['lapses']:,} lapses"
           + (f" (a random {a['sampled_share'] * 100:.0f}% of customers)" if a["sampled_share"] < 1 else "")
           + f". {_e(a['wording'])}</p>",
           _img(img.get("adjusted"), "adjusted rate ratios"),
           _table(["sign", "lapse rate ratio", "95% interval", "q (Benjamini-Hochberg)", "customers with it"],
                  [[r["label"] + (" †" if r.get("timing") else ""), f"{r['rate_ratio']:.2f}",
                    f"{r['ci_low']:.2f} – {r['ci_high']:.2f}",
                    f"{r['q_value']:.2g}" + (" ✓" if r["significant"] else ""),
                    f"{r['customers_with']:,}"] for r in a["signals"]]),
           f"<p class='muted'>✓: significant with the false discovery rate held at {a['fdr'] * 100:g}% across the "
           f"signs. † from a plugin: when the sign arose is not known, so it may postdate the period. Controls: "
           + "; ".join(f"{_e(c['label'])} {c['rate_ratio']:.2f}" for c in a["controls"]) + ".</p>"]
    return "\n".join(out)


def _html(s: dict, img: dict) -> str:
    cur = s["currency"] or ""
    ls = s["lost_score"]
    good = ls.get("beats_baseline") and ls.get("on_evidence")
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Lost customers as of {_e(s['as_of'])}"
             f"</title><style>{CSS}</style></head><body>",
             "<h1>Lost customers: who left, why, what it cost</h1>",
             f"<p class='muted'>Data up to {_e(s['as_of'])}; {s['customers']:,} customers; "
             f"generated {_e(s['generated_at'])}."
             f" Every figure below describes associations in this store's history; none of them proves a cause.</p>"]
    for note in s["notes"]:
        parts.append(f"<p class='muted'>Note: {_e(note)}</p>")
    v = s["value"]
    parts.append("<div class='cards'>" + "".join(
        f"<div class='card'><b>{val}</b>{_e(lbl)}</div>" for val, lbl in [
            (f"{s['states']['active']:,}", "active"), (f"{s['states']['at_risk']:,}", "at risk"),
            (f"{s['states']['lost']:,}", "lost"),
            (f"{_num(v['yearly_revenue_at_risk'])} {cur}", "yearly revenue at risk"),
            (f"{_num(v['yearly_revenue_lost'])} {cur}", "yearly revenue lost"),
        ]) + "</div>")

    parts.append("<h2>The lost score, and whether it beats the simple rule</h2>")
    parts.append(f"<div class='verdict {'good' if good else 'bad'}'>{_e(ls['verdict'])}</div>")
    ev = s.get("evaluation")
    if ev:
        parts.append(_evaluation_html(ev, ls, img))
    parts.append("<h2>Segments</h2>")
    th = s["thresholds"]
    parts.append(_table(["segment", "rule"], [[k.replace("_", " "), th[k]] for k in
                                              ("new", "repeat", "loyal", "active", "at_risk", "lost")]))
    parts.append(f"<p class='muted'>Lost score: {_e(ls['label'])}, over the next {s['horizon_days']} days.</p>")
    parts.append(_img(img["segments"], "segment sizes"))
    parts.append(_table(["lifecycle", "state", "customers", f"historic value {cur}", f"predicted value {cur}",
                         f"yearly revenue at stake {cur}"],
                        [[r["lifecycle"], r["state"].replace("_", " "), f"{r['customers']:,}",
                          _num(r["historic_value"], 2), _num(r["predicted_value"], 2),
                          _num(r["yearly_revenue_at_stake"], 2)] for r in s["segments"]]))
    parts.append(f"<p class='muted'>Predicted value: expected spend over the next {v['predicted_months']} months, "
                 f"discounted at {v['annual_discount_rate'] * 100:g}% a year. Revenue at stake: what an at-risk or "
                 f"lost customer would spend in a year at their own past rate if they were still active.</p>")
    parts.append(_img(img["revenue"], "revenue at stake"))
    parts.append(_img(img["scores"], "P(alive) and lost score distribution"))

    r = s["reasons"]
    parts.append("<h2>Why they left</h2>")
    parts.append(f"<p>Customers who bought in the {r['window_days']} days before {_e(r['cut_off'])}: "
                 f"{r['customers']:,}. "
                 f"Of these, {r['lost']:,} made no purchase from then to {_e(r['as_of'])} (lost). For each sign, the "
                 f"loss rate of customers with it and without it, the relative risk (how many times as often they "
                 f"were lost) with its 95% interval, and how many customers each figure rests on. Ranked by the lower "
                 f"end of the interval; signs shared by fewer than 10 customers are listed last, unranked.</p>")
    parts.append(_img(img["reasons"], "reasons"))
    parts.append(_table(["#", "sign", "with: lost / customers", "loss rate", "without: lost / customers", "loss rate",
                         "unknown", "relative risk", "95% interval", "q"],
                        [[row["rank"] or "–", row["label"], f"{row['lost_with']:,} / {row['customers_with']:,}",
                          _pct(row["rate_with"]), f"{row['lost_without']:,} / {row['customers_without']:,}",
                          _pct(row["rate_without"]), f"{row['customers_unknown']:,}", _num(row["rr"], 2),
                          "–" if row["ci_low"] is None else f"{row['ci_low']:.2f} – {row['ci_high']:.2f}"
                          + (" *" if row["corrected"] else ""),
                          "–" if row["q_value"] is None else f"{row['q_value']:.2g}"] for row in r["rows"]]))
    parts.append("<p class='muted'>* a zero count: 0.5 was added to every cell (Haldane) to keep the ratio finite. "
                 "q: the p-value adjusted across all ranked signs (Benjamini-Hochberg); below 0.05 the sign is "
                 "unlikely to be a chance finding among the many tested. Unknown: customers the data cannot place "
                 "(orders without fulfilment data count as unknown, never as late).</p>")
    parts.append(_adjusted_html(r["adjusted"], img))
    parts.append("<h2>Cohorts</h2>")
    parts.append(_img(img["cohorts"], "cohort retention heat map"))
    co = s["cohorts"]
    parts.append(_table(["first-order month", "customers", "repeat-purchase rate so far"],
                        [[c, f"{n:,}", _pct(rr)] for c, n, rr in zip(co["cohorts"], co["sizes"], co["repeat_rate"])]))
    g = s["time_between_orders"]
    if g.get("gaps"):
        parts.append(f"<p>Time between orders: median {g['median']:.0f} days (quartiles {g['p25']:.0f}–{g['p75']:.0f}; "
                     f"90% within {g['p90']:.0f}); first to second purchase: median {g['median_first_to_second']:.0f} "
                     f"days; {g['gaps']:,} gaps.</p>")
    parts.append(_img(img["gaps"], "time between orders"))
    parts.append("<h2>Models</h2>")
    parts.append(_table(["model", "parameter", "estimate", "standard error", "95% interval", "log-likelihood",
                         "converged"],
                        [[k if i == 0 else "", p, f"{val:.4g}", _se(m, p), _iv(m, p),
                          _num(m["loglik"], 1) if i == 0 else "",
                          ("yes" if m.get("converged", True) else f"no: {m.get('reason', '')}") if i == 0 else ""]
                         for k, m in s["models"].items() for i, (p, val) in enumerate(m["params"].items())]))
    parts.append("<p class='muted'>Standard errors from the observed information (the Hessian of the "
                 "log-likelihood at the optimum, in log-parameters: analytic for BG/NBD, by finite differences for "
                 "the other models); intervals exp(log p ± 1.96 sd). customers.csv "
                 "carries 95% intervals of each customer's P(alive) and expected purchases by the delta method: "
                 "they reflect the uncertainty of the parameters, not the randomness of future purchases.</p>")
    parts.append("<p class='muted'>Files beside this one: customers.csv (one row per customer) and summary.json "
                 "(every figure on this page).</p></body></html>")
    return "\n".join(parts)

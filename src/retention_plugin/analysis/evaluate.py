"""Time-split holdout evaluation, and the evidence-based choice of the lost score.

Fit on purchases up to the calibration cut-off; ask each score who will make
no purchase at all in the holdout period; compare with what happened. The
candidates are every model's P(no purchase in the holdout) and 1 - P(alive),
and the baseline every shop already has: days since the last purchase. The
lost score used by the report is the candidate with the highest AUC here, so
the choice is made by the store's own data, not assumed.
"""

from __future__ import annotations

import numpy as np

from .metrics import auc, compare_auc, decile_table
from .models import COUNT_MODELS
from .summary import Summary

__all__ = ["evaluate", "BASELINE", "candidate_label"]

BASELINE = "baseline.days_since_last"

_KIND_LABELS = {"p_no_purchase": "P(no purchase in the horizon)", "p_dead": "1 - P(alive)"}


def candidate_label(name: str) -> str:
    if name == BASELINE:
        return "days since last purchase (baseline)"
    model, kind = name.split(".")
    return f"{COUNT_MODELS[model].title} {_KIND_LABELS[kind]}"


def score_candidates(model, summary: Summary, horizon: float) -> dict[str, np.ndarray]:
    s = summary
    return {
        f"{model.name}.p_no_purchase": model.p_no_purchase(horizon, s.x, s.t_x, s.T),
        f"{model.name}.p_dead": 1.0 - model.p_alive(s.x, s.t_x, s.T),
    }


def evaluate(summary: Summary, model_names=("bgnbd", "mbgnbd", "pnbd"), *, progress=None) -> dict:
    """Fit each model on the calibration period and score the holdout.

    ``summary`` must carry holdout counts (``summarize(..., holdout_end=...)``).
    Returns a JSON-serialisable dict; ``result["chosen"]`` names the lost score.
    """
    if summary.holdout_x is None:
        raise ValueError("evaluation needs a holdout period (holdout_end)")
    s = summary
    h = float(s.holdout_length)
    y = s.holdout_x == 0  # the event the lost score should predict
    out = {
        **s.describe(),
        "holdout_length": h,
        "no_purchase_in_holdout": int(y.sum()),
        "purchased_in_holdout": int((~y).sum()),
        "models": {},
        "calibration": {},
    }
    scores: dict[str, np.ndarray] = {}
    for name in model_names:
        if progress:
            progress(f"fitting {COUNT_MODELS[name].title}")
        try:
            model = COUNT_MODELS[name].fit(s.x, s.t_x, s.T)
        except (ValueError, FloatingPointError) as exc:
            out["models"][name] = {"error": str(exc)}
            continue
        expected = model.expected_purchases(h, s.x, s.t_x, s.T)
        cand = score_candidates(model, s, h)
        scores.update(cand)
        out["models"][name] = {
            **model.to_dict(),
            "mae": float(np.mean(np.abs(expected - s.holdout_x))),
            "predicted_purchases": float(expected.sum()),
            "actual_purchases": float(s.holdout_x.sum()),
            "auc": {k.split(".")[1]: auc(v, y) for k, v in cand.items()},
        }
        p0 = cand[f"{name}.p_no_purchase"]
        out["calibration"][name] = decile_table(p0, y, predicted=p0, predicted_count=expected,
                                                actual_count=s.holdout_x)

    baseline = s.days_since_last
    naive = np.where(s.T > 0, s.x / np.where(s.T > 0, s.T, 1.0), 0.0) * h
    scores[BASELINE] = baseline
    out["baseline"] = {
        "auc": auc(baseline, y),
        "mae": float(np.mean(np.abs(naive - s.holdout_x))),
        "mae_note": "count baseline: the customer's past repeat-purchase rate x/T times the holdout length",
    }
    out["calibration"]["baseline"] = decile_table(baseline, y, actual_count=s.holdout_x)

    ranked = sorted(scores, key=lambda k: -np.nan_to_num(auc(scores[k], y), nan=-1))
    out["candidates"] = [{"score": k, "label": candidate_label(k), "auc": auc(scores[k], y)} for k in ranked]
    out["chosen"] = _verdict(ranked[0], scores, y)
    return out


def _verdict(best: str, scores: dict, y: np.ndarray) -> dict:
    """The chosen score and a plain sentence on whether it beats the baseline."""
    models = [k for k in sorted(scores, key=lambda k: -np.nan_to_num(auc(scores[k], y), nan=-1)) if k != BASELINE]
    if not models:
        a = auc(scores[BASELINE], y)
        return {"score": BASELINE, "label": candidate_label(BASELINE), "auc": a, "beats_baseline": False,
                "verdict": "No model could be fitted; days since the last purchase is the lost score."}
    top = models[0]
    cmp = compare_auc(scores[top], scores[BASELINE], y)
    figures = (f"{cmp['auc_a']:.3f} against {cmp['auc_b']:.3f}, a difference of {cmp['difference']:+.3f} "
               f"(95% CI {cmp['ci_low']:+.3f} to {cmp['ci_high']:+.3f})")
    common = {"best_model_score": top, "best_model_label": candidate_label(top), "best_model_auc": cmp["auc_a"],
              "baseline_auc": cmp["auc_b"], "difference": cmp["difference"], "ci_low": cmp["ci_low"],
              "ci_high": cmp["ci_high"], "p_value": cmp["p_value"]}
    if best == BASELINE:
        return {"score": BASELINE, "label": candidate_label(BASELINE), "auc": cmp["auc_b"], "beats_baseline": False,
                **common,
                "verdict": (f"No model beats the days-since-last-purchase baseline on AUC: the best, "
                            f"{candidate_label(top)}, scores {figures}. The report therefore uses days since the "
                            f"last purchase (calibrated into a probability) as the lost score.")}
    sure = "" if cmp["ci_low"] > 0 else " The interval includes 0, so the advantage is not established."
    return {"score": top, "label": candidate_label(top), "auc": cmp["auc_a"], "beats_baseline": True, **common,
            "verdict": (f"The lost score, {candidate_label(top)}, beats the days-since-last-purchase baseline on "
                        f"AUC: {figures}.{sure}")}

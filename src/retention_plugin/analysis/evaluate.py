"""Holdout evaluation as the literature does it, and the lost score chosen out of sample.

One split (:func:`evaluate_split`): fit every model on purchases up to a
calibration cut-off, predict the holdout that follows, compare with what
happened. Per model: the mean absolute error and the correlation of
predicted and actual holdout purchases per customer (Fader, Hardie & Lee
2005 report .626 for BG/NBD and .630 for Pareto/NBD on CDNOW), the Brier
score and reliability curve of its P(no purchase in the holdout), and a
decile table. Per candidate lost score: the AUC for "made no purchase in the
holdout".

The candidates (higher means more likely to make no purchase):

- each model's P(no purchase in the horizon), a probability of the event itself;
- each model's 1 - P(alive);
- each model's expected purchases in the horizon, negated (Pareto/NBD's scores
  AUC 0.779 on the CDNOW split of the paper, the best single score found there);
- days since the last purchase: the baseline every shop already has.

Rolling origins (:func:`rolling_evaluation`). Picking the best of several
scores on a holdout and reporting its AUC on that same holdout flatters it.
So the choice is made on *earlier* cut-offs, whose holdout windows end at
the final calibration cut-off at the latest, and the chosen score is then
reported on the final holdout, which played no part in choosing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dates import day_to_iso
from .metrics import (auc, brier, compare_auc, correlation, decile_table, isotonic_fit, outcome_shortfall,
                      reliability)
from .models import COUNT_MODELS, MIN_REPEAT_BUYERS
from .summary import Summary

__all__ = ["evaluate", "evaluate_split", "rolling_evaluation", "selection_origins", "score_candidates",
           "BASELINE", "DEFAULT_SCORE", "candidate_label", "is_probability", "Split", "Evaluation"]

BASELINE = "baseline.days_since_last"
#: Used when no earlier cut-off has enough data to choose on: set before looking at any holdout.
DEFAULT_SCORE = "pnbd.p_no_purchase"
MODEL_NAMES = ("bgnbd", "mbgnbd", "pnbd")

_KIND_LABELS = {"p_no_purchase": "P(no purchase in the horizon)", "p_dead": "1 - P(alive)",
                "expected_purchases": "expected purchases in the horizon (fewer = more likely lost)"}


def candidate_label(name: str) -> str:
    if name == BASELINE:
        return "days since last purchase (baseline)"
    model, kind = name.split(".")
    return f"{COUNT_MODELS[model].title} {_KIND_LABELS[kind]}"


def is_probability(name: str) -> bool:
    """Whether the score is itself a probability of making no purchase in the horizon."""
    return name.endswith(".p_no_purchase")


def score_candidates(model, summary: Summary, horizon: float) -> dict[str, np.ndarray]:
    s = summary
    return {
        f"{model.name}.p_no_purchase": model.p_no_purchase(horizon, s.x, s.t_x, s.T),
        f"{model.name}.p_dead": 1.0 - model.p_alive(s.x, s.t_x, s.T),
        f"{model.name}.expected_purchases": -model.expected_purchases(horizon, s.x, s.t_x, s.T),
    }


def _auc_or_none(score, y, enough: bool) -> float | None:
    return auc(score, y) if enough else None


@dataclass
class Split:
    """One calibration/holdout split: its data, outcome, candidate scores, fitted models and figures."""

    summary: Summary | None  # None once released
    y: np.ndarray  # made no purchase in the holdout
    scores: dict[str, np.ndarray]
    models: dict
    result: dict
    #: (calibration_end, holdout_end), day numbers
    window: tuple[int, int] = (0, 0)
    #: every candidate score's AUC, noted when the per-customer arrays were released (else None)
    aucs: dict[str, float | None] | None = None

    def __post_init__(self):
        if self.summary is not None and self.summary.holdout_end is not None:
            self.window = (int(self.summary.calibration_end), int(self.summary.holdout_end))

    @property
    def enough_data(self) -> bool:
        return bool(self.result["enough_data"])

    @property
    def score_names(self) -> set[str]:
        """The candidate scores computed on this split (their arrays may have been released)."""
        return set(self.scores) if self.aucs is None else set(self.aucs)

    def auc_of(self, name: str) -> float | None:
        if self.aucs is not None:
            return self.aucs.get(name) if self.enough_data else None
        if not self.enough_data or name not in self.scores:
            return None
        return auc(self.scores[name], self.y)

    def release(self, keep=()) -> None:
        """Drop the summary and every score array but those named in ``keep``, noting each AUC first.

        At 100,000 customers a split holds about 15 MB of per-customer arrays; once its AUCs
        are known a selection split is needed only for calibrating a chosen score that is not
        a probability, and only if it is the latest window of its length.
        """
        if self.aucs is None:
            self.aucs = {name: self.auc_of(name) for name in self.scores}
        self.scores = {k: v for k, v in self.scores.items() if k in keep}
        self.summary = None


def evaluate_split(summary: Summary, model_names=MODEL_NAMES, *, min_repeat_buyers: int = MIN_REPEAT_BUYERS,
                   progress=None) -> Split:
    """Fit each model on the calibration period of ``summary`` and score its holdout.

    ``summary`` must carry holdout counts (``summarize(..., holdout_end=...)``).
    With fewer than ten customers on either side of the outcome, every AUC is
    None and ``result["reason"]`` says why (never a NaN).
    """
    if summary.holdout_x is None:
        raise ValueError("evaluation needs a holdout period (holdout_end)")
    s = summary
    h = float(s.holdout_length)
    y = s.holdout_x == 0  # the event the lost score should predict
    short = outcome_shortfall(y)
    enough = short is None
    out = {
        **s.describe(),
        "holdout_length": h,
        "no_purchase_in_holdout": int(y.sum()),
        "purchased_in_holdout": int((~y).sum()),
        "enough_data": enough,
        "models": {},
        "calibration": {},
        "reliability": {},
    }
    if short:
        out["reason"] = short
    scores: dict[str, np.ndarray] = {}
    models = {}
    for name in model_names:
        if progress:
            progress(f"fitting {COUNT_MODELS[name].title}")
        try:
            model = COUNT_MODELS[name].fit(s.x, s.t_x, s.T, min_repeat_buyers=min_repeat_buyers)
        except (ValueError, FloatingPointError) as exc:
            out["models"][name] = {"error": str(exc)}
            continue
        models[name] = model
        expected = model.expected_purchases(h, s.x, s.t_x, s.T)
        cand = score_candidates(model, s, h)
        scores.update(cand)
        p0 = cand[f"{name}.p_no_purchase"]
        out["models"][name] = {
            **model.to_dict(),
            "mae": float(np.mean(np.abs(expected - s.holdout_x))),
            "correlation": correlation(expected, s.holdout_x),
            "predicted_purchases": float(expected.sum()),
            "actual_purchases": float(s.holdout_x.sum()),
            "auc": {k.split(".")[1]: _auc_or_none(v, y, enough) for k, v in cand.items()},
            "brier": brier(p0, y),
        }
        out["calibration"][name] = decile_table(p0, y, predicted=p0, predicted_count=expected,
                                                actual_count=s.holdout_x)
        out["reliability"][name] = reliability(p0, y)

    baseline = s.days_since_last
    naive = np.where(s.T > 0, s.x / np.where(s.T > 0, s.T, 1.0), 0.0) * h
    scores[BASELINE] = baseline
    out["baseline"] = {
        "auc": _auc_or_none(baseline, y, enough),
        "mae": float(np.mean(np.abs(naive - s.holdout_x))),
        "correlation": correlation(naive, s.holdout_x),
        "mae_note": "count baseline: the customer's past repeat-purchase rate x/T times the holdout length",
    }
    out["calibration"]["baseline"] = decile_table(baseline, y, actual_count=s.holdout_x)
    ranked = sorted(scores, key=lambda k: -(_auc_or_none(scores[k], y, enough) or -1))
    out["candidates"] = [{"score": k, "label": candidate_label(k), "auc": _auc_or_none(scores[k], y, enough)}
                         for k in ranked]
    return Split(s, y, scores, models, out)


def selection_origins(calibration_end: int, holdout_end: int, *, count: int = 3,
                      step_days: int | None = None) -> list[tuple[int, int]]:
    """Earlier (cut-off, holdout end) pairs whose holdouts end by ``calibration_end``.

    Cut-offs step back ``step_days`` at a time (default: the holdout's length,
    so every window is as long as the final one); a window is cut short at
    ``calibration_end`` so that no choosing ever sees the final holdout.
    """
    h = holdout_end - calibration_end
    step = step_days or h
    out = []
    for k in range(1, count + 1):
        c = calibration_end - k * step
        out.append((c, min(c + h, calibration_end)))
    return out


@dataclass
class Evaluation:
    """The outcome of :func:`rolling_evaluation`: the JSON result and the splits behind it.

    The selection splits are released (:meth:`Split.release`): they keep their AUCs, fitted
    models and result, and only the score arrays the choice may calibrate on.
    """

    result: dict
    final: Split
    selection: list[Split] = field(default_factory=list)
    #: for a chosen score that is not a probability: isotonic map learned on an earlier window
    calibration: dict | None = None


def rolling_evaluation(summarize_at, calibration_end: int, holdout_end: int, *, origins=3,
                       step_days: int | None = None, model_names=MODEL_NAMES,
                       min_repeat_buyers: int = MIN_REPEAT_BUYERS, progress=None) -> Evaluation:
    """Choose the lost score on earlier cut-offs, report it on (calibration_end, holdout_end].

    ``summarize_at(cut_off, holdout_end)`` returns the :class:`Summary` of a
    split (raising ``ValueError`` when there is no data for it). ``origins`` is
    a number of earlier cut-offs (:func:`selection_origins`) or a list of
    (cut-off, holdout end) day pairs; each holdout must end by ``calibration_end``.
    One with fewer than ten customers on either side of the outcome is
    skipped, with the reason.
    """
    if isinstance(origins, int):
        origins = selection_origins(calibration_end, holdout_end, count=origins, step_days=step_days)
    if any(e > calibration_end for _, e in origins):
        raise ValueError("a selection window must end by the final calibration cut-off: choosing on the final "
                         "holdout and reporting on it would flatter the choice")
    selection, skipped = [], []
    for c, e in origins:
        where = {"calibration_end": day_to_iso(c), "holdout_end": day_to_iso(e)}
        try:
            s = summarize_at(c, e)
        except ValueError as exc:
            skipped.append({**where, "reason": str(exc)})
            continue
        sp = evaluate_split(s, model_names, min_repeat_buyers=min_repeat_buyers, progress=progress)
        if not sp.enough_data:
            skipped.append({**where, "reason": sp.result["reason"]})
            continue
        selection.append(sp)
        _release_unneeded(selection)
    final = evaluate_split(summarize_at(calibration_end, holdout_end), model_names,
                           min_repeat_buyers=min_repeat_buyers, progress=progress)
    choice, calibration = _choose(selection, final)
    result = {
        **final.result,
        "selection": [{"calibration_end": sp.result["calibration_end"], "holdout_end": sp.result["holdout_end"],
                       "holdout_length": sp.result["holdout_length"], "customers": sp.result["customers"],
                       "no_purchase_in_holdout": sp.result["no_purchase_in_holdout"],
                       "auc": {c["score"]: c["auc"] for c in sp.result["candidates"]}} for sp in selection],
        "skipped_origins": skipped,
        "chosen": choice,
    }
    mean = choice.get("selection_aucs", {})
    for c in result["candidates"]:
        c["selection_auc"] = mean.get(c["score"])
    return Evaluation(result, final, selection, calibration)


def _release_unneeded(selection: list[Split]) -> None:
    """Release the selection splits' arrays but those :func:`_choose` may calibrate on.

    That is a score that is not a probability, on the latest split (the first one, on a
    tie) among those of the same window length that have it; so the memory held while
    the next splits are fitted is one split's worth, not one per earlier cut-off.
    """
    latest: dict[tuple[int, str], int] = {}
    for i, sp in enumerate(selection):
        length = sp.window[1] - sp.window[0]
        for name in sp.score_names:
            j = latest.get((length, name))
            if j is None or sp.window[0] > selection[j].window[0]:
                latest[(length, name)] = i
    for i, sp in enumerate(selection):
        length = sp.window[1] - sp.window[0]
        sp.release(keep={name for name in sp.score_names
                         if not is_probability(name) and latest[(length, name)] == i})


def evaluate(summary: Summary, model_names=MODEL_NAMES, *, selection=(),
             min_repeat_buyers: int = MIN_REPEAT_BUYERS, progress=None) -> dict:
    """:func:`rolling_evaluation` on summaries already made: chosen on ``selection``, reported on ``summary``."""
    known = {(s.calibration_end, s.holdout_end): s for s in (summary, *selection)}
    ev = rolling_evaluation(lambda c, e: known[(c, e)], summary.calibration_end, summary.holdout_end,
                            origins=[(s.calibration_end, s.holdout_end) for s in selection],
                            model_names=model_names, min_repeat_buyers=min_repeat_buyers, progress=progress)
    return ev.result


# --- the choice ----------------------------------------------------------------------------------


def _fmt(v, spec="+.3f") -> str:
    return "–" if v is None else format(v, spec)


def _choose(selection: list[Split], final: Split) -> tuple[dict, dict | None]:
    """The chosen score (best mean AUC over ``selection``) and how it does on ``final``."""
    fr = final.result
    window = f"{fr['calibration_end']} to {fr['holdout_end']}"
    means: dict[str, float] = {}
    if selection:
        common = set.intersection(*(sp.score_names for sp in selection))
        for name in common:
            vals = [sp.auc_of(name) for sp in selection]
            means[name] = float(np.mean(vals))
    if means:
        order = sorted(means, key=lambda k: (-means[k], k))
        chosen, on_evidence = order[0], True
        where = ", ".join(f"{sp.result['calibration_end']} "
                          f"(+{sp.window[1] - sp.window[0]} days)" for sp in selection)
        how = (f"Chosen on {len(selection)} earlier cut-off{'s' if len(selection) > 1 else ''} ({where}), where it "
               f"ranked customers best (mean AUC {means[chosen]:.3f}): {candidate_label(chosen)}.")
        best_model = next((k for k in order if k != BASELINE), None)
    else:
        chosen, on_evidence = DEFAULT_SCORE, False
        how = (f"No earlier cut-off had enough data to choose on, so the score set in advance is used: "
               f"{candidate_label(chosen)}.")
        best_model = None
    if chosen not in final.scores:  # the chosen model could not be fitted on the final split
        chosen = BASELINE if BASELINE in final.scores else chosen
    other = BASELINE if chosen != BASELINE else (best_model or DEFAULT_SCORE)
    out = {"score": chosen, "label": candidate_label(chosen), "on_evidence": on_evidence,
           "selection_origins": len(selection), "selection_auc": means.get(chosen),
           "selection_aucs": means, "compared_with": other, "compared_label": candidate_label(other)}

    calibration = None
    if not final.enough_data:
        out.update(auc=None, other_auc=None, difference=None, ci_low=None, ci_high=None, p_value=None,
                   beats_baseline=None,
                   verdict=f"{how} It cannot be judged on the holdout {window}: {fr['reason']}.")
        return out, calibration
    if other not in final.scores:
        other = BASELINE
    cmp = compare_auc(final.scores[chosen], final.scores[other], final.y)
    out.update(auc=cmp["auc_a"], other_auc=cmp["auc_b"], difference=cmp["difference"], ci_low=cmp["ci_low"],
               ci_high=cmp["ci_high"], p_value=cmp["p_value"])
    figures = (f"{cmp['auc_a']:.3f} against {cmp['auc_b']:.3f}, a difference of {_fmt(cmp['difference'], '+.4f')} "
               f"(95% CI {_fmt(cmp['ci_low'], '+.4f')} to {_fmt(cmp['ci_high'], '+.4f')})")
    unsure = " The interval includes 0, so the difference is not established." if cmp["ci_low"] <= 0 <= cmp["ci_high"] \
        else ""
    if chosen == BASELINE:
        out["beats_baseline"] = False
        verdict = (f"{how} On the later holdout ({window}), which played no part in the choice, it scores "
                   f"{cmp['auc_a']:.3f}; the best model score, {candidate_label(other)}, scores {cmp['auc_b']:.3f} "
                   f"there (difference baseline - model {_fmt(cmp['difference'], '+.4f')}, 95% CI "
                   f"{_fmt(cmp['ci_low'], '+.4f')} to {_fmt(cmp['ci_high'], '+.4f')}).{unsure} "
                   f"Days since the last purchase, calibrated into a probability, is the lost score.")
    else:
        out["beats_baseline"] = cmp["difference"] > 0
        if cmp["difference"] > 0:
            judged = f"it beats the days-since-last-purchase baseline: {figures}.{unsure}"
        else:
            judged = f"it does not beat the days-since-last-purchase baseline: {figures}.{unsure}"
        verdict = f"{how} On the later holdout ({window}), which played no part in the choice, {judged}"
    out["verdict"] = verdict

    # A score that is not a probability is mapped onto one by isotonic regression learned on the
    # latest earlier window as long as the final one; the Brier score then judges that map out of sample.
    if is_probability(chosen):
        out["brier"] = brier(final.scores[chosen], final.y)
        out["reliability"] = reliability(final.scores[chosen], final.y)
    else:
        same = [sp for sp in selection if abs(sp.result["holdout_length"] - fr["holdout_length"]) < 1e-9
                and chosen in sp.score_names]
        if same:
            sp = max(same, key=lambda sp: sp.window[0])
            knots, fitted = isotonic_fit(sp.scores[chosen], sp.y)
            calibration = {"knots": knots, "p_no_purchase": fitted, "learned_on": sp.result["calibration_end"]}
            p = np.interp(final.scores[chosen], knots, fitted)
            out["brier"] = brier(p, final.y)
            out["reliability"] = reliability(p, final.y)
            out["calibrated_on"] = sp.result["calibration_end"]
        else:
            out["brier"] = None
            out["brier_note"] = ("the chosen score is not a probability, and no earlier window as long as the "
                                 "holdout was available to calibrate it on")
    return out, calibration

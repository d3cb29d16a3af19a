"""Score every customer at a date: lost score, segment, value, revenue at stake.

The lost score is the probability of no purchase at all in the next
``horizon_days``. Which formula gives it is decided on the store's own data,
out of sample (:func:`evaluate.rolling_evaluation`): the candidates compete
on windows of ``horizon_days`` that end before the last one; the winner is
then judged on the last ``horizon_days`` before ``as_of``, which played no
part in choosing it, and refitted on everything up to ``as_of``. A winner
that is not itself a probability (days since the last purchase, expected
purchases, 1 - P(alive)) is mapped onto one by isotonic regression learned
on the most recent window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dates import day_to_iso
from .evaluate import BASELINE, DEFAULT_SCORE, candidate_label, is_probability, rolling_evaluation
from .history import History
from .metrics import MIN_EACH_OUTCOME, isotonic_fit
from .models import COUNT_MODELS, MIN_REPEAT_BUYERS, GammaGamma
from .segments import SegmentSettings, lifecycle, state
from .spend import spend_inputs
from .summary import summarize

__all__ = ["ScoreSettings", "Scores", "score_customers", "choose_lost_score"]

MIN_CUSTOMERS = 50


@dataclass(frozen=True)
class ScoreSettings:
    horizon_days: int = 90
    time_unit: str = "weeks"
    value_months: int = 12
    annual_discount_rate: float = 0.10
    segments: SegmentSettings = field(default_factory=SegmentSettings)
    #: Bounds of ``next_purchase_days`` ([offers] next_purchase_min_days / _max_days).
    next_purchase_min_days: float = 1.0
    next_purchase_max_days: float = 365.0
    #: earlier windows of horizon_days the lost score is chosen on (see evaluate.rolling_evaluation)
    selection_origins: int = 3
    #: fewer customers with a repeat purchase than this: the models refuse to fit
    min_repeat_buyers: int = MIN_REPEAT_BUYERS


@dataclass
class Scores:
    as_of: int
    customer_ids: np.ndarray
    columns: dict  # name -> per-customer array
    choice: dict  # the lost score chosen, why, and the evaluation behind it
    models: dict  # fitted at as_of, to_dict() form
    settings: ScoreSettings

    def __len__(self) -> int:
        return len(self.customer_ids)


def choose_lost_score(history: History, st: ScoreSettings, progress=None) -> dict:
    """Choose on earlier windows of ``horizon_days``, judge on the last one (see the module's docstring)."""
    o = history.orders
    cut = history.as_of - st.horizon_days
    reason = None

    def summarize_at(c, e):
        return summarize(o.customer, o.day, o.amount, calibration_end=c, holdout_end=e, time_unit=st.time_unit)

    if not (o.day <= cut).any():
        reason = f"no orders before {day_to_iso(cut)}, the start of the evaluation window"
    else:
        s = summarize_at(cut, history.as_of)
        none = int((s.holdout_x == 0).sum())
        if len(s) < MIN_CUSTOMERS or min(none, len(s) - none) < MIN_EACH_OUTCOME:
            reason = (f"{len(s)} customers, {none} of them without a purchase in the window: too few to "
                      f"compare scores (need {MIN_CUSTOMERS} customers and {MIN_EACH_OUTCOME} of each outcome)")
        del s  # the evaluation makes it again last; not held while the earlier windows are fitted
    if reason:
        return {"score": DEFAULT_SCORE, "label": candidate_label(DEFAULT_SCORE), "on_evidence": False,
                "verdict": f"The lost score could not be chosen or judged on evidence ({reason}); "
                           f"{candidate_label(DEFAULT_SCORE)} is used and not validated.",
                "evaluation": None}
    ev = rolling_evaluation(summarize_at, cut, history.as_of, origins=st.selection_origins,
                            step_days=st.horizon_days, min_repeat_buyers=st.min_repeat_buyers, progress=progress)
    choice = {**ev.result["chosen"], "evaluation": ev.result}
    if not is_probability(choice["score"]):
        # The production map from score to P(no purchase in the horizon) is learned on the most
        # recent window; its out-of-sample Brier score (learned one window earlier) is in the choice.
        sc = ev.final.scores.get(choice["score"])
        if sc is None:
            choice.update(score=BASELINE, label=candidate_label(BASELINE))
            sc = ev.final.scores[BASELINE]
        knots, fitted = isotonic_fit(sc, ev.final.y)
        choice["calibration"] = {"score": knots.tolist(), "p_no_purchase": fitted.tolist(),
                                 "learned_on": ev.result["calibration_end"]}
    return choice


def _value_model_name(choice: dict) -> str:
    if choice["score"] != BASELINE:
        return choice["score"].split(".")[0]
    ev = choice.get("evaluation") or {}
    for cand in ev.get("candidates", []):
        if cand["score"] != BASELINE:
            return cand["score"].split(".")[0]
    return DEFAULT_SCORE.split(".")[0]


def score_customers(history: History, st: ScoreSettings = ScoreSettings(), *, choice: dict | None = None,
                    progress=None, intervals: bool = False) -> Scores:
    """Score every customer as of ``history.as_of``.

    With ``intervals``, the columns also hold 95% delta-method intervals of
    P(alive) and of the expected purchases in the horizon
    (``p_alive_low`` ... ``expected_purchases_horizon_high``).
    """
    o = history.orders
    if len(o.day) == 0:
        raise ValueError("no orders up to the as-of date")
    if choice is None:
        choice = choose_lost_score(history, st, progress)
    s = summarize(o.customer, o.day, o.amount, calibration_end=history.as_of, time_unit=st.time_unit)
    unit = s.unit_days
    h = st.horizon_days / unit
    if progress:
        progress("fitting the models on all data")
    # Only the models the scores need are refitted: the evaluation already compared them all.
    value_name = _value_model_name(choice)
    wanted = [value_name] + [n for n in COUNT_MODELS if n != value_name]
    if choice["score"] != BASELINE:
        wanted.remove(choice["score"].split(".")[0])
        wanted.insert(0, choice["score"].split(".")[0])
    models = {}
    failures = []
    for name in wanted:
        try:
            models[name] = COUNT_MODELS[name].fit(s.x, s.t_x, s.T, min_repeat_buyers=st.min_repeat_buyers)
        except ValueError as exc:
            failures.append(str(exc))
            continue
        if value_name in models and (choice["score"] == BASELINE or choice["score"].split(".")[0] in models):
            break
    if value_name not in models:
        if not models:
            raise ValueError("no purchase model could be fitted: "
                             + (failures[0] if failures else "too little history"))
        value_name = next(iter(models))
    vm = models[value_name]

    kind = choice["score"]
    if kind == BASELINE:
        raw = s.days_since_last
    else:
        mname, what = kind.split(".")
        m = models.get(mname, vm)
        raw = {"p_no_purchase": lambda: m.p_no_purchase(h, s.x, s.t_x, s.T),
               "p_dead": lambda: 1.0 - m.p_alive(s.x, s.t_x, s.T),
               "expected_purchases": lambda: -m.expected_purchases(h, s.x, s.t_x, s.T)}[what]()
    cal = choice.get("calibration")
    lost_score = np.interp(raw, cal["score"], cal["p_no_purchase"]) if cal else raw

    # The spend model sees purchases of positive value only (see analysis.spend).
    sp = spend_inputs(s.customer_ids, o.customer, o.day, o.amount, history.as_of)
    try:
        gg = GammaGamma.fit(sp.x, sp.monetary, min_repeat_buyers=st.min_repeat_buyers)
        spend = gg.expected_spend(sp.x, sp.monetary)
        if not np.isfinite(spend).all():
            raise ValueError("q <= 1")
    except ValueError:
        gg = None
        per_purchase = s.total_spend / (s.x + 1)
        spend = np.full(len(s), per_purchase.mean())
        spend[sp.x > 0] = np.where(sp.monetary[sp.x > 0] > 0, sp.monetary[sp.x > 0], per_purchase.mean())

    p_alive = vm.p_alive(s.x, s.t_x, s.T)
    # The expected wait for the next purchase of a customer still active: one over their
    # posterior purchase rate (memoryless, so counted from as_of), bounded as configured.
    next_purchase_days = np.clip(unit / vm.rate_if_alive(s.x, s.T), st.next_purchase_min_days,
                                 st.next_purchase_max_days)
    year = 365.25 / unit
    yearly_if_active = vm.rate_if_alive(s.x, s.T) * year * spend
    value = discounted_value(vm, spend, s, months=st.value_months, annual_rate=st.annual_discount_rate)
    seg_state = state(lost_score, st.segments)
    at_stake = np.where(seg_state != "active", yearly_if_active, 0.0)

    columns = {
        "first_order": s.first_day, "last_order": s.last_day, "purchase_days": s.x + 1,
        "frequency": s.x, "recency": s.t_x, "age": s.T, "days_since_last": s.days_since_last,
        "historic_value": s.total_spend, "lost_score": lost_score, "p_alive": p_alive,
        "expected_purchases_horizon": vm.expected_purchases(h, s.x, s.t_x, s.T),
        "expected_spend": spend, "predicted_value": value,
        "yearly_revenue_if_active": yearly_if_active, "yearly_revenue_at_stake": at_stake,
        "lifecycle": lifecycle(s.x + 1, st.segments), "state": seg_state,
        "next_purchase_days": next_purchase_days,
    }
    if intervals:
        pi = vm.prediction_intervals(h, s.x, s.t_x, s.T)
        for key in ("p_alive_low", "p_alive_high"):
            columns[key] = pi[key]
        for key in ("expected_purchases_low", "expected_purchases_high"):
            columns[key.replace("purchases", "purchases_horizon")] = pi[key]
    fitted = {k: m.to_dict() for k, m in models.items()}
    if gg is not None:
        fitted["gg"] = {**gg.to_dict(), **sp.describe()}
    choice = {**choice, "value_model": value_name}
    return Scores(history.as_of, s.customer_ids, columns, choice, fitted, st)


def discounted_value(model, spend, s, *, months: int = 12, annual_rate: float = 0.10) -> np.ndarray:
    """Expected spend over the next ``months``, each month discounted to today."""
    step = 365.25 / 12 / s.unit_days
    prev = np.zeros(len(s))
    total = np.zeros(len(s))
    for k in range(1, months + 1):
        cum = model.expected_purchases(k * step, s.x, s.t_x, s.T)
        total += (cum - prev) / (1 + annual_rate) ** (k / 12)
        prev = cum
    return total * spend

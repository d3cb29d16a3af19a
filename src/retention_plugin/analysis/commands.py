"""``retention analyze``: fit, evaluate, report, winback.

``fit`` and ``evaluate`` work on a CSV of transactions alone; ``report`` and
``winback`` read the store's database through ``ctx.obj.engine``. Bad input
is a usage error naming the option or column (exit status 2), never a traceback.
"""

from __future__ import annotations

import json
import sys

import click
import numpy as np

from . import readahead
from .dates import DateError, day_to_iso, parse_day

__all__ = ["analyze"]


class DayParam(click.ParamType):
    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_day(str(value))
        except DateError:
            self.fail(f"{value!r} is not a date: use YYYY-MM-DD or YYYYMMDD", param, ctx)


DAY = DayParam()


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default, allow_nan=True))


def csv_options(f):
    # The flags are readahead's, which reads them off the command line before click is imported.
    flag = readahead.OPTIONS
    f = click.option(flag["delimiter"], "delimiter", default=",", show_default=True,
                     help="Field separator of the CSV.")(f)
    f = click.option(flag["amount_col"], "amount_col", default="amount", show_default=True,
                     help="Column with the order value (optional for count models).")(f)
    f = click.option(flag["date_col"], "date_col", default="date", show_default=True,
                     help="Column with the order date (YYYY-MM-DD, an ISO datetime, or YYYYMMDD).")(f)
    f = click.option(flag["customer_col"], "customer_col", default="customer_id", show_default=True,
                     help="Column with the customer id.")(f)
    f = click.option("--time-unit", type=click.Choice(["weeks", "days"]), default="weeks", show_default=True,
                     help="Unit of t_x and T (and of the fitted alpha, beta, ...).")(f)
    f = click.option(flag["path"], "transactions", type=click.Path(exists=True, dir_okay=False), required=True,
                     help="CSV with one row per order and a header row.")(f)
    return f


def _read(path, customer_col, date_col, amount_col, delimiter):
    from .summary import DataError, read_transactions_csv

    if len(delimiter) != 1:
        raise click.BadParameter(f"must be one character, not {delimiter!r}", param_hint="'--delimiter'")
    options = {customer_col: "--customer-col", date_col: "--date-col", amount_col: "--amount-col"}
    try:
        return read_transactions_csv(path, customer_col=customer_col, date_col=date_col, amount_col=amount_col,
                                     delimiter=delimiter)
    except DataError as exc:
        if exc.column in options:
            raise click.BadParameter(str(exc), param_hint=f"'{options[exc.column]}'") from None
        raise click.BadParameter(str(exc), param_hint="'--transactions'") from None
    except UnicodeDecodeError:
        raise click.BadParameter("not a UTF-8 text file", param_hint="'--transactions'") from None


def _import_in_background(*modules: str) -> None:
    """Start importing ``modules`` (scipy and what uses it: about a third of a second) in a thread.

    pyarrow reads the CSV and numpy sorts it without holding the GIL, so the
    import runs beside them instead of after; the command's own ``import``
    of the module later waits for this one. Everything the reading thread
    needs is imported before the thread starts, so the two never import the
    same module at once.
    """
    import importlib
    import threading

    from . import summary  # noqa: F401 (summarising needs nothing more once this is imported)
    from .transactions import import_reader

    import_reader()

    def run():
        for module in modules:
            try:
                importlib.import_module(module, __package__)
            except Exception:  # noqa: BLE001 - the command's own import raises it again, where it can be reported
                pass

    threading.Thread(target=run, name=f"import {', '.join(modules)}", daemon=True).start()


def _summarize(tx, calibration_end, holdout_end, time_unit):
    from .summary import DataError, summarize_transactions

    first, last = tx.day_bounds()
    if calibration_end < first:
        raise click.BadParameter(f"{day_to_iso(calibration_end)} is before the first transaction "
                                 f"({day_to_iso(first)})", param_hint="'--calibration-end'")
    if calibration_end > last:
        raise click.BadParameter(f"{day_to_iso(calibration_end)} is after the last transaction ({day_to_iso(last)}): "
                                 "the silent days after it would read as customers leaving",
                                 param_hint="'--calibration-end'")
    if holdout_end is not None and holdout_end <= calibration_end:
        raise click.BadParameter("must be after --calibration-end", param_hint="'--holdout-end'")
    if holdout_end is not None and calibration_end >= last:
        raise click.BadParameter(f"no transaction after it (the last is on {day_to_iso(last)}): nothing to hold out",
                                 param_hint="'--calibration-end'")
    if holdout_end is not None and holdout_end > last:
        raise click.BadParameter(f"{day_to_iso(holdout_end)} is after the last transaction ({day_to_iso(last)}): "
                                 "customers would look lost for days the file does not cover",
                                 param_hint="'--holdout-end'")
    try:
        # Neither caller uses the summary's spend: Gamma-Gamma takes its own (spend.py).
        return summarize_transactions(tx, calibration_end=calibration_end, holdout_end=holdout_end,
                                      time_unit=time_unit, spend=False)
    except DataError as exc:
        raise click.UsageError(str(exc)) from None


def _purchases(tx) -> tuple[object, dict]:
    """Transactions that are purchases, and what was set aside.

    A negative amount is a return or refund written as a row, not a purchase:
    it is left out of every model. A zero amount is a purchase (a free order is
    still a visit) but not a spend: the spend model leaves it out
    (:mod:`.spend`). Both are counted in the output.
    """
    from .summary import Transactions

    negatives, zeros = tx.amount_counts()
    if zeros == len(tx):  # no amount column, or all zero: nothing to judge
        return tx, {"amounts": False}
    facts = {"amounts": True, "negative_amount_transactions": negatives, "zero_amount_transactions": zeros}
    if negatives:
        if negatives == len(tx):
            raise click.BadParameter("every amount is negative: there are no purchases", param_hint="'--amount-col'")
        keep = tx.amounts >= 0
        if tx.codes is not None:  # keep the reader's dense codes: the summary's fast path needs them
            tx = Transactions(codes=tx.codes[keep], labels=tx.labels, days=tx.days[keep], amounts=tx.amounts[keep])
        else:
            tx = Transactions(tx.customer_ids[keep], tx.days[keep], tx.amounts[keep])
    return tx, facts


def min_repeat_option(f):
    from .models import MIN_REPEAT_BUYERS

    return click.option("--min-repeat-buyers", type=click.IntRange(min=1), default=MIN_REPEAT_BUYERS,
                        show_default=True,
                        help="Refuse to fit with fewer customers than this who bought on two days or more.")(f)


def _fit_count(name, s, min_repeat_buyers):
    from .models import model_class

    x, t_x, T, weights = s.distinct_rows()
    try:
        return model_class(name).fit(x, t_x, T, weights, aggregate_rows=False, min_repeat_buyers=min_repeat_buyers)
    except ValueError as exc:
        raise click.UsageError(f"cannot fit {name}: {exc}") from None


def _interval(iv, digits=4) -> str:
    return "no interval" if iv is None else f"[{iv[0]:.{digits}g}, {iv[1]:.{digits}g}]"


@click.group("analyze")
def analyze():
    """Lost-customer analysis: fit purchase models, evaluate them, score customers, report."""


#: How each model's observed information is computed (the fit's JSON says it).
_HESSIAN = {"bgnbd": "analytic Hessian in log-parameters",
            "pnbd": "Hessian in log-parameters by second differences of the log-likelihood",
            None: "Hessian in log-parameters by differences of the gradient"}


@analyze.command("fit")
@csv_options
@click.option("--calibration-end", type=DAY, required=True, help="Last day of the calibration period (inclusive).")
@click.option("--model", "model_name", type=click.Choice(["bgnbd", "mbgnbd", "pnbd", "gg"]), required=True)
@min_repeat_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def fit_cmd(transactions, time_unit, customer_col, date_col, amount_col, delimiter, calibration_end, model_name,
            min_repeat_buyers, as_json):
    """Fit one model by maximum likelihood: parameters, standard errors, 95% intervals, log-likelihood."""
    if model_name != "bgnbd":
        # BG/NBD needs numpy alone (Newton's method on its own derivatives); the others
        # import scipy.special, and scipy.optimize for L-BFGS-B, while the file is read.
        from .models import module_of

        _import_in_background(module_of(model_name), "scipy.optimize")
    tx = _read(transactions, customer_col, date_col, amount_col, delimiter)
    tx, facts = _purchases(tx)
    s = _summarize(tx, calibration_end, None, time_unit)
    from .models import model_class

    extra = {}
    if model_name == "gg":
        from .spend import spend_inputs

        if not facts["amounts"]:
            raise click.BadParameter(f"Gamma-Gamma needs order values: column {amount_col!r} is missing or all zero",
                                     param_hint="'--amount-col'")
        sp = spend_inputs(s.customer_ids, tx.customer_ids, tx.days, tx.amounts, calibration_end)
        extra = sp.describe()
        try:
            model = model_class("gg").fit(sp.x, sp.monetary, min_repeat_buyers=min_repeat_buyers)
        except ValueError as exc:
            raise click.UsageError(f"cannot fit gg: {exc}") from None
    else:
        model = _fit_count(model_name, s, min_repeat_buyers)
    out = {**s.describe(), **facts, **extra, **model.to_dict(),
           "interval_method": f"observed information ({_HESSIAN.get(model_name, _HESSIAN[None])}); standard "
                              "error p * sd(log p), 95% interval exp(log p ± 1.96 sd(log p))"}
    if as_json:
        _echo_json(out)
        return
    n = int(model.fit_result.n) if model.fit_result else len(s)
    click.echo(f"{model.title} on {n:,} customers, calibration to {day_to_iso(calibration_end)}, in {time_unit}")
    for k, v in model.params.items():
        se = out["standard_errors"][k]
        click.echo(f"  {k:>6} = {v:<10.6g} se {'–' if se is None else f'{se:.4g}':<9} "
                   f"95% {_interval(out['intervals'][k])}")
    click.echo(f"  loglik = {model.loglik:.3f}")
    if facts.get("negative_amount_transactions"):
        click.echo(f"  {facts['negative_amount_transactions']:,} transactions with a negative amount are not purchases "
                   "and were left out")
    if extra.get("excluded_non_positive_transactions"):
        click.echo(f"  {extra['excluded_non_positive_transactions']:,} transactions of zero value were left out of "
                   "the spend model")
    if not out.get("converged", True):
        click.echo(f"  warning: not converged: {out.get('reason')}", err=True)


def _write_chart(directory, name, b64) -> str | None:
    from pathlib import Path

    from .charts import png_bytes

    if not b64:
        return None
    path = Path(directory) / name
    path.write_bytes(png_bytes(b64))
    return str(path)


@analyze.command("evaluate")
@csv_options
@click.option("--calibration-end", type=DAY, required=True, help="Last day the models may see (inclusive).")
@click.option("--holdout-end", type=DAY, required=True, help="Last day of the holdout period (inclusive).")
@click.option("--origins", type=click.IntRange(0, 24), default=3, show_default=True,
              help="Earlier cut-offs the lost score is chosen on (each window ends by --calibration-end).")
@click.option("--origin-step-days", type=click.IntRange(min=1), default=None,
              help="Days between those cut-offs [default: a third of the holdout].")
@min_repeat_option
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None,
              help="Write tracking.png and reliability.png into this directory.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate_cmd(transactions, time_unit, customer_col, date_col, amount_col, delimiter, calibration_end,
                 holdout_end, origins, origin_step_days, min_repeat_buyers, plot_dir, as_json):
    """Choose the lost score on earlier cut-offs and judge it on the holdout; models' errors, correlation,
    Brier score, reliability and the aggregate tracking curve."""
    from pathlib import Path

    _import_in_background(".evaluate")
    from . import charts
    from .evaluate import rolling_evaluation
    from .summary import summarize_transactions
    from .tracking import tracking

    tx = _read(transactions, customer_col, date_col, amount_col, delimiter)
    tx, facts = _purchases(tx)
    _summarize(tx, calibration_end, holdout_end, time_unit)  # checks the dates, names the option at fault
    step = origin_step_days or max(1, -(-(holdout_end - calibration_end) // 3))

    def summarize_at(c, e):
        return summarize_transactions(tx, calibration_end=c, holdout_end=e, time_unit=time_unit)

    ev = rolling_evaluation(summarize_at, calibration_end, holdout_end, origins=origins, step_days=step,
                            min_repeat_buyers=min_repeat_buyers)
    result = {**ev.result, **facts}
    result["tracking"] = tracking(tx.customer_ids, tx.days, ev.final.models, calibration_end=calibration_end,
                                  end=holdout_end, time_unit=time_unit)
    if plot_dir:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
        result["plots"] = [p for p in (
            _write_chart(plot_dir, "tracking.png", charts.tracking_plot(result["tracking"])),
            _write_chart(plot_dir, "reliability.png", charts.reliability_plot(result["reliability"]))) if p]
    if as_json:
        _echo_json(result)
        return
    _print_evaluation(result)


def _num(v, spec=".3f") -> str:
    return "–" if v is None else format(v, spec)


def _print_evaluation(r: dict) -> None:
    click.echo(f"{r['customers']:,} customers; {r['no_purchase_in_holdout']:,} made no purchase "
               f"from {r['calibration_end']} to {r['holdout_end']}")
    if not r["enough_data"]:
        click.echo(r["reason"])
    for sk in r["skipped_origins"]:
        click.echo(f"earlier cut-off {sk['calibration_end']} skipped: {sk['reason']}")
    click.echo(f"{'score':<72} {'chosen on':>9} {'holdout':>8}")
    for c in r["candidates"]:
        click.echo(f"{c['label']:<72} {_num(c['selection_auc']):>9} {_num(c['auc']):>8}")
    click.echo("AUC: 'chosen on' is the mean over the earlier cut-offs, which made the choice; 'holdout' is the "
               "later holdout, shown for information.")
    click.echo(f"{'model':<10} {'MAE':>7} {'corr':>6} {'Brier':>6} {'predicted':>10} {'actual':>8}  converged")
    for k, m in r["models"].items():
        if "mae" in m:
            click.echo(f"{k:<10} {m['mae']:7.3f} {_num(m['correlation']):>6} {_num(m['brier']['brier']):>6} "
                       f"{m['predicted_purchases']:10.1f} {m['actual_purchases']:8.0f}  "
                       f"{'yes' if m['converged'] else 'no: ' + m.get('reason', '')}")
        else:
            click.echo(f"{k:<10} not fitted: {m['error']}")
    b = r["baseline"]
    click.echo(f"{'baseline':<10} {b['mae']:7.3f} {_num(b['correlation']):>6}")
    tr = r.get("tracking")
    if tr:
        last = {k: v[-1] for k, v in tr["expected"].items()}
        click.echo(f"tracking to {tr['end']}: {tr['actual'][-1]:,} repeat purchases by the "
                   f"{tr['cohort_customers']:,} customers of the cohort; expected "
                   + ", ".join(f"{k} {v:,.0f}" for k, v in last.items()))
    click.echo(r["chosen"]["verdict"])
    for p in r.get("plots", []):
        click.echo(f"wrote {p}")


@analyze.command("score")
@csv_options
@click.option("--calibration-end", type=DAY, required=True, help="Score as of this day (inclusive).")
@click.option("--model", "model_name", type=click.Choice(["bgnbd", "mbgnbd", "pnbd"]), default="pnbd",
              show_default=True)
@click.option("--horizon", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Horizon of the expected purchases, in --time-unit [default: 52 weeks or 365 days].")
@min_repeat_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of CSV.")
def score_cmd(transactions, time_unit, customer_col, date_col, amount_col, delimiter, calibration_end, model_name,
              horizon, min_repeat_buyers, as_json):
    """Each customer's P(alive) and expected purchases with 95% intervals (delta method), as CSV or JSON."""
    import csv

    tx = _read(transactions, customer_col, date_col, amount_col, delimiter)
    tx, facts = _purchases(tx)
    s = _summarize(tx, calibration_end, None, time_unit)
    model = _fit_count(model_name, s, min_repeat_buyers)
    h = horizon if horizon is not None else (52.0 if time_unit == "weeks" else 365.0)
    pi = model.prediction_intervals(h, s.x, s.t_x, s.T)
    cols = ["p_alive", "p_alive_low", "p_alive_high", "expected_purchases", "expected_purchases_low",
            "expected_purchases_high"]
    method = ("delta method on the logit (P(alive)) and log (expected purchases) scale, from the covariance of the "
              "log-parameters; the intervals cover the uncertainty of the estimated parameters, not the randomness "
              "of the purchases themselves")
    if as_json:
        # NaN bounds (a fit without standard errors) are null, not the non-standard NaN token.
        vals = {c: np.where(np.isfinite(pi[c]), pi[c], None).tolist() for c in cols}
        rows = [{"customer_id": cid, "x": xv, "t_x": tv, "T": Tv, **{c: vals[c][i] for c in cols}}
                for i, (cid, xv, tv, Tv) in enumerate(zip(s.customer_ids.tolist(), s.x.tolist(), s.t_x.tolist(),
                                                          s.T.tolist()))]
        _echo_json({**s.describe(), **facts, "model": model.to_dict(), "horizon": h, "interval_method": method,
                    "customers": rows})
        return
    if not model.fit_result.converged:
        click.echo(f"warning: {model.title} did not converge: {model.fit_result.message}", err=True)
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["customer_id", "x", "t_x", "T"] + cols)
    for i, cid in enumerate(s.customer_ids.tolist()):
        w.writerow([cid, f"{s.x[i]:g}", f"{s.t_x[i]:.4g}", f"{s.T[i]:.4g}"]
                   + [f"{pi[c][i]:.6g}" if np.isfinite(pi[c][i]) else "" for c in cols])


def _engine(ctx):
    engine = getattr(ctx.obj, "engine", None)
    if engine is None:
        raise click.UsageError(f"`{ctx.command_path}` reads the store's database: run it through the `retention` "
                               "command with a configuration that names the database")
    return engine


def _now(ctx):
    """The app's clock when run through ``retention`` (tests move it), else the wall clock."""
    from datetime import datetime, timezone

    now = getattr(ctx.obj, "now", None)
    return now() if callable(now) else datetime.now(timezone.utc)


def _plugin_signals(app, customer_ids) -> dict:
    """Signals added by plugins through the ``customer_signals`` hook."""
    pm = getattr(app, "pm", None) or getattr(app, "plugin_manager", None)
    if pm is None or not hasattr(pm.hook, "customer_signals"):
        return {}
    from retention_plugin.context import HookContext

    merged: dict = {}
    with app.engine.connect() as conn:  # plugins read what they keep through ctx.conn
        ctx = HookContext(app.app if hasattr(app, "app") else app, conn, now=app.now(), source="cli")
        results = pm.hook.customer_signals(customers=list(customer_ids), ctx=ctx) or []
    for result in results:
        for name, ids in (result or {}).items():
            merged.setdefault(str(name), set()).update(int(i) for i in ids)
    return merged


@analyze.command("report")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Directory for the report.")
@click.option("--as-of", type=DAY, default=None, help="Analyse as of this day (default: today, UTC).")
@click.option("--horizon-days", type=click.IntRange(7, 730), default=90, show_default=True,
              help="Horizon of the lost score, and the holdout window used to choose it.")
@click.option("--at-risk-from", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--lost-from", type=click.FloatRange(0, 1), default=0.8, show_default=True)
@click.option("--slow-reply-hours", type=click.FloatRange(min=0), default=48, show_default=True)
@min_repeat_option
@click.pass_context
def report_cmd(ctx, out_dir, as_of, horizon_days, at_risk_from, lost_from, slow_reply_hours, min_repeat_buyers):
    """Write report.html, customers.csv and summary.json for the stored data.

    The report is also kept in the database: the console's Analysis page shows the newest one.
    """
    from .report import REPORT_STEPS, build_report
    from .scoring import ScoreSettings
    from .segments import SegmentSettings
    from .signals import SignalSettings
    from .store import load_store_history

    if at_risk_from >= lost_from:
        raise click.BadParameter("must be below --lost-from", param_hint="'--at-risk-from'")
    engine = _engine(ctx)
    # "Today" is the app's day, so a report and the console's dates agree (and tests can move the clock).
    history = load_store_history(engine, as_of if as_of is not None else _now(ctx))
    if len(history.orders.day) == 0:
        raise click.UsageError(f"no orders up to {day_to_iso(history.as_of)}: nothing to analyse")
    extra = _plugin_signals(ctx.obj, history.customers.tolist())
    settings = ScoreSettings(horizon_days=horizon_days, min_repeat_buyers=min_repeat_buyers,
                             segments=SegmentSettings(at_risk_from=at_risk_from, lost_from=lost_from))
    with click.progressbar(length=len(REPORT_STEPS), label="Analysing", show_pos=True,
                           item_show_func=lambda s: s, file=sys.stderr) as bar:
        def progress(label):
            bar.update(1, label)
        try:
            summary = build_report(history, out_dir, settings=settings,
                                   signal_settings=SignalSettings(slow_reply_hours=slow_reply_hours),
                                   extra_signals=extra, progress=progress)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    # The console's Analysis page shows the newest kept report rather than computing one in a request.
    from .saved_report import save_report

    save_report(engine, out_dir, now=_now(ctx), params={
        "horizon_days": horizon_days, "at_risk_from": at_risk_from, "lost_from": lost_from,
        "slow_reply_hours": slow_reply_hours, "min_repeat_buyers": min_repeat_buyers})
    click.echo(f"Wrote {out_dir}/report.html, customers.csv, summary.json ({summary['customers']:,} customers); "
               "the console's Analysis page shows it from now on.")
    click.echo(summary["lost_score"]["verdict"])


@analyze.command("winback")
@click.option("--as-of", type=DAY, default=None, help="Count reorders up to this day (default: today, UTC).")
@click.option("--window-days", type=click.IntRange(1, 365), default=60, show_default=True,
              help="A reorder counts when it comes within this many days of the assignment.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def winback_cmd(ctx, as_of, window_days, as_json):
    """Reorder rate of offered and held-out customers, and the lift with its interval."""
    from .winback import winback_results

    res = winback_results(_engine(ctx), as_of, window_days=window_days)
    if as_json:
        _echo_json(res)
        return
    for g in ("offer", "holdout"):
        r = res[g]
        rate = "–" if r["rate"] is None else (f"{r['rate'] * 100:.1f}% "
                                              f"(95% CI {r['ci_low'] * 100:.1f}–{r['ci_high'] * 100:.1f}%)")
        click.echo(f"{g:<8} {r['reordered']:>6,} of {r['customers']:>6,} reordered within {window_days} days: {rate}")
    if res["lift"]:
        lf = res["lift"]
        click.echo(f"lift     {lf['difference'] * 100:+.1f} points (95% CI {lf['ci_low'] * 100:+.1f} to "
                   f"{lf['ci_high'] * 100:+.1f})")
    click.echo(res["verdict"])
    if res["pending"]:
        click.echo(f"{res['pending']:,} assignments are younger than {window_days} days and not counted yet.")

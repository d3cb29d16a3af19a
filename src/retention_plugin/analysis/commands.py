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
    f = click.option("--delimiter", default=",", show_default=True, help="Field separator of the CSV.")(f)
    f = click.option("--amount-col", default="amount", show_default=True,
                     help="Column with the order value (optional for count models).")(f)
    f = click.option("--date-col", default="date", show_default=True,
                     help="Column with the order date (YYYY-MM-DD, an ISO datetime, or YYYYMMDD).")(f)
    f = click.option("--customer-col", default="customer_id", show_default=True, help="Column with the customer id.")(f)
    f = click.option("--time-unit", type=click.Choice(["weeks", "days"]), default="weeks", show_default=True,
                     help="Unit of t_x and T (and of the fitted alpha, beta, ...).")(f)
    f = click.option("--transactions", type=click.Path(exists=True, dir_okay=False), required=True,
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


def _import_in_background(module: str) -> None:
    """Start importing ``module`` (scipy and the models: about a third of a second) in a thread.

    pyarrow reads the CSV and numpy sorts it without holding the GIL, so the
    import runs beside them instead of after; the command's own ``import``
    of the module later waits for this one. Everything the reading thread
    needs is imported before the thread starts, so the two never import the
    same module at once.
    """
    import importlib
    import threading

    from .transactions import import_reader

    import_reader()

    def run():
        try:
            importlib.import_module(module, __package__)
        except Exception:  # noqa: BLE001 - the command's own import raises it again, where it can be reported
            pass

    threading.Thread(target=run, name=f"import {module}", daemon=True).start()


def _summarize(tx, calibration_end, holdout_end, time_unit):
    from .summary import DataError, summarize_transactions

    first, last = int(tx.days.min()), int(tx.days.max())
    if calibration_end < first:
        raise click.BadParameter(f"{day_to_iso(calibration_end)} is before the first transaction "
                                 f"({day_to_iso(first)})", param_hint="'--calibration-end'")
    if holdout_end is not None and holdout_end <= calibration_end:
        raise click.BadParameter("must be after --calibration-end", param_hint="'--holdout-end'")
    if holdout_end is not None and calibration_end >= last:
        raise click.BadParameter(f"no transaction after it (the last is on {day_to_iso(last)}): nothing to hold out",
                                 param_hint="'--calibration-end'")
    try:
        return summarize_transactions(tx, calibration_end=calibration_end, holdout_end=holdout_end,
                                      time_unit=time_unit)
    except DataError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("analyze")
def analyze():
    """Lost-customer analysis: fit purchase models, evaluate them, report."""


@analyze.command("fit")
@csv_options
@click.option("--calibration-end", type=DAY, required=True, help="Last day of the calibration period (inclusive).")
@click.option("--model", "model_name", type=click.Choice(["bgnbd", "mbgnbd", "pnbd", "gg"]), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def fit_cmd(transactions, time_unit, customer_col, date_col, amount_col, delimiter, calibration_end, model_name,
            as_json):
    """Fit one model by maximum likelihood and print its parameters and log-likelihood."""
    _import_in_background(".models")
    tx = _read(transactions, customer_col, date_col, amount_col, delimiter)
    s = _summarize(tx, calibration_end, None, time_unit)
    from .models import MODELS
    try:
        if model_name == "gg":
            if not np.any(tx.amounts):
                raise click.BadParameter(f"Gamma-Gamma needs order values: column {amount_col!r} is missing or all zero",
                                         param_hint="'--amount-col'")
            model = MODELS["gg"].fit(s.x, s.monetary)
        else:
            model = MODELS[model_name].fit(s.x, s.t_x, s.T)
    except ValueError as exc:
        raise click.UsageError(f"cannot fit {model_name}: {exc}") from None
    out = {**s.describe(), **model.to_dict()}
    if as_json:
        _echo_json(out)
        return
    n = int(model.fit_result.n) if model.fit_result else len(s)
    click.echo(f"{model.title} on {n:,} customers, calibration to {day_to_iso(calibration_end)}, in {time_unit}")
    for k, v in model.params.items():
        click.echo(f"  {k:>6} = {v:.6g}")
    click.echo(f"  loglik = {model.loglik:.3f}")
    if not out.get("converged", True):
        click.echo("  warning: the optimiser did not report convergence", err=True)


@analyze.command("evaluate")
@csv_options
@click.option("--calibration-end", type=DAY, required=True, help="Last day the models may see (inclusive).")
@click.option("--holdout-end", type=DAY, required=True, help="Last day of the holdout period (inclusive).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate_cmd(transactions, time_unit, customer_col, date_col, amount_col, delimiter, calibration_end,
                 holdout_end, as_json):
    """Time-split holdout: AUC, count error and calibration of each model against the baseline."""
    _import_in_background(".evaluate")
    tx = _read(transactions, customer_col, date_col, amount_col, delimiter)
    s = _summarize(tx, calibration_end, holdout_end, time_unit)
    from .evaluate import evaluate
    if (s.holdout_x == 0).all() or (s.holdout_x > 0).all():
        raise click.UsageError("every customer is on the same side (all bought or none did) in the holdout: "
                               "AUC is undefined; choose other dates")
    result = evaluate(s)
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['customers']:,} customers; {result['no_purchase_in_holdout']:,} made no purchase "
               f"from {result['calibration_end']} to {result['holdout_end']}")
    click.echo(f"{'score':<48} {'AUC':>6}")
    for c in result["candidates"]:
        click.echo(f"{c['label']:<48} {c['auc']:6.3f}")
    click.echo(f"{'model':<10} {'MAE':>7} {'predicted':>10} {'actual':>8}")
    for k, m in result["models"].items():
        if "mae" in m:
            click.echo(f"{k:<10} {m['mae']:7.3f} {m['predicted_purchases']:10.1f} {m['actual_purchases']:8.0f}")
    click.echo(f"{'baseline':<10} {result['baseline']['mae']:7.3f}")
    click.echo(result["chosen"]["verdict"])


def _engine(ctx):
    engine = getattr(ctx.obj, "engine", None)
    if engine is None:
        raise click.UsageError(f"`{ctx.command_path}` reads the store's database: run it through the `retention` "
                               "command with a configuration that names the database")
    return engine


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
@click.pass_context
def report_cmd(ctx, out_dir, as_of, horizon_days, at_risk_from, lost_from, slow_reply_hours):
    """Write report.html, customers.csv and summary.json for the stored data."""
    from .report import REPORT_STEPS, build_report
    from .scoring import ScoreSettings
    from .segments import SegmentSettings
    from .signals import SignalSettings
    from .store import load_store_history

    if at_risk_from >= lost_from:
        raise click.BadParameter("must be below --lost-from", param_hint="'--at-risk-from'")
    engine = _engine(ctx)
    history = load_store_history(engine, as_of)
    if len(history.orders.day) == 0:
        raise click.UsageError(f"no orders up to {day_to_iso(history.as_of)}: nothing to analyse")
    extra = _plugin_signals(ctx.obj, history.customers.tolist())
    settings = ScoreSettings(horizon_days=horizon_days,
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
    click.echo(f"Wrote {out_dir}/report.html, customers.csv, summary.json ({summary['customers']:,} customers).")
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
        rate = "–" if r["rate"] is None else f"{r['rate'] * 100:.1f}% (95% CI {r['ci_low'] * 100:.1f}–{r['ci_high'] * 100:.1f}%)"
        click.echo(f"{g:<8} {r['reordered']:>6,} of {r['customers']:>6,} reordered within {window_days} days: {rate}")
    if res["lift"]:
        lf = res["lift"]
        click.echo(f"lift     {lf['difference'] * 100:+.1f} points (95% CI {lf['ci_low'] * 100:+.1f} to "
                   f"{lf['ci_high'] * 100:+.1f})")
    click.echo(res["verdict"])
    if res["pending"]:
        click.echo(f"{res['pending']:,} assignments are younger than {window_days} days and not counted yet.")

import json

import numpy as np
import pytest
from click.testing import CliRunner

from retention_plugin.analysis.commands import analyze
from retention_plugin.analysis.models import BGNBD, GammaGamma
from retention_plugin.analysis.models.simulate import simulate_bgnbd
from retention_plugin.analysis.summary import summarize


@pytest.fixture(scope="module")
def transactions_csv(tmp_path_factory):
    """Orders of 1,500 simulated customers, written as a shop export would be."""
    rng = np.random.default_rng(21)
    start = np.datetime64("2023-01-01")
    rows = []
    for c in range(1500):
        first = int(rng.integers(0, 120))
        x, _ = simulate_bgnbd({"r": 0.6, "alpha": 4.0, "a": 0.8, "b": 2.5}, np.array([60.0]), rng)
        days = np.sort(np.unique(np.concatenate([[first], first + rng.integers(1, 420, int(x[0]))])))
        for d in days:
            rows.append((f"C{c:05d}", str(start + d) + "T10:30:00Z", f"{rng.gamma(3, 15):.2f}"))
    path = tmp_path_factory.mktemp("csv") / "orders.csv"
    with path.open("w") as fh:
        fh.write("Customer,Created at,Total\n")
        fh.writelines(f"{a},{b},{c}\n" for a, b, c in rows)
    return path, rows


COLS = ["--customer-col", "Customer", "--date-col", "Created at", "--amount-col", "Total"]


def test_fit_json_prints_published_names_and_loglik(transactions_csv):
    path, rows = transactions_csv
    res = CliRunner().invoke(analyze, ["fit", "--transactions", str(path), "--calibration-end", "2023-09-30",
                                       "--model", "bgnbd", "--time-unit", "weeks", "--json", *COLS])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out["params"]) == {"r", "alpha", "a", "b"}
    ids = np.array([r[0] for r in rows])
    days = np.array([r[1][:10] for r in rows])
    s = summarize(ids, days, None, calibration_end="2023-09-30")
    direct = BGNBD.fit(s.x, s.t_x, s.T)
    assert out["loglik"] == pytest.approx(direct.loglik, abs=1e-6)
    assert out["params"]["alpha"] == pytest.approx(direct.params["alpha"], rel=1e-9)
    assert out["customers"] == len(s)


def test_fit_gamma_gamma_and_pnbd(transactions_csv):
    path, _ = transactions_csv
    runner = CliRunner()
    res = runner.invoke(analyze, ["fit", "--transactions", str(path), "--calibration-end", "20230930",
                                  "--model", "gg", "--json", *COLS])
    assert res.exit_code == 0, res.output
    gg = json.loads(res.output)
    assert set(gg["params"]) == {"p", "q", "gamma"} and gg["customers"] < gg["repeat_buyers"] + 1
    res = runner.invoke(analyze, ["fit", "--transactions", str(path), "--calibration-end", "2023-09-30",
                                  "--model", "pnbd", "--time-unit", "days", "--json", *COLS])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.output)["params"]) == {"r", "alpha", "s", "beta"}


def test_evaluate_json(transactions_csv, tmp_path):
    path, rows = transactions_csv
    res = CliRunner().invoke(analyze, ["evaluate", "--transactions", str(path), "--calibration-end", "2023-09-30",
                                       "--holdout-end", "2024-03-31", "--origins", "2", "--plots", str(tmp_path / "p"),
                                       "--json", *COLS])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out["models"]) == {"bgnbd", "mbgnbd", "pnbd"}
    for m in out["models"].values():
        assert 0 <= m["auc"]["p_no_purchase"] <= 1 and m["mae"] >= 0
        assert -1 <= m["correlation"] <= 1 and 0 <= m["brier"]["brier"] <= 1
        assert set(m["standard_errors"]) == set(m["params"])
    assert "baseline" in out and 0 <= out["baseline"]["auc"] <= 1
    assert out["chosen"]["verdict"] and isinstance(out["chosen"]["beats_baseline"], bool)
    assert [r["decile"] for r in out["calibration"]["pnbd"]] == list(range(1, 11))
    # Chosen on the earlier cut-offs (windows ending by the calibration end), judged on the holdout.
    assert out["selection"] and all(w["holdout_end"] <= "2023-09-30" for w in out["selection"])
    assert out["chosen"]["selection_origins"] == len(out["selection"])
    # The tracking curve counts the cohort's repeat purchase days as they happened.
    tr = out["tracking"]
    days = {}
    for cid, when, _ in rows:
        days.setdefault(cid, set()).add(when[:10])
    cohort = {c: sorted(d) for c, d in days.items() if min(d) <= "2023-09-30"}
    assert tr["cohort_customers"] == len(cohort)
    assert tr["actual"][-1] == sum(sum(1 for d in ds[1:] if d <= "2024-03-31") for ds in cohort.values())
    assert all(np.diff(v).min() >= 0 for v in tr["expected"].values())
    assert sorted(p.rsplit("/", 1)[1] for p in out["plots"]) == ["reliability.png", "tracking.png"]
    assert (tmp_path / "p" / "tracking.png").read_bytes()[:4] == b"\x89PNG"


def test_score_prints_each_customer_with_intervals(transactions_csv):
    path, rows = transactions_csv
    res = CliRunner().invoke(analyze, ["score", "--transactions", str(path), "--calibration-end", "2023-09-30",
                                       "--model", "bgnbd", "--horizon", "26", *COLS])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split(",")[4:] == ["p_alive", "p_alive_low", "p_alive_high", "expected_purchases",
                                       "expected_purchases_low", "expected_purchases_high"]
    ids = np.array([r[0] for r in rows])
    days = np.array([r[1][:10] for r in rows])
    s = summarize(ids, days, None, calibration_end="2023-09-30")
    assert len(lines) == len(s) + 1
    m = BGNBD.fit(s.x, s.t_x, s.T)
    first = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert first["customer_id"] == s.customer_ids[0]
    assert float(first["expected_purchases"]) == pytest.approx(m.expected_purchases(26, s.x[0], s.t_x[0], s.T[0])[0],
                                                               rel=1e-5)
    res = CliRunner().invoke(analyze, ["score", "--transactions", str(path), "--calibration-end", "2023-09-30",
                                       "--model", "bgnbd", "--json", *COLS])
    out = json.loads(res.output)
    assert out["horizon"] == 52 and "delta method" in out["interval_method"] and len(out["customers"]) == len(s)
    c = out["customers"][0]
    assert c["p_alive_low"] <= c["p_alive"] <= c["p_alive_high"]
    # The default model (Pareto/NBD) on these BG/NBD-made purchases runs along a ridge (s and beta grow
    # together) with some scipy releases: then it has no standard errors, and says so with null bounds
    # rather than inventing intervals.
    res = CliRunner().invoke(analyze, ["score", "--transactions", str(path), "--calibration-end", "2023-09-30",
                                       "--json", *COLS])
    out = json.loads(res.output)
    c = out["customers"][0]
    if out["model"]["standard_errors"]["r"] is None:
        assert not out["model"]["converged"] and c["p_alive_low"] is None and c["p_alive_high"] is None
    else:
        assert c["p_alive_low"] <= c["p_alive"] <= c["p_alive_high"]


@pytest.mark.parametrize("args,option,words", [
    (["--customer-col", "client"], "--customer-col", "'client' not found"),
    (["--date-col", "day"], "--date-col", "'day' not found"),
    (["--amount-col", "price"], "--amount-col", "'price' not found"),
])
def test_missing_columns_are_usage_errors_naming_option_and_column(transactions_csv, args, option, words):
    path, _ = transactions_csv
    base = dict(zip(COLS[::2], COLS[1::2]))
    base.update(dict(zip(args[::2], args[1::2])))
    flat = [v for kv in base.items() for v in kv]
    res = CliRunner().invoke(analyze, ["fit", "--transactions", str(path), "--calibration-end", "2023-09-30",
                                       "--model", "gg", *flat])
    assert res.exit_code == 2
    assert option in res.output and words in res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)


def test_bad_values_in_the_file_name_the_column_and_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("customer_id,date,amount\n1,2024-01-01,10\n1,2024-02-31,12\n")
    res = CliRunner().invoke(analyze, ["fit", "--transactions", str(p), "--calibration-end", "2024-03-01",
                                       "--model", "bgnbd"])
    assert res.exit_code == 2
    assert "'--date-col'" in res.output and "'date' on line 3" in res.output and "2024-02-31" in res.output
    p.write_text("customer_id,date,amount\n1,2024-01-01,10\n1,2024-02-03,1O\n")
    res = CliRunner().invoke(analyze, ["fit", "--transactions", str(p), "--calibration-end", "2024-03-01",
                                       "--model", "gg"])
    assert res.exit_code == 2 and "'--amount-col'" in res.output and "'1O'" in res.output


def test_bad_dates_and_periods_are_usage_errors(transactions_csv):
    path, _ = transactions_csv
    runner = CliRunner()
    cases = [
        (["--calibration-end", "2023-02-30"], "--calibration-end"),
        (["--calibration-end", "2020-01-01"], "--calibration-end"),
    ]
    for extra, option in cases:
        res = runner.invoke(analyze, ["fit", "--transactions", str(path), "--model", "bgnbd", *extra, *COLS])
        assert res.exit_code == 2 and option in res.output, res.output
    res = runner.invoke(analyze, ["evaluate", "--transactions", str(path), "--calibration-end", "2023-09-30",
                                  "--holdout-end", "2023-09-01", *COLS])
    assert res.exit_code == 2 and "--holdout-end" in res.output
    res = runner.invoke(analyze, ["fit", "--transactions", str(path.parent / "nope.csv"), "--model", "bgnbd",
                                  "--calibration-end", "2023-09-30"])
    assert res.exit_code == 2 and "--transactions" in res.output


def test_report_without_a_database_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(analyze, ["report", "--out", str(tmp_path / "r")], obj=None)
    assert res.exit_code == 2 and "database" in res.output


def test_cdnow_through_the_command_line(cdnow_transactions, tmp_path):
    ids, dates, amounts = cdnow_transactions
    p = tmp_path / "cdnow.csv"
    p.write_text("customer_id,date,amount\n" + "".join(f"{i},{d},{a}\n" for i, d, a in zip(ids, dates, amounts)))
    res = CliRunner().invoke(analyze, ["fit", "--transactions", str(p), "--calibration-end", "1997-09-30",
                                       "--model", "gg", "--json"])
    out = json.loads(res.output)
    assert out["customers"] == 946 and round(out["params"]["p"], 2) == 6.25
    assert GammaGamma(out["params"]).params == out["params"]

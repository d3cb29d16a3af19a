"""The read started ahead by `retention analyze fit` is used only when it is the read the command makes."""

import json
import os
import threading

import numpy as np
import pytest

from retention_plugin import launch
from retention_plugin.analysis import readahead
from retention_plugin.analysis import transactions as tr
from retention_plugin.analysis.transactions import read_transactions_csv


@pytest.fixture(autouse=True)
def nothing_pending():
    readahead._pending.clear()
    yield
    readahead._pending.clear()


@pytest.fixture
def reads(monkeypatch):
    """Each typed read made: (thread name, path)."""
    made = []
    real = readahead.typed_table

    def counted(p, block_size=readahead.BLOCK):
        made.append((threading.current_thread().name, p.path.name))
        return real(p, block_size)

    monkeypatch.setattr(readahead, "typed_table", counted)
    return made


def orders(tmp_path, n=3000, name="tx.csv", header="customer_id,date,amount", sep=","):
    rng = np.random.default_rng(n)
    ids = 6_000_000_000_000 + rng.integers(0, 400, n)
    days = np.sort(19000 + rng.integers(0, 300, n)).astype("datetime64[D]").astype(str)
    p = tmp_path / name
    lines = [sep.join((str(i), d, f"{a:.2f}")) for i, d, a in zip(ids.tolist(), days.tolist(),
                                                                   rng.gamma(2, 20, n).tolist())]
    p.write_text(header.replace(",", sep) + "\n" + "\n".join(lines) + "\n")
    return p


def same(a, b):
    assert a.customer_ids.tolist() == b.customer_ids.tolist()
    assert a.days.tolist() == b.days.tolist()
    assert a.amounts.tolist() == b.amounts.tolist()


def test_the_read_ahead_is_taken_once_and_reads_the_same(tmp_path, reads):
    p = orders(tmp_path)
    plain = read_transactions_csv(p)
    assert reads == [("MainThread", "tx.csv")]
    assert readahead.start(["--transactions", str(p), "--calibration-end", "2024-01-01"])
    ahead = read_transactions_csv(p)
    assert reads[1:] == [("read ahead", "tx.csv")]  # the command's read made none of its own
    same(ahead, plain)
    again = read_transactions_csv(p)  # handed out once: a second read reads the file
    assert reads[2:] == [("MainThread", "tx.csv")]
    same(again, plain)


def test_a_file_changed_after_the_read_ahead_is_read_again(tmp_path, reads):
    p = orders(tmp_path)
    assert readahead.start([f"--transactions={p}"])
    readahead._pending[next(iter(readahead._pending))][0].join()
    q = orders(tmp_path, n=2000, name="other.csv")
    os.replace(q, p)  # another size and time: the table read ahead is not this file's
    tx = read_transactions_csv(p)
    assert len(tx) == 2000
    assert reads[-1] == ("MainThread", "tx.csv")


def test_other_columns_or_delimiter_than_read_ahead_read_again(tmp_path, reads):
    p = orders(tmp_path, header="id,day,value", sep=";")
    assert readahead.start(["--transactions", str(p), "--delimiter", ";", "--customer-col", "id",
                            "--date-col", "day", "--amount-col", "value"])
    tx = read_transactions_csv(p, customer_col="id", date_col="day", amount_col=None, delimiter=";")
    assert ("MainThread", "tx.csv") in reads  # no amounts asked for: not the read made ahead
    assert len(readahead._pending) == 1
    assert tx.amounts.tolist() == [0.0] * len(tx)
    tx2 = read_transactions_csv(p, customer_col="id", date_col="day", amount_col="value", delimiter=";")
    assert sorted(reads) == [("MainThread", "tx.csv"), ("read ahead", "tx.csv")]  # the second took it
    assert readahead._pending == {}
    assert tx2.amounts.sum() > 0


@pytest.mark.parametrize("argv", [
    [],
    ["--transactions"],
    ["--transactions", "/no/such/file.csv"],
    ["--transactions", "{dir}"],
    ["--transactions", "{p}", "--customer-col", "nope"],  # the command words that error, not the read ahead
    ["--transactions", "{p}", "--delimiter", ";;"],
    ["--transactions", "{compact}"],  # not a plain date: the text reader's file
    ["--", "--transactions", "{p}"],
])
def test_nothing_is_started_when_in_doubt(tmp_path, argv, reads):
    p = orders(tmp_path)
    compact = tmp_path / "compact.csv"
    compact.write_text("customer_id,date,amount\n1,20240101,3\n")
    argv = [a.format(p=p, dir=tmp_path, compact=compact) for a in argv]
    assert readahead.start(argv) is False
    assert readahead._pending == {}
    assert reads == []


def test_a_failed_read_ahead_leaves_the_decision_to_the_command(tmp_path, reads):
    p = tmp_path / "bad.csv"
    p.write_text("customer_id,date,amount\n1,2024-01-01,3\n2,2024-01-02,x\n")
    assert readahead.start(["--transactions", str(p)])
    tx_error = None
    try:
        read_transactions_csv(p)
    except tr.DataError as e:
        tx_error = str(e)
    assert reads[0] == ("read ahead", "bad.csv")
    assert tx_error is not None and "amount" in tx_error and "line 3" in tx_error


def test_the_command_uses_the_read_started_at_launch(tmp_path, reads, capsys, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # launch sets it; the test's environment is put back
    p = orders(tmp_path, n=6000)
    last = p.read_text().strip().rsplit("\n", 1)[1].split(",")[1]
    try:
        launch.main(["analyze", "fit", "--transactions", str(p), "--calibration-end", last,
                     "--model", "bgnbd", "--json", "--min-repeat-buyers", "1"])
    except SystemExit as e:
        assert e.code in (0, None), capsys.readouterr()
    out = json.loads(capsys.readouterr().out)
    assert out["customers"] == 400
    assert reads == [("read ahead", "tx.csv")]


def _console(*args, **kw):
    import subprocess
    import sys

    code = "import sys\nfrom retention_plugin.launch import main\nsys.argv[0] = 'retention'\nsys.exit(main())\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, **kw)


def test_the_console_command_exits_with_its_output_whole_and_its_status(tmp_path):
    """The standalone commands end the process without the interpreter's teardown: what they
    printed must still be out in full, and a usage error must still exit 2 with its message."""
    p = orders(tmp_path, n=6000)
    last = p.read_text().strip().rsplit("\n", 1)[1].split(",")[1]
    ok = _console("analyze", "fit", "--transactions", str(p), "--calibration-end", last, "--model", "bgnbd",
                  "--json", "--min-repeat-buyers", "1")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["customers"] == 400
    bad = _console("analyze", "fit", "--transactions", str(p), "--calibration-end", last, "--model", "nope")
    assert bad.returncode == 2
    assert "Invalid value for '--model'" in bad.stderr
    late = _console("analyze", "fit", "--transactions", str(p), "--calibration-end", "2099-01-01",
                    "--model", "bgnbd")
    assert late.returncode != 0 and late.stdout == ""
    assert last in late.stderr  # the error names the last date of the data

"""The pyarrow CSV path reads every file as the standard-library reader does, or fails with its words."""

import subprocess
import sys

import numpy as np
import pytest

from retention_plugin.analysis import transactions as tr
from retention_plugin.analysis.summary import summarize, summarize_transactions
from retention_plugin.analysis.transactions import DataError, read_transactions_csv
from retention_plugin.launch import standalone_args


def slow(path, customer_col="customer_id", date_col="date", amount_col="amount", delimiter=","):
    """What the standard-library reader makes of the file (the reference)."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = [h.strip() for h in next(csv.reader(fh, delimiter=delimiter))]
    index = tr._column_index(header, path, customer_col, date_col, amount_col)
    names = {"customer": customer_col, "date": date_col, "amount": amount_col}
    return tr._read_python(path, header, index, names, delimiter)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(tr, "_BLOCK", 1 << 10)  # many blocks even for small files


def write(tmp_path, text, name="tx.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def same(a, b):
    assert a.customer_ids.tolist() == b.customer_ids.tolist()
    assert a.days.tolist() == b.days.tolist()
    assert a.amounts.tolist() == b.amounts.tolist()


def random_rows(rng, n, id_fmt, date_fmt):
    days = rng.integers(19000, 19400, n)
    ids = rng.integers(1, 200, n)
    dates = days.astype("datetime64[D]").astype(str)
    lines = []
    for i, d, a in zip(ids, dates, np.round(rng.gamma(2, 20, n), 2)):
        if date_fmt == "compact":
            d = d.replace("-", "")
        elif date_fmt == "datetime":
            d = f"{d}T{int(rng.integers(0, 24)):02d}:15:00{rng.choice(['Z', '+02:00', '-08:00'])}"
        lines.append(f"{id_fmt.format(i)},{d},{a}")
    return lines


@pytest.mark.parametrize("id_fmt", ["{}", "C{:05d}", "6000000{:06d}"])
@pytest.mark.parametrize("date_fmt", ["iso", "compact", "datetime"])
def test_common_files_take_the_fast_path_and_read_the_same(tmp_path, id_fmt, date_fmt, small_blocks, monkeypatch):
    rng = np.random.default_rng(len(id_fmt) + len(date_fmt))
    p = write(tmp_path, "customer_id,date,amount\n" + "\n".join(random_rows(rng, 3000, id_fmt, date_fmt)) + "\n")
    reference = slow(p)
    with monkeypatch.context() as m:
        m.setattr(tr, "_read_python", lambda *a, **k: pytest.fail("fell back to the standard-library reader"))
        fast = read_transactions_csv(p)
    if fast.codes is None:  # integer ids are kept as they are: the summary sorts them with the days
        assert fast.customer_ids.dtype == np.int64
    else:
        assert (fast.labels[:-1] < fast.labels[1:]).all()  # summaries come in id order
    same(fast, reference)
    kw = dict(calibration_end=19300, holdout_end=19399, time_unit="days")
    a = summarize_transactions(fast, **kw)
    b = summarize(reference.customer_ids, reference.days, reference.amounts, **kw)
    assert a.customer_ids.tolist() == b.customer_ids.tolist()
    for f in ("x", "t_x", "T", "first_day", "last_day", "holdout_x"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    for f in ("monetary", "total_spend", "holdout_spend"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-12)


@pytest.mark.parametrize("text", [
    # what pyarrow alone would refuse or read differently, and the lenient rules accept
    "customer_id,date,amount\n 7 , 2024-01-05 ,  12.5\n8,2024-01-06,1_000\n",
    "customer_id,date,amount\n7,2024-01-05,1\n8,20240106,2\n9,2024-01-07 10:00:00,3\n",  # formats mixed
    "customer_id,date,amount,note\n7,2024-01-05,1,a\n8,2024-01-06,2,b,extra\n",  # a row longer than the header
    "\ufeffcustomer_id;date;amount\r\n7;2024-01-05;1\r\n\r\n8;2024-01-06;2\r\n",  # BOM, CRLF, blank line, ';'
    "customer_id,date\n7,2024-01-05\n007,2024-01-05\n",  # no amount column; "007" is not 7
    "customer_id,date\n7,2024-01-05\n-0,2024-01-05\n0,2024-01-05\n-5,2024-01-05\n",  # signs make text
    'customer_id,date,amount\n"7","2024-01-05","1.5"\n"٣",2024-01-06,2\n',  # quotes; an Arabic-Indic digit
])
def test_what_pyarrow_refuses_is_read_by_the_lenient_rules(tmp_path, text):
    p = write(tmp_path, text)
    delimiter = ";" if ";" in text else ","
    same(read_transactions_csv(p, delimiter=delimiter), slow(p, delimiter=delimiter))


def test_leading_zero_ids_in_a_later_block_keep_earlier_integers_apart(tmp_path, small_blocks):
    rows = [f"{i % 50 + 1},2024-01-{i % 28 + 1:02d},1" for i in range(2000)] + ["007,2024-02-01,1"]
    p = write(tmp_path, "customer_id,date,amount\n" + "\n".join(rows) + "\n")
    tx = read_transactions_csv(p)
    assert tx.labels.dtype.kind == "U" and "007" in tx.labels and "7" in tx.labels
    same(tx, slow(p))


@pytest.mark.parametrize("bad,words", [
    ("1,2024-02-30,5", "'date' on line {line} of tx.csv: not a date: '2024-02-30'"),
    ("1,20241301,5", "'date' on line {line} of tx.csv: not a date: '20241301'"),
    ("1,2024-02-03,1O", "'amount' on line {line} of tx.csv: not a number: '1O'"),
    ("1,2024-02-03,nan", "'amount' on line {line} of tx.csv: not a finite number: 'nan'"),
    ("1,2024-02-03,", "'amount' on line {line} of tx.csv: not a number: ''"),
    ("  ,2024-02-03,4", "'customer_id' is empty on line {line} of tx.csv"),
    ("1,2024-02-03", "line {line} of tx.csv has 2 fields, expected 3"),
])
def test_errors_name_the_column_and_the_line_in_any_block(tmp_path, bad, words, small_blocks):
    good = [f"{i % 40 + 1},2024-01-{i % 28 + 1:02d},{i % 7 + 1}" for i in range(1500)]
    line = 1202  # the header is line 1
    rows = good[:line - 2] + [bad] + good[line - 2:]
    if "customer_id" in words:
        rows = [r.replace("C", "") for r in rows]
    p = write(tmp_path, "customer_id,date,amount\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as fast:
        read_transactions_csv(p)
    with pytest.raises(DataError) as reference:
        slow(p)
    assert str(fast.value) == str(reference.value)
    assert words.format(line=line) in str(fast.value)


def test_not_utf8_and_empty_files(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\n1,2024-01-01,5\n2,2024-01-02,\xe9\n", encoding="latin-1")
    with pytest.raises(UnicodeDecodeError):
        read_transactions_csv(p)
    p = write(tmp_path, "customer_id,date,amount\n\n\n")
    with pytest.raises(DataError, match="has a header but no transactions"):
        read_transactions_csv(p)
    with pytest.raises(DataError, match="one character"):
        read_transactions_csv(p, delimiter=";;")


def test_launcher_sends_fit_and_evaluate_straight_to_the_analysis():
    assert standalone_args(["analyze", "fit", "--model", "bgnbd"]) == ["fit", "--model", "bgnbd"]
    assert standalone_args(["--config", "x.toml", "analyze", "evaluate"]) == ["evaluate"]
    assert standalone_args(["--config=x.toml", "analyze", "fit"]) == ["fit"]
    for other in (["analyze", "report", "--out", "r"], ["analyze"], ["analyze", "--help"], ["serve"], [],
                  ["--config"], ["--help"]):
        assert standalone_args(other) is None


def test_fit_from_the_command_line_loads_no_plugin_and_no_database_layer(tmp_path):
    p = write(tmp_path, "customer_id,date,amount\n" + "".join(
        f"{c},2024-0{m}-1{c % 9},{c}\n" for c in range(1, 60) for m in range(1, 1 + c % 5)))
    code = (
        "import sys\n"
        "from retention_plugin.launch import main\n"
        "try:\n"
        f"    main(['analyze', 'fit', '--transactions', {str(p)!r}, '--calibration-end', '2024-04-15',"
        " '--model', 'bgnbd', '--json'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in ('retention_plugin.plugins', 'sqlalchemy', 'matplotlib', 'alembic')"
        " if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert '"model": "bgnbd"' in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_reading_holds_numbers_not_the_text_of_the_file(tmp_path):
    """The csv-module reader held every field as a Python string: about 20 times the size of the
    columns it returned (a 2-million-row export took 1.2 GB). Now what Python allocates peaks near
    the columns themselves (pyarrow's own buffers, outside Python, are measured by
    bench/bench_fit_e2e.py as the process's peak)."""
    rng = np.random.default_rng(5)
    n = 300_000
    ids = 6_000_000_000_000 + rng.integers(0, 10**9, n // 8)[rng.integers(0, n // 8, n)]
    dates = (19000 + rng.integers(0, 700, n)).astype("datetime64[D]").astype(str)
    p = tmp_path / "big.csv"
    with p.open("w") as fh:
        fh.write("customer_id,date,amount\n")
        fh.writelines(f"{i},{d},{a:.2f}\n" for i, d, a in zip(ids.tolist(), dates.tolist(),
                                                                rng.gamma(2, 20, n).tolist()))
    code = (
        "import sys, tracemalloc\n"
        "from retention_plugin.analysis import transactions as tr\n"
        "tr.import_reader()\n"
        "tracemalloc.start()\n"
        "tx = tr.read_transactions_csv(sys.argv[1])\n"
        "python_peak = tracemalloc.get_traced_memory()[1]\n"
        "columns = (tx.customer_ids if tx.codes is None else tx.codes).nbytes + tx.days.nbytes + tx.amounts.nbytes\n"
        "print(len(tx), python_peak / columns)\n")
    res = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows, python_ratio = res.stdout.split()
    assert int(rows) == n
    assert float(python_ratio) < 5, python_ratio  # the csv-module reader: 19.8 on such a file


def test_after_import_reader_reading_imports_nothing(tmp_path):
    """The models are imported in a thread while the file is read: the reading thread must not
    import anything meanwhile, so the two never wait on each other's modules."""
    p = write(tmp_path, "customer_id,date,amount\n 7 ,2024-01-05, 1\n8,20240106,1_0\nC9,2024-01-07T10:00Z,3\n")
    q = write(tmp_path, "customer_id,date,amount\n6000000000001,2024-01-05,1\n6000000000002,2024-01-06,2\n",
              name="ints.csv")
    code = (
        "import sys\n"
        "from retention_plugin.analysis.transactions import import_reader, read_transactions_csv\n"
        "import_reader()\n"
        "from retention_plugin.analysis.summary import summarize_transactions\n"
        "before = set(sys.modules)\n"
        "for path in sys.argv[1:]:\n"
        "    tx = read_transactions_csv(path)\n"
        "    summarize_transactions(tx, holdout_end=tx.days.max() + 1).customer_ids.tolist()\n"
        "print(sorted(set(sys.modules) - before))\n")
    res = subprocess.run([sys.executable, "-c", code, str(p), str(q)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("later", [
    None,  # every date plain: the typed read takes the whole file
    "5,2024-03-01T10:00:00+02:00,4",  # a datetime further down
    "5,20240301,4",  # a compact date
    "5, 2024-03-01 ,1_000",  # blanks around a date (pyarrow takes them), an amount only the rules take
    "5,2024-03-01,inf",  # a value pyarrow reads and the rules refuse
])
def test_the_typed_read_takes_plain_dates_and_leaves_the_rest_to_the_text_reader(tmp_path, later, monkeypatch):
    rng = np.random.default_rng(11)
    rows = random_rows(rng, 2000, "6000000{:06d}", "iso")
    if later:
        rows.insert(1500, later)
    p = write(tmp_path, "customer_id,date,amount\n" + "\n".join(rows) + "\n")
    typed = []
    real = tr._read_typed
    monkeypatch.setattr(tr, "_read_typed", lambda *a: typed.append(1) or real(*a))
    text = []
    real_text = tr._read_arrow
    monkeypatch.setattr(tr, "_read_arrow", lambda *a: text.append(1) or real_text(*a))
    if later and later.endswith("inf"):
        with pytest.raises(DataError, match="not a finite number: 'inf'") as fast:
            read_transactions_csv(p)
        with pytest.raises(DataError) as reference:
            slow(p)
        assert str(fast.value) == str(reference.value)
    else:
        same(read_transactions_csv(p), slow(p))
    assert typed == [1]
    assert text == ([] if later is None else [1])


@pytest.mark.parametrize("base,spread", [(6_000_000_000_000, 10**9), (0, 9 * 10**17)])
def test_integer_ids_are_summarised_in_one_sort_with_the_same_numbers(tmp_path, base, spread):
    """13-digit ids (Shopify's) are not hashed into codes when read: the count models' summary
    sorts ids and days in one key. Its numbers and customer order are the general summary's;
    ids too far apart for one 64-bit key (the second case) take the general way."""
    rng = np.random.default_rng(18)
    ids = base + rng.integers(1, spread, 400)[rng.integers(0, 400, 6000)]
    days = 19000 + rng.integers(0, 500, 6000)
    lines = [f"{i},{np.datetime64(int(d), 'D')},{a:.2f}" for i, d, a in zip(ids.tolist(), days.tolist(),
                                                                           rng.gamma(2, 20, 6000).tolist())]
    p = write(tmp_path, "customer_id,date,amount\n" + "\n".join(sorted(lines, key=lambda r: r.split(",")[1])) + "\n")
    tx = read_transactions_csv(p)
    assert tx.codes is None and tx.customer_ids.dtype == np.int64
    for cut in (19200, int(days.max())):
        a = summarize_transactions(tx, calibration_end=cut, spend=False)
        b = summarize(ids, days, calibration_end=cut)
        assert a.customer_ids.dtype == b.customer_ids.dtype and a.customer_ids.tolist() == b.customer_ids.tolist()
        assert (a.customer_ids[:-1] < a.customer_ids[1:]).all()
        for f in ("x", "t_x", "T", "first_day", "last_day"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert a.monetary is None and a.calibration_end == cut
    # The spend and holdout sums need codes: made once, kept for the next cut-off (evaluate's rolling origins).
    kw = dict(calibration_end=19200, holdout_end=int(days.max()))
    a = summarize_transactions(tx, **kw)
    assert tx.codes is not None and np.array_equal(tx.labels[tx.codes], tx.customer_ids)
    codes = tx.codes
    b = summarize(ids, days, **kw)
    assert summarize_transactions(tx, **kw).customer_ids.tolist() == a.customer_ids.tolist() == b.customer_ids.tolist()
    assert tx.codes is codes
    for f in ("x", "first_day", "last_day", "holdout_x"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_fitting_a_csv_loads_neither_pluggy_nor_numpy_ma_nor_pyarrow_compute(tmp_path):
    """`retention analyze fit` on 13-digit ids imported pluggy (retention_plugin's own __init__) and
    numpy.ma (pyarrow's pa.array on a numpy array) and pyarrow.compute (its wrappers of several
    hundred functions, for one cast): about 0.05 s of a command that takes half a second."""
    rng = np.random.default_rng(3)
    rows = []
    for c in rng.choice(10**9, 3000, replace=False):  # BG/NBD customers: a purchase rate, a dropout chance
        rate, drop, t = rng.gamma(0.6, 1 / 3.5) / 7, rng.beta(0.4, 4), int(rng.integers(0, 84))
        while t < 500:
            rows.append((19000 + t, 6_000_000_000_000 + int(c)))
            if rng.random() < drop:
                break
            t += int(rng.exponential(1 / rate)) + 1
    rows.sort()
    p = write(tmp_path, "customer_id,date,amount\n" + "".join(
        f"{i},{np.datetime64(d, 'D')},5.00\n" for d, i in rows))
    days = np.array([d for d, _ in rows])
    code = (
        "import sys\n"
        "from retention_plugin.launch import main\n"
        "try:\n"
        f"    main(['analyze', 'fit', '--transactions', {str(p)!r}, '--calibration-end',"
        f" '{np.datetime64(int(days.max()), 'D')}', '--model', 'bgnbd', '--json'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in ('pluggy', 'numpy.ma', 'pyarrow.compute', 'scipy') if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert '"converged": true' in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_ids_cast_in_two_threads_keep_their_places_and_their_refusals():
    """The id cast shares a file's chunks between two threads: every value must land where its
    row is, and a chunk that fails in either thread must still send the column to the text path."""
    import pyarrow as pa

    from retention_plugin.analysis.transactions import _canonical_ints

    blocks = [[str(1000 * b + i) for i in range(1, 6 + b)] for b in range(7)]
    col = pa.chunked_array([pa.array(b) for b in blocks])
    np.testing.assert_array_equal(_canonical_ints(col), [int(v) for b in blocks for v in b])
    for bad_chunk, bad in ((3, "x1"), (4, "007"), (0, "")):
        broken = [list(b) for b in blocks]
        broken[bad_chunk][1] = bad
        assert _canonical_ints(pa.chunked_array([pa.array(b) for b in broken])) is None, (bad_chunk, bad)


@pytest.mark.parametrize("ids", [["1000000000042", "1000000000007", "1000000099999"], ["a", "b", "c"], ["3", "1", "2"]])
def test_the_reader_hands_on_the_figures_it_saw(tmp_path, ids):
    """The first and last day, the counts of negative and zero amounts (and the smallest and
    largest integer id) come from the reader, read off each block on the way, and agree with
    the columns they describe."""
    path = tmp_path / "orders.csv"
    rows = [(ids[i % 3], f"2024-0{1 + i % 9}-1{i % 10}", ["-2.5", "0", "0.00", f"{i}.5"][i % 4]) for i in range(40)]
    path.write_text("customer_id,date,amount\n" + "".join(f"{c},{d},{a}\n" for c, d, a in rows))
    tx = read_transactions_csv(path)
    assert "days" in tx._known and "amounts" in tx._known
    assert tx.day_bounds() == (int(tx.days.min()), int(tx.days.max()))
    assert tx.amount_counts() == (int((tx.amounts < 0).sum()), int((tx.amounts == 0).sum())) == (10, 20)
    if tx.codes is None:
        assert tx._known["ids"] == (int(tx.customer_ids.min()), int(tx.customer_ids.max()))

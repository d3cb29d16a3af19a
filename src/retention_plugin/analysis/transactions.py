"""Transactions as columns, and reading them from a CSV file.

A shop's export of two million orders is read by pyarrow's CSV reader:
multi-threaded C++ that parses the file in blocks and never builds a Python
object per field (docs/performance.md measures it against polars' reader and
the standard library's). Customer ids that are plain integers (Shopify's are)
come back as int64, which the count models' summary sorts together with the
days; any other ids come back as dense integer *codes* into the sorted
distinct ids, which is what the summaries sort on.

Files whose first date is a plain ``YYYY-MM-DD`` are tried first with the
dates and amounts typed in pyarrow's own parse (:func:`_read_typed`); any
file that does not go through that way is read as text, block by block
(:func:`_read_arrow`). pyarrow is strict where the rules of this module are
lenient (a space around a date, ``1_000`` as a number, a row longer than the
header), so it is only the fast path: when it refuses a column, that column
is read again by the numpy rules of :mod:`.dates`; when it refuses the file,
the standard library's ``csv`` module reads it. Those slower readers define what is
accepted and word every error (column and line), so a file reads the same
whichever reader took it, and a file with one fault fails with the same
message (with several, the first one met may differ).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from . import readahead
from .codes import dense_codes
from .dates import DateError, compact_days, to_days
from .readahead import DataError
from .twothreads import run_both

__all__ = ["Transactions", "DataError", "read_transactions_csv"]


class Transactions:
    """One entry per order: customer, day number (since 1970-01-01), amount.

    Built either from the ids themselves, or (by the CSV reader) from
    ``codes`` into ``labels``, ids in ascending order (every id of the file,
    and for small integer ids the ones between them too); ``customer_ids`` is
    then made from the two only when asked for.
    """

    __slots__ = ("_ids", "days", "amounts", "codes", "labels", "_known")

    def __init__(self, customer_ids=None, days=None, amounts=None, *, codes=None, labels=None,
                 bounds: dict | None = None):
        if (customer_ids is None) == (codes is None):
            raise TypeError("give either customer_ids, or codes with labels")
        self._ids = None if customer_ids is None else np.asarray(customer_ids)
        self.codes = codes
        self.labels = labels
        self.days = np.asarray(days, dtype=np.int64)
        self.amounts = np.zeros(len(self.days)) if amounts is None else np.asarray(amounts, dtype=np.float64)
        # Figures the reader found on its way (see _known_or): the first and last day, the smallest
        # and largest integer id, the numbers of negative and zero amounts.
        self._known = dict(bounds or {})

    def day_bounds(self) -> tuple[int, int]:
        """The first and last day (the transactions must not be empty)."""
        return self._known_or("days", lambda: (int(self.days.min()), int(self.days.max())))

    def id_bounds(self) -> tuple[int, int]:
        """The smallest and largest integer customer id."""
        return self._known_or("ids", lambda: (int(self.customer_ids.min()), int(self.customer_ids.max())))

    def amount_counts(self) -> tuple[int, int]:
        """How many amounts are negative, and how many are zero."""
        return self._known_or("amounts", lambda: (int(np.count_nonzero(self.amounts < 0)),
                                                  len(self.amounts) - int(np.count_nonzero(self.amounts))))

    def _known_or(self, name: str, compute):
        # A pass over two million values costs a few milliseconds and the command asks for these
        # figures in several places; the reader fills them in while each block is in the cache.
        found = self._known.get(name)
        if found is None:
            found = self._known[name] = compute()
        return found

    @property
    def customer_ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = self.labels[self.codes]
        return self._ids

    def __len__(self) -> int:
        return len(self.days)


def import_reader() -> None:
    """Import what reading and summarising need, e.g. before another thread imports more.

    pyarrow imports some helpers only when first given a Python scalar, and numpy its text
    functions only when first used: one small read here makes them imported too, so that
    the reading thread imports nothing while another thread does.
    """
    import encodings.utf_8_sig  # noqa: F401 (the header is read with it)

    import numpy.char  # noqa: F401
    import pyarrow as pa
    import pyarrow.csv  # noqa: F401

    _codes([_arrow_ids(pa.array([" a "]), "", "", 0)])
    _codes([_arrow_ids(pa.array(["1", "1000000000000"]), "", "", 0)])
    for dates in (["2024-01-01"], ["20240101"], ["2024-01-01T10:00"]):
        _arrow_days(pa.array(dates), "", "", 0)
    _arrow_amounts(pa.array(["1.5"]), "", "", 0)


class _Refused(Exception):
    """pyarrow would not read the file as it stands; the standard library's reader decides."""


class _Untyped(Exception):
    """pyarrow's typed columns would not take the file: the block-by-block text reader decides."""


def read_transactions_csv(
    path,
    *,
    customer_col: str = "customer_id",
    date_col: str = "date",
    amount_col: str | None = "amount",
    delimiter: str = ",",
) -> Transactions:
    """Read a CSV with a header row. Errors name the column and the line.

    ``amount_col`` may be None (or absent from the file when it is the
    default) for count-only models; the amounts are then zeros.
    """
    p = readahead.plan(path, customer_col=customer_col, date_col=date_col, amount_col=amount_col,
                       delimiter=delimiter)
    path, header, index, names = p.path, p.header, p.index, p.names
    try:
        if p.typed:
            try:
                return _read_typed(p)
            except _Untyped:
                pass
        return _read_arrow(path, header, index, names, delimiter)
    except _Refused:
        return _read_python(path, header, index, names, delimiter)


#: Kept under their old names: the tests reach them here.
_column_index = readahead.column_index
_ISO_DAY = readahead.ISO_DAY


# --- the fast paths --------------------------------------------------------------------------------


def _read_typed(p: readahead.Plan) -> Transactions:
    """The whole file at once, dates and amounts parsed by pyarrow's own threads as it reads.

    Used when the first row's date is a plain ``YYYY-MM-DD``. pyarrow's ``date32`` and
    ``float64`` conversions take a subset of what :mod:`.dates` and :func:`_floats` accept
    (a date with nothing but blanks around it; a number that Python's ``float`` reads), with
    the same values; anything else, and any value that is not a finite number, is left to
    :func:`_read_arrow`, which reads the file again as text and words the error. Only the
    ids are kept as text: ``"007"`` and ``"7"`` are two customers, which an integer
    conversion would merge. The read may have been started ahead (:mod:`.readahead`).
    """
    import pyarrow as pa

    path, names = p.path, p.names
    role = {r: f"c{i}" for r, i in p.index.items()}
    try:
        table = readahead.take(p, _BLOCK)
        if table is None:
            table = readahead.typed_table(p, _BLOCK)
    except (pa.ArrowException, OverflowError):
        raise _Untyped from None
    if table.num_rows == 0:
        raise _Untyped
    bounds: dict = {}
    rows = table.num_rows
    # The table's columns by role, dropped (with the table) as soon as they are copied out.
    columns = {r: table.column(c) for r, c in role.items()}
    del table

    def amounts_and_days() -> None:
        if "amount" in columns:
            columns["amount"] = _finite_amounts(columns["amount"], bounds)
        else:
            columns["amount"] = np.zeros(rows)
            bounds["amounts"] = (0, rows)
        columns["date"] = _date32_days(columns["date"], bounds)

    def cast_ids() -> None:
        columns["customer"] = _arrow_ids(columns["customer"], names["customer"], path.name, 0, bounds)

    # The amounts and days are copied out beside the ids' cast (itself on two threads): about a
    # tenth of a second of work after the parse, on whichever core is free. run_both raises this
    # thread's error first, so an amount that is not a finite number sends the file to the text
    # reader whatever the ids hold, as when the columns were done one after another.
    run_both(amounts_and_days, cast_ids, "cast ids")
    amounts, days, ids = columns.pop("amount"), columns.pop("date"), columns.pop("customer")
    if isinstance(ids, np.ndarray) and not _dense(ids, bounds.get("ids")):
        # Integer ids are kept as they are: the summary sorts them with the days in one key
        # (summary._summarize_ids), so hashing them into codes first would be a pass for nothing.
        return Transactions(ids, days, amounts, bounds=bounds)
    codes, labels = _codes([ids] if isinstance(ids, np.ndarray) else list(ids.chunks))
    bounds.pop("ids", None)  # the codes are not the ids
    return Transactions(codes=codes, labels=labels, days=days, amounts=amounts, bounds=bounds)


def _finite_amounts(column, bounds: dict) -> np.ndarray:
    """The amounts of a float64 column (chunked) as one array; ``bounds["amounts"]`` is set to the
    numbers of negative and zero amounts, counted chunk by chunk while each is in the cache.
    Raises :class:`_Untyped` for a value that is not a finite number."""
    out = np.empty(len(column), np.float64)
    at = negative = nonzero = 0
    for chunk in column.chunks:
        values = chunk.to_numpy()
        part = out[at:at + len(values)]
        part[:] = values
        if not np.isfinite(part).all():
            raise _Untyped
        negative += int(np.count_nonzero(part < 0))
        nonzero += int(np.count_nonzero(part))
        at += len(values)
    bounds["amounts"] = (negative, len(out) - nonzero)
    return out


def _read_arrow(path: Path, header, index, names, delimiter) -> Transactions:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Our own column names: the file's may repeat or be blank.
    cols = [f"c{i}" for i in range(len(header))]
    wanted = [cols[i] for i in index.values()]
    ids, days, amounts = [], [], []
    rows = 0
    try:
        # Block by block, each made into numpy columns at once: the text of two million rows is never
        # held whole, which keeps the peak near the size of the numbers (docs/performance.md).
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=cols, block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            # Every column as text: converting here would make "" and "NA" nulls and hide the line of a bad value.
            convert_options=pacsv.ConvertOptions(include_columns=wanted, column_types={c: pa.string() for c in wanted},
                                                 strings_can_be_null=False),
        )
        for batch in reader:
            if batch.num_rows == 0:
                continue
            col = dict(zip(index, (batch.column(cols[i]) for i in index.values())))
            ids.append(_arrow_ids(col["customer"], names["customer"], path.name, rows))
            days.append(_arrow_days(col["date"], names["date"], path.name, rows))
            if "amount" in col:
                amounts.append(_arrow_amounts(col["amount"], names["amount"], path.name, rows))
            rows += batch.num_rows
    except (pa.ArrowException, OverflowError):
        raise _Refused from None
    if rows == 0:
        raise DataError(f"{path.name} has a header but no transactions")
    codes, labels = _codes(ids)
    del ids
    days = np.concatenate(days)
    amounts = np.concatenate(amounts) if amounts else np.zeros(rows)
    return Transactions(codes=codes, labels=labels, days=days, amounts=amounts)


def _dense(ids: np.ndarray, bounds: tuple[int, int] | None = None) -> bool:
    """Whether integer ids are numbered 1, 2, 3... closely enough to be codes less the smallest."""
    if len(ids) == 0:
        return True
    lo, hi = bounds or (int(ids.min()), int(ids.max()))
    return hi - lo < 4 * len(ids) + 4096


#: Bytes of the file parsed at a time (a name of this module's so the tests can make it small).
_BLOCK = readahead.BLOCK


def _arrow_ids(col, column: str, filename: str, offset: int, bounds: dict | None = None):
    """One block of ids: int64 numpy if they are canonical integers, else pyarrow strings, trimmed.

    ``bounds["ids"]`` is set to the smallest and largest id when they are integers.
    """
    values = _canonical_ints(col, bounds)
    if values is not None:
        return values
    import pyarrow.compute as pc

    col = pc.utf8_trim_whitespace(col)
    if not pc.all(pc.string_is_ascii(col)).as_py() and pc.all(pc.utf8_is_digit(col)).as_py():
        raise _Refused  # digits of other scripts: the standard-library reader applies numpy's rules to them
    empty = pc.equal(pc.binary_length(col), 0)
    if pc.any(empty).as_py():
        line = offset + pc.index(empty, True).as_py() + 2
        raise DataError(f"column {column!r} is empty on line {line} of {filename}", column)
    values = _canonical_ints(col, bounds)
    return col if values is None else values


def _canonical_ints(col, bounds: dict | None = None) -> np.ndarray | None:
    """The ids as int64 if every one is canonical (ASCII digits only, shorter than 19, no leading
    zero: "007" stays text, distinct from "7"), else None; ``bounds["ids"]`` then holds their
    smallest and largest."""
    import pyarrow as pa

    cast = _int64_cast()
    # Chunk by chunk into one array of our own: pyarrow reuses each chunk's buffer for the next,
    # and the codes can later be written over the ids (_codes).
    values = np.empty(len(col), np.int64)
    chunks = list(getattr(col, "chunks", [col]))
    try:
        lo, hi = _cast_into(cast, chunks, values)
    except (pa.ArrowException, OverflowError):
        return None
    if len(values) == 0 or lo < 0 or hi >= 10**18:
        return None
    # What the cast takes is an optional "-" and ASCII digits, so a text is canonical exactly when
    # it is no longer than its value's digits ("007", "-0" are longer): the lengths' sum, read off
    # the offsets, against the digits' sum decides it for the whole column at once.
    written = sum(_text_bytes(chunk) for chunk in getattr(col, "chunks", [col]))
    fewest, most = (int(np.searchsorted(_POWERS_OF_TEN, v, side="right")) + 1 for v in (lo, hi))
    if fewest == most:  # ids of one length (a shop's are): no count of digits value by value
        digits = len(values) * fewest
    else:
        digits = int(np.searchsorted(_POWERS_OF_TEN, values, side="right").sum()) + len(values)
    if written != digits:
        return None
    if bounds is not None:
        bounds["ids"] = (lo, hi)
    return values


def _cast_into(cast, chunks: list, values: np.ndarray) -> tuple[int, int]:
    """Each chunk cast to int64 (the cast refuses spaces, "+", "", letters and overflow) into its
    place in ``values``; the chunks of a whole file are shared between two threads. Returns the
    smallest and largest value (0, -1 for none), taken from each chunk while it is in the cache.

    pyarrow's cast runs without the GIL, and a single thread casting two million ids was a
    tenth of the command's wall time after the parse (docs/performance.md); the parse itself
    already uses every core, so two threads are enough.
    """
    starts = np.cumsum([0] + [len(c) for c in chunks])
    ranges: list[tuple[int, int]] = []

    def cast_every_other(first: int) -> None:
        for i in range(first, len(chunks), 2):
            if starts[i + 1] > starts[i]:
                part = values[starts[i]:starts[i + 1]]
                part[:] = cast(chunks[i]).to_numpy()
                ranges.append((int(part.min()), int(part.max())))

    if len(chunks) < 4 or (os.cpu_count() or 1) < 2:
        cast_every_other(0)
        cast_every_other(1)
    else:
        run_both(lambda: cast_every_other(0), lambda: cast_every_other(1), "cast ids")
    if not ranges:
        return 0, -1
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _int64_cast():
    """pyarrow's safe cast to int64, as ``pyarrow.compute.cast`` does it.

    Straight from ``pyarrow._compute``: importing ``pyarrow.compute`` writes a Python wrapper
    and its docstring for each of several hundred functions (about 0.02 s), and a file of
    integer ids needs no other compute function on the way to a fit.
    """
    import pyarrow as pa

    try:
        from pyarrow._compute import CastOptions, call_function
    except ImportError:  # a pyarrow without the module: the public way
        import pyarrow.compute as pc

        return lambda chunk: pc.cast(chunk, pa.int64())
    options = CastOptions(pa.int64())
    return lambda chunk: call_function("cast", [chunk], options)


#: 10 ... 10**18: the number of these at most a value is its digits less one.
_POWERS_OF_TEN = 10 ** np.arange(1, 19, dtype=np.int64)


def _text_bytes(chunk) -> int:
    """Bytes of text in one chunk of strings, from its offsets (no pass over the values)."""
    import pyarrow as pa

    if len(chunk) == 0:
        return 0
    if pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
        width = np.int32 if pa.types.is_string(chunk.type) else np.int64
        offsets = np.frombuffer(chunk.buffers()[1], width)
        return int(offsets[chunk.offset + len(chunk)]) - int(offsets[chunk.offset])
    import pyarrow.compute as pc

    return int(pc.sum(pc.binary_length(chunk)).as_py())


def _codes(blocks: list) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes (int64) into the sorted distinct ids, from the blocks :func:`_arrow_ids` made."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = None
    if all(isinstance(b, np.ndarray) for b in blocks):
        ids = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        del blocks[:]
        if _dense(ids):
            return dense_codes(ids)  # ids numbered 1, 2, 3...: no hashing needed
        values = pa.Array.from_buffers(pa.int64(), len(ids), [None, pa.py_buffer(ids)])  # pa.array imports numpy.ma
        # The encoding copies the distinct ids into its dictionary: the codes can then take the
        # ids' place, one array of two million fewer (the blocks are ours: _arrow_ids made them).
        out = ids if ids.flags.writeable and ids.flags.owndata else None
        del ids
    else:
        # One block of text ids makes every id text: "7" and "007" are then two customers, as they are to csv.
        values = pa.chunked_array([pc.cast(pa.array(b), pa.string()) if isinstance(b, np.ndarray) else b
                                   for b in blocks], pa.string()).combine_chunks()
    del blocks[:]
    encoded = pc.dictionary_encode(values)
    del values
    dictionary = encoded.dictionary
    order = pc.sort_indices(dictionary).to_numpy()  # distinct values: no ties
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    labels = dictionary.take(pa.array(order))
    labels = labels.to_numpy() if pa.types.is_integer(labels.type) else np.asarray(labels.to_pylist(), dtype=str)
    return np.take(rank, encoded.indices.to_numpy(), out=out), labels


def _arrow_days(col, column: str, filename: str, offset: int) -> np.ndarray:
    """Day numbers; a block of any other shape than the common three goes to :func:`.dates.to_days`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.min_max(pc.binary_length(col))
    shortest, longest = lengths["min"].as_py(), lengths["max"].as_py()
    try:
        if shortest == longest == 8 and pc.all(pc.ascii_is_decimal(col)).as_py():  # YYYYMMDD
            return compact_days(pc.cast(col, pa.int64()).to_numpy())
        if shortest == longest == 10:  # YYYY-MM-DD
            return _date32_days(pc.cast(col, pa.date32()))
        if shortest > 10 and pc.all(pc.is_in(pc.utf8_slice_codeunits(col, 10, 11),
                                             value_set=pa.array(["T", "t", " "]))).as_py():
            # An ISO datetime: the date as written, in the writer's own offset (see dates.to_days).
            return _date32_days(pc.cast(pc.utf8_slice_codeunits(col, 0, 10), pa.date32()))
    except (pa.ArrowException, DateError, OverflowError):
        pass
    try:
        return to_days(np.asarray(col.to_pylist(), dtype=str))
    except DateError as exc:
        line = "" if exc.index is None else f" on line {offset + exc.index + 2}"
        raise DataError(f"column {column!r}{line} of {filename}: {exc}", column) from None


def _date32_days(arr, bounds: dict | None = None) -> np.ndarray:
    """Day numbers (int64) of a date32 array or chunked array; ``bounds["days"]`` is set to the
    first and last day, read off each chunk while it is in the cache."""
    import pyarrow as pa

    out = np.empty(len(arr), np.int64)
    at = 0
    lo, hi = [], []
    for chunk in getattr(arr, "chunks", [arr]):
        if len(chunk):
            values = chunk.view(pa.int32()).to_numpy()
            out[at:at + len(chunk)] = values
            lo.append(int(values.min()))
            hi.append(int(values.max()))
            at += len(chunk)
    if bounds is not None and lo:
        bounds["days"] = (min(lo), max(hi))
    return out


def _arrow_amounts(col, column: str, filename: str, offset: int) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        values = pc.cast(col, pa.float64()).to_numpy()
        if np.isfinite(values).all():
            return values
    except (pa.ArrowException, OverflowError):
        pass
    return _floats(np.asarray(col.to_pylist(), dtype=str), column, filename, offset)


# --- the reader that decides ----------------------------------------------------------------------


def _read_python(path: Path, header, index, names, delimiter) -> Transactions:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        next(reader)
        rows = [r for r in reader if r]  # csv yields [] for a blank line
    if not rows:
        raise DataError(f"{path.name} has a header but no transactions")
    width = max(index.values()) + 1
    short = [i for i, r in enumerate(rows) if len(r) < width]
    if short:
        raise DataError(f"line {short[0] + 2} of {path.name} has {len(rows[short[0]])} fields, expected {len(header)}")
    cols = list(zip(*rows))
    del rows
    customer_col, date_col, amount_col = names["customer"], names["date"], names["amount"]
    raw_ids = np.array(cols[index["customer"]])
    _check_ids(raw_ids, customer_col, path.name)
    ids = _ids(raw_ids)
    try:
        days = to_days(np.array(cols[index["date"]]))
    except DateError as exc:
        line = "" if exc.index is None else f" on line {exc.index + 2}"
        raise DataError(f"column {date_col!r}{line} of {path.name}: {exc}", date_col) from None
    if "amount" in index:
        amounts = _floats(np.array(cols[index["amount"]]), amount_col, path.name)
    else:
        amounts = np.zeros(len(days))
    return Transactions(ids, days, amounts)


def _check_ids(raw: np.ndarray, column: str, filename: str) -> None:
    empty_id = np.char.str_len(np.char.strip(raw)) == 0
    if empty_id.any():
        line = int(np.flatnonzero(empty_id)[0]) + 2
        raise DataError(f"column {column!r} is empty on line {line} of {filename}", column)


def _ids(raw: np.ndarray) -> np.ndarray:
    """Canonical integer ids become int64, which sorts far faster than text."""
    raw = np.char.strip(raw)
    if raw.size and np.char.isdigit(raw).all() and np.char.str_len(raw).max() < 19:
        # "007" must stay distinct from "7": only ids without a leading zero are canonical.
        first = np.ascontiguousarray(raw).view(np.uint32).reshape(raw.size, -1)[:, 0]
        if not ((first == ord("0")) & (np.char.str_len(raw) > 1)).any():
            return raw.astype(np.int64)
    return raw


def _floats(raw: np.ndarray, column: str, filename: str, offset: int = 0) -> np.ndarray:
    try:
        values = raw.astype(np.float64)
    except ValueError:
        for i, v in enumerate(raw):
            try:
                float(v)
            except ValueError:
                raise DataError(f"column {column!r} on line {offset + i + 2} of {filename}: not a number: {str(v)!r}",
                                column) from None
        raise
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        text = str(raw[i])
        raise DataError(f"column {column!r} on line {offset + i + 2} of {filename}: not a finite number: {text!r}",
                        column)
    return values

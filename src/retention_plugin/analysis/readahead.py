"""The plan of a CSV read, and the typed pyarrow read started before the command is ready for it.

``retention analyze fit`` spends about a tenth of a second importing numpy, click and its own
modules before it opens the file, on one core, while pyarrow's parse could already be running on
the other. :func:`start` (called by ``launch.py`` from the command line as typed) reads the header
and first row, and when the typed fast path applies starts pyarrow's read in a thread; the parse
itself runs in pyarrow's C++ threads without the GIL, so the imports go on beside it.
``transactions._read_typed`` then :func:`take`\\ s the table if the read it would start is the
same one (same file, size and modification time, columns, delimiter and block size), and reads
the file itself otherwise. Nothing here decides what a file means: a read ahead that fails or
does not match is dropped, and the command's own read decides and words any error.

This module imports neither numpy nor click, so that the read can start before either.
"""

from __future__ import annotations

import csv
import os
import re
import threading
from pathlib import Path

__all__ = ["DataError", "Plan", "plan", "start", "take", "typed_table"]


class DataError(ValueError):
    """Bad input data; ``column`` names the column at fault when there is one."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


#: A plain date, as most exports write them: the typed fast path is tried on such files.
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

#: Bytes of the file parsed at a time: big enough that the per-block Python calls cost nothing.
BLOCK = 4 << 20


class Plan:
    """What the first lines of a file say about reading it: header, column positions, fast path."""

    __slots__ = ("path", "header", "index", "names", "delimiter", "typed")

    def __init__(self, path: Path, header: list, index: dict, names: dict, delimiter: str, typed: bool):
        self.path, self.header, self.index, self.names = path, header, index, names
        self.delimiter, self.typed = delimiter, typed

    def key(self, block_size: int) -> tuple:
        st = os.stat(self.path)
        # The size and modification time stand for the content: a file rewritten between the read
        # ahead and the command's own read is read again.
        return (str(self.path.resolve()), st.st_size, st.st_mtime_ns, len(self.header),
                tuple(sorted(self.index.items())), self.delimiter, block_size)


def column_index(header, path, customer_col, date_col, amount_col) -> dict:
    wanted = {"customer": customer_col, "date": date_col}
    if amount_col is not None:
        wanted["amount"] = amount_col
    index = {}
    for role, name in wanted.items():
        if name in header:
            index[role] = header.index(name)
        elif role == "amount" and amount_col == "amount":
            continue  # the default amount column is optional
        else:
            raise DataError(
                f"column {name!r} not found in {path.name}; its columns are: {', '.join(header)}", name)
    return index


def plan(path, *, customer_col: str = "customer_id", date_col: str = "date", amount_col: str | None = "amount",
         delimiter: str = ",") -> Plan:
    """Read the header and the first row. Raises :class:`DataError` for a file that cannot be read so."""
    path = Path(path)
    if len(delimiter) != 1:
        raise DataError(f"the delimiter must be one character, not {delimiter!r}")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = csv.reader(fh, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(rows)]
        except StopIteration:
            raise DataError(f"{path} is empty: expected a header row") from None
        try:
            first = next(rows, None)
        except (UnicodeDecodeError, csv.Error):
            first = None  # the readers find it and say so
    index = column_index(header, path, customer_col, date_col, amount_col)
    names = {"customer": customer_col, "date": date_col, "amount": amount_col}
    typed = first is not None and len(first) > index["date"] and bool(ISO_DAY.fullmatch(first[index["date"]].strip()))
    return Plan(path, header, index, names, delimiter, typed)


def typed_table(p: Plan, block_size: int = BLOCK):
    """pyarrow's read of the whole file: ids as text, dates as ``date32``, amounts as ``float64``.

    Raises what pyarrow raises; ``transactions._read_typed`` decides what that means.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    cols = [f"c{i}" for i in range(len(p.header))]
    role = {r: cols[i] for r, i in p.index.items()}
    types = {role["customer"]: pa.string(), role["date"]: pa.date32()}
    if "amount" in role:
        types[role["amount"]] = pa.float64()
    return pacsv.read_csv(
        p.path,
        read_options=pacsv.ReadOptions(skip_rows=1, column_names=cols, block_size=block_size),
        parse_options=pacsv.ParseOptions(delimiter=p.delimiter),
        convert_options=pacsv.ConvertOptions(include_columns=list(types), column_types=types, null_values=[],
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


_lock = threading.Lock()
_pending: dict[tuple, tuple[threading.Thread, list]] = {}

#: The command-line options that say which file is read and how, by the name :func:`plan` gives
#: each value. ``commands.csv_options`` declares its click options with these names, so the two
#: cannot drift apart.
OPTIONS = {"path": "--transactions", "customer_col": "--customer-col", "date_col": "--date-col",
           "amount_col": "--amount-col", "delimiter": "--delimiter"}
_OPTIONS = {flag: name for name, flag in OPTIONS.items()}


def _options(argv: list[str]) -> dict:
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name in _OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    break
                i += 1
                value = argv[i]
            found[_OPTIONS[name]] = value  # the last one wins, as in click
        i += 1
    return found


def start(argv: list[str]) -> bool:
    """Start the typed read of the file ``argv`` names, if the fast path applies; True if started.

    Any doubt (no ``--transactions``, a file that cannot be planned, a date that is not plain)
    starts nothing: the command reads as it always does.
    """
    opts = _options(argv)
    path = opts.pop("path", None)
    if not path or not os.path.isfile(path):
        return False
    try:
        p = plan(path, **opts)
        if not p.typed:
            return False
        key = p.key(BLOCK)
    except (DataError, OSError, UnicodeDecodeError, csv.Error, TypeError):
        return False
    # Imported here, on this thread: two threads importing at once only take turns with the GIL.
    import pyarrow.csv  # noqa: F401

    box: list = []

    def read() -> None:
        try:
            box.append((typed_table(p, BLOCK), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the command's read, which decides
            box.append((None, exc))

    thread = threading.Thread(target=read, name="read ahead", daemon=True)
    with _lock:
        _pending[key] = (thread, box)
    thread.start()
    return True


def take(p: Plan, block_size: int):
    """The table read ahead for ``p`` (waiting for it), or None if no such read was started.

    Raises what the read ahead raised. Each read ahead is handed out once.
    """
    if not _pending:
        return None
    try:
        key = p.key(block_size)
    except OSError:
        return None
    with _lock:
        entry = _pending.pop(key, None)
    if entry is None:
        return None
    thread, box = entry
    thread.join()
    table, exc = box[0]
    if exc is not None:
        raise exc
    return table

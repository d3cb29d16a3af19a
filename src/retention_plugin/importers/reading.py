"""Reading a history file with a progress bar sized by the bytes read."""

from __future__ import annotations

import io
from typing import Callable


class CountingReader(io.RawIOBase):
    """Wraps a binary file and counts the bytes read, for a progress bar sized by file size."""

    def __init__(self, raw, on_read: Callable[[int], None] | None = None):
        self._raw = raw
        self._on_read = on_read
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.count += n
            if self._on_read is not None:
                self._on_read(n)
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_text(path, on_read: Callable[[int], None] | None = None, encoding: str = "utf-8-sig"):
    """Open a CSV for csv.reader: universal newlines off (csv handles them), BOM stripped."""
    raw = open(path, "rb")  # noqa: SIM115 - closed with the wrapper
    counting = CountingReader(raw, on_read)
    buffered = io.BufferedReader(counting, buffer_size=1 << 20)
    return io.TextIOWrapper(buffered, encoding=encoding, newline="")


class NullBar:
    """Stands in for click's progress bar when there is nothing to show."""

    def update(self, n: int, current_item=None) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

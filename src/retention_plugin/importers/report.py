"""What an import did (counts and rejected rows), and the error for a file nothing can be read from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: How many rejected rows a command prints before it only counts them.
MAX_SHOWN_REJECTS = 100


class ImportFileError(Exception):
    """The file as a whole cannot be imported (not a CSV of the expected kind); nothing was written."""


def not_utf8(path, line: int, e: UnicodeDecodeError) -> ImportFileError:
    return ImportFileError(f"{path} is not UTF-8 text ({e.reason} at or after line {line}); save it as UTF-8 "
                           "and import it again (orders already imported are skipped)")


@dataclass
class ImportReport:
    """What an import did. Rejects are ``(line, reason)``; ``line`` may be None for API records."""

    kind: str = "orders"
    imported: int = 0
    lines: int = 0
    updated: int = 0
    skipped: int = 0
    rejected_rows: int = 0
    rejects: list[tuple[int | None, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def reject(self, line: int | None, reason: str, rows: int = 1) -> None:
        self.rejected_rows += rows
        self.rejects.append((line, reason))

    def reject_messages(self) -> list[str]:
        """One message per reject, in line order."""
        out = []
        for line, reason in sorted(self.rejects, key=lambda r: (r[0] is None, r[0] or 0)):
            out.append(f"line {line}: {reason}" if line is not None else reason)
        return out

    def summary(self) -> str:
        if self.kind == "orders":
            text = f"imported {self.imported} orders ({self.lines} lines)"
            if self.updated:
                text += f", updated {self.updated}"
            return text + f", skipped {self.skipped} already imported, rejected {self.rejected_rows} rows"
        return (f"imported {self.imported} {self.kind}, updated {self.updated}, skipped {self.skipped}, "
                f"rejected {self.rejected_rows} records")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "imported": self.imported, "lines": self.lines, "updated": self.updated,
                "skipped": self.skipped, "rejected_rows": self.rejected_rows,
                "rejects": self.reject_messages(), **self.extra}

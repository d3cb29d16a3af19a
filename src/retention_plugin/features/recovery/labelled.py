"""The labelled ticket set and its figures: precision and recall of complaint detection per language.

``data/labelled_tickets.jsonl`` holds realistic ticket subjects and bodies in
English, Lithuanian, Slovenian, Russian and Georgian, each labelled
``complaint`` true or false, with many hard negatives (questions, thanks,
negated damage words, policy enquiries, order-status asks). Each item has a
fixed ``split``:

- ``tune``: the items whose errors the rules were adjusted on;
- ``holdout``: chosen by a hash of the id before any tuning, never looked at
  while adjusting the rules;
- ``fresh``: written after the rules were frozen and not tuned on at all.

The same person wrote the items and the vocabulary, so even the held-out
figures flatter the rules; the ``fresh`` part is the least biased estimate.
``bench/bench_classify.py`` prints all three.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

DATA = Path(__file__).parent / "data" / "labelled_tickets.jsonl"
LANGUAGES = ("en", "lt", "sl", "ru", "ka")


def load(path: Path = DATA) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Figures:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    errors: list = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def score(items: Iterable[dict], predict: Callable[[dict], bool]) -> dict[tuple[str, str], Figures]:
    """Figures per ``(language, split)``, plus ``(language, "all")``."""
    out: dict[tuple[str, str], Figures] = {}
    for item in items:
        got = bool(predict(item))
        for key in ((item["lang"], item["split"]), (item["lang"], "all")):
            f = out.setdefault(key, Figures())
            if got and item["complaint"]:
                f.tp += 1
            elif got:
                f.fp += 1
                f.errors.append(("false positive", item))
            elif item["complaint"]:
                f.fn += 1
                f.errors.append(("missed", item))
            else:
                f.tn += 1
    return out

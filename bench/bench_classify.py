"""Complaint detection on the labelled ticket set: precision and recall per language.

Runs the built-in classifier (``classify_ticket``'s trylast implementation, with
the default ``[recovery.complaints]`` settings) over
``src/retention_plugin/features/recovery/data/labelled_tickets.jsonl`` and
prints one table: per language, the ``tune`` part (the rules were adjusted on
it), the ``holdout`` part (never looked at while tuning) and both together.
Target: precision >= 0.95 and recall >= 0.85 in every language.

    python bench/bench_classify.py [--errors] [--split tune|holdout|all]

``--errors`` lists the misclassified items (of the split given) with the
classifier's reason, for working on the rules. Look at tune errors only, or
the holdout figures stop meaning anything.
"""

from __future__ import annotations

import argparse

from retention_plugin.events import Ticket
from retention_plugin.features.recovery.classify import builtin_classify
from retention_plugin.features.recovery.labelled import LANGUAGES, load, score
from retention_plugin.features.recovery.settings import defaults


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--errors", action="store_true", help="list misclassified items")
    p.add_argument("--split", choices=("tune", "holdout", "fresh", "all"), default="tune", help="errors of this split")
    args = p.parse_args()
    settings = defaults()
    items = load()
    results = {}

    def predict(item):
        ticket = Ticket(zendesk_id=1, subject=item["subject"], description=item["body"], status="new",
                        priority=None, tags=[], requester=None, created_at=None, updated_at=None)
        got = builtin_classify(ticket, settings)
        results[item["id"]] = got
        return got["complaint"]

    figures = score(items, predict)

    def pct(v):
        return "   -  " if v is None else f"{v:6.3f}"

    print(f"{'lang':<5} {'split':<8} {'items':>5} {'compl.':>6} {'TP':>4} {'FP':>4} {'FN':>4} "
          f"{'precision':>9} {'recall':>7}  target P>=0.95 R>=0.85")
    for lang in LANGUAGES:
        for split in ("tune", "holdout", "fresh", "all"):
            f = figures.get((lang, split))
            if f is None:
                continue
            ok = (f.precision or 0) >= 0.95 and (f.recall or 0) >= 0.85
            print(f"{lang:<5} {split:<8} {f.n:>5} {f.tp + f.fn:>6} {f.tp:>4} {f.fp:>4} {f.fn:>4} "
                  f"{pct(f.precision):>9} {pct(f.recall):>7}  {'ok' if ok else 'BELOW'}")
    print(f"{len(items)} items")
    if args.errors:
        for lang in LANGUAGES:
            for why, item in figures[(lang, args.split)].errors:
                got = results[item["id"]]
                print(f"\n{item['id']} {why} ({item['kind']}): {item['subject']} | {item['body']}\n"
                      f"    -> {got.get('reason')}")


if __name__ == "__main__":
    main()

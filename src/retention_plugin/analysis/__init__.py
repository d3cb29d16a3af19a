"""Lost-customer analysis: who left, why, what it cost, and who is leaving now.

- :mod:`.summary`: per-customer frequency, recency, age and spend from transactions;
- :mod:`.models`: BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma, fitted by maximum likelihood,
  with standard errors and per-customer intervals (:mod:`.models.uncertainty`);
- :mod:`.spend`: what the spend model sees (purchases of positive value);
- :mod:`.evaluate`, :mod:`.tracking`: holdout evaluation as the literature does it, and the
  lost score chosen on earlier cut-offs and judged on a later one;
- :mod:`.scoring`, :mod:`.segments`, :mod:`.reasons`, :mod:`.hazard`, :mod:`.cohorts`: what the
  report shows (:mod:`.hazard` is the adjusted model of "why they left");
- :mod:`.report`: report.html, customers.csv, summary.json;
- :mod:`.store`: reading the store's history from the database;
- :mod:`.early_warning`, :mod:`.winback`: the daily run and the win-back experiment;
- :mod:`.commands`: the ``retention analyze`` click group.

Heavy modules (matplotlib, SQLAlchemy) load only when used.
"""

__all__ = ["analyze"]


def __getattr__(name: str):
    # The click group is imported when asked for, not with the package: `retention analyze fit`
    # starts reading its file (.readahead) before numpy and click are imported.
    if name == "analyze":
        from .commands import analyze

        return analyze
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

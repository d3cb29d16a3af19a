"""Lost-customer analysis: who left, why, what it cost, and who is leaving now.

- :mod:`.summary`: per-customer frequency, recency, age and spend from transactions;
- :mod:`.models`: BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma, fitted by maximum likelihood;
- :mod:`.evaluate`: time-split holdout and the evidence-based choice of the lost score;
- :mod:`.scoring`, :mod:`.segments`, :mod:`.reasons`, :mod:`.cohorts`: what the report shows;
- :mod:`.report`: report.html, customers.csv, summary.json;
- :mod:`.store`: reading the store's history from the database;
- :mod:`.early_warning`, :mod:`.winback`: the daily run and the win-back experiment;
- :mod:`.commands`: the ``retention analyze`` click group.

Heavy modules (matplotlib, SQLAlchemy) load only when used.
"""

from .commands import analyze

__all__ = ["analyze"]

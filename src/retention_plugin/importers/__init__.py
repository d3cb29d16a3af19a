"""History import: Shopify bulk operations and Orders CSV exports, any store's purchase log, Zendesk tickets.

Modules: :mod:`.shopify_bulk`, :mod:`.shopify_csv`, :mod:`.transactions_csv`,
:mod:`.zendesk_export` (one per source); what they share: :mod:`.values`
(parsing values), :mod:`.report`, :mod:`.reading` (files with progress),
:mod:`.writer` (the batch order writer) and :mod:`.running` (a parser and the
writer, in two processes for big files); :mod:`.commands` (``retention import ...``) and
:mod:`.plugin`, the built-in plugin named ``importers`` (registered as
``retention_plugin.importers.plugin``, like ``retention_plugin.messaging.plugin``:
a package the core imports as a library keeps its hooks out of ``__init__``).

Importers write the core tables only; the one hook they call is
``customers_merged``, when an imported record shows two customers are one.
"""

"""History import: Shopify bulk operations and Orders CSV exports, any store's purchase log, Zendesk tickets.

Modules: :mod:`.shopify_bulk`, :mod:`.shopify_csv`, :mod:`.transactions_csv`,
:mod:`.zendesk_export` (one per source); what they share: :mod:`.values`
(parsing values), :mod:`.report`, :mod:`.reading` (files with progress),
:mod:`.writer` (the batch order writer) and :mod:`.running` (a parser and the
writer, in two processes for big files); :mod:`.commands` (``retention import ...``) and
:mod:`.plugin`, whose ``register_commands`` hook this package re-exports so
that ``retention_plugin.importers`` is the built-in plugin named
``importers`` (``plugin`` would collide with ``retention_plugin.messaging.plugin``).

Importers write the core tables only; they never call feature hooks.
"""

from .plugin import register_commands

__all__ = ["register_commands"]

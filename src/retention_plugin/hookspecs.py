"""Every hook retention-plugin calls, grouped by family.

A plugin implements any of these with ``@retention_plugin.hookimpl``; a
hookimpl may accept any subset of a spec's parameters, by name. Each hook has
a section in docs/hooks.md; tests/test_hooks_documented.py fails when one is
missing there, and tests/test_hooks_exercised.py when one is never called.

``ctx`` (a :class:`retention_plugin.context.HookContext`) is the handle a
reaction gets: the open transaction, settings, the clock, and helpers that
record state changes under idempotency keys. Everything a hook writes through
``ctx`` commits together with the delivery's status, or not at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .context import HookContext

hookspec = pluggy.HookspecMarker("retention_plugin")


# --- registries: called once, with a callback the host validates ------------


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``retention`` CLI.

    :param cli: the top-level ``click.Group``; call ``cli.add_command(...)``.
    """


@hookspec
def register_channels(register):
    """Offer message channels.

    :param register: ``register(name, channel)`` where ``channel`` has
        ``send(message, customer, rendered, ctx) -> str`` returning a provider
        id, raising :class:`retention_plugin.messaging.channels.ChannelError`
        on failure.
    """


@hookspec
def register_message_kinds(register):
    """Declare message kinds a feature sends.

    :param register: ``register(kind, message_class)`` with class
        ``"transactional"`` or ``"marketing"``.
    """


@hookspec
def register_config_sections(register):
    """Declare a configuration section a plugin reads.

    :param register: ``register(name, schema)`` with a marshmallow
        ``Schema`` instance; ``[name]`` in the TOML is validated with it and
        the loaded value is available as ``settings.section(name)``.
    """


@hookspec
def register_tasks(register):
    """Declare periodic tasks the worker runs.

    :param register: ``register(name, func, every_seconds)``; ``func(ctx)``
        runs inside a transaction of its own, at most once per period across
        every worker sharing the database.
    """


# --- reactions to domain events --------------------------------------------
# Each is called with the event and a HookContext, inside the transaction that
# marks the delivery done. Return values are ignored.


@hookspec
def order_created(event, ctx):
    """An order was created (``orders/create``)."""


@hookspec
def order_updated(event, ctx):
    """An order changed (``orders/updated``)."""


@hookspec
def order_paid(event, ctx):
    """An order was paid (``orders/paid``): the moment loyalty points are earned."""


@hookspec
def order_cancelled(event, ctx):
    """An order was cancelled (``orders/cancelled``)."""


@hookspec
def order_fulfilled(event, ctx):
    """An order, or part of it, was fulfilled (``orders/fulfilled``, ``fulfillments/*``)."""


@hookspec
def shipment_updated(event, ctx):
    """A carrier reported on a shipment (``fulfillment_events/create``): ``event.shipment`` has the
    status (``in_transit``, ``delayed``, ``failure``, ``attempted_delivery``, ``delivered``, ...)."""


@hookspec
def refund_created(event, ctx):
    """A refund was issued (``refunds/create``)."""


@hookspec
def customer_updated(event, ctx):
    """A customer was created or changed (``customers/create``, ``customers/update``)."""


@hookspec
def customer_deleted(event, ctx):
    """A customer was deleted in Shopify (``customers/delete``)."""


@hookspec
def customer_data_request(event, ctx):
    """A customer asked for their data (``customers/data_request``).

    Return a dict to add to the export under the plugin's name.
    """


@hookspec
def customer_redact(event, ctx):
    """A customer's personal data must be erased (``customers/redact``).

    Erase what the plugin stored about ``event.customer`` beyond the core tables.
    """


@hookspec
def shop_redact(event, ctx):
    """All data of the shop must be deleted (``shop/redact``)."""


@hookspec
def app_uninstalled(event, ctx):
    """The Shopify app was uninstalled (``app/uninstalled``)."""


@hookspec
def ticket_created(event, ctx):
    """A Zendesk ticket was created."""


@hookspec
def ticket_updated(event, ctx):
    """A ticket's status, priority or tags changed."""


@hookspec
def ticket_solved(event, ctx):
    """A ticket was solved or closed."""


@hookspec
def comment_added(event, ctx):
    """A comment was added to a ticket."""


@hookspec
def satisfaction_rated(event, ctx):
    """A satisfaction rating arrived (Zendesk CSAT or the follow-up link)."""


# --- decisions: the first non-None result wins -------------------------------
# Built-ins implement these with ``trylast=True`` so any plugin can override
# them by returning a value.


@hookspec(firstresult=True)
def points_for_order(order, customer, rule, ctx):
    """How many points an order earns. Stops at the first non-None result.

    :param order: the :class:`~retention_plugin.events.Order`.
    :param customer: the stored customer row (mapping).
    :param rule: the loyalty settings in force (points per unit, multiplier).
    :returns: an ``int`` number of points, or None to defer.
    """


@hookspec(firstresult=True)
def choose_offer(order, customer, occasion, ctx):
    """Which voucher, if any, to give after an order. Stops at the first non-None result.

    :returns: a dict ``{"percent": Decimal, "valid_days": int}``,
        ``{"amount": Money, "valid_days": int}``, or ``False`` for no offer.
    """


@hookspec(firstresult=True)
def customer_timezone(customer):
    """The IANA time zone of a customer. Stops at the first non-None result."""


@hookspec(firstresult=True)
def classify_ticket(ticket, ctx):
    """Whether a ticket is a complaint. Stops at the first non-None result.

    :returns: ``{"complaint": bool, "severity": "low"|"medium"|"high", "reason": str}``, optionally
        with ``"evidence"`` (``tag``, ``field``, ``keyword``, ``rating``, ``plugin``; default
        ``["plugin"]``): keyword-only complaints make their offer wait for approval.
    """


@hookspec(firstresult=True)
def recovery_offer(ticket, customer, proposal, ctx):
    """Decide or veto a goodwill offer. Stops at the first non-None result.

    :param proposal: the offer the built-in policy computed (or None).
    :returns: an offer dict, or ``False`` to make none.
    """


# --- vetoes: any False wins ---------------------------------------------------


@hookspec
def contact_allowed(message, customer, when):
    """Veto a message at send time by returning ``False`` (any False wins).

    :param message: the message row (mapping) about to be sent.
    :param customer: the customer row (mapping).
    :param when: the aware UTC datetime of the attempt.
    """


# --- notifications from features --------------------------------------------


@hookspec
def loyalty_changed(customer_id, change, ctx):
    """A loyalty balance or tier changed.

    :param change: ``{"points": int, "balance": int, "tier": str|None,
        "previous_tier": str|None, "reason": str}``.
    """


@hookspec
def ticket_escalated(ticket, customer, reason, ctx):
    """A ticket from a valued customer waited too long for a reply."""


@hookspec
def replenishment_candidate(customer_id, sku, interval_days, ctx):
    """A customer buys the same SKU at regular intervals (a subscription prospect)."""


@hookspec
def customer_facts(customer_id, ctx):
    """What a plugin knows about a customer, for ``customers show`` and agent notes.

    :returns: a JSON-serialisable dict, keyed under the plugin's name.
    """


# --- analysis ----------------------------------------------------------------


@hookspec
def customer_signals(customers, ctx):
    """Add covariates to the lost-customer analysis.

    :param customers: list of customer ids in the analysis.
    :returns: ``{signal_name: set_of_customer_ids_with_the_signal}``.
    """


@hookspec
def customer_at_risk(customer_id, score, ctx):
    """A customer crossed into the at-risk segment."""


@hookspec
def customer_lost(customer_id, score, ctx):
    """A customer crossed into the lost segment."""


# --- the core's records: every plugin keeps its own rows in step ---------------


@hookspec
def customers_merged(survivor: int, merged: int, ctx: HookContext) -> None:
    """Two customer rows turned out to be one person; move your rows to the survivor.

    Called inside the transaction that found it (a delivery, an import), after
    the core moved its own rows (orders, tickets, ratings, rewards) and before
    anything else reads the customer. The merged row stays, with
    ``merged_into = survivor``. A row of yours that is unique per customer
    decides which one stays.

    :param survivor: the id of the customer row that stays (the older one).
    :param merged: the id of the row merged into it.
    :param ctx: the :class:`~retention_plugin.context.HookContext` of the transaction.
    """

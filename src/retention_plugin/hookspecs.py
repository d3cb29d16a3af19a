"""Every hook retention-plugin calls, grouped by family.

A plugin implements any of these with ``@retention_plugin.hookimpl``; an
implementation may accept any subset of a spec's parameters, by name. Each
hook has a section in docs/hooks.md, and a test named ``test_hook_<name>``
makes the product call it; tests/test_hooks.py fails when either is missing,
and tests/test_hookspecs_typed.py when a spec here lacks an annotation or a
``:param:`` line.

``ctx`` (a :class:`retention_plugin.context.HookContext`) is the handle a
reaction gets: the open transaction, settings, the clock, and helpers that
record state changes under idempotency keys. Everything a hook writes through
``ctx`` commits together with the delivery's status, or not at all.

The annotations name their types only for type checkers (``TYPE_CHECKING``):
importing this module loads pluggy and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime
    from typing import Any, Literal, TypeAlias

    import click
    from marshmallow import Schema

    from . import events as ev
    from .context import HookContext
    from .app import Retention
    from .config import Settings
    from .messaging.channels import Channel
    from .routes import Route

    #: A stored row (``customers``, ``tickets``, ``messages``...) as a mapping of column to value.
    Row: TypeAlias = Mapping[str, Any]
    #: What a decision hook returns: a value, ``False`` for "none", or None to defer to the next plugin.
    Offer: TypeAlias = dict[str, Any] | Literal[False] | None

hookspec = pluggy.HookspecMarker("retention_plugin")


# --- registries: called once, with a callback the host validates ------------


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``retention`` CLI.

    :param cli: the top-level ``click.Group``; call ``cli.add_command(...)``.
    """


@hookspec
def register_channels(register: Callable[[str, Channel], None]) -> None:
    """Offer message channels.

    :param register: ``register(name, channel)`` where ``channel`` has
        ``send(message, customer, rendered, ctx) -> str`` returning a provider
        id, raising :class:`retention_plugin.messaging.channels.ChannelError`
        on failure. A channel whose send only writes through ``ctx`` may say
        ``sends_in_transaction = True``, and its messages then share
        transactions (docs/hooks.md).
    """


@hookspec
def register_message_kinds(register: Callable[[str, str], None]) -> None:
    """Declare message kinds a feature sends.

    :param register: ``register(kind, message_class)`` with class
        ``"transactional"`` or ``"marketing"``.
    """


@hookspec
def register_config_sections(register: Callable[[str, Schema], None]) -> None:
    """Declare a configuration section a plugin reads.

    :param register: ``register(name, schema)`` with a marshmallow
        ``Schema`` instance; ``[name]`` in the TOML is validated with it and
        the loaded value is available as ``settings.section(name)``.
    """


@hookspec
def register_tasks(register: Callable[[str, Callable[[HookContext], None], float], None]) -> None:
    """Declare periodic tasks the worker runs.

    :param register: ``register(name, func, every_seconds)``; ``func(ctx)``
        runs inside a transaction of its own, at most once per period across
        every worker sharing the database; with several shops, once per period
        for each shop not stopped, inside its scope (``shop_scope.only``).
    """


@hookspec
def register_routes(retention: Retention) -> Iterable[Route] | None:
    """Add pages or endpoints to the web app that ``retention serve`` runs.

    Called once when the app is built (in each server process). Return
    :class:`retention_plugin.routes.Route` values; two plugins claiming one
    path stop the app with an error naming both. A plugin that needs settings
    it lacks should raise with a message naming them rather than serve a
    half-working page.

    :param retention: the running :class:`~retention_plugin.app.Retention`
        (settings, engine, plugin manager) the resources use per request.
    """


@hookspec
def register_admin_operations(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Offer what an admin may look up or do from the console (``/admin``), by name.

    The console (a core plugin) cannot import features, so each feature hands
    it the library functions the CLI also calls. The console checks the
    sign-in and the CSRF token and audits every change before calling one.

    :param register: ``register(name, func)`` with a name ``"<plugin>.<verb>"``
        (``"loyalty.adjust"``) and ``func(retention, **params)`` returning
        JSON-able data; input or state it refuses raises
        :class:`retention_plugin.operations.OperationRefused` with the reason an
        admin reads. A name registered twice stops the console with both named.
        An embedded (one shop's) console session calls ``func`` inside that shop's
        scope: keep to its rows with :func:`retention_plugin.shop_scope.only`, and
        refuse another shop's row like a missing one
        (:class:`retention_plugin.operations.NotFound`, answered with a 404).
    """


@hookspec
def shopify_webhook_metafields(settings: Settings) -> Iterable[tuple[str, str]] | None:
    """Name the customer or order metafields a plugin reads from Shopify's webhook bodies.

    A body carries a metafield only when its subscription names it, so
    ``retention shopify subscribe`` asks every plugin, creates subscriptions
    naming them and adds them to subscriptions that lack them (keeping any
    others already named). Return ``(topic, "namespace.key")`` pairs, the
    topic as a ``WebhookSubscriptionTopic`` name (``"CUSTOMERS_UPDATE"``); a
    topic retention-plugin does not subscribe, or a name without a dot, stops
    the command with both named.

    :param settings: the configuration in force (the shop's own under ``--shop``).
    """


# --- reactions to domain events --------------------------------------------
# Each is called with the event and a HookContext, inside the transaction that
# marks the delivery done. Return values are ignored unless a hook says otherwise.


@hookspec
def order_created(event: ev.OrderCreated, ctx: HookContext) -> None:
    """An order was created (``orders/create``).

    :param event: ``event.order`` is the :class:`~retention_plugin.events.Order`.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def order_updated(event: ev.OrderUpdated, ctx: HookContext) -> None:
    """An order changed (``orders/updated``).

    :param event: ``event.order`` is the order as it is now.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def order_paid(event: ev.OrderPaid, ctx: HookContext) -> None:
    """An order was paid (``orders/paid``): the moment loyalty points are earned.

    :param event: ``event.order`` is the paid order (money in shop currency).
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def order_cancelled(event: ev.OrderCancelled, ctx: HookContext) -> None:
    """An order was cancelled (``orders/cancelled``).

    :param event: ``event.order`` has ``cancelled_at`` set.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def order_fulfilled(event: ev.OrderFulfilled, ctx: HookContext) -> None:
    """An order, or part of it, was fulfilled (``orders/fulfilled``, ``fulfillments/*``).

    :param event: ``event.order`` (None for ``fulfillments/*``, which carry only the order id) and
        ``event.fulfillment``.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def shipment_updated(event: ev.ShipmentUpdated, ctx: HookContext) -> None:
    """A carrier reported on a shipment (``fulfillment_events/create``).

    :param event: ``event.shipment`` has the status (``in_transit``, ``delayed``, ``failure``,
        ``attempted_delivery``, ``delivered``, ...).
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def refund_created(event: ev.RefundCreated, ctx: HookContext) -> None:
    """A refund was issued (``refunds/create``).

    :param event: ``event.refund`` with the refunded merchandise amount and lines.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def customer_updated(event: ev.CustomerUpdated, ctx: HookContext) -> None:
    """A customer was created or changed (``customers/create``, ``customers/update``).

    :param event: ``event.customer`` (identity and consent); ``event.created`` for a new one.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def customer_deleted(event: ev.CustomerDeleted, ctx: HookContext) -> None:
    """A customer was deleted in Shopify (``customers/delete``).

    :param event: ``event.customer`` (usually only the Shopify id).
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def customer_data_request(event: ev.CustomerDataRequest, ctx: HookContext) -> dict[str, Any] | None:
    """A customer asked for their data (``customers/data_request``).

    :param event: ``event.customer`` and the ``orders_requested``.
    :param ctx: the delivery's transaction and helpers.
    :returns: a dict keyed under the plugin's name, merged into the export's ``plugins``; or None.
    """


@hookspec
def customer_redact(event: ev.CustomerRedact, ctx: HookContext) -> None:
    """A customer's personal data must be erased (``customers/redact``).

    :param event: ``event.customer`` and the ``orders_to_redact``; erase what the plugin stored
        about that customer beyond the core tables.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def shop_redact(event: ev.ShopRedact, ctx: HookContext) -> None:
    """All data of the shop must be deleted (``shop/redact``).

    :param event: ``event.shop`` names the shop.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def app_uninstalled(event: ev.AppUninstalled, ctx: HookContext) -> None:
    """The Shopify app was uninstalled (``app/uninstalled``).

    :param event: ``event.shop`` names the shop.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def ticket_created(event: ev.TicketCreated, ctx: HookContext) -> None:
    """A Zendesk ticket was created.

    :param event: ``event.ticket`` (subject, description, tags, requester, ...).
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def ticket_updated(event: ev.TicketUpdated, ctx: HookContext) -> None:
    """A ticket's status, priority or tags changed.

    :param event: ``event.ticket`` as it is now; ``event.changed`` names what changed.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def ticket_solved(event: ev.TicketSolved, ctx: HookContext) -> None:
    """A ticket was solved or closed.

    :param event: ``event.ticket``.
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def comment_added(event: ev.CommentAdded, ctx: HookContext) -> None:
    """A comment was added to a ticket.

    :param event: ``event.ticket`` and ``event.comment`` (public or internal, by agent or not).
    :param ctx: the delivery's transaction and helpers.
    """


@hookspec
def satisfaction_rated(event: ev.SatisfactionRated, ctx: HookContext) -> None:
    """A satisfaction rating arrived (Zendesk CSAT or the follow-up link).

    :param event: ``event.rating`` (``value`` 0..1, None when only offered) and ``event.ticket``
        when the rating is about one.
    :param ctx: the transaction and helpers.
    """


# --- decisions: the first non-None result wins -------------------------------
# Built-ins implement these with ``trylast=True`` so any plugin can override
# them by returning a value.


@hookspec(firstresult=True)
def points_for_order(order: ev.Order, customer: Row, rule: Mapping[str, Any], ctx: HookContext) -> int | None:
    """How many points an order earns. Stops at the first non-None result.

    :param order: the :class:`~retention_plugin.events.Order`.
    :param customer: the stored customer row.
    :param rule: the loyalty settings in force (``points_per_currency_unit``, ``basis``,
        ``basis_amount``, ``currency``, ``points_multiplier``, ``tier``, ``pending_days``).
    :param ctx: the delivery's transaction and helpers.
    :returns: an ``int`` number of points, or None to defer.
    """


@hookspec(firstresult=True)
def points_for_activity(activity: str, customer: Row, details: Mapping[str, Any], rule: Mapping[str, Any],
                        ctx: HookContext) -> int | None:
    """How many points an activity other than an order earns. Stops at the first non-None result.

    Asked for the rules of ``[loyalty.earn]``: ``account_created``, ``birthday``,
    ``review`` and ``referral`` (an admin's ``loyalty award --points N`` says
    how many itself and is not asked about).

    :param activity: the rule's name, e.g. ``"review"``.
    :param customer: the stored row of the customer who would earn the points.
    :param details: what happened: ``{"ref": ...}`` (the review id, the year of a birthday, the
        referral id) and, for reviews, ``rating`` and ``product_id`` when the sender gave them.
    :param rule: ``{"points": int}``, the configured amount (0: the rule is off).
    :param ctx: the transaction the points would be written in.
    :returns: an ``int`` number of points (0: none), or None to defer.
    """


@hookspec(firstresult=True)
def choose_offer(order: ev.Order, customer: Row, occasion: str, ctx: HookContext) -> Offer:
    """Which voucher, if any, to give after an order. Stops at the first non-None result.

    :param order: the :class:`~retention_plugin.events.Order` just paid.
    :param customer: the stored customer row, merges followed.
    :param occasion: ``"first_order"``, ``"nth_order"``, ``"order_above"``, or ``"order"``.
    :param ctx: the delivery's transaction and helpers.
    :returns: a dict ``{"percent": Decimal, "valid_days": int}``,
        ``{"amount": Money, "valid_days": int}``, ``False`` for no offer, or None to defer.
    """


@hookspec(firstresult=True)
def customer_timezone(customer: Row) -> str | None:
    """The IANA time zone of a customer. Stops at the first non-None result.

    The contact policy asks this at send time and in ``messages explain``, outside any
    delivery's transaction, so it gets no ``ctx``.

    :param customer: the stored customer row.
    :returns: a zone name such as ``"Europe/Vilnius"``, or None to defer.
    """


@hookspec(firstresult=True)
def classify_ticket(ticket: ev.Ticket, ctx: HookContext) -> dict[str, Any] | None:
    """Whether a ticket is a complaint. Stops at the first non-None result.

    :param ticket: the :class:`~retention_plugin.events.Ticket`.
    :param ctx: the transaction and helpers.
    :returns: ``{"complaint": bool, "severity": "low"|"medium"|"high", "reason": str}``, optionally
        with ``"evidence"`` (``tag``, ``field``, ``keyword``, ``rating``, ``plugin``; default
        ``["plugin"]``): keyword-only complaints make their offer wait for approval. None defers.
    """


@hookspec(firstresult=True)
def recovery_offer(ticket: Row | None, customer: Row, proposal: dict[str, Any] | None, ctx: HookContext) -> Offer:
    """Decide or veto a goodwill offer. Stops at the first non-None result.

    :param ticket: the stored ticket row, or None for a rating without a ticket.
    :param customer: the stored customer row.
    :param proposal: the offer the built-in policy computed (or None when it declined).
    :param ctx: the transaction and helpers.
    :returns: an offer dict, ``False`` to make none, or None to defer.
    """


# --- vetoes: any False wins ---------------------------------------------------


@hookspec
def contact_allowed(message: Row, customer: Row, when: datetime) -> bool | None:
    """Veto a message at send time by returning ``False`` (any False wins).

    Asked by the contact policy, also from ``messages explain``, so it gets no ``ctx``.

    :param message: the message row (mapping) about to be sent.
    :param customer: the customer row (mapping).
    :param when: the aware UTC datetime of the attempt.
    :returns: ``False`` to suppress the message; ``True`` or None for no objection.
    """


# --- notifications from features --------------------------------------------


@hookspec
def loyalty_changed(customer_id: int, change: Mapping[str, Any], ctx: HookContext) -> None:
    """A loyalty balance or tier changed.

    :param customer_id: the internal customer id.
    :param change: ``{"points": int, "balance": int, "pending": int, "lifetime": int,
        "tier": str|None, "previous_tier": str|None, "reason": str, "key": str|None}``.
    :param ctx: the transaction that made the change.
    """


@hookspec
def referral_qualified(referral: Row, ctx: HookContext) -> None:
    """A referee's first order was paid, passed the pending period and every abuse check.

    The built-in loyalty plugin gives the referrer ``[loyalty.earn] referral`` points here.

    :param referral: the ``referrals`` row (``id``, ``referrer_id``, ``referee_id``,
        ``first_order_id``, ``status`` = ``"qualified"``, ``qualified_at``).
    :param ctx: the qualification task's transaction.
    """


@hookspec
def referral_reversed(referral: Row, ctx: HookContext) -> None:
    """A qualified referral's first order was refunded or cancelled afterwards.

    The built-in loyalty plugin takes the referrer's points back here.

    :param referral: the ``referrals`` row, ``status`` = ``"reversed"`` and ``reason`` saying why.
    :param ctx: the delivery's transaction.
    """


@hookspec
def ticket_escalated(ticket: Row, customer: Row, reason: str, ctx: HookContext) -> None:
    """A ticket from a valued customer waited too long for a reply.

    :param ticket: the stored ticket row, with ``escalated_at`` set.
    :param customer: the stored customer row.
    :param reason: why, in words (the wait and the standing that made the customer valued).
    :param ctx: the watch task's transaction.
    """


@hookspec
def replenishment_candidate(customer_id: int, sku: str, interval_days: int, ctx: HookContext) -> bool | None:
    """A customer buys the same SKU at regular intervals (a subscription prospect).

    :param customer_id: the internal customer id.
    :param sku: the SKU bought regularly.
    :param interval_days: the median gap between purchases, in whole days.
    :param ctx: the delivery's transaction and helpers.
    :returns: ``False`` to take over (the built-in offer is then not scheduled); anything else is ignored.
    """


@hookspec
def customer_facts(customer_id: int, ctx: HookContext) -> dict[str, Any] | None:
    """What a plugin knows about a customer, for ``customers show`` and agent notes.

    :param customer_id: the internal customer id.
    :param ctx: a transaction to read in.
    :returns: a JSON-serialisable dict, keyed under the plugin's name.
    """


# --- the shopper's side: pages a customer opens --------------------------------


@hookspec(firstresult=True)
def loyalty_account(customer_id: int, ctx: HookContext) -> dict[str, Any] | None:
    """One customer's own loyalty account, for a page that customer sees. Stops at the first non-None result.

    The built-in loyalty plugin answers (``trylast``); another programme can answer instead.

    :param customer_id: the internal customer id of the signed-in customer, and nobody else.
    :param ctx: a transaction to read in.
    :returns: a dict with ``available``, ``pending`` and ``lifetime`` points, ``tier``,
        ``tier_title``, ``perks``, ``next_tier`` (``name``, ``measure``, ``needed``, ``have``,
        ``missing``, ``percent``) or None, ``punch_cards``, ``offers`` (``name``, ``points``,
        ``title``, ``amount``/``percent``, ``currency``, ``affordable``), ``rewards`` (codes issued),
        ``history`` (ledger entries), ``paused`` and ``ledger_marker``; or None to defer.
    """


@hookspec(firstresult=True)
def loyalty_redeem(customer_id: int, reward: str, key: str, ctx: HookContext) -> dict[str, Any] | None:
    """Spend a customer's points on one offered reward, once per ``key``. Stops at the first non-None result.

    Called inside the request's transaction; the caller rolls it back when the answer is a refusal.

    :param customer_id: the internal customer id of the signed-in customer.
    :param reward: the offer's ``name`` from :func:`loyalty_account`.
    :param key: the request's idempotency key: the same key redeems once and answers the same code.
    :param ctx: the transaction to write in.
    :returns: ``{"reward": row, "available": points, "pending": points}`` (``row`` has ``code``,
        ``points``, ``amount``/``percent``, ``currency``, ``expires_at``), or ``{"refused": reason,
        "detail": text}`` with reason ``paused``, ``disabled``, ``unknown``, ``insufficient_points``
        or ``invalid``; or None to defer.
    """


@hookspec
def storefront_sections(customer_id: int, account: Mapping[str, Any], locale: str, ctx: HookContext,
                        post_url: str, csrf: str) -> Iterable[Mapping[str, str]] | None:
    """Add sections to the storefront rewards page (a referral link, a birthday form...).

    Called for a signed-in customer only, after the account was read.

    :param customer_id: the internal id of the customer viewing the page; show nothing of anyone else.
    :param account: what :func:`loyalty_account` answered for them (empty when nothing did).
    :param locale: the page's language (``en``, ``lt``, ``sl``, ``ru``, ``ka``...).
    :param ctx: a transaction to read in.
    :param post_url: where a section's form posts (``method="post" action="{post_url}"``); the page
        hands its ``action`` field to :func:`storefront_action`.
    :param csrf: the form token a section's form must carry as the hidden field ``csrf``.
    :returns: sections, each ``{"id": ..., "title": text, "html": markup}``; ``title`` is
        escaped by the page, ``html`` is inserted as it is, so escape what you put in it.
        Sections appear in plugin order, after the built-in ones.
    """

@hookspec(firstresult=True)
def storefront_action(customer_id: int, action: str, form: Mapping[str, str], locale: str,
                      ctx: HookContext) -> Mapping[str, Any] | None:
    """Handle a form a :func:`storefront_sections` section posted. Stops at the first non-None result.

    The page has already checked Shopify's proxy signature and the form's CSRF token (bound to the
    shop and to this customer); any ``action`` other than the built-in ``redeem`` comes here.

    :param customer_id: the internal id of the signed-in customer who sent the form, and nobody else.
    :param action: the form's ``action`` field; answer only actions your own sections send.
    :param form: every field of the posted form, as text (untrusted apart from its CSRF token).
    :param locale: the page's language, for the notice's text.
    :param ctx: the request's transaction to write in; the page rolls it back when ``ok`` is false.
    :returns: ``{"ok": bool, "message": text}``, shown above the re-rendered page (``message`` is
        escaped); or None when the action is not yours (no plugin answering: "unknown action", 400).
    """


# --- analysis ----------------------------------------------------------------


@hookspec
def customer_signals(customers: list[int], ctx: HookContext) -> Mapping[str, Iterable[int]] | None:
    """Add covariates to the lost-customer analysis.

    :param customers: list of customer ids in the analysis.
    :param ctx: a connection to read in (``ctx.source`` is ``"cli"``).
    :returns: ``{signal_name: set_of_customer_ids_with_the_signal}``.
    """


@hookspec
def customer_at_risk(customer_id: int, score: float, ctx: HookContext) -> None:
    """A customer crossed into the at-risk segment.

    :param customer_id: the internal customer id.
    :param score: the customer's lost score, 0..1 (higher: more likely gone).
    :param ctx: the daily early-warning task's transaction.
    """


@hookspec
def customer_lost(customer_id: int, score: float, ctx: HookContext) -> None:
    """A customer crossed into the lost segment.

    :param customer_id: the internal customer id.
    :param score: the customer's lost score, 0..1 (higher: more likely gone).
    :param ctx: the daily early-warning task's transaction.
    """


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

"""Follow-ups: a while after fulfilment, a message that reassures and asks for a one-click rating.

The built-in plugin ``followups`` (``[plugins] disabled = ["followups"]``),
configured under ``[followups]`` (docs/offers-and-followups.md).

- ``order_fulfilled`` schedules one ``follow_up`` message per order (key
  ``followups:order:<id>``), due ``days_after_fulfillment`` after the first
  fulfilment, carrying signed rating links (``/r/rate?t=<token>&a=<answer>``,
  see :mod:`retention_plugin.links`): good/bad and 1-5. ``order_cancelled``
  withdraws it if not sent yet.
- An answer (the ``/r/rate`` page this plugin adds, :class:`.engine.RatingPage`, calls
  :func:`handle_rating_link`; the CLI
  ``retention followups rate TOKEN ANSWER``; code :func:`record_rating_answer`)
  is a ``ratings`` row, source ``followup``, ``source_id`` the Shopify order
  id, ``value`` normalised (good 1, bad 0, n of 5 -> (n-1)/4). **The last
  answer wins**: a customer who clicked the wrong button clicks the right one.
  Every new or changed answer fires ``satisfaction_rated``; the same answer
  again changes nothing.
- A bad answer (``bad``, 1 or 2) opens one Zendesk ticket per order
  (``ticket_create``, key ``followups:ticket:order:<id>``) for a person to
  handle, requested by the customer, with an internal note.

The plugin (this module) holds the hook implementations; the rest is in
:mod:`.engine`, :mod:`.settings` and :mod:`.commands` (``retention followups``).
"""

from __future__ import annotations

from retention_plugin import hookimpl

# docs/offers-and-followups.md shows handle_rating_link imported from here.
from .engine import handle_rating_link, schedule_follow_up, withdraw  # noqa: F401
from .settings import PLUGIN, RATING_PATH, FollowupsSchema  # noqa: F401


@hookimpl
def register_config_sections(register):
    register(PLUGIN, FollowupsSchema())


@hookimpl
def register_commands(cli):
    from .commands import followups_group

    cli.add_command(followups_group)


@hookimpl
def register_routes(retention):
    from retention_plugin.routes import Route

    from .engine import RatingPage

    return [Route(RATING_PATH, RatingPage(retention))]


@hookimpl
def order_fulfilled(event, ctx):
    if event.order_id is not None:
        schedule_follow_up(ctx, event.order_id)


@hookimpl
def order_cancelled(event, ctx):
    withdraw(ctx, event.order.shopify_id)

"""Late-delivery apologies: once per order and problem, found by the clock and by the carrier.

The built-in plugin ``delays`` (``[plugins] disabled = ["delays"]``),
configured under ``[delays]`` (docs/offers-and-followups.md).

Two ways an order is found late:

- **Never shipped** (the clock). An hourly task finds orders that are paid,
  not cancelled, not refunded or voided, not fulfilled (not even partly), not
  test orders, not tagged with one of ``skip_tags`` (pre-orders are late on
  purpose), paid between ``max_age_days`` and ``after_days`` ago, and
  schedules one ``delay_apology`` (reason ``unshipped``), key ``delay:<order id>``.
- **Shipped, but the carrier says it is going wrong** (``fulfillment_events/create``).
  Each tracking event is kept per fulfillment in ``shipments`` (latest status,
  when it happened). A status listed in ``carrier_statuses`` (``delayed``,
  ``failure``, ``attempted_delivery``) schedules one apology for that problem,
  key ``delay:<order id>:<status>``; the hourly task also finds shipments with
  no new tracking event for ``stalled_after_days`` while still on their way
  (reason ``stalled``, key ``delay:<order id>:stalled``).

Exactly once per order and problem: the keys are unique, so replayed events,
duplicate deliveries and every later run of the task find the apology there.
With ``credit_percent`` or ``credit_amount`` the first apology for an order
(any problem but ``attempted_delivery``, which is not a delay of ours) carries
a single-use code for that customer (``rewards`` feature ``delays``, key
``delay:credit:<order id>``, action ``delay:discount:<order id>``); later
apologies for the same order carry none.

``max_age_days`` keeps a first run (or an import of old orders, or a tracking
event replayed long after) from apologising for what nobody is waiting for any
more. An apology not yet sent (it may wait for quiet hours) is withdrawn when
the order ships (``unshipped``), when every shipment of the order is delivered
(the carrier problems), or when the order is cancelled.

The plugin (this module) holds the hook implementations; the rest is in
:mod:`.engine`, :mod:`.settings` and :mod:`.data` (its rows in erasure).
"""

from __future__ import annotations

from retention_plugin import hookimpl

from .data import TEXT_COLUMNS, shop_redact  # noqa: F401 (hook implementations)
from .engine import apologise_for_late_orders, on_shipment, withdraw_when_cancelled, withdraw_when_shipped
from .settings import EVERY_SECONDS, PLUGIN, TASK, DelaysSchema


@hookimpl
def register_config_sections(register):
    register(PLUGIN, DelaysSchema())


@hookimpl
def register_tasks(register):
    register(TASK, apologise_for_late_orders, EVERY_SECONDS)


@hookimpl
def shipment_updated(event, ctx):
    on_shipment(ctx, event.shipment)


@hookimpl
def order_fulfilled(event, ctx):
    if event.order_id is not None:
        withdraw_when_shipped(ctx, event.order_id)


@hookimpl
def order_cancelled(event, ctx):
    withdraw_when_cancelled(ctx, event.order.shopify_id)

"""Thank-you offers: a thank-you message after every paid order, and on chosen occasions a voucher.

The built-in plugin ``offers`` (``[plugins] disabled = ["offers"]`` switches
it off), configured under ``[offers]`` (docs/offers-and-followups.md).

On ``order_paid``:

1. a ``thank_you`` message (transactional), key ``offers:thank_you:order:<id>``;
2. the *occasion* is the first ``[[offers.occasions]]`` entry the order
   matches (``first_order``, ``nth_order``, ``order_above``), or ``"order"``
   when none does; ``choose_offer(order, customer, occasion, ctx)`` decides
   the voucher (the built-in, ``trylast``, returns the matched entry's offer,
   and ``False`` for ``"order"``), so a plugin can change, veto or add offers;
3. a chosen voucher is given only to a customer with marketing consent
   ``subscribed`` and a Shopify id (the code is limited to them). Otherwise
   no code is made and the decision is recorded: a ``voucher`` message row
   with status ``suppressed`` and the reason (``retention messages list``),
   and in ``plugin_state`` (``offers``/``order:<id>``);
4. a voucher is a ``rewards`` row (feature ``offers``), a
   ``discountCodeBasicCreate`` action (single use, that customer only) and a
   ``voucher`` message (marketing), under keys derived from the order id, in
   the delivery's transaction. The code's text is a digest of its key, so a
   retried create sends the same code. Three deliveries of the same
   ``orders/paid`` make one voucher and one thank-you.

The voucher ends ``valid_days`` after the order; when the daily scoring
predicted the customer's next purchase (``customer_scores.next_purchase_at``)
and ``expire_after_expected_days`` is set, it ends that many days after it
instead, bounded by ``min_valid_days`` and ``max_valid_days``.

``[offers] combines_with`` says, per kind of code, which of Shopify's discount
classes it combines with; every feature that creates a discount asks
:func:`retention_plugin.discounts.combines_with` (loyalty and recovery too),
and the request builders refuse to make a discount without it.

The plugin (this module) holds the hook implementations; the rest is in
:mod:`.engine` and :mod:`.settings`.
"""

from __future__ import annotations

from retention_plugin import hookimpl

from .engine import builtin_offer, facts, on_order_paid, withdraw
from .settings import PLUGIN, OffersSchema


@hookimpl
def register_config_sections(register):
    register(PLUGIN, OffersSchema())


@hookimpl(trylast=True)
def choose_offer(order, customer, occasion, ctx):
    """The built-in: the offer of the first ``[[offers.occasions]]`` entry of this occasion the order matches."""
    return builtin_offer(order, occasion, ctx)


@hookimpl
def order_paid(event, ctx):
    on_order_paid(ctx, event.order)


@hookimpl
def order_cancelled(event, ctx):
    """Withdraw the thank-you and voucher not yet sent; the voucher's reward is marked cancelled."""
    withdraw(ctx, event.order.shopify_id)


@hookimpl
def customer_facts(customer_id, ctx):
    return facts(ctx, customer_id)

"""``fulfillment_events/create``: a carrier's tracking event on a fulfillment -> ``ShipmentUpdated``.

The body is Shopify's FulfillmentEvent resource (REST Admin API, "FulfillmentEvent": ``id``,
``fulfillment_id``, ``order_id``, ``status``, ``happened_at``, ``estimated_delivery_at``,
``message``, ``created_at``, address fields). ``status`` is the lower-case form of the Admin
GraphQL ``FulfillmentEventStatus`` enum: ``label_purchased``, ``label_printed``, ``confirmed``,
``ready_for_pickup``, ``carrier_picked_up``, ``in_transit``, ``out_for_delivery``,
``attempted_delivery``, ``delayed``, ``delivered``, ``failure`` (``picked_up`` on newer
versions). A status we do not know is passed on as it is (lower case): features act only on
the ones they name, and a new Shopify status must not dead-letter the delivery.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from marshmallow import EXCLUDE, Schema, ValidationError

from ...events import ShipmentEvent, ShipmentUpdated
from ..errors import PayloadError
from ..schema_fields import BlankableString, Id, UtcDateTime, payload_error_from

PLATFORM = "shopify"
TOPIC = "fulfillment_events/create"
_STATUS = re.compile(r"^[a-z][a-z_]{1,40}$")


class FulfillmentEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = Id(required=True)
    fulfillment_id = Id(required=True)
    order_id = Id(required=True)
    status = BlankableString(required=True)
    happened_at = UtcDateTime(allow_none=True, load_default=None)
    created_at = UtcDateTime(allow_none=True, load_default=None)
    estimated_delivery_at = UtcDateTime(allow_none=True, load_default=None)
    message = BlankableString(allow_none=True, load_default=None)


def build_shipment(payload: Mapping[str, Any]) -> ShipmentEvent:
    """The tracking event in a ``fulfillment_events/create`` body.

    :raises PayloadError: naming the field that is missing or malformed.
    """
    try:
        data = FulfillmentEventSchema().load(payload)
    except ValidationError as exc:
        raise payload_error_from(exc) from None
    status = (data["status"] or "").lower()
    if not _STATUS.match(status):
        raise PayloadError("status", f"not a fulfillment event status: {str(data['status'])[:50]!r}")
    when = data["happened_at"] or data["created_at"]
    if when is None:
        raise PayloadError("happened_at", "missing (and no created_at either)")
    message = data["message"]
    return ShipmentEvent(shopify_id=data["id"], fulfillment_id=data["fulfillment_id"], order_id=data["order_id"],
                         status=status, happened_at=when, estimated_delivery_at=data["estimated_delivery_at"],
                         message=message[:500] if message else None)


def parse(payload, *, shop, shop_currency=None, configured_shop=None) -> list:
    """The ``fulfillment_events/create`` handler registered in :mod:`.payloads`."""
    shipment = build_shipment(payload)
    return [ShipmentUpdated(shipment=shipment, platform=PLATFORM, shop=shop, occurred_at=shipment.happened_at)]

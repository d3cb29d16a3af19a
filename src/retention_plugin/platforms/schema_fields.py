"""Marshmallow fields and helpers shared by the Shopify and Zendesk payload schemas.

The platforms disagree on types (Shopify ids are JSON numbers above 2**53,
Zendesk event ids are strings; Shopify money is a string except where it is a
number), so these fields accept every documented spelling and refuse the
lossy ones: an id that arrives as a float has already lost digits and is
rejected rather than silently rounded.
"""

from __future__ import annotations

import decimal
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from marshmallow import ValidationError, fields

from .errors import PayloadError

_DIGITS = re.compile(r"^\s*\d+\s*$")


class Id(fields.Field):
    """A platform id: an int, or a string of digits; never a float or bool."""

    default_error_messages = {
        "invalid": "Not a valid id (expected an integer or a string of digits).",
        "float": "Id arrived as a float and may have lost digits; send it as an integer or string.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            return value
        if isinstance(value, (float, Decimal)):
            raise self.make_error("float")
        if isinstance(value, str) and _DIGITS.match(value):
            return int(value)
        raise self.make_error("invalid")


class OptionalId(Id):
    """An id where an empty string (an unset Zendesk placeholder) means None."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not value.strip():
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class Amount(fields.Field):
    """A money amount as Decimal, from a string, int, Decimal or (via str) a float.

    Shopify writes order money as strings and refund line subtotals as JSON
    numbers; ``Decimal(str(x))`` keeps ``19.99`` as ``19.99`` instead of the
    binary float's ``19.989999...``.
    """

    default_error_messages = {"invalid": "Not a valid amount."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        try:
            if isinstance(value, Decimal):
                amount = value
            elif isinstance(value, (int, float)):
                amount = Decimal(str(value))
            elif isinstance(value, str) and value.strip():
                amount = Decimal(value.strip())
            else:
                raise self.make_error("invalid")
        except decimal.InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if not amount.is_finite():
            raise self.make_error("invalid")
        return amount


class UtcDateTime(fields.Field):
    """An ISO 8601 timestamp, returned as an aware UTC datetime.

    Accepts ``Z`` or an offset, nanosecond fractions (Zendesk's event
    ``time``), and minute precision (``{{ticket.created_at_with_timestamp}}``
    renders ``2013-12-12T05:35Z``). A timestamp without an offset is refused:
    guessing its zone would shift it silently.
    """

    default_error_messages = {
        "invalid": "Not a valid ISO 8601 timestamp.",
        "naive": "Timestamp has no time zone offset.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, str):
            parsed = parse_iso_datetime(value)
            if parsed is None:
                raise self.make_error("invalid")
        else:
            raise self.make_error("invalid")
        if parsed.tzinfo is None:
            raise self.make_error("naive")
        return parsed.astimezone(timezone.utc)


class OptionalUtcDateTime(UtcDateTime):
    """A timestamp where an empty string (an unset Zendesk placeholder) means None."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not value.strip():
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class BlankableString(fields.String):
    """A string where empty/whitespace means None (unset placeholders, blank fields)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        text = text.strip()
        return text or None


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_iso_datetime(text: str) -> datetime | None:
    """Parse ISO 8601 text, or return None; trims sub-microsecond digits."""
    text = text.strip()
    if not text:
        return None
    # Python keeps microseconds; Zendesk sends nanoseconds.
    text = _FRACTION.sub(r"\1", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def normalise_email(value: Any) -> str | None:
    """Strip and lower-case an email address; blank becomes None."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value or None


def split_tags(value: Any) -> list[str]:
    """Tags from a comma-separated string (Shopify) or a list; blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value if v is not None]
    else:
        return []
    return [t.strip() for t in items if t and t.strip()]


def payload_error_from(exc: ValidationError, prefix: str = "") -> PayloadError:
    """Turn marshmallow's nested error dict into one PayloadError naming the field."""
    path, message = _first_error(exc.messages)
    if prefix:
        path = f"{prefix}.{path}" if path else prefix
    return PayloadError(path or "<payload>", message)


def _first_error(messages: Any) -> tuple[str, str]:
    if isinstance(messages, Mapping):
        # Sort so the reported field is stable across runs.
        for key in sorted(messages, key=str):
            sub_path, message = _first_error(messages[key])
            key_text = "" if key == "_schema" else str(key)
            path = ".".join(p for p in (key_text, sub_path) if p)
            return path, message
        return "", "invalid"
    if isinstance(messages, (list, tuple)):
        if not messages:
            return "", "invalid"
        first = messages[0]
        if isinstance(first, (Mapping, list, tuple)):
            return _first_error(first)
        return "", str(first)
    return "", str(messages)

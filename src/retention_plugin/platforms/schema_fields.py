"""Marshmallow fields and helpers shared by the Shopify and Zendesk payload schemas.

The platforms disagree on types (Shopify ids are JSON numbers above 2**53,
Zendesk event ids are strings; Shopify money is a string except where it is a
number), so these fields accept every documented spelling and refuse the
lossy ones: an id that arrives as a float has already lost digits and is
rejected rather than silently rounded.
"""

from __future__ import annotations

import collections.abc
import decimal
import functools
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing, validate

from .errors import PayloadError

_DIGITS = re.compile(r"^\s*\d+\s*$")

#: Ids are stored in BIGINT columns; a larger one could only fail in the database.
MAX_ID = 2**63 - 1

#: Money is stored as ``Numeric(18, 4)``: fourteen digits before the point.
MAX_AMOUNT = Decimal(10) ** 14

#: Counts (line quantities) are stored in INTEGER columns.
MAX_COUNT = 2**31 - 1

#: Timestamps outside these years are refused as a field error. Nothing real
#: happens before the Unix epoch or after 2200, and datetime arithmetic near
#: year 1 or 9999 overflows: ``0001-01-01T00:00:00+14:00`` cannot even be
#: converted to UTC.
MIN_YEAR, MAX_YEAR = 1970, 2200


class _Checked(fields.Field):
    """A field of ours: ``validate=`` validators still run, but none costs nothing.

    marshmallow builds a ``validate.And`` of the field's validators at every
    value it loads, even of none; for the hundred or so values of an order
    that was a sixth of parsing it.
    """

    def _validate(self, value):
        if self.validators:
            super()._validate(value)


class Inline(fields.Nested, _Checked):
    """``fields.Nested`` loaded field by field, without a nested ``Schema.load``.

    A Shopify order is about 28 nested objects (every money set is three), and
    each ``Schema.load`` costs more in its own bookkeeping (hooks, error store,
    processors) than in the handful of fields it reads: that bookkeeping was
    about 40% of parsing an order. Here the nested schema's own bound fields load
    each value, so what is checked and every error message and path are those
    of ``Nested``; only schemas with nothing else to run (no hooks, unknown
    keys excluded) qualify, which is checked once, at first use.

    Each value is loaded as ``Field.deserialize`` would load it, without the call
    (see :func:`_step`): that call and its own checks were a fifth of parsing an
    order once the nested loads were gone.
    """

    _plan: list[tuple[str, str, fields.Field]] | None = None
    #: The plan, and its steps: a plan replaced means new steps. One attribute, so that a thread
    #: never pairs one plan's steps with another plan.
    _steps: tuple[list[tuple[str, str, fields.Field]], list[tuple]] | None = None

    def _fields(self) -> list[tuple[str, str, fields.Field]]:
        if self._plan is None:
            schema = self.schema
            hooks = [name for name, found in schema._hooks.items() if found]
            renamed = [attr for attr, f in schema.load_fields.items() if f.attribute is not None]
            if (hooks or renamed or self.many or self.only or self.exclude
                    or (self.unknown or schema.unknown) != EXCLUDE):
                raise TypeError(f"{type(schema).__name__} cannot be loaded inline: hooks {hooks}, attributes "
                                f"{renamed}, many/only/exclude, or unknown keys not excluded")
            self._plan = [(attr, f.data_key if f.data_key is not None else attr, f)
                          for attr, f in schema.load_fields.items()]
        return self._plan

    def _deserialize(self, value, attr, data, partial=None, **kwargs):
        plan = self._fields()
        if partial is not None:
            return super()._deserialize(value, attr, data, partial=partial, **kwargs)
        # collections.abc, not typing.Mapping: the same test without typing's slower isinstance hook.
        if type(value) is not dict and not isinstance(value, collections.abc.Mapping):
            raise ValidationError({"_schema": [self.schema.error_messages["type"]]})
        compiled = self._steps
        if compiled is None or compiled[0] is not plan:
            compiled = self._steps = (plan, [_step(*entry) for entry in plan])
        steps = compiled[1]
        out: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        get = value.get
        for attr_name, key, field, direct, required, allow_none, default, check in steps:
            raw = get(key, missing)
            try:
                if not direct:
                    loaded = field.deserialize(raw, key, value)
                elif raw is missing:
                    if required:
                        raise field.make_error("required")
                    loaded = default() if callable(default) else default
                elif raw is None:
                    if not allow_none:
                        raise field.make_error("null")
                    loaded = None
                else:
                    loaded = field._deserialize(raw, key, value)
                    if check:
                        field._validate(loaded)
            except ValidationError as exc:
                errors[key] = exc.messages
                continue
            if loaded is not missing:
                out[attr_name] = loaded
        if errors:
            raise ValidationError(errors, valid_data=out)
        return out


def _step(attr: str, key: str, field: fields.Field) -> tuple:
    """How :class:`Inline` loads one field: ``Field.deserialize``'s steps, read off the field once.

    ``Field.deserialize`` refuses a missing required value and a None that is not allowed, gives
    the default for a missing value and None for an allowed None, and otherwise runs the field's
    ``_deserialize`` then its ``_validate``. A field that changes any of that (its own
    ``deserialize``, ``pre_load``/``post_load`` processors) is loaded by its own ``deserialize``
    (``direct`` false); ``_validate`` is skipped only where it has nothing to run.
    """
    direct = (type(field).deserialize is fields.Field.deserialize
              and not field.pre_load and not field.post_load)
    check = bool(field.validators) or type(field)._validate not in (fields.Field._validate, _Checked._validate)
    return (attr, key, field, direct, field.required, field.allow_none, field.load_default, check)


@functools.cache
def schema_instance(schema: type[Schema]) -> Schema:
    """One instance per schema class for the life of the process.

    A new instance copies every declared field and builds each nested schema again on first use:
    for a Shopify order that was 26 schema instances per delivery, the largest single cost of
    parsing it (docs/performance.md, "Worker"). Loading keeps no state on the instance (no
    ``context``, no processors that store anything), so one instance serves every load.
    """
    return schema()


@functools.cache
def body_inline(schema: type[Schema]) -> Inline | None:
    """A body's own schema loaded as a nested one is, by :class:`Inline`; None if it does not qualify.

    ``Schema.load`` of a Shopify order was another 15% of parsing it in its own bookkeeping
    (processors, error store, a closure per field); loading the body's fields as those of a nested
    object gives the same values, and the same errors under the same keys.
    """
    top = Inline(schema)
    try:
        top._fields()
    except TypeError:
        return None
    return top


def load_body(schema: type[Schema], data: Any) -> dict[str, Any]:
    """``schema().load(data)``, with one instance per class and inline where the schema allows.

    :raises ValidationError: as ``Schema.load`` does, with the same messages.
    """
    top = body_inline(schema)
    if top is None:
        return schema_instance(schema).load(data)
    return top._deserialize(data, None, None)


class Id(_Checked):
    """A platform id: an int, or a string of digits; never a float or bool."""

    default_error_messages = {
        "invalid": "Not a valid id (expected an integer or a string of digits).",
        "float": "Id arrived as a float and may have lost digits; send it as an integer or string.",
        "range": f"Id out of range (0 to {MAX_ID}).",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is int:  # JSON's ids: the int branch below, first (a bool is not of type int)
            if not 0 <= value <= MAX_ID:
                raise self.make_error("range")
            return value
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, (float, Decimal)):
            raise self.make_error("float")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _DIGITS.match(value):
            if len(value.strip()) > 25:  # int() of thousands of digits is slow, then refused anyway
                raise self.make_error("range")
            number = int(value)
        else:
            raise self.make_error("invalid")
        if not 0 <= number <= MAX_ID:
            raise self.make_error("range")
        return number


class OptionalId(Id):
    """An id where an empty string (an unset Zendesk placeholder) means None."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not value.strip():
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class Amount(_Checked):
    """A money amount as Decimal, from a string, int, Decimal or (via str) a float.

    Shopify writes order money as strings and refund line subtotals as JSON
    numbers; ``Decimal(str(x))`` keeps ``19.99`` as ``19.99`` instead of the
    binary float's ``19.989999...``.
    """

    default_error_messages = {
        "invalid": "Not a valid amount.",
        "range": f"Amount out of range (at most {MAX_AMOUNT - 1} in absolute value).",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            # Text first: how Shopify sends almost every amount (the types are disjoint, so the order
            # of the tests changes nothing else).
            if isinstance(value, str):
                text = value.strip()
                if not text:
                    raise self.make_error("invalid")
                amount = Decimal(text)
            elif isinstance(value, bool):
                raise self.make_error("invalid")
            elif isinstance(value, Decimal):
                amount = value
            elif isinstance(value, int):
                # Compared before str(): a huge int cannot even be turned into text.
                if abs(value) >= MAX_AMOUNT:
                    raise self.make_error("range")
                amount = Decimal(value)
            elif isinstance(value, float):
                amount = Decimal(str(value))
            else:
                raise self.make_error("invalid")
        except decimal.InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if not amount.is_finite():
            raise self.make_error("invalid")
        if abs(amount) >= MAX_AMOUNT:
            raise self.make_error("range")
        return amount


class UtcDateTime(_Checked):
    """An ISO 8601 timestamp, returned as an aware UTC datetime.

    Accepts ``Z`` or an offset, nanosecond fractions (Zendesk's event
    ``time``), and minute precision (``{{ticket.created_at_with_timestamp}}``
    renders ``2013-12-12T05:35Z``). A timestamp without an offset is refused:
    guessing its zone would shift it silently.
    """

    default_error_messages = {
        "invalid": "Not a valid ISO 8601 timestamp.",
        "naive": "Timestamp has no time zone offset.",
        "range": f"Timestamp outside the years {MIN_YEAR}-{MAX_YEAR}.",
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
        utc = to_utc_in_range(parsed)
        if utc is None:
            raise self.make_error("range")
        return utc


class OptionalUtcDateTime(UtcDateTime):
    """A timestamp where an empty string (an unset Zendesk placeholder) means None."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not value.strip():
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class Text(fields.String, _Checked):
    """A string the database can store: no NUL characters, no lone UTF-16 surrogates.

    JSON can spell both (``\\u0000``, ``\\ud800``) and Python decodes them,
    but PostgreSQL refuses NUL in text and no database can encode a lone
    surrogate as UTF-8; refused here, the error names the field instead of
    failing the whole transaction later.
    """

    default_error_messages = {"unstorable": "Text holds a NUL character or a lone surrogate."}

    def _deserialize(self, value, attr, data, **kwargs):
        # String gives a str back as it is (str() of a str); only other types need its checks.
        text = value if type(value) is str else super()._deserialize(value, attr, data, **kwargs)
        if not storable_text(text):
            raise self.make_error("unstorable")
        return text


class Count(fields.Integer):
    """A non-negative JSON integer that fits an INTEGER column (quantities)."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, validate=validate.Range(min=0, max=MAX_COUNT), **kwargs)


class Tags(_Checked):
    """Tags as sent: a comma- or space-separated string, or a list of words; None when absent.

    Returned unchanged (each platform splits its own spelling) once every
    piece of text in it is storable.
    """

    default_error_messages = {
        "invalid": "Not valid tags (expected a string or a list of strings).",
        "unstorable": "Tags hold a NUL character or a lone surrogate.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            items = [value]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise self.make_error("invalid")
        for item in items:
            if item is None:
                continue
            if not isinstance(item, str):
                raise self.make_error("invalid")
            if not storable_text(item):
                raise self.make_error("unstorable")
        return value


class BlankableString(Text):
    """A string where empty/whitespace means None (unset placeholders, blank fields)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        text = text.strip()
        return text or None


_FRACTION = re.compile(r"(\.\d{6})\d+")


def to_utc_in_range(parsed: datetime) -> datetime | None:
    """An aware datetime as UTC, or None when it lies outside MIN_YEAR..MAX_YEAR.

    Checked before converting: near year 1 or 9999 the conversion itself
    overflows.
    """
    if not MIN_YEAR - 1 <= parsed.year <= MAX_YEAR + 1:
        return None
    utc = parsed.astimezone(timezone.utc)
    return utc if MIN_YEAR <= utc.year <= MAX_YEAR else None


def storable_text(text: str) -> bool:
    """True when ``text`` has no NUL and encodes as UTF-8 (no lone surrogates)."""
    if "\x00" in text:
        return False
    if text.isascii():  # a flag CPython keeps on the string: no need to encode it to know
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_iso_datetime(text: str) -> datetime | None:
    """Parse ISO 8601 text, or return None; trims sub-microsecond digits."""
    text = text.strip()
    if not text:
        return None
    # Python keeps microseconds; Zendesk sends nanoseconds.
    if "." in text:
        text = _FRACTION.sub(r"\1", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def storable_json(value: Any, depth: int = 0) -> bool:
    """True when ``value`` can be stored in a JSON column of either database.

    PostgreSQL's ``jsonb`` refuses ``\\u0000`` and NaN/Infinity; no database
    encodes a lone surrogate. Nesting past 64 levels is refused too: nothing
    we keep is that deep.
    """
    if depth > 64:
        return False
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and storable_text(k) and storable_json(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(storable_json(v, depth + 1) for v in value)
    return value is None or isinstance(value, (bool, int))


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

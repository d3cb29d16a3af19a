"""``Inline`` loads each value as ``Field.deserialize`` would, and a body's own schema as a nested one.

The shortcut (``schema_fields._step``) reads a field's required/allow_none/default/validators once and
runs its ``_deserialize`` itself; a field that does more in ``deserialize`` (processors, its own
``deserialize``) must still be loaded by it, and a body schema with hooks still by ``Schema.load``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from retention_plugin.platforms.errors import PayloadError
from retention_plugin.platforms.schema_fields import Amount, Id, Inline, Text, UtcDateTime, body_inline
from retention_plugin.platforms.shopify import payloads as sp


class Loud(fields.String):
    """A field whose own ``deserialize`` changes the value: the shortcut must not skip it."""

    def deserialize(self, value, attr=None, data=None, **kwargs):
        out = super().deserialize(value, attr, data, **kwargs)
        return out.upper() if isinstance(out, str) else out


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class Inner(Schema):
    class Meta:
        unknown = EXCLUDE

    trimmed = fields.String(pre_load=_strip, post_load=lambda s: f"<{s}>", allow_none=True, load_default=None)
    loud = Loud(allow_none=True, load_default=None)
    short = Text(validate=validate.Length(max=3), allow_none=True, load_default=None)
    amount = Amount(required=True)
    many = fields.List(fields.Integer(), load_default=list)
    kept = fields.Raw(load_default="absent")
    strict_none = Text(allow_none=False, load_default=None)


class Outer(Schema):
    class Meta:
        unknown = EXCLUDE

    inner = Inline(Inner, allow_none=True, load_default=None)
    nested = fields.Nested(Inner, allow_none=True, load_default=None)


def _load(body: dict[str, Any]) -> Any:
    try:
        return Outer().load(body)
    except ValidationError as exc:
        return {"error": exc.messages}


CASES: list[dict[str, Any]] = [
    {"amount": "1.50"},
    {"amount": "1.50", "trimmed": "  a  ", "loud": "quiet", "short": "abc", "many": [1, 2], "kept": None},
    {"amount": "1.50", "trimmed": None, "loud": None, "short": None},
    {"amount": "1.50", "short": "abcd"},  # the validator runs
    {"amount": "1.50", "strict_none": None},  # None where not allowed
    {"amount": None},
    {},  # required and missing
    {"amount": "x", "many": ["a"], "short": "\x00"},
    {"amount": "1", "trimmed": 5},  # through the processor to the field's own error
]


@pytest.mark.parametrize("body", CASES)
def test_inline_gives_what_nested_gives(body):
    got = _load({"inner": body, "nested": body})
    if "error" in got:
        errors = got["error"]
        assert errors.get("inner") == errors.get("nested") and errors.get("inner") is not None
    else:
        assert got["inner"] == got["nested"]


def test_a_field_with_processors_or_its_own_deserialize_is_loaded_by_it():
    got = Outer().load({"inner": {"amount": "2", "trimmed": " b ", "loud": "x"}})
    assert got["inner"]["trimmed"] == "<b>" and got["inner"]["loud"] == "X"
    assert got["inner"]["kept"] == "absent" and got["inner"]["many"] == []


def test_a_body_schema_with_hooks_is_loaded_by_schema_load():
    class Hooked(Schema):
        class Meta:
            unknown = EXCLUDE

        a = fields.Integer(required=True)

        @post_load
        def double(self, data, **kwargs):
            return {"a": data["a"] * 2}

    assert body_inline(Hooked) is None
    assert sp._load(Hooked, {"a": 2}) == {"a": 4}
    with pytest.raises(PayloadError) as caught:
        sp._load(Hooked, {"a": "x"})
    assert caught.value.field == "a"


def test_a_body_schema_without_hooks_is_loaded_inline():
    assert isinstance(body_inline(sp.OrderSchema), Inline)
    with pytest.raises(PayloadError) as caught:
        sp._load(sp.RefundSchema, {"id": 1, "order_id": 2, "created_at": "2026-03-01T10:00:00"})
    assert (caught.value.field, caught.value.message) == ("created_at", "Timestamp has no time zone offset.")


class _Str(str):
    pass


class _Int(int):
    pass


LEAVES: list[tuple[type, Any, Any]] = [
    # (field, value, what it loads to, or the error message)
    (Id, 5, 5), (Id, _Int(5), _Int(5)), (Id, 2**63, "Id out of range (0 to 9223372036854775807)."),
    (Id, -1, "Id out of range (0 to 9223372036854775807)."),
    (Id, True, "Not a valid id (expected an integer or a string of digits)."), (Id, " 12 ", 12),
    (Amount, " 1.50 ", Decimal("1.50")), (Amount, " ", "Not a valid amount."), (Amount, "NaN", "Not a valid amount."),
    (Amount, "-Infinity", "Not a valid amount."), (Amount, "x", "Not a valid amount."),
    (Amount, "1e14", "Amount out of range (at most 99999999999999 in absolute value)."),
    (Amount, True, "Not a valid amount."), (Amount, 0.1, Decimal("0.1")), (Amount, _Str("2"), Decimal("2")),
    (Text, "ąčę", "ąčę"), (Text, _Str("x"), "x"), (Text, b"abc", "abc"), (Text, 5, "Not a valid string."),
    (Text, "a\x00", "Text holds a NUL character or a lone surrogate."),
    (Text, "\ud800", "Text holds a NUL character or a lone surrogate."),
    (UtcDateTime, "2026-03-01T12:00:00.123456789+02:00", datetime(2026, 3, 1, 10, 0, 0, 123456, timezone.utc)),
    (UtcDateTime, "2026-03-01T12:00:00.5Z", datetime(2026, 3, 1, 12, 0, 0, 500000, timezone.utc)),
    (UtcDateTime, "2026-03-01T12:00:00", "Timestamp has no time zone offset."),
]


@pytest.mark.parametrize("field,value,expected", LEAVES)
def test_the_common_types_shortcuts_load_every_value_as_the_general_branches_do(field, value, expected):
    try:
        got = field(required=True).deserialize(value, "f", {})
    except ValidationError as exc:
        got = exc.messages[0]
    assert got == expected and type(got) is type(expected)

"""Configuration sections messaging reads: ``[contact_policy]``, ``[email]``, ``[messages]``.

They are registered through ``register_config_sections`` (see ``plugin.py``),
so ``retention.toml`` is validated with these schemas at start-up and an
unknown key is an error naming it. :func:`section` reads a loaded section
from the application's settings, or the defaults when there are none.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_COUNTRY = validate.Regexp(r"^[A-Z]{2}$", error="expected an ISO country code like LT")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r} (expected an IANA name like Europe/Vilnius)") from None


class ContactPolicySchema(_Strict):
    allowed_hours = fields.List(fields.String(), load_default=lambda: ["09:00", "20:00"])
    max_marketing_per_week = fields.Integer(load_default=2, validate=validate.Range(min=0))
    min_gap_hours = fields.Float(load_default=48.0, validate=validate.Range(min=0))
    respect_rest_days = fields.Boolean(load_default=True)
    respect_public_holidays = fields.Boolean(load_default=True)
    default_timezone = fields.String(load_default="UTC", validate=_check_zone)
    #: Per-country time zone, overriding the built-in choice: {US = "America/Chicago"}.
    country_timezones = fields.Dict(keys=fields.String(validate=_COUNTRY),
                                    values=fields.String(validate=_check_zone), load_default=dict)
    #: Per-country rest days, overriding the ``holidays`` package's weekend: {LT = ["sun"]}.
    country_rest_days = fields.Dict(keys=fields.String(validate=_COUNTRY),
                                    values=fields.List(fields.String(validate=validate.OneOf(WEEKDAYS))),
                                    load_default=dict)
    safety_ignores_quiet_hours = fields.Boolean(load_default=True)
    safety_kinds = fields.List(fields.String(), load_default=lambda: ["recall"])
    #: Transactional kinds a customer may still decline: their mail carries List-Unsubscribe, and
    #: after an explicit unsubscribe they are suppressed too (no consent is needed before that).
    courtesy_kinds = fields.List(fields.String(), load_default=lambda: ["thank_you"])

    @validates("allowed_hours")
    def _hours(self, value, **_):
        if len(value) != 2 or not all(_HHMM.match(v) for v in value):
            raise ValidationError('expected two times ["HH:MM", "HH:MM"], e.g. ["09:00", "20:00"]')
        if value[0] >= value[1]:
            raise ValidationError(f"the start {value[0]} must be before the end {value[1]}")


UNSUBSCRIBE_PLACEHOLDERS = {"customer_id", "email", "message_key", "token"}


class EmailSchema(_Strict):
    host = fields.String(load_default="localhost")
    port = fields.Integer(load_default=None, validate=validate.Range(min=1, max=65535))
    security = fields.String(load_default="starttls", validate=validate.OneOf(["starttls", "tls", "none"]))
    username = fields.String(load_default=None)
    password = fields.String(load_default=None)
    from_address = fields.Email(load_default=None)
    from_name = fields.String(load_default=None)
    reply_to = fields.Email(load_default=None)
    #: One-click unsubscribe endpoint; placeholders {customer_id} {email} {message_key} {token}
    #: ({token} is a signed link made with [links] secret, which it then needs).
    unsubscribe_url = fields.String(load_default=None,
                                    validate=validate.Regexp(r"^https?://", error="expected an http(s) URL"))
    unsubscribe_mailto = fields.Email(load_default=None)
    #: Legacy: only verifies unsubscribe tokens sent before [links] secret signed them (keep it until those
    #: mails are old enough not to matter); nothing new is signed with it.
    unsubscribe_secret = fields.String(load_default=None)
    timeout_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=1))

    @validates("unsubscribe_url")
    def _placeholders(self, value, **_):
        if value is None:
            return
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        unknown = names - UNSUBSCRIBE_PLACEHOLDERS
        if unknown:
            raise ValidationError(f"unknown placeholder {{{sorted(unknown)[0]}}} "
                                  f"(known: {', '.join('{%s}' % n for n in sorted(UNSUBSCRIBE_PLACEHOLDERS))})")

    @validates_schema
    def _pairs(self, data, **_):
        if data.get("username") and not data.get("password"):
            raise ValidationError("password is required when username is set", "password")


class MessagesSchema(_Strict):
    default_channel = fields.String(load_default="email")
    fallback_locale = fields.String(load_default="en", validate=validate.Regexp(
        r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", error="expected a locale like en or pt-BR"))
    #: Template overrides, searched before the built-in templates; relative to the config file.
    templates_dir = fields.String(load_default=None)
    #: A template referring to a variable it was not given fails the message instead of sending a gap.
    strict_templates = fields.Boolean(load_default=True)
    shop_name = fields.String(load_default="")
    shop_url = fields.String(load_default=None)
    batch_size = fields.Integer(load_default=100, validate=validate.Range(min=1))
    max_attempts = fields.Integer(load_default=5, validate=validate.Range(min=1))
    backoff_base_seconds = fields.Float(load_default=60.0, validate=validate.Range(min=0))
    backoff_max_seconds = fields.Float(load_default=6 * 3600.0, validate=validate.Range(min=0))
    lease_seconds = fields.Integer(load_default=300, validate=validate.Range(min=5))
    #: Messages sent in one transaction, each in a savepoint (channels that send in the transaction).
    messages_per_commit = fields.Integer(load_default=50, validate=validate.Range(min=1))
    #: ...but commit once a transaction has run this long: on SQLite it holds the one write lock.
    commit_interval_ms = fields.Integer(load_default=250, validate=validate.Range(min=1))
    #: How the shopify channel hands a message over: a customer tag or a customer metafield.
    shopify_mode = fields.String(load_default="tag", validate=validate.OneOf(["tag", "metafield"]))


SECTIONS: dict[str, Schema] = {
    "contact_policy": ContactPolicySchema(),
    "email": EmailSchema(),
    "messages": MessagesSchema(),
}


def load_section(name: str, raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate one section; a problem raises ``ValueError`` naming ``[section].key``."""
    try:
        return SECTIONS[name].load(dict(raw or {}))
    except ValidationError as e:
        key, msg = _first_problem(e.messages)
        raise ValueError(f"[{name}].{key}: {msg}") from None


def _first_problem(messages) -> tuple[str, str]:
    for key, value in messages.items():
        while isinstance(value, dict):
            inner_key, value = next(iter(value.items()))
            key = f"{key}.{inner_key}"
        text = value[0] if isinstance(value, list) else str(value)
        return key, "unknown key" if text == "Unknown field." else text
    return "?", str(messages)


def section(settings, name: str) -> dict[str, Any]:
    """The loaded ``[name]`` section from the app's settings, or its defaults.

    ``settings`` is the application's ``Settings`` (with ``.section(name)``), a
    plain mapping of section name to *loaded* values, or None.
    """
    got = None
    if settings is not None:
        if hasattr(settings, "section"):
            got = settings.section(name)
        elif isinstance(settings, Mapping):
            got = settings.get(name)
    if not got:
        return load_section(name, {})
    # A section loaded by the app already has every default; a hand-built mapping may not.
    missing = set(SECTIONS[name].fields) - set(got)
    return load_section(name, got) if missing else dict(got)


def base_dir(settings) -> Path:
    return Path(getattr(settings, "base_dir", None) or Path.cwd())


def templates_dir(settings) -> Path | None:
    """The override directory for templates, resolved against the config file's directory."""
    configured = section(settings, "messages")["templates_dir"]
    if not configured:
        return None
    path = Path(configured)
    return path if path.is_absolute() else (base_dir(settings) / path).resolve()

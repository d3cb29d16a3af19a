"""The ``[recalls]`` section, and the names every part of the recalls plugin shares."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from retention_plugin.config import section_or_defaults

PLUGIN = "recalls"
SEVERITIES = ("safety", "quality")
STATES = ("affected", "notified", "acknowledged", "resolved")
SAFETY_KIND = "recall"
QUALITY_KIND = "recall_quality"


class RecallError(Exception):
    """A problem the person running a recall command can fix; worded for them."""


class RecallsSchema(Schema):
    class Meta:
        unknown = RAISE

    #: No longer read: acknowledgment links point at [links] base_url (kept so older files still load).
    public_url = fields.String(load_default=None, validate=validate.Regexp(
        r"^https?://[^\s/?#]+(/[^\s?#]*)?$", error="expected a base URL like https://retention.example.com"))
    #: Legacy: verifies acknowledgment links sent before [links] secret signed them; signs nothing new
    #: (named *secret* so `config check` masks it).
    signing_secret = fields.String(load_default=None, validate=validate.Length(
        min=16, error="use at least 16 characters (e.g. `openssl rand -hex 32`)"))
    #: Open a Zendesk ticket per affected customer (default for `recall create`; --tickets/--no-tickets).
    zendesk_tickets = fields.Boolean(load_default=False)
    #: The link opens a page with a Confirm button; only the button (a POST) records the acknowledgment.
    confirm_ack = fields.Boolean(load_default=True)
    #: Cases written per transaction by `recall create` and the sync task.
    batch_size = fields.Integer(load_default=500, validate=validate.Range(min=1))


def settings_of(settings) -> dict:
    """``[recalls]`` from the Settings (or anything that has them); its defaults when absent."""
    return section_or_defaults(settings, PLUGIN, RecallsSchema)

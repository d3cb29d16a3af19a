"""The ``[followups]`` section, and the names the follow-ups share."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from retention_plugin.config import section_or_defaults

PLUGIN = "followups"
SOURCE = "followup"
PURPOSE = "rate"
#: The page this plugin adds (``register_routes``); handled by :func:`handle_rating_link`.
RATING_PATH = "/r/rate"
ANSWERS = ("good", "bad", "1", "2", "3", "4", "5")

_URL = validate.Regexp(r"^https?://\S+$", error="expected an http(s) URL")


class FollowupsSchema(Schema):
    class Meta:
        unknown = RAISE

    #: The message is due this long after the order's first fulfilment.
    days_after_fulfillment = fields.Float(load_default=7.0, validate=validate.Range(min=0))
    #: A follow-up that would already be this many days overdue (an old order imported or replayed) is skipped.
    stale_after_days = fields.Float(load_default=14.0, validate=validate.Range(min=0))
    #: Rating links work this long after the message is due.
    link_valid_days = fields.Integer(load_default=60, strict=True, validate=validate.Range(min=1, max=3650))
    #: A bad answer (bad, 1 or 2) opens a Zendesk ticket (once per order).
    ticket_on_bad = fields.Boolean(load_default=True)
    ticket_tags = fields.List(fields.String(validate=validate.Regexp(
        r"^\S+$", error="tags are single words")), load_default=lambda: ["retention", "followup", "bad_rating"])
    #: The link opens a page with a Confirm button (and a comment box); only the button records the answer.
    #: Turn on when mail scanners that open every link (Safe Links, ...) record answers nobody gave.
    confirm_clicks = fields.Boolean(load_default=False)
    #: Passed to the template as support_url / help_url (how to reach support; how to get the most from it).
    support_url = fields.String(load_default=None, validate=_URL)
    help_url = fields.String(load_default=None, validate=_URL)


def settings_of(settings) -> dict:
    """``[followups]`` from the Settings (or anything that has them); its defaults when absent."""
    return section_or_defaults(settings, PLUGIN, FollowupsSchema)

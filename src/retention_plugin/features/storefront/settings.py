"""The ``[storefront]`` configuration section: where the rewards page answers and how."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ...config import section_or_defaults

SECTION = "storefront"


class StorefrontSchema(Schema):
    class Meta:
        unknown = RAISE

    #: Where `retention serve` answers the app proxy; `retention shopify app-config` points the proxy here.
    path = fields.String(load_default="/proxy/rewards", validate=validate.Regexp(
        r"^(/[A-Za-z0-9_-]+)+$", error="expected a path such as /proxy/rewards"))
    #: ``liquid``: the page is rendered inside the shop's theme (Content-Type application/liquid);
    #: ``html``: a page of its own. ``?format=html`` asks for the plain page either way.
    format = fields.String(load_default="liquid", validate=validate.OneOf(["liquid", "html"]))
    #: Proxied requests whose signed timestamp is further from now than this are refused (401).
    max_age_seconds = fields.Integer(load_default=300, strict=True, validate=validate.Range(min=30, max=3600))
    #: How long a page's redeem buttons work after it was shown (their CSRF token's lifetime).
    form_valid_minutes = fields.Integer(load_default=120, strict=True, validate=validate.Range(min=5, max=1440))
    #: The page's language when neither the storefront, the customer nor the browser names one it has.
    fallback_locale = fields.String(load_default="en", validate=validate.OneOf(["en", "lt", "sl", "ru", "ka"]))


def settings_of(source) -> dict:
    return section_or_defaults(source, SECTION, StorefrontSchema)

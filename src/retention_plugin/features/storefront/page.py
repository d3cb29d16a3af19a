"""The rewards page Shopify's app proxy serves at ``/<prefix>/<subpath>`` (``/apps/rewards``).

GET shows the signed-in customer their points, tier, punch cards, rewards and
history; POST redeems one reward, or hands a plugin section's form (any other ``action`` field) to the
``storefront_action`` hook. Every request is checked first
(:func:`~retention_plugin.platforms.shopify.app_proxy.verify_proxy`): a
forged, stale or other shop's request gets a bare 401 that says nothing of
why. The customer is the one Shopify signed for (``logged_in_customer_id``)
and nobody else: no parameter of the page names a customer.

A redeem form carries a CSRF token (an HMAC bound to the shop, the customer
and an expiry) and an idempotency key built from the reward and the state of
the customer's ledger when the page was shown. A double click, a retry, or
two tabs opened on the same balance send the same key and redeem once; after
a redemption the ledger has moved, so the next page shows a new key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, quote

import falcon
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from ...context import HookContext
from ...customers import customer_for
from ...messaging.pages import accepted_languages
from ...messaging.templates import normalize_locale
from ... import shops
from ...platforms.shopify.app_proxy import ProxyRejected, verify_proxy
from ...shop_scope import normalise, scope
from ...storage.db import read_only
from .settings import settings_of
from .texts import LANGUAGES, words

log = logging.getLogger("retention_plugin.storefront")

#: A redeem form is three short fields; anything larger is not ours.
MAX_FORM_BYTES = 4096
_REWARD = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_MARKER = re.compile(r"^[0-9]{1,20}$")
_LOCALE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
#: The page's own query keys and what their values may be (strict, so the signed text stays unambiguous).
EXTRA_KEYS = {"format": lambda v: v in ("liquid", "html"), "locale": lambda v: bool(_LOCALE.match(v))}


class _Refused(Exception):
    def __init__(self, answer: dict):
        super().__init__(answer.get("refused"))
        self.answer = answer


# --- CSRF: a token the page hands out and takes back, bound to one customer of one shop ------------


def _csrf_key(secret: str) -> bytes:
    # A key of its own, so a token can never be replayed as a proxy signature or the other way round.
    return hmac.new(secret.encode("utf-8"), b"retention-plugin storefront csrf", hashlib.sha256).digest()


def make_csrf(secret: str, shop: str, customer: int, expires: datetime) -> str:
    until = int(expires.timestamp())
    mac = hmac.new(_csrf_key(secret), f"{shop}|{customer}|{until}".encode(), hashlib.sha256).hexdigest()
    return f"{until}.{mac}"


def check_csrf(secrets, token: str | None, shop: str, customer: int, now: datetime) -> bool:
    if not token or not re.fullmatch(r"[0-9]{1,12}\.[0-9a-f]{64}", token):
        return False
    until, mac = token.split(".")
    ok = False
    for secret in secrets:
        want = hmac.new(_csrf_key(secret), f"{shop}|{customer}|{until}".encode(), hashlib.sha256).hexdigest()
        ok |= hmac.compare_digest(want, mac)
    return ok and int(until) >= now.timestamp()


# --- the markup -------------------------------------------------------------------------------------

#: The page's markup (a fragment: the theme, or :data:`DOCUMENT`, is the page around it).
TEMPLATE = Path(__file__).with_name("templates") / "rewards.html.j2"

DOCUMENT = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>{{ title }}</title></head><body>{{ body }}</body></html>
"""


def _fmt(text: str, **values) -> str:
    return text.format(**{k: "" if v is None else v for k, v in values.items()})


_env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters["fmt"] = _fmt
_BODY = _env.from_string(TEMPLATE.read_text(encoding="utf-8"))
_DOCUMENT = _env.from_string(DOCUMENT)


def _no_liquid(html: str) -> str:
    # Shopify runs a liquid answer through Liquid: a reward code or a plugin's text holding "{{" must
    # stay text, never become a tag. Our own markup has neither sequence.
    return html.replace("{{", "&#123;&#123;").replace("{%", "&#123;%")


def _value_text(w: dict, amount, percent, currency) -> str:
    value = f"{amount} {currency or ''}".strip() if amount is not None else f"{percent}%"
    return _fmt(w["off"], value=value)


def render(locale: str, *, signed_in: bool, account: dict | None = None, sections=(), notice: dict | None = None,
           action: str = "", login_url: str = "", csrf: str = "", full_document: bool = False) -> str:
    """The page's markup: a fragment for the theme (liquid), or a whole document."""
    w = words(locale)
    a = dict(account or {})
    a.setdefault("available", 0)
    a.setdefault("pending", 0)
    for k in ("tier", "tier_title", "next_tier"):
        a.setdefault(k, None)
    a.setdefault("perks", {})
    a.setdefault("punch_cards", [])
    offers = []
    for o in a.get("offers") or []:
        title = (o.get("titles") or {}).get(locale) or o.get("title")
        offers.append({**o, "label": title or _value_text(w, o.get("amount"), o.get("percent"), o.get("currency"))})
    codes = [{"code": r["code"], "value": _value_text(w, r.get("amount"), r.get("percent"), r.get("currency"))
              if (r.get("amount") or r.get("percent")) else "",
              "until": (r.get("expires_at") or "")[:10]} for r in a.get("rewards") or [] if r.get("status") == "issued"]
    history = [{"date": (h.get("created_at") or "")[:10], "what": w.get(f"kind_{h.get('kind')}", h.get("kind")),
                "points": f"{h['points']:+d}"} for h in a.get("history") or []]
    safe_sections = [{"id": re.sub(r"[^a-z0-9_-]", "-", str(s.get("id", "x")).lower()), "title": s.get("title", ""),
                      "html": Markup(s.get("html", ""))} for s in sections]
    body = _BODY.render(lang=locale, w=w, a=a, signed_in=signed_in, notice=notice,
                        offers=offers, codes=codes, history=history, sections=safe_sections, action=action,
                        login_url=login_url, csrf=csrf, marker=a.get("ledger_marker", 0),
                        paused=bool(a.get("paused")))
    if full_document:
        body = _DOCUMENT.render(lang=locale, title=w["title"], body=Markup(body))
    return _no_liquid(body)


# --- the resource -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    """One shop's storefront, from its settings (``[shops."<shop>".shopify]``/``.storefront`` over the global)."""

    shop: str
    secrets: list[str]
    path_prefix: str
    cfg: dict

    @classmethod
    def of(cls, settings, shop: str) -> _Site:
        """Read inside ``shop``'s scope."""
        shopify = settings.section("shopify")
        secret = shopify.get("client_secret")
        prefix, subpath = shopify.get("app_proxy_prefix") or "apps", shopify.get("app_proxy_subpath") or "rewards"
        return cls(shop, [secret] if secret else list(shopify.get("webhook_secrets") or []),
                   f"/{prefix}/{subpath}", settings_of(settings))


class RewardsPage:
    """The Falcon resource behind ``[storefront] path``.

    Any shop the install serves (installed, its work not stopped: :mod:`retention_plugin.shops`) may proxy
    to it; the request is checked with that shop's secret and served inside its scope (its customers,
    its settings). Any other shop gets the bare 401 a forged request does.
    """

    def __init__(self, retention):
        self.retention = retention

    # Falcon responders --------------------------------------------------------------------------------

    def on_get(self, req, resp):
        self._serve(req, resp, form=None)

    def on_post(self, req, resp):
        length = req.content_length or 0
        if length > MAX_FORM_BYTES:
            resp.status = falcon.HTTP_413
            resp.content_type = "text/plain"
            resp.text = "Request body too large"
            return
        raw = req.bounded_stream.read(MAX_FORM_BYTES + 1) if length else b""
        try:
            form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True)) if raw else {}
        except (UnicodeDecodeError, ValueError):
            form = {}
        self._serve(req, resp, form=form)

    # --------------------------------------------------------------------------------------------------

    def _unauthorized(self, resp, why: str) -> None:
        log.info("storefront: refused a proxied request: %s", why)
        resp.status = falcon.HTTP_401
        resp.content_type = "text/plain"
        resp.set_header("Cache-Control", "no-store")
        resp.text = "Unauthorized"

    def _shop_of(self, query: str) -> str | None:
        """The query's ``shop``, when it is one this install serves (the signature is checked after)."""
        try:
            named = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "shop"]
        except ValueError:
            return None
        shop = normalise(named[0]) if len(named) == 1 else None
        if shop is None:
            return None
        # The page's reads wait for no worker's group, and leave the receivers' turn to them
        # (storage.db.read_only); a redemption or a section's form writes in a transaction of its own.
        with read_only(self.retention.engine) as conn:
            if not shops.is_installed(self.retention, conn, shop) or shops.stopped(conn, shop):
                return None
        return shop

    def _serve(self, req, resp, form: dict | None) -> None:
        shop = self._shop_of(req.query_string or "")
        if shop is None:
            self._unauthorized(resp, "not a shop this install serves")
            return
        with scope(shop):
            self._serve_shop(req, resp, form, _Site.of(self.retention.settings, shop))

    def _serve_shop(self, req, resp, form: dict | None, site: _Site) -> None:
        now = self.retention.now()
        try:
            proxied = verify_proxy(req.query_string or "", site.secrets, shop=site.shop, path_prefix=site.path_prefix,
                                   now=now, extra=EXTRA_KEYS, max_age=site.cfg["max_age_seconds"])
        except ProxyRejected as e:
            self._unauthorized(resp, str(e))
            return
        fmt = proxied.extra.get("format") or site.cfg["format"]
        query = "&".join(f"{k}={quote(v)}" for k, v in sorted(proxied.extra.items()))
        action = site.path_prefix + (f"?{query}" if query else "")
        login_url = "/account/login?return_url=" + quote(action, safe="")
        resp.set_header("Cache-Control", "no-store, private")
        resp.set_header("X-Robots-Tag", "noindex")
        if fmt == "liquid":
            resp.content_type = "application/liquid"
        else:
            resp.content_type = "text/html; charset=utf-8"
            resp.set_header("Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        common = {"action": action, "login_url": login_url, "full_document": fmt == "html"}
        if proxied.customer_id is None:
            locale = self._locale(proxied.extra.get("locale"), None, req.get_header("Accept-Language"))
            if form is not None:
                resp.status = falcon.HTTP_403
            resp.text = render(locale, signed_in=False, **common)
            return
        notice = None
        with read_only(self.retention.engine) as conn:
            customer = customer_for(conn, shopify_id=proxied.customer_id)
        locale = self._locale(proxied.extra.get("locale"), (customer or {}).get("locale"),
                              req.get_header("Accept-Language"))
        w = words(locale)
        if form is not None:
            if not check_csrf(site.secrets, form.get("csrf"), site.shop, proxied.customer_id, now):
                resp.status = falcon.HTTP_403
                notice = {"error": True, "text": w["stale_form"]}
            elif (form.get("action") or "redeem") == "redeem":
                notice = self._redeem(customer, form, now, w)
            else:
                notice = self._action(customer, form, locale, now, w)
                if notice.get("error"):
                    resp.status = falcon.HTTP_400
        cid = customer["id"] if customer else None
        account: dict = {}
        sections: list = []
        expires = datetime.fromtimestamp(now.timestamp() + 60 * site.cfg["form_valid_minutes"], tz=timezone.utc)
        csrf = make_csrf(site.secrets[0], site.shop, proxied.customer_id, expires)
        with read_only(self.retention.engine) as conn:  # the hooks are given a transaction to read in
            ctx = HookContext(self.retention, conn, now=now, source="storefront")
            if cid is not None:
                account = self.retention.pm.hook.loyalty_account(customer_id=cid, ctx=ctx) or {}
                for got in self.retention.pm.hook.storefront_sections(customer_id=cid, account=account,
                                                                      locale=locale, ctx=ctx, post_url=action,
                                                                      csrf=csrf):
                    sections.extend(got or ())
        resp.text = render(locale, signed_in=True, account=account, sections=sections, notice=notice, csrf=csrf,
                           **common)

    def _redeem(self, customer: dict | None, form: dict, now: datetime, w: dict) -> dict:
        reward, marker = form.get("reward") or "", form.get("key") or ""
        if not _REWARD.match(reward) or not _MARKER.match(marker):
            return {"error": True, "text": w["invalid"]}
        if customer is None:  # Shopify knows them, we have no order of theirs yet: nothing to spend
            return {"error": True, "text": w["insufficient_points"]}
        try:
            with self.retention.engine.begin() as conn:
                ctx = HookContext(self.retention, conn, now=now, source="storefront")
                answer = self.retention.pm.hook.loyalty_redeem(customer_id=customer["id"], reward=reward,
                                                              key=f"{reward}:{marker}", ctx=ctx)
                if not answer or "refused" in answer:
                    raise _Refused(answer or {"refused": "invalid"})  # rolls back whatever was written
        except _Refused as e:
            why = e.answer.get("refused")
            log.info("storefront: customer %s could not redeem %s: %s", customer["id"], reward, why)
            return {"error": True, "text": w.get(why or "invalid", w["invalid"])}
        return {"code": answer["reward"]["code"], "available": answer["available"]}

    def _action(self, customer: dict | None, form: dict, locale: str, now: datetime, w: dict) -> dict:
        """A section's form (``action`` other than redeem), answered by the ``storefront_action`` hook."""
        action = form.get("action") or ""
        if not _REWARD.match(action):
            return {"error": True, "text": w["unknown_action"]}
        if customer is None:  # no order of theirs yet: nothing of ours to attach the form's effect to
            return {"error": True, "text": w["no_account"]}
        try:
            with self.retention.engine.begin() as conn:
                ctx = HookContext(self.retention, conn, now=now, source="storefront")
                answer = self.retention.pm.hook.storefront_action(customer_id=customer["id"], action=action,
                                                                  form=dict(form), locale=locale, ctx=ctx)
                if not answer or not answer.get("ok"):
                    raise _Refused(dict(answer or {}))  # rolls back whatever the plugin wrote
        except _Refused as e:
            if not e.answer:
                log.info("storefront: no plugin handles action %r", action)
                return {"error": True, "text": w["unknown_action"]}
            return {"error": True, "text": str(e.answer.get("message") or w["unknown_action"])}
        return {"text": str(answer.get("message") or "")}

    def _locale(self, asked: str | None, stored: str | None, accept: str | None) -> str:
        wanted = [normalize_locale(asked) if asked else None, normalize_locale(stored) if stored else None,
                  *accepted_languages(accept), settings_of(self.retention.settings)["fallback_locale"]]
        for loc in wanted:
            if not loc:
                continue
            for cand in (loc, loc.split("-")[0]):
                if cand in LANGUAGES:
                    return cand
        return "en"

"""Message channels: email over SMTP, Zendesk, Shopify, and a log for dry runs.

A channel has one method, ``send(message, customer, rendered, ctx) -> str``,
returning the provider's id for what it sent, or raising :class:`ChannelError`
saying whether trying again later may help. ``ctx`` gives ``settings`` and
``enqueue_action(platform, kind, key, request) -> int``. A channel whose send
only writes through ``ctx`` says so with ``sends_in_transaction = True``: the
outbox then sends several messages in one transaction (see ``outbox``).

Email is sent at once. Zendesk and Shopify never call out from here: they put
an action in the outbox (the ``actions`` table), in the same transaction that
marks the message sent, and the action runner performs it with retries. So a
message is never "sent" without its action, nor the action queued twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Protocol, runtime_checkable
from urllib.parse import quote

from .. import links
from ..platforms.shopify.mutations import metafields_set, tags_add, tags_remove
from .kinds import MARKETING
from .settings import section
from .templates import Rendered

log = logging.getLogger(__name__)


class ChannelError(Exception):
    """A send failed. ``transient``: the same send may work later (retried with backoff)."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.transient = transient


@runtime_checkable
class Channel(Protocol):
    def send(self, message: Mapping, customer: Mapping, rendered: Rendered, ctx: Any) -> str:
        """Send ``rendered`` to ``customer``; return the provider's id. Raise ChannelError on failure."""


def _settings(ctx):
    return getattr(ctx, "settings", None)


# --- unsubscribing -------------------------------------------------------------------


#: The signed-link purpose of the ``{token}`` in unsubscribe links (:mod:`retention_plugin.links`).
UNSUBSCRIBE_PURPOSE = "unsubscribe"
#: The law asks that an unsubscribe link keep working; a decade outlives any inbox.
UNSUBSCRIBE_VALID_DAYS = 10 * 365


def unsubscribe_token(link_secret: str | list[str], customer_id: int, now: datetime) -> str:
    """The ``{token}`` in unsubscribe links: a ``links`` token for ``unsubscribe``, carrying the customer id.

    Its expiry is a whole day, so the header and the footer of one message carry the same link.
    """
    expires = (now + timedelta(days=UNSUBSCRIBE_VALID_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    return links.sign(UNSUBSCRIBE_PURPOSE, {"c": int(customer_id)}, link_secret, expires)


def unsubscribe_links(email_cfg: Mapping, customer: Mapping, message: Mapping, *,
                      link_secret: str | list[str] | None = None,
                      now: datetime | None = None) -> tuple[str | None, str | None]:
    """The one-click URL and the mailto for a marketing message (either may be None).

    :param link_secret: ``[links] secret``, which signs the URL's ``{token}``.
    :raises ChannelError: (transient) the URL has a ``{token}`` and there is no secret to sign it.
    """
    url = None
    if email_cfg.get("unsubscribe_url"):
        template = email_cfg["unsubscribe_url"]
        token = ""
        if "{token}" in template:
            if not link_secret or customer.get("id") is None:
                raise ChannelError("[email].unsubscribe_url uses {token}, which is signed with [links] secret: "
                                   "set it", transient=True)
            token = unsubscribe_token(link_secret, customer["id"], now or datetime.now(timezone.utc))
        url = template.format(
            customer_id=quote(str(customer.get("id", "")), safe=""),
            email=quote(customer.get("email") or "", safe=""),
            message_key=quote(str(message.get("key", "")), safe=""),
            token=token,
        )
    mailto = None
    if email_cfg.get("unsubscribe_mailto"):
        mailto = f"mailto:{email_cfg['unsubscribe_mailto']}?subject=unsubscribe"
    return url, mailto


# --- email ---------------------------------------------------------------------------


def message_id(key: str, from_address: str) -> str:
    """The same message key always gives the same Message-ID, so a retried send is recognisable."""
    domain = from_address.rsplit("@", 1)[-1] if "@" in from_address else "retention.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.retention@{domain}>"


class EmailChannel:
    """Email over SMTP: STARTTLS, implicit TLS or (for a local relay) none; text and HTML parts.

    Marketing mail (and a courtesy kind's: the outbox sets ``list_unsubscribe``
    on the message) carries ``List-Unsubscribe`` and, with an https URL,
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058).

    :param config: a loaded ``[email]`` section; None reads ``ctx.settings`` at send time.
    :param ssl_context: for a private CA in tests or on premises; default: the system's.
    :param link_secret: signs the unsubscribe ``{token}`` when a send has no settings (``ctx`` None);
        otherwise ``[links] secret`` does.
    """

    name = "email"
    #: SMTP hands the mail over at once: no rollback takes it back, so each send is committed on its own.
    sends_in_transaction = False

    def __init__(self, config: Mapping | None = None, *, ssl_context: ssl.SSLContext | None = None,
                 link_secret: str | list[str] | None = None):
        self.config = config
        self.ssl_context = ssl_context
        # For sends without settings (ctx None); with settings, [links] secret signs.
        self.link_secret = link_secret

    def __repr__(self) -> str:  # never the password
        host = (self.config or {}).get("host")
        return f"EmailChannel(host={host!r})"

    def _config(self, ctx) -> dict:
        return dict(self.config) if self.config is not None else section(_settings(ctx), "email")

    def build(self, message: Mapping, customer: Mapping, rendered: Rendered, cfg: Mapping,
              now: datetime | None = None, link_secret: str | list[str] | None = None) -> EmailMessage:
        if not cfg.get("from_address"):
            raise ChannelError("[email].from_address is not set", transient=True)
        to = (customer.get("email") or "").strip()
        if not to or "@" not in to:
            raise ChannelError("the customer has no email address")
        msg = EmailMessage()
        msg["Subject"] = rendered.subject
        msg["From"] = formataddr((cfg.get("from_name") or "", cfg["from_address"]))
        name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p)
        msg["To"] = formataddr((name, to))
        if cfg.get("reply_to"):
            msg["Reply-To"] = cfg["reply_to"]
        msg["Date"] = format_datetime(now or datetime.now(timezone.utc))
        msg["Message-ID"] = message_id(str(message["key"]), cfg["from_address"])
        marketing = message.get("message_class") == MARKETING
        if marketing or message.get("list_unsubscribe"):
            url, mailto = unsubscribe_links(cfg, customer, message, link_secret=link_secret, now=now)
            # Marketing may not go out without a way to stop it; a courtesy mail goes out regardless.
            if marketing and not (url or mailto):
                raise ChannelError("marketing mail needs [email].unsubscribe_url or unsubscribe_mailto "
                                   "for its List-Unsubscribe header", transient=True)
            if url or mailto:
                msg["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in (url, mailto) if u)
            if url and url.startswith("https://"):
                msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(rendered.text)
        msg.add_alternative(rendered.html, subtype="html")
        if rendered.locale:  # after the content: set_content() clears Content-* headers
            msg["Content-Language"] = rendered.locale
        return msg

    def _connect(self, cfg: Mapping) -> smtplib.SMTP:
        security = cfg.get("security", "starttls")
        port = cfg.get("port") or {"tls": 465, "starttls": 587, "none": 25}[security]
        timeout = cfg.get("timeout_seconds", 30.0)
        context = self.ssl_context or ssl.create_default_context()
        if security == "tls":
            smtp = smtplib.SMTP_SSL(cfg["host"], port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(cfg["host"], port, timeout=timeout)
        try:
            if security == "starttls":
                smtp.ehlo()
                smtp.starttls(context=context)
                smtp.ehlo()
            if cfg.get("username"):
                smtp.login(cfg["username"], cfg["password"] or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: Mapping, customer: Mapping, rendered: Rendered, ctx: Any) -> str:
        cfg = self._config(ctx)
        settings = _settings(ctx)
        link_secret = links.secret_of(settings) if settings is not None else self.link_secret
        msg = self.build(message, customer, rendered, cfg, getattr(ctx, "now", None), link_secret)
        try:
            smtp = self._connect(cfg)
            try:
                smtp.send_message(msg)
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            raise ChannelError(f"recipient refused: {code} {_text(text)}", transient=400 <= code < 500) from None
        except smtplib.SMTPAuthenticationError as e:
            # Our configuration, not this message: retried, so fixing the password in time loses nothing.
            raise ChannelError(f"SMTP login to {cfg['host']} failed: {e.smtp_code} {_text(e.smtp_error)}",
                               transient=True) from None
        except smtplib.SMTPNotSupportedError as e:
            raise ChannelError(f"SMTP server {cfg['host']}: {e} (check [email].security)", transient=True) from None
        except smtplib.SMTPResponseException as e:
            raise ChannelError(f"SMTP error {e.smtp_code}: {_text(e.smtp_error)}",
                               transient=not 500 <= e.smtp_code < 600) from None
        except (smtplib.SMTPException, ssl.SSLError, socket.timeout, OSError) as e:
            raise ChannelError(f"SMTP connection to {cfg['host']}:{cfg.get('port') or 'default port'} "
                               f"failed: {type(e).__name__}: {e}", transient=True) from None
        log.info("sent message %s (%s) by email, Message-ID %s", message.get("key"), message.get("kind"),
                 msg["Message-ID"])
        return msg["Message-ID"]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- log (dry run) -------------------------------------------------------------------


class LogChannel:
    """Sends nothing: logs what would have gone out. For dry runs and staging."""

    name = "log"
    #: Writes nothing; a dry run's log line repeated after a rolled-back transaction harms nothing.
    sends_in_transaction = True

    def __init__(self, logger: logging.Logger | None = None):
        self.log = logger or log

    def send(self, message: Mapping, customer: Mapping, rendered: Rendered, ctx: Any) -> str:
        self.log.info("dry run: message %s (%s, %s) to customer %s in %s: %s", message.get("key"),
                      message.get("kind"), message.get("message_class"), customer.get("id"), rendered.locale,
                      rendered.subject)
        return f"log:{message.get('key')}"


# --- through the outbox ----------------------------------------------------------------


def _enqueue(ctx, platform: str, kind: str, key: str, request: dict) -> str:
    enqueue = getattr(ctx, "enqueue_action", None)
    if enqueue is None:
        raise ChannelError(f"the {platform} channel needs ctx.enqueue_action", transient=True)
    return f"action:{enqueue(platform, kind, key, request)}"


class ZendeskChannel:
    """A public comment on the customer's ticket, or a proactive ticket with the customer as requester.

    The comment is written by the API user (an agent); Zendesk's triggers email it
    to the requester. ``data.zendesk_ticket_id`` selects the existing ticket.
    """

    name = "zendesk"
    #: The comment or ticket is an action queued in the message's transaction (``ctx.enqueue_action``).
    sends_in_transaction = True

    def request(self, message: Mapping, customer: Mapping, rendered: Rendered) -> tuple[str, dict]:
        data = message.get("data") or {}
        comment = {"body": rendered.text, "public": True}
        tags = ["retention", f"retention_{message.get('kind')}"]
        ticket_id = data.get("zendesk_ticket_id")
        if ticket_id:
            return "ticket_comment", {"method": "PUT", "path": f"/api/v2/tickets/{int(ticket_id)}.json",
                                      "json": {"ticket": {"comment": comment, "additional_tags": tags}}}
        if customer.get("zendesk_user_id"):
            who: dict = {"requester_id": int(customer["zendesk_user_id"])}
        elif customer.get("email"):
            name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p)
            who = {"requester": {"email": customer["email"], "name": name or customer["email"],
                                 **({"locale": rendered.locale} if rendered.locale else {})}}
        else:
            raise ChannelError("the customer has neither a Zendesk user id nor an email address")
        from ..platforms.zendesk.requests import PRODUCT_TAG  # a ticket we open is never read as a complaint

        ticket = {"subject": rendered.subject, "comment": comment, **who, "status": "pending",
                  "tags": tags + [PRODUCT_TAG],
                  "external_id": f"retention-message:{message.get('key')}"}
        return "ticket_create", {"method": "POST", "path": "/api/v2/tickets.json", "json": {"ticket": ticket}}

    def send(self, message: Mapping, customer: Mapping, rendered: Rendered, ctx: Any) -> str:
        kind, request = self.request(message, customer, rendered)
        return _enqueue(ctx, "zendesk", kind, f"message:{message.get('key')}:zendesk", request)


#: plugin_state: the per-send tag a customer carries for a kind, removed when the next one is added.
TAG_STATE_PLUGIN = "messaging"


def send_tag(kind: str, message: Mapping) -> str:
    """The tag unique to one send: ``retention:<kind>:m<message id>`` (a digest of the key without an id).

    Shopify Flow's *Customer tags added* trigger fires only when a tag is new to the customer,
    so re-adding ``retention:<kind>`` fires it once ever; a tag per send fires it every time,
    and the same message retried adds the same tag (once).
    """
    if message.get("id") is not None:
        return f"retention:{kind}:m{int(message['id'])}"
    return f"retention:{kind}:k{hashlib.sha256(str(message.get('key')).encode()).hexdigest()[:12]}"


class ShopifyChannel:
    """Hands the message to Shopify Flow or Shopify Email: customer tags, or a customer metafield.

    ``tag`` adds ``retention:<kind>`` (who ever got one) and a per-send tag
    ``retention:<kind>:m<message id>`` (new on every send, so Flow's *Customer
    tags added* trigger fires every time; a Flow matches it with "starts with
    ``retention:<kind>:``"), and removes the customer's previous per-send tag of
    that kind, so the tags do not pile up. ``metafield`` sets ``retention.<kind>``
    (JSON: key, subject, locale, data, sent_at) for a Flow that reads the details;
    Flow cannot start on a metafield change (docs/messaging.md).

    :param mode: ``tag`` or ``metafield``; None reads ``[messages] shopify_mode``.
    """

    name = "shopify"
    #: The tags or metafield are actions (and plugin state) written in the message's transaction.
    sends_in_transaction = True

    def __init__(self, mode: str | None = None):
        self.mode = mode

    @staticmethod
    def _gid(customer: Mapping) -> str:
        if not customer.get("shopify_id"):
            raise ChannelError("the customer has no Shopify id")
        return f"gid://shopify/Customer/{int(customer['shopify_id'])}"

    def request(self, message: Mapping, customer: Mapping, rendered: Rendered, mode: str,
                now: datetime | None = None) -> tuple[str, dict]:
        gid = self._gid(customer)
        kind = message.get("kind")
        if mode == "metafield":
            value = {"key": message.get("key"), "subject": rendered.subject, "locale": rendered.locale,
                     "data": message.get("data") or {},
                     "sent_at": (now or datetime.now(timezone.utc)).isoformat()}
            return "customer_metafield_set", metafields_set(gid, [
                {"namespace": "retention", "key": kind, "type": "json",
                 "value": json.dumps(value, default=str, ensure_ascii=False)}])
        return "customer_tags_add", tags_add(gid, [f"retention:{kind}", send_tag(kind, message)])

    def send(self, message: Mapping, customer: Mapping, rendered: Rendered, ctx: Any) -> str:
        mode = self.mode or section(_settings(ctx), "messages")["shopify_mode"]
        kind, request = self.request(message, customer, rendered, mode, getattr(ctx, "now", None))
        provider_id = _enqueue(ctx, "shopify", kind, f"message:{message.get('key')}:shopify", request)
        if mode != "metafield" and hasattr(ctx, "state_get"):
            self._untag_previous(message, customer, request["variables"]["tags"][1], ctx)
        return provider_id

    @staticmethod
    def _untag_previous(message: Mapping, customer: Mapping, tag: str, ctx: Any) -> None:
        # Removing a different tag never touches the new one, so the order the two actions run in
        # (or retries of either) does not matter.
        key = f"shopify_tag:{customer.get('id')}:{message.get('kind')}"
        previous = ctx.state_get(TAG_STATE_PLUGIN, key)
        if previous and previous != tag:
            ctx.enqueue_action("shopify", "customer_tags_remove", f"message:{message.get('key')}:shopify:untag",
                               tags_remove(ShopifyChannel._gid(customer), [previous]))
        ctx.state_set(TAG_STATE_PLUGIN, key, tag)


def builtin_channels() -> dict[str, Channel]:
    return {"email": EmailChannel(), "zendesk": ZendeskChannel(), "shopify": ShopifyChannel(), "log": LogChannel()}


def channels_from_pm(pm) -> dict[str, Channel]:
    """Every channel the plugins offer (``register_channels``); a name offered twice is an error."""
    found: dict[str, Channel] = {}

    def register(name: str, channel) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"channel name must be a non-empty string, got {name!r}")
        if not callable(getattr(channel, "send", None)):
            raise ValueError(f"channel {name!r} has no send(message, customer, rendered, ctx) method")
        if name in found:
            raise ValueError(f"channel {name!r} registered twice")
        found[name] = channel

    pm.hook.register_channels(register=register)
    return found

"""Issue 13, item 10: the right words for the customer's consent, and a warning about points they hold.

- A thank-you (a courtesy message, sent without marketing consent) to a customer who never
  subscribed must not say "because you subscribed"; it says why they get it, in their language.
- The points-expiry warning is about points the customer holds: transactional, so a customer
  without marketing consent is warned too; quiet hours still apply to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from payloads import order
from retention_plugin.messaging.kinds import BUILTIN_KINDS, TRANSACTIONAL
from retention_plugin.messaging.outbox import schedule_message, send_due
from retention_plugin.messaging.templates import Renderer
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

from .test_messaging_outbox import TUESDAY_10, Recording, row

#: The sentence each language's footer uses for a subscriber, and the one for anybody else.
SUBSCRIBED = {"en": "because you subscribed", "lt": "nes sutikote gauti mūsų naujienas",
              "sl": "ker ste se naročili na naše novice", "ru": "потому что подписались на нашу рассылку",
              "ka": "რადგან გამოწერილი გაქვთ ჩვენი სიახლეები"}
ORDERED = {"en": "because you ordered from us", "lt": "nes pirkote mūsų parduotuvėje",
           "sl": "ker ste pri nas oddali naročilo", "ru": "потому что сделали заказ в нашем магазине",
           "ka": "რადგან ჩვენს მაღაზიაში შეკვეთა გააფორმეთ"}


@pytest.mark.parametrize("consent", ["not_subscribed", "pending", None])
def test_a_thank_you_to_a_customer_who_never_subscribed_does_not_say_they_did(engine, add_customer, settings,
                                                                              consent):
    """Through the outbox, as sent: the thank-you carries an unsubscribe link (a courtesy kind)."""
    sent = Recording()
    ids = {loc: add_customer(locale=loc, marketing_consent=consent) for loc in SUBSCRIBED}
    subscriber = add_customer(locale="lt", marketing_consent="subscribed")
    with engine.begin() as conn:
        for loc, cid in [*ids.items(), ("lt-subscriber", subscriber)]:
            schedule_message(conn, key=f"thanks:{loc}", customer_id=cid, kind="thank_you", due_at=TUESDAY_10,
                             data=BUILTIN_KINDS["thank_you"].sample, now=TUESDAY_10)
    counts = send_due(engine, now=TUESDAY_10, channels={"email": sent}, settings=settings)
    assert counts["sent"] == 6
    for loc in SUBSCRIBED:
        text = row(engine, f"thanks:{loc}")["rendered"]["text"]
        assert "https://shop.example/unsubscribe?c=" in text, loc  # still offered a way out
        assert SUBSCRIBED[loc] not in text and ORDERED[loc] in text, (loc, text)
    text = row(engine, "thanks:lt-subscriber")["rendered"]["text"]
    assert SUBSCRIBED["lt"] in text and ORDERED["lt"] not in text


@pytest.mark.parametrize("locale", sorted(SUBSCRIBED))
def test_marketing_always_says_subscribed(locale):
    """Marketing goes only to subscribers (the policy), so its footer needs no consent from the caller."""
    r = Renderer().render("voucher", locale, BUILTIN_KINDS["voucher"].sample, unsubscribe_url="https://u.example/1",
                          message_class="marketing")
    assert SUBSCRIBED[locale] in r.text


def test_points_expiry_is_transactional():
    assert BUILTIN_KINDS["points_expiry"].message_class == TRANSACTIONAL


def _warnings(app):
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.messages).where(t.messages.c.kind == "points_expiry"))
                .mappings()]


def test_a_customer_without_consent_is_warned_before_points_expire_within_quiet_hours(make_app, clock):
    app = make_app(loyalty={"expire_after_days": 30, "expiry_warning_days": 7},
                   messages={"default_channel": "log"}, offers={"thank_you": False})
    paid_at = clock.now  # Monday 2026-03-02 12:00 UTC
    deliver_shopify(app, "orders/paid", order(1201, subtotal="100.00", created=paid_at, consent="not_subscribed"))
    run_worker(app)
    # Inside the warning week, at 01:00 in Vilnius (the customer's address is in Lithuania).
    clock.now = datetime(2026, 3, 25, 23, 0, tzinfo=timezone.utc)
    run_worker(app)
    [warning] = _warnings(app)
    assert warning["message_class"] == "transactional"
    assert warning["status"] == "deferred" and "before allowed hours" in warning["reason"]
    assert warning["send_at"] == datetime(2026, 3, 26, 7, 0, tzinfo=timezone.utc)  # 09:00 Vilnius
    clock.now = warning["send_at"] + timedelta(minutes=1)
    run_worker(app)
    [warning] = _warnings(app)
    assert warning["status"] == "sent", warning["reason"]
    assert warning["reason"].endswith("transactional, so no consent or frequency cap applies")
    assert warning["data"]["points"] == 100

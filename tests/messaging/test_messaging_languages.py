"""Issue 13, item 9: what a customer reads is in their language, messages and landing pages alike.

Every message kind and every landing page is rendered in every shipped language
other than English and checked for English words (``lang_check``). Text a store
writes itself (a recall's title, a punch card's item) comes in per language
through the message's ``translations``; only names (products, the shop, the
customer), codes and links are allowed to stay as they are.
"""

from __future__ import annotations

import pytest

from retention_plugin.features.recovery.offers import TEMPLATES as RECOVERY_TEMPLATES
from retention_plugin.messaging.kinds import BUILTIN_KINDS, MARKETING
from retention_plugin.messaging.templates import Renderer

from .lang_check import english_words

OTHER = ["lt", "sl", "ru", "ka"]
SHOP = "Kavos Namai"
CUSTOMER = {"first_name": "Ona", "last_name": "Petraitė", "marketing_consent": "subscribed"}
UNSUB = "https://shop.example/unsubscribe?c=1&t=abc"

#: What a store gives with `recall create --title-lt ...` for the sample recall.
RECALL_TEXTS = {
    "lt": {"recall_title": "dangtis gali atsilaisvinti ir nudeginti", "instructions": "Nebenaudokite virdulio.",
           "remedy": "Grąžinsime visus pinigus."},
    "sl": {"recall_title": "pokrov se lahko sname in povzroči opekline", "instructions": "Kuhalnika ne uporabljajte.",
           "remedy": "Vrnili vam bomo celotno kupnino."},
    "ru": {"recall_title": "крышка может открыться и стать причиной ожога",
           "instructions": "Не пользуйтесь чайником.", "remedy": "Мы вернём Вам всю сумму."},
    "ka": {"recall_title": "სახურავი შეიძლება მოიხსნას და დაგწვათ", "instructions": "ნუ გამოიყენებთ ჩაიდანს.",
           "remedy": "სრულად დაგიბრუნებთ თანხას."},
}
def free_item_data(card):
    from retention_plugin.features.loyalty.punch import free_item_data

    return free_item_data(card)


def PageRenderer(*args, **kw):  # noqa: N802 (imported late, so the message tests run on any version)
    from retention_plugin.messaging.pages import PageRenderer

    return PageRenderer(*args, **kw)


def accepted_languages(header):
    from retention_plugin.messaging.pages import accepted_languages

    return accepted_languages(header)


#: A punch card's item, as `[[loyalty.punch_cards]] titles` names it.
CARD = {"name": "ink", "title": "ink cartridge",
        "titles": {"lt": "rašalo kasetė", "sl": "kartuša s črnilom", "ru": "картридж", "ka": "კარტრიჯი"}}
DELAY_REASONS = [None, "unshipped", "delayed", "stalled", "failure", "attempted_delivery"]


def _names(data) -> list[str]:
    """Values meant to stay as they are: names, codes, order numbers (links are stripped anyway)."""
    keep = [SHOP, CUSTOMER["first_name"], CUSTOMER["last_name"]]
    for var in ("product_title", "code", "order_name", "sku",
                # A service's name is the store's own text from [reminders] (see the report: not per language yet).
                "service_name"):
        if isinstance(data.get(var), str):
            keep.append(data[var])
    return keep


def variants(kind: str) -> list[dict]:
    """The data each kind is sent with, in its every shape (reasons, free items, store texts)."""
    sample = dict(BUILTIN_KINDS[kind].sample)
    if kind == "recall":
        full = {**sample, "instructions": "Stop using the kettle.", "remedy": "We will refund you in full."}
        return [{**sample, "translations": RECALL_TEXTS}, {**full, "translations": RECALL_TEXTS}]
    if kind == "reward":
        return [sample, {**sample, "reward_description": None, **free_item_data(CARD)}]
    if kind == "delay_apology":
        return [{**sample, "reason": r} for r in DELAY_REASONS] + [{**sample, "new_estimate": None, "code": None}]
    return [sample]


@pytest.fixture(scope="module")
def renderer():
    return Renderer(shop_name=SHOP, shop_url="https://shop.example", strict=True)


def _render_all(renderer, kind, locale):
    spec = BUILTIN_KINDS[kind]
    for data in variants(kind):
        unsub_if_subscribed = UNSUB if spec.message_class == MARKETING or kind == "thank_you" else None
        for consent, unsub in (("subscribed", unsub_if_subscribed),
                               ("not_subscribed", UNSUB if kind == "thank_you" else None)):
            customer = {**CUSTOMER, "marketing_consent": consent}
            yield data, renderer.render(kind, locale, data, customer=customer, unsubscribe_url=unsub,
                                        tz="Europe/Vilnius")


@pytest.mark.parametrize("locale", OTHER)
@pytest.mark.parametrize("kind", sorted(BUILTIN_KINDS) + ["recall_quality"])
def test_no_english_in_any_message_in_any_other_language(renderer, kind, locale):
    for data, r in _render_all(renderer, "recall" if kind == "recall_quality" else kind, locale) \
            if kind != "recall_quality" else _quality(renderer, locale):
        assert r.locale == locale, f"{kind} has no {locale} template: the customer would get English"
        found = english_words(r.subject + "\n" + r.text, locale, _names(data))
        assert not found, f"{kind} in {locale} has English: {found}\n{r.subject}\n{r.text}"


def _quality(renderer, locale):
    for data in variants("recall"):
        yield data, renderer.render("recall_quality", locale, data, customer=CUSTOMER)


@pytest.mark.parametrize("locale", OTHER)
def test_no_english_in_service_recovery_apologies(locale):
    r = Renderer(builtin_dir=RECOVERY_TEMPLATES, shop_name=SHOP)
    for offer in ("discount_code", "store_credit"):
        data = {**BUILTIN_KINDS["recovery_apology"].sample, "offer_kind": offer}
        out = r.render("recovery_apology", locale, data, customer=CUSTOMER)
        assert out.locale == locale and not english_words(out.subject + out.text, locale, _names(data))


def test_the_check_finds_english_where_it_is():
    assert english_words("Jūsų dovana: one free ink cartridge.", "lt") == ["free"]
    assert english_words("Ugotovili smo težavo: the lid can come loose.", "sl") == ["the", "can"]
    assert english_words("Проблема: lid loose", "ru") == ["lid", "loose"]
    # Names, codes and links are not English text; "in" and "to" are Slovenian words.
    assert english_words("Izdelek »Kettle K1« in to: koda SORRY-3XP9, https://x.example/the/order", "sl",
                         ["Kettle K1"]) == []


def test_store_text_without_a_translation_stays_in_the_default_text(renderer):
    """The mechanism the recall's fallback report describes: no lt entry, the --title text is used."""
    data = {**BUILTIN_KINDS["recall"].sample, "translations": {"ru": RECALL_TEXTS["ru"]}}
    lt = renderer.render("recall", "lt", data, customer=CUSTOMER)
    assert "the lid can come loose" in lt.text
    ru = renderer.render("recall", "ru-RU", data, customer=CUSTOMER)  # the language's entry serves ru-RU
    assert RECALL_TEXTS["ru"]["recall_title"] in ru.text and "the lid" not in ru.text


# --- landing pages ---------------------------------------------------------------------------------

PAGE_STATES = {
    "unsubscribe": [("confirm", {"customer_id": 7, "token": "abc"}), ("done", {}), ("invalid", {})],
    "recall_ack": [("confirm", {"token": "1.7.x", "recall_title": "the lid can come loose",
                                "translations": RECALL_TEXTS}),
                   ("done", {}), ("invalid", {}), ("method", {}), ("unknown_recall", {}), ("unknown_case", {})],
    "rating": [("choose", {"token": "v1.a.b"}), ("confirm", {"token": "v1.a.b", "score": "4"}),
               ("confirm", {"token": "v1.a.b", "score": "bad"}), ("thanks_good", {"score": "good"}),
               ("thanks_bad", {"score": "2"}), ("expired", {}), ("unknown_answer", {"token": "v1.a.b"}),
               ("gone", {}), ("not_rating", {}), ("not_allowed", {})]
              + [("invalid", {"reason": r}) for r in ("missing", "malformed", "signature", "purpose",
                                                       "not_configured")],
}


@pytest.mark.parametrize("locale", OTHER)
@pytest.mark.parametrize("page", sorted(PAGE_STATES))
def test_no_english_on_any_landing_page_in_any_other_language(page, locale):
    from retention_plugin.messaging.templates import translated

    pages = PageRenderer(shop_name=SHOP)
    assert locale in pages.languages(page)
    for state, values in PAGE_STATES[page]:
        values = {**values, **translated(values, locale)}
        html = pages.render(page, locale, state=state, **values)
        assert f'<html lang="{locale}">' in html
        found = english_words(html, locale, [SHOP])
        assert not found, f"{page}/{state} in {locale} has English: {found}\n{html}"


@pytest.mark.parametrize("customer, header, expected", [
    ("lt-LT", "en-US,en;q=0.9", "lt"),         # the customer's locale first
    (None, "de-DE,ru;q=0.8,en;q=0.5", "ru"),   # then the browser's, best first
    (None, "ka, en;q=0.1", "ka"),
    (None, "lt;q=0, de", "sl"),                 # q=0 means "not this"; then the fallback
    ("pt-BR", None, "sl"),
])
def test_page_language(customer, header, expected):
    assert PageRenderer(fallback_locale="sl").choose("rating", customer, header) == expected


def test_accept_language_is_read_safely():
    assert accepted_languages("x" * 10_000) == []
    assert accepted_languages("lt;q=abc, ru;q=0.5") == ["ru"]
    assert len(accepted_languages(",".join(["lt"] * 500))) <= 20


def test_a_broken_page_override_falls_back_to_the_built_in_page(tmp_path):
    (tmp_path / "pages" / "lt").mkdir(parents=True)
    (tmp_path / "pages" / "lt" / "rating.j2").write_text(
        "{% block title %}{{ ''.__class__ }}{% endblock %}{% block body %}x{% endblock %}", encoding="utf-8")
    (tmp_path / "pages" / "sl").mkdir(parents=True)
    (tmp_path / "pages" / "sl" / "rating.j2").write_text("{% block title %}no body{% endblock %}", encoding="utf-8")
    assert "Nuoroda nebegalioja" in PageRenderer(tmp_path).render("rating", "lt", state="expired")
    assert "Povezava je potekla" in PageRenderer(tmp_path).render("rating", "sl", state="expired")


def test_a_punch_card_reward_names_the_item_in_the_customers_language(make_app):
    """End to end: a filled card's reward message, rendered for a Lithuanian customer."""
    from sqlalchemy import select

    from payloads import order
    from retention_plugin.storage import tables as t
    from retention_plugin.testing import deliver_shopify, run_worker

    app = make_app(loyalty={"punch_cards": [{"name": "ink", "title": "ink cartridge", "size": 2,
                                             "titles": {"lt": "rašalo kasetė"}, "match": {"skus": ["INK-1"]}}]},
                   messages={"default_channel": "log", "shop_name": SHOP}, offers={"thank_you": False})
    lines = [{"id": 9101, "sku": "INK-1", "product_id": 7001, "variant_id": 8001, "title": "Ink cartridge",
              "quantity": 2, "price": "12.00"}]
    deliver_shopify(app, "orders/paid", order(910, subtotal="24.00", lines=lines, locale="lt"))
    run_worker(app)
    with app.engine.connect() as conn:
        [msg] = conn.execute(select(t.messages).where(t.messages.c.kind == "reward")).mappings().all()
    assert msg["status"] == "sent", msg["reason"]
    text = msg["rendered"]["text"]
    assert msg["rendered"]["locale"] == "lt" and "„rašalo kasetė“" in text
    assert english_words(msg["rendered"]["subject"] + text, "lt", [SHOP, "Ann", "Example", msg["data"]["code"]]) == []

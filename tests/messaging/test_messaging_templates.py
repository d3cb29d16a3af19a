"""Templates: every kind in every shipped language, Babel formatting, overrides, negotiation, the sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.dates import format_date
from babel.numbers import format_currency, format_percent
from datetime import date

from retention_plugin.messaging.kinds import BUILTIN_KINDS, MARKETING
from retention_plugin.messaging.templates import (RenderError, Renderer, locale_candidates, normalize_locale,
                                                   text_to_html)

LOCALES = ["en", "lt", "sl", "ru", "ka"]
CUSTOMER = {"first_name": "Ona", "last_name": "Petraitė"}


@pytest.fixture(scope="module")
def renderer():
    return Renderer(shop_name="Kavos Namai", shop_url="https://shop.example", strict=True)


def test_every_kind_has_a_template_in_every_shipped_language(renderer):
    available = renderer.available()
    for kind in BUILTIN_KINDS:
        assert set(LOCALES) <= set(available.get(kind, [])), kind


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", sorted(BUILTIN_KINDS))
def test_every_kind_renders_in_every_language_with_strict_undefined(renderer, kind, locale):
    spec = BUILTIN_KINDS[kind]
    unsub = "https://shop.example/u/1" if spec.message_class == MARKETING else None
    r = renderer.render(kind, locale, spec.sample, customer=CUSTOMER, tz="Europe/Vilnius", unsubscribe_url=unsub)
    assert r.locale == locale
    assert r.subject and "\n" not in r.subject and "{{" not in r.subject
    assert "{{" not in r.text and "{%" not in r.text
    assert f'<html lang="{locale}">' in r.html and "Kavos Namai" in r.html
    for var, value in spec.sample.items():  # what the customer needs is in the message: codes, links, orders
        if var in ("code", "order_name") or var.endswith("_url"):
            assert value in r.text, (kind, locale, var)
    if unsub:
        assert unsub in r.text, "marketing mail says how to unsubscribe, in the body too"
    else:
        assert "unsubscribe" not in r.text.lower()


@pytest.mark.parametrize("locale", LOCALES)
def test_money_is_formatted_for_the_locale_by_babel(renderer, locale):
    r = renderer.render("thank_you", locale, {"order_name": "#1001", "order_total": "12.50", "currency": "EUR"})
    expected = format_currency(Decimal("12.50"), "EUR", locale=locale)
    assert expected in r.text and expected in r.html
    if locale != "en":
        assert "€12.50" not in r.text


@pytest.mark.parametrize("locale", LOCALES)
def test_amount_offers_are_money_and_percent_offers_are_percentages(renderer, locale):
    sample = BUILTIN_KINDS["delay_apology"].sample  # 5.00 EUR goodwill
    r = renderer.render("delay_apology", locale, sample)
    assert format_currency(Decimal("5.00"), "EUR", locale=locale) in r.text
    r = renderer.render("win_back", locale, BUILTIN_KINDS["win_back"].sample)  # 15 %
    assert format_percent(Decimal("0.15"), locale=locale) in r.subject


@pytest.mark.parametrize("locale", LOCALES)
def test_dates_are_written_for_the_locale(renderer, locale):
    r = renderer.render("service_reminder", locale, BUILTIN_KINDS["service_reminder"].sample)
    assert format_date(date(2026, 3, 15), "long", locale=locale) in r.text


def test_requested_regional_locale_formats_money_its_way_with_the_language_template(renderer):
    r = renderer.render("thank_you", "en-GB", {"order_name": "#1", "order_total": "12.5", "currency": "GBP"})
    assert r.locale == "en"
    assert format_currency(Decimal("12.5"), "GBP", locale="en_GB") in r.text


def test_datetimes_are_shown_in_the_customers_zone(renderer):
    data = {**BUILTIN_KINDS["reminder"].sample, "last_ordered_at": "2026-02-01T23:30:00+00:00"}
    r = renderer.render("reminder", "en", data, tz="Europe/Vilnius")  # already 2 Feb in Vilnius
    assert "February 2, 2026" in r.text


@pytest.mark.parametrize("points, word", [(1, "taškas"), (2, "taškai"), (10, "taškų"), (21, "taškas"), (350, "taškų")])
def test_plural_forms_follow_cldr(renderer, points, word):
    r = renderer.render("points_expiry", "lt", {"points": points, "expires_at": "2026-03-31"})
    assert r.subject.endswith(f"{points} lojalumo {word}")


def test_russian_plural_agrees_number_and_verb(renderer):
    def subject(n):
        return renderer.render("points_expiry", "ru", {"points": n, "expires_at": "2026-03-31"}).subject

    assert subject(1) == "Скоро сгорит 1 бонусный балл"
    assert subject(3) == "Скоро сгорят 3 бонусных балла"
    assert subject(5) == "Скоро сгорят 5 бонусных баллов"


# --- locale negotiation ------------------------------------------------------------------------


@pytest.mark.parametrize("raw, norm", [("pt_br", "pt-BR"), ("PT-br", "pt-BR"), ("lt", "lt"),
                                       ("zh-hant-tw", "zh-Hant-TW"), ("", None), (None, None), ("12", None)])
def test_normalize_locale(raw, norm):
    assert normalize_locale(raw) == norm


def test_candidates_go_from_exact_to_language_to_fallback():
    assert locale_candidates("pt-BR", "lt") == ["pt-BR", "pt", "lt", "en"]


@pytest.mark.parametrize("requested, got", [("lt-LT", "lt"), ("LT", "lt"), ("ru_RU", "ru"), ("pt-BR", "en"),
                                            (None, "en"), ("ka", "ka")])
def test_negotiation(renderer, requested, got):
    assert renderer.negotiate("thank_you", requested) == got


def test_configured_fallback_is_used_before_english():
    assert Renderer(fallback_locale="sl").negotiate("thank_you", "de-AT") == "sl"


def test_unknown_kind_names_where_it_looked(renderer):
    with pytest.raises(RenderError, match="no template for message kind 'nope' in pt-BR, pt, en"):
        renderer.render("nope", "pt-BR", {})


# --- overrides ---------------------------------------------------------------------------------


def test_override_directory_wins_file_by_file(tmp_path):
    (tmp_path / "lt").mkdir()
    (tmp_path / "lt" / "thank_you.j2").write_text(
        "{% block subject %}Ačiū, {{ order_name }}{% endblock %}\n{% block text %}Mūsų tekstas: "
        "{{ order_total|money(currency) }}{% endblock %}\n", encoding="utf-8")
    (tmp_path / "pt-BR").mkdir()
    (tmp_path / "pt-BR" / "voucher.j2").write_text(
        "{% block subject %}Obrigado{% endblock %}{% block text %}{{ code }}{% endblock %}", encoding="utf-8")
    r = Renderer(tmp_path)
    got = r.render("thank_you", "lt", {"order_name": "#7", "order_total": "3", "currency": "EUR"})
    assert got.subject == "Ačiū, #7"
    assert got.text == "Mūsų tekstas: " + format_currency(Decimal("3"), "EUR", locale="lt") + "\n"
    assert r.render("follow_up", "lt", BUILTIN_KINDS["follow_up"].sample).subject.startswith("Kaip vertinate")
    assert r.negotiate("voucher", "pt-BR") == "pt-BR"  # a language only the override has


def test_html_block_is_autoescaped_and_text_is_not(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "thank_you.j2").write_text(
        "{% block subject %}Hi {{ first_name }}{% endblock %}{% block text %}Hi {{ first_name }}{% endblock %}"
        "{% block html %}<p class=\"x\">Hi {{ first_name }}</p>{% endblock %}", encoding="utf-8")
    r = Renderer(tmp_path).render("thank_you", "en", {}, customer={"first_name": "<script>alert(1)</script>"})
    assert "Hi <script>alert(1)</script>" in r.text
    assert '<p class="x">Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>' in r.html
    assert "<script>" not in r.html


def test_generated_html_escapes_and_links(renderer):
    html = text_to_html("A & B <b>\n\nsee https://x.example/a?b=1&c=2.\n\n    CODE-1")
    assert "A &amp; B &lt;b&gt;" in html
    assert '<a href="https://x.example/a?b=1&amp;c=2">https://x.example/a?b=1&amp;c=2</a>.' in html
    assert "CODE-1</p>" in html and "monospace" in html


def test_top_level_set_and_macros_reach_the_blocks(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "reward.j2").write_text(
        "{% set greeting = 'Hey' %}{% macro sig() %}-- us{% endmacro %}"
        "{% block subject %}{{ greeting }}{% endblock %}"
        "{% block text %}{{ greeting }} {{ code }} {{ sig() }}{% endblock %}",
        encoding="utf-8")
    r = Renderer(tmp_path).render("reward", "en", {"code": "C1"})
    assert (r.subject, r.text) == ("Hey", "Hey C1 -- us\n")


# --- safety of admin-edited templates ---------------------------------------------------------


@pytest.mark.parametrize("expr", ["first_name.__class__.__mro__", "''.__class__", "money.__globals__",
                                  "cycler.__init__.__globals__"])
def test_sandbox_blocks_internals(tmp_path, expr):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "thank_you.j2").write_text(
        "{% block subject %}x{% endblock %}{% block text %}{{ " + expr + " }}{% endblock %}", encoding="utf-8")
    with pytest.raises(RenderError, match="SecurityError|UndefinedError"):
        Renderer(tmp_path).render("thank_you", "en", {}, customer={"first_name": "Ona"})


def test_strict_templates_fail_on_missing_variables_naming_them(renderer):
    with pytest.raises(RenderError, match="'order_name' is undefined"):
        renderer.render("thank_you", "en", {"order_total": "1", "currency": "EUR"})


def test_strict_templates_fail_when_a_filter_gets_a_missing_variable(renderer):
    with pytest.raises(RenderError, match="'order_total' is undefined"):
        renderer.render("thank_you", "en", {"order_name": "#1", "currency": "EUR"})


def test_lenient_templates_render_gaps():
    r = Renderer(strict=False).render("thank_you", "en", {"order_total": "1", "currency": "EUR"})
    assert "Thank you for your order !" in r.text


def test_bad_money_is_a_render_error_not_a_crash(renderer):
    with pytest.raises(RenderError, match="not a number"):
        renderer.render("thank_you", "en", {"order_name": "#1", "order_total": "twelve", "currency": "EUR"})


def test_syntax_error_names_the_file_and_line(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "thank_you.j2").write_text("{% block subject %}x{% endblock %}\n{% block text %}\n{% if %}\n",
                                                  encoding="utf-8")
    with pytest.raises(RenderError, match=r"en/thank_you.j2, line 3"):
        Renderer(tmp_path).render("thank_you", "en", {})

"""A template's blocks render once per message where that changes nothing: the top level of a
template that is only its subject, text and html blocks is not run first (it rendered every block a
first time to throw the text away). Wherever that first run could show (a top-level ``set`` or
macro, ``extends``, a required block, a block that changes the message's data, an error), the
render is the one it always was."""

from __future__ import annotations

import random
import string
from decimal import Decimal

import pytest
from babel import Locale
from babel.numbers import format_currency
from markupsafe import escape

from retention_plugin.messaging.kinds import BUILTIN_KINDS
import retention_plugin.messaging.templates as templates
from retention_plugin.messaging.templates import (RenderError, Renderer, _currency, _escaped, _skips_top_level,
                                                  money)

BLOCKS_ONLY = ("{% block subject %}S {{ a }}{% endblock %}\n"
               "{% block text %}T {{ b|money('EUR') }}{% endblock %}\n")


def renderer(tmp_path, templates: dict[str, str], strict: bool = True) -> Renderer:
    (tmp_path / "en").mkdir(exist_ok=True)
    for name, source in templates.items():
        (tmp_path / "en" / f"{name}.j2").write_text(source, encoding="utf-8")
    return Renderer(tmp_path, strict=strict)


def counting_money(r: Renderer) -> list:
    """Counts the ``money`` filter's calls in both of the renderer's environments."""
    calls: list = []

    def counted(*args):
        calls.append(args)
        return "M"

    for env in (r._text, r._html):
        env.filters["money"] = counted
    return calls


def test_a_blocks_only_template_renders_each_block_once(tmp_path):
    r = renderer(tmp_path, {"t": BLOCKS_ONLY,
                            "h": BLOCKS_ONLY + "{% block html %}<b>{{ b|money('EUR') }}</b>{% endblock %}"})
    calls = counting_money(r)
    assert r.render("t", "en", {"a": "A", "b": "1"}).text == "T M\n"
    assert len(calls) == 1  # the text block's, not also a run of the whole template before it
    calls.clear()
    assert "<b>M</b>" in r.render("h", "en", {"a": "A", "b": "1"}).html
    assert len(calls) == 2  # the text's and the HTML's


def test_every_shipped_message_template_renders_its_blocks_once():
    r = Renderer()
    for name in r._text.list_templates(extensions=["j2"]):
        if name.count("/") == 1 and not name.split("/")[1].startswith("_"):
            assert _skips_top_level(r._text.get_template(name)), name


@pytest.mark.parametrize("source", [
    "{% set a = 'TOP' %}" + BLOCKS_ONLY,
    BLOCKS_ONLY + "{% set a = 'AFTER' %}",
    "{% macro m(x) %}<{{ x }}>{% endmacro %}" + BLOCKS_ONLY,
    "{% extends 'en/base.j2' %}{% block text %}child {{ a }}{% endblock %}",
    "{% block subject required %}{% endblock %}{% block text %}T{% endblock %}",
    "{% block subject %}S{% endblock %}{% block text %}T{% endblock %}{% block other %}{{ a }}{% endblock %}",
    "TOP {{ a }}" + BLOCKS_ONLY,
])
def test_a_template_with_more_at_its_top_level_runs_it_first(tmp_path, source):
    r = renderer(tmp_path, {"t": source, "base": "{% block subject %}BASE {{ a }}{% endblock %}"
                                                  "{% block text %}base{% endblock %}"})
    assert not _skips_top_level(r._text.get_template("en/t.j2"))
    assert _skips_top_level(r._text.get_template("en/base.j2"))


def test_a_block_that_changes_the_data_sees_it_changed_by_the_first_run_as_before(tmp_path):
    # The old render ran the text block twice (the whole template, then the block), appending twice.
    r = renderer(tmp_path, {"t": "{% block subject %}S{% endblock %}"
                                 "{% block text %}{{ items.append(1) or '' }}{{ items }}{% endblock %}"})
    assert r.render("t", "en", {"items": []}).text == "[1, 1]\n"


def test_a_block_may_call_what_leaves_no_trace_without_the_first_run(tmp_path):
    r = renderer(tmp_path, {"t": "{% block subject %}{{ plural(n, one='a', other='b') }} {{ 'x'.upper() }}"
                                 "{% endblock %}{% block text %}{% for k, v in d.items() %}{{ loop.cycle('<', '>') }}"
                                 "{{ k }}{{ d.get(k) }}{% endfor %}{{ self.subject() }}{% endblock %}"})
    assert _skips_top_level(r._text.get_template("en/t.j2"))
    got = r.render("t", "en", {"n": 1, "d": {"a": 1, "b": 2}})
    assert (got.subject, got.text) == ("a X", "<a1>b2a X\n")


@pytest.mark.parametrize("source, error", [
    # The first error in the template's order, as the run of the whole template raised it.
    ("{% block text %}T {{ c }}{% endblock %}{% block subject %}S {{ d }}{% endblock %}", "'c' is undefined"),
    ("{% block html %}{{ e }}{% endblock %}{% block subject %}S{% endblock %}{% block text %}{{ c }}{% endblock %}",
     "'e' is undefined"),
    ("{% block subject %}S {{ d }}{% endblock %}", "'d' is undefined"),  # before "no {% block text %}"
    ("{% block subject %}S{% endblock %}", "no {% block text %}"),
])
def test_errors_are_the_ones_the_whole_template_raised(tmp_path, source, error):
    r = renderer(tmp_path, {"t": source})
    with pytest.raises(RenderError, match=error.replace("{", r"\{").replace("}", r"\}")):
        r.render("t", "en", {})


def test_every_shipped_kind_renders_as_with_the_first_run(monkeypatch):
    """The renders with and without the first run are the same, for every kind in every language."""
    r = Renderer(shop_name="S", shop_url="https://s.example")
    cases = [(kind, locale, dict(spec.sample)) for kind, spec in BUILTIN_KINDS.items()
             for locale in ("en", "lt", "sl", "ru", "ka")]
    kw = {"customer": {"first_name": "Ona", "marketing_consent": "subscribed"},
          "unsubscribe_url": "https://s.example/u?a=1&b=2", "tz": "Europe/Vilnius"}
    once = [r.render(*case, **kw) for case in cases]
    monkeypatch.setattr(templates, "_skips_top_level", lambda template: False)
    assert [r.render(*case, **kw) for case in cases] == once


def test_money_formats_each_amount_text_its_own_way():
    lt = Locale.parse("lt")
    assert _currency("-0", "EUR", lt) == format_currency(Decimal("-0"), "EUR", locale=lt)
    assert _currency("0", "EUR", lt) == format_currency(Decimal("0"), "EUR", locale=lt)
    assert _currency("-0", "EUR", lt) != _currency("0", "EUR", lt)
    assert money("12.5", "usd") == money(Decimal("12.50"), "USD") == "$12.50"
    assert money(Decimal("1E+3"), "EUR") == format_currency(Decimal("1E+3"), "EUR", locale="en")
    with pytest.raises(ValueError, match="not a number"):
        money("abc", "EUR")


def test_escaped_is_markupsafes_escape():
    rng = random.Random(5)
    alphabet = string.printable + "&<>'\"ąčę\u00a0"
    for _ in range(2000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert _escaped(s) == str(escape(s))

"""What the renderer keeps between messages (parsed locale tags, Babel locales, the negotiated template)
never outlives what it was made from: a template edited, added or removed on disk shows at the next
render, each locale formats its own way, and the HTML made from the text is the same, byte for byte,
as the Markup-built one it replaced."""

from __future__ import annotations

import os
import re
from decimal import Decimal

import pytest
from babel.numbers import format_currency
from markupsafe import Markup, escape

from retention_plugin.messaging.templates import (RenderError, Renderer, babel_locale, locale_candidates,
                                                  normalize_locale, text_to_html)

TEMPLATE = ("{% block subject %}SUBJECT {{ order_name }}{% endblock %}\n"
            "{% block text %}Total {{ order_total|money(currency) }}{% endblock %}\n")
DATA = {"order_name": "#7", "order_total": "1234.5", "currency": "EUR"}


def write(path, text: str, bump: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if bump:  # a later mtime than the copy Jinja compiled, however coarse the file system's clock
        st = path.stat()
        os.utime(path, (st.st_atime + bump, st.st_mtime + bump))


def test_a_template_edited_on_disk_is_rendered_at_the_next_message(tmp_path):
    f = tmp_path / "en" / "thank_you.j2"
    write(f, TEMPLATE)
    r = Renderer(tmp_path)
    assert r.render("thank_you", "en", DATA).subject == "SUBJECT #7"
    write(f, TEMPLATE.replace("SUBJECT", "EDITED"), bump=10)
    assert r.render("thank_you", "en", DATA).subject == "EDITED #7"


def test_a_template_added_or_removed_on_disk_changes_the_negotiated_locale(tmp_path):
    write(tmp_path / "pt" / "thank_you.j2", TEMPLATE.replace("SUBJECT", "PT"))
    r = Renderer(tmp_path)
    assert (r.render("thank_you", "pt-BR", DATA).subject, r.negotiate("thank_you", "pt-BR")) == ("PT #7", "pt")
    regional = tmp_path / "pt-BR" / "thank_you.j2"
    write(regional, TEMPLATE.replace("SUBJECT", "BR"))
    got = r.render("thank_you", "pt-BR", DATA)
    assert (got.subject, got.locale) == ("BR #7", "pt-BR")
    regional.unlink()
    got = r.render("thank_you", "pt-BR", DATA)
    assert (got.subject, got.locale) == ("PT #7", "pt")


def test_a_template_broken_on_disk_fails_its_render_then_works_again_once_fixed(tmp_path):
    f = tmp_path / "en" / "thank_you.j2"
    write(f, TEMPLATE)
    r = Renderer(tmp_path)
    r.render("thank_you", "en", DATA)
    write(f, "{% block subject %}{% if %}{% endblock %}", bump=10)
    with pytest.raises(RenderError, match="thank_you.j2"):
        r.render("thank_you", "en", DATA)
    write(f, TEMPLATE.replace("SUBJECT", "FIXED"), bump=20)
    assert r.render("thank_you", "en", DATA).subject == "FIXED #7"


def test_each_locale_formats_money_its_own_way_when_messages_alternate(tmp_path):
    for loc in ("en", "de", "lt", "fr"):
        write(tmp_path / loc / "thank_you.j2", TEMPLATE)
    r = Renderer(tmp_path)
    asked = ["en-GB", "de", "lt", "en", "de-CH", "fr", "en-GB", "lt", "de", "fr-CA", "en"]
    for _ in range(2):  # the second round reads what the first one kept
        for loc in asked:
            want = format_currency(Decimal("1234.5"), "EUR", locale=loc.replace("-", "_"))
            assert r.render("thank_you", loc, DATA).text == f"Total {want}\n", loc
    assert len({r.render("thank_you", loc, DATA).text for loc in asked}) >= 5


def test_locale_helpers_give_each_tag_its_own_answer_and_a_list_of_its_own():
    assert [normalize_locale(v) for v in ("pt_br", "PT-br", "de", "junk!", "", None)] == [
        "pt-BR", "pt-BR", "de", None, None, None]
    assert str(babel_locale("de-CH", "de")) == "de_CH" and str(babel_locale("lt")) == "lt"
    assert str(babel_locale("xx", "fr")) == "fr" and str(babel_locale(None, "qq")) == "en"
    first = locale_candidates("pt-BR", "lt")
    first.append("mutated by a caller")
    assert locale_candidates("pt-BR", "lt") == ["pt-BR", "pt", "lt", "en"]
    assert locale_candidates("de", "lt") == ["de", "lt", "en"]


# The HTML part made from the text, as it was built with Markup operations before: the reference.
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
_CODE_P = ('<p style="font-family:Menlo,Consolas,monospace;font-size:20px;font-weight:bold;'
           'letter-spacing:1px;text-align:center;">')


def markup_text_to_html(text: str) -> Markup:
    paras = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = []
        for line in para.split("\n"):
            out, pos = [], 0
            for m in _URL.finditer(line):
                out.append(escape(line[pos:m.start()]))
                url = escape(m.group(0))
                out.append(Markup(f'<a href="{url}">{url}</a>'))
                pos = m.end()
            out.append(escape(line[pos:]))
            lines.append(Markup("").join(out).strip())
        if all(line.startswith("    ") for line in para.split("\n")):
            paras.append(Markup(_CODE_P) + Markup("<br>\n").join(lines) + Markup("</p>"))
        else:
            paras.append(Markup("<p>") + Markup("<br>\n").join(lines) + Markup("</p>"))
    return Markup("\n").join(paras)


@pytest.mark.parametrize("text", [
    "",
    "Hi Ona & <Jonas>,\nthanks for \"#1001\" 'x'.\n\n    SAVE-10\n\nSee https://shop.example/a?b=1&c=<2> now.",
    "(https://q.org/z), https://e.com/p. and http://x.io/\n \n\t  trailing   \n\n\n\n    a\n    b",
    "    only code\n  not code",
    "Ačiū! ąčęėįšųūž — https://parduotuvė.lt/krepšelis?x=1\n\n\n",
])
def test_text_to_html_is_byte_identical_to_the_markup_built_version(text):
    got, want = text_to_html(text), markup_text_to_html(text)
    assert type(got) is Markup and str(got) == str(want)

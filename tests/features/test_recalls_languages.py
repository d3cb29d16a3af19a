"""Issue 13, item 9: a recall's own text in every customer's language, and the output naming the gaps.

`recall create` takes the title, instructions and remedy per language (`--title-lt ...` or a TOML/JSON
`--texts` file); each notice and acknowledgment page is in the customer's language; languages left
without their own text are named in the output, because their customers will read the default
(English) text.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from messaging.lang_check import english_words
from retention_plugin.features.recalls import texts as recall_texts
from retention_plugin.features.recalls.ack_page import handle_ack
from retention_plugin.features.recalls.engine import create_recall
from retention_plugin.features.recalls.settings import RecallError
from retention_plugin.storage import tables as t
from retention_plugin.testing import run_worker

from test_recalls import LINKS, RECALLS, X, _invoke, customer_id, notice_token, paid

WINDOW = ["--ordered-from", "2026-01-15", "--ordered-to", "2026-02-28"]
EN = {"title": "the lid can come loose and cause burns", "instructions": "Unplug the kettle and stop using it.",
      "remedy": "We will refund the full price."}
LT = {"title": "dangtis gali atsilaisvinti ir nudeginti", "instructions": "Išjunkite virdulį ir juo nebesinaudokite.",
      "remedy": "Grąžinsime visą kainą."}
RU = {"title": "крышка может открыться и стать причиной ожога"}


@pytest.fixture
def buyers(make_app, clock):
    app = make_app(recalls=RECALLS, links=LINKS, messages={"default_channel": "log", "shop_name": "Kavos Namai"})
    inside = clock.now - timedelta(days=20)
    for oid, cid, email, locale in ((7301, 801, "lt@example.com", "lt"), (7302, 802, "ru@example.com", "ru-RU"),
                                    (7303, 803, "sl@example.com", "sl"), (7304, 804, "en@example.com", "en")):
        paid(app, oid, inside, customer_id=cid, email=email, locale=locale, consent="not_subscribed")
    assert run_worker(app).dead == 0
    return app


def _sent(app) -> dict[int, dict]:
    with app.engine.connect() as conn:
        return {r["customer_id"]: r["rendered"] for r in conn.execute(
            select(t.messages.c.customer_id, t.messages.c.rendered).where(t.messages.c.kind == "recall")).mappings()}


def test_per_language_text_reaches_each_customer_and_the_output_names_the_fallbacks(buyers, monkeypatch):
    app = buyers
    res = _invoke(app, monkeypatch, "recall", "create", "--sku", X, *WINDOW, "--title", EN["title"],
                  "--instructions", EN["instructions"], "--remedy", EN["remedy"],
                  "--title-lt", LT["title"], "--instructions-lt", LT["instructions"], "--remedy-lt", LT["remedy"],
                  "--title-ru", RU["title"])
    assert res.exit_code == 0, res.output
    assert "texts in other languages: lt (instructions, remedy, title); ru (title)" in res.output
    # ru has only a title: its instructions and remedy fall back; sl and ka have nothing of their own.
    assert ("falls back to the default (--title/--instructions/--remedy, English) text: "
            "ka (title, instructions, remedy); ru (instructions, remedy); sl (title, instructions, remedy)"
            ) in res.output

    run_worker(app)
    sent = _sent(app)
    lt = sent[customer_id(app, "lt@example.com")]
    assert lt["locale"] == "lt" and LT["title"] in lt["text"] and LT["remedy"] in lt["text"]
    assert english_words(lt["subject"] + lt["text"], "lt", ["Kettle K1", "Kavos Namai", "Ann", "Example"]) == []
    ru = sent[customer_id(app, "ru@example.com")]
    assert ru["locale"] == "ru" and RU["title"] in ru["text"] and "the lid" not in ru["text"]
    assert EN["remedy"] in ru["text"]  # the reported fallback, exactly where the output said
    en = sent[customer_id(app, "en@example.com")]
    assert EN["title"] in en["text"] and LT["title"] not in en["text"]

    # The acknowledgment page greets each customer in their language, with the recall's title in it.
    rid = json.loads(_invoke(app, monkeypatch, "recall", "list", "--json").output)[0]["id"]
    page = handle_ack(app, "GET", notice_token(app, rid, customer_id(app, "lt@example.com")),
                      accept_language="en-US").body.decode()
    assert '<html lang="lt">' in page and LT["title"] in page and "Pranešimą perskaičiau" in page
    assert english_words(page, "lt", ["Kavos Namai"]) == []
    done = handle_ack(app, "POST", notice_token(app, rid, customer_id(app, "ru@example.com"))).body.decode()
    assert '<html lang="ru">' in done and "Спасибо" in done
    bad = handle_ack(app, "GET", "nonsense", accept_language="sl-SI,sl;q=0.9").body.decode()
    assert '<html lang="sl">' in bad and "Povezava ni veljavna" in bad


@pytest.mark.parametrize("suffix, content", [
    (".toml", 'lt = {title = "dangtis gali atsilaisvinti ir nudeginti", remedy = "Grąžinsime visą kainą."}\n'
              '[ru]\ntitle = "крышка может открыться и стать причиной ожога"\n'),
    (".json", json.dumps({"lt": {"title": LT["title"], "remedy": LT["remedy"]}, "ru": RU})),
])
def test_texts_from_a_toml_or_json_file(buyers, monkeypatch, tmp_path, suffix, content):
    path = tmp_path / f"texts{suffix}"
    path.write_text(content, encoding="utf-8")
    res = _invoke(buyers, monkeypatch, "recall", "create", "--sku", X, *WINDOW, "--title", EN["title"],
                  "--texts", str(path), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["languages"]["given"] == {"lt": ["remedy", "title"], "ru": ["title"]}
    assert out["languages"]["fallback"] == {"ka": ["title"], "sl": ["title"]}
    with buyers.engine.connect() as conn:
        data = conn.execute(select(t.messages.c.data).where(
            t.messages.c.kind == "recall",
            t.messages.c.customer_id == customer_id(buyers, "lt@example.com"))).scalar_one()
    assert data["translations"]["lt"] == {"recall_title": LT["title"], "remedy": LT["remedy"]}


def test_texts_added_to_an_existing_recall_reach_the_notices_not_yet_queued(buyers, monkeypatch, clock):
    app = buyers
    out = create_recall(app, sku=X, title=EN["title"], ordered_from="2026-01-15", ordered_to="2026-02-28")
    assert out["languages"]["fallback"] == {"ka": ["title"], "lt": ["title"], "ru": ["title"], "sl": ["title"]}
    # A late buyer joins after the Lithuanian text was added: their notice has it.
    again = create_recall(app, sku=X, ordered_from="2026-01-15", ordered_to="2026-02-28", texts={"lt": LT})
    assert any("texts for lt stored" in n for n in again["notes"])
    assert "lt" not in again["languages"]["fallback"]
    paid(app, 7399, clock.now - timedelta(days=19), customer_id=899, email="late@example.com", locale="lt")
    run_worker(app)
    late = _sent(app)[customer_id(app, "late@example.com")]
    assert LT["title"] in late["text"]


@pytest.mark.parametrize("texts, field", [
    ({"lt": {"titel": "x"}}, "lt.titel"),
    ({"12": {"title": "x"}}, "'12' is not a language"),
    ({"lt": "just a string"}, "texts.lt"),
    ({"lt": {"title": 5}}, "lt.title: expected text"),
    ({"lt": {"title": "x" * 5000}}, "lt.title: longer than"),
])
def test_bad_texts_name_the_field(buyers, texts, field):
    with pytest.raises(RecallError, match=field.replace(".", r"\.").replace("'", "'")):
        create_recall(buyers, sku=X, title=EN["title"], texts=texts)


def test_a_bad_texts_file_is_a_clear_cli_error(buyers, monkeypatch, tmp_path):
    path = tmp_path / "texts.toml"
    path.write_text("lt = {title = ", encoding="utf-8")
    res = _invoke(buyers, monkeypatch, "recall", "create", "--sku", X, "--title", "x", "--texts", str(path))
    assert res.exit_code == 1 and "--texts" in res.output and "not TOML" in res.output
    res = _invoke(buyers, monkeypatch, "recall", "create", "--sku", X, "--title", "x", "--texts",
                  str(tmp_path / "missing.json"))
    assert res.exit_code == 1 and "cannot read" in res.output
    assert recall_texts.check_texts(None) == {}

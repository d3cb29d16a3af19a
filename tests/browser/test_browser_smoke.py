"""The page-test browser itself: Chromium renders a page the real server serves."""

from __future__ import annotations


def test_chromium_renders_a_local_page(page, tmp_path):
    html = tmp_path / "hello.html"
    html.write_text("<!doctype html><title>t</title><label for=n>Name</label><input id=n>", encoding="utf-8")
    page.goto(html.as_uri())
    page.get_by_label("Name").fill("Ana")
    assert page.get_by_label("Name").input_value() == "Ana"

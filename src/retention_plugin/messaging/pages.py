"""Pages a customer opens from a message (unsubscribe, recall acknowledgment, rating), in their language.

A page is ``pages/<locale>/<page>.j2`` beside the message templates, with two
blocks, ``title`` (text) and ``body`` (HTML, autoescaped), wrapped in
``pages/_page.html``. The override directory (``[messages] templates_dir``) is
searched first, file by file, as for messages; a new language needs only its
files. Each page shows one of several states (``state``: ``confirm``,
``done``, ``invalid``, ...) chosen by the handler that owns the route.

The language, first found: the customer's locale when the link says who they
are; the browser's ``Accept-Language``; ``[messages] fallback_locale``; ``en``.
A page never fails to render: a broken override is logged and the built-in
page is shown instead, because the person clicking can do nothing about it.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from .templates import PACKAGE_TEMPLATES, SUFFIX, normalize_locale, translated

log = logging.getLogger(__name__)

PAGES = ("unsubscribe", "recall_ack", "rating")
LAYOUT = "pages/_page.html"
#: Accept-Language entries looked at, at most (the header is the clicker's to fill).
MAX_LANGUAGES = 20


def accepted_languages(header: str | None) -> list[str]:
    """``lt-LT,lt;q=0.9,en;q=0.5`` -> ``["lt-LT", "lt", "en"]``: by q, then header order; q=0 dropped."""
    if not header or not isinstance(header, str):
        return []
    ranked = []
    for pos, part in enumerate(header.split(",")[:MAX_LANGUAGES]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip():
            m = re.fullmatch(r"\s*q\s*=\s*([01](?:\.[0-9]{0,3})?)\s*", params)
            if m is None:  # a weight we cannot read: skip the entry rather than guess
                continue
            q = float(m.group(1))
        loc = normalize_locale(tag.strip())
        if loc and q > 0:
            ranked.append((-q, pos, loc))
    return [loc for _, _, loc in sorted(ranked)]


class PageRenderer:
    """Finds and renders the landing pages.

    :param override_dir: searched before the built-in pages (``[messages] templates_dir``).
    """

    def __init__(self, override_dir: str | Path | None = None, *, fallback_locale: str = "en",
                 shop_name: str = "", shop_url: str | None = None, builtin_dir: str | Path = PACKAGE_TEMPLATES):
        dirs = [Path(override_dir)] if override_dir else []
        dirs.append(Path(builtin_dir))
        self.fallback_locale = normalize_locale(fallback_locale) or "en"
        self.shop_name = shop_name
        self.shop_url = shop_url
        self._env = self._make_env(ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]))
        self._builtin = self._make_env(FileSystemLoader(str(builtin_dir)))

    @staticmethod
    def _make_env(loader) -> SandboxedEnvironment:
        # Strict: a page referring to what its state was not given is broken, and gets the built-in page.
        return SandboxedEnvironment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                    auto_reload=True, undefined=StrictUndefined)

    def languages(self, page: str) -> list[str]:
        """The locales that have ``page``, overrides included."""
        out = set()
        for name in self._env.list_templates(extensions=[SUFFIX[1:]]):
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "pages" and parts[2] == f"{page}{SUFFIX}":
                out.add(parts[1])
        return sorted(out)

    def choose(self, page: str, customer_locale: str | None = None, accept_language: str | None = None) -> str:
        """The locale ``page`` is shown in (see the module's docstring for the order)."""
        have = set(self.languages(page))
        wanted = [normalize_locale(customer_locale)] + accepted_languages(accept_language) + [self.fallback_locale]
        for loc in wanted:
            if not loc:
                continue
            for cand in (loc, loc.split("-")[0]):
                if cand in have:
                    return cand
        return "en"

    def render(self, page: str, locale: str, **values: Any) -> str:
        """The whole HTML document for ``page`` in ``locale`` (chosen with :meth:`choose`)."""
        try:
            return self._render(self._env, page, locale, values)
        except TemplateNotFound:
            if locale != "en":
                return self.render(page, "en", **values)
            raise
        except (TemplateError, ValueError, TypeError, KeyError) as e:  # a broken override: the built-in answers
            log.error("page %s/%s: %s: %s; showing the built-in page", locale, page, type(e).__name__, e)
            return self._render(self._builtin, page, locale if self._has_builtin(page, locale) else "en", values)

    def _has_builtin(self, page: str, locale: str) -> bool:
        try:
            self._builtin.get_template(f"pages/{locale}/{page}{SUFFIX}")
            return True
        except TemplateNotFound:
            return False

    def _render(self, env, page: str, locale: str, values: Mapping[str, Any]) -> str:
        template = env.get_template(f"pages/{locale}/{page}{SUFFIX}")
        ctx = template.new_context({"lang": locale, "shop_name": self.shop_name, "shop_url": self.shop_url,
                                    **values})
        for _ in template.root_render_func(ctx):  # top-level set/macros reach the blocks
            pass
        blocks = ctx.blocks
        title = re.sub(r"\s+", " ", "".join(blocks["title"][0](ctx))).strip()
        body = Markup("".join(blocks["body"][0](ctx)).strip())
        return env.get_template(LAYOUT).render(lang=locale, title=Markup(title).unescape(), body=body,
                                               shop_name=self.shop_name, shop_url=self.shop_url)


@lru_cache(maxsize=8)
def _cached(override_dir, fallback, shop_name, shop_url) -> PageRenderer:
    return PageRenderer(override_dir, fallback_locale=fallback, shop_name=shop_name, shop_url=shop_url)


def renderer_for(settings) -> PageRenderer:
    from .settings import section, templates_dir

    m = section(settings, "messages")
    d = templates_dir(settings)
    return _cached(str(d) if d else None, m["fallback_locale"], m["shop_name"], m["shop_url"])


def customer_locale(conn, customer_id) -> str | None:
    """The stored locale of a customer (merges followed), or None."""
    from ..customers import follow_merges

    try:
        customer = follow_merges(conn, int(customer_id))
    except (TypeError, ValueError):
        return None
    return (customer or {}).get("locale")


def render_page(settings, page: str, *, customer_locale: str | None = None, accept_language: str | None = None,
                **values: Any) -> str:
    """Choose the language for ``page`` and render it; ``values`` are its variables (``state`` ...).

    ``translations`` (``{"lt": {"recall_title": ...}}``), when given, replaces values for the
    chosen language, as in messages.
    """
    pages = renderer_for(settings)
    locale = pages.choose(page, customer_locale, accept_language)
    values.update(translated(values, locale))
    return pages.render(page, locale, **values)

"""Message templates: sandboxed Jinja2, one file per kind and locale, formatted with Babel.

A template is ``<locale>/<kind>.j2`` with up to three blocks::

    {% block subject %}Thank you for your order {{ order_name }}{% endblock %}
    {% block text %}
    Hi {{ first_name }}, ...
    {% endblock %}
    {% block html %}<p>optional; without it the HTML part is made from the text</p>{% endblock %}

The override directory (``[messages] templates_dir``) is searched before the
built-in templates, file by file, so an admin copies only the one they change.
``_layout.html`` wraps the HTML part; it too can be overridden.

Templates are edited by admins, so they run in Jinja's sandbox: no access to
underscore attributes, internals or unsafe methods. The text part is rendered
without escaping, the HTML part with autoescaping (the same source compiled
by two environments), so a customer's name can't inject markup.
"""

from __future__ import annotations

import contextvars
import re
from functools import lru_cache
from dataclasses import dataclass
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import (ChoiceLoader, FileSystemLoader, StrictUndefined, Template, TemplateError, TemplateNotFound,
                    Undefined, nodes)
from jinja2.runtime import BlockReference, LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment, modifies_known_mutable
from jinja2.utils import Cycler, Joiner
from markupsafe import Markup, escape

from .kinds import BUILTIN_KINDS, COMMON_VARIABLES

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
SUFFIX = ".j2"
LAYOUT = "_layout.html"
BLOCKS = ("subject", "text", "html")
_SPACES = re.compile(r"[ \t\r\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class RenderError(Exception):
    """A template is missing, broken, unsafe or refers to a variable it was not given."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    locale: str  # the template's locale (what the words are in)

    def to_dict(self) -> dict[str, str]:
        # asdict() deep-copies each field through its generic machinery; these are four strings.
        return {"subject": self.subject, "text": self.text, "html": self.html, "locale": self.locale}


def normalize_locale(value: str | None) -> str | None:
    """``pt_br`` / ``pt-BR`` / ``PT-br`` -> ``pt-BR``; ``zh-hant-tw`` -> ``zh-Hant-TW``; junk -> None."""
    if not value or not isinstance(value, str):
        return None
    return _normalize_locale(value)


# Every message to send asks for its locale (and the fallback) again; there are few distinct tags.
@lru_cache(maxsize=1024)
def _normalize_locale(value: str) -> str | None:
    parts = [p for p in re.split(r"[-_]", value.strip()) if p]
    if not parts or not re.fullmatch(r"[A-Za-z]{2,3}", parts[0]):
        return None
    out = [parts[0].lower()]
    for p in parts[1:]:
        if not re.fullmatch(r"[A-Za-z0-9]{2,8}", p):
            break
        out.append(p.title() if len(p) == 4 and p.isalpha() else p.upper() if len(p) <= 3 else p.lower())
    return "-".join(out)


def locale_candidates(requested: str | None, fallback: str) -> list[str]:
    """Exact (``pt-BR``), then shorter (``pt``), then the fallback, then ``en``."""
    return list(_locale_candidates(normalize_locale(requested), normalize_locale(fallback)))


@lru_cache(maxsize=1024)
def _locale_candidates(requested: str | None, fallback: str | None) -> tuple[str, ...]:
    out: list[str] = []
    for loc in (requested, fallback, "en"):
        if not loc:
            continue
        parts = loc.split("-")
        for n in range(len(parts), 0, -1):
            c = "-".join(parts[:n])
            if c not in out:
                out.append(c)
    return tuple(out)


def babel_locale(*candidates: str | None) -> Locale:
    return _babel_locale(candidates)


# Parsing a tag (likely subtags, data lookup) costs more than the formatting it serves; a Locale is
# only read by the formatters, so one object per tag is shared by every message in that locale.
@lru_cache(maxsize=256)
def _babel_locale(candidates: tuple[str | None, ...]) -> Locale:
    for c in candidates:
        if not c:
            continue
        try:
            return Locale.parse(c, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


# --- formatting, for the locale and zone of the message being rendered ----------

_current: contextvars.ContextVar["_Format"] = contextvars.ContextVar("retention_message_format")


@dataclass(frozen=True)
class _Format:
    locale: Locale
    tz: tzinfo


def _fmt() -> _Format:
    try:
        return _current.get()
    except LookupError:  # used outside render(): English, UTC
        return _Format(Locale.parse("en"), timezone.utc)


def _missing(value) -> bool:
    """None, or an undefined variable: with strict templates the latter raises here, naming it."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError; the lenient kind renders a gap
        return True
    return value is None


def _decimal(value, what: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what}: {value!r} is not a number") from None


def money(amount, currency: str | None = None) -> str:
    """``money(12.5, 'EUR')`` -> ``12,50 €`` in lt. Takes a number or text, or a Money/{amount, currency}."""
    if _missing(amount):
        return ""
    if isinstance(amount, Mapping):
        currency = currency or amount.get("currency")
        amount = amount.get("amount")
    elif hasattr(amount, "amount") and hasattr(amount, "currency"):
        currency = currency or amount.currency
        amount = amount.amount
    if not currency:
        raise ValueError(f"money({amount!r}): no currency given")
    return _currency(str(_decimal(amount, "money")), str(currency).upper(), _fmt().locale)


# Babel's formatting costs more than the rest of a message's template; the same amounts come back
# (prices, totals, discounts). The key is the amount's exact text: Decimal("-0") and Decimal("0"),
# or 12.5 and 12.50, are equal numbers but not always the same text.
@lru_cache(maxsize=4096)
def _currency(amount: str, currency: str, locale: Locale) -> str:
    return format_currency(Decimal(amount), currency, locale=locale)


def percent(value) -> str:
    """``percent(15)`` -> ``15 %`` in lt (the value is in percent, not a fraction)."""
    if _missing(value):
        return ""
    return format_percent(_decimal(value, "percent") / 100, locale=_fmt().locale, decimal_quantization=False)


def number(value) -> str:
    if _missing(value):
        return ""
    return format_decimal(_decimal(value, "number"), locale=_fmt().locale)


def _to_datetime(value) -> datetime | date:
    if isinstance(value, (datetime, date)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date (expected ISO 8601, e.g. 2026-03-02 or 2026-03-02T10:00:00Z)")


def format_day(value, format: str = "long") -> str:
    """A date in the customer's words (``2026 m. kovo 2 d.``); an aware datetime is taken in their zone."""
    if _missing(value):
        return ""
    v = _to_datetime(value)
    f = _fmt()
    if isinstance(v, datetime):
        v = (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).astimezone(f.tz).date()
    return format_date(v, format, locale=f.locale)


def format_moment(value, format: str = "medium") -> str:
    if _missing(value):
        return ""
    v = _to_datetime(value)
    if not isinstance(v, datetime):
        return format_day(v)
    f = _fmt()
    v = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    return format_datetime(v, format, tzinfo=f.tz, locale=f.locale)


def plural(n, **forms: str) -> str:
    """The word form for ``n`` by CLDR plural rules: ``plural(points, one="taškas", few="taškai", other="taškų")``."""
    category = _fmt().locale.plural_form(abs(_decimal(n, "plural")))
    for key in (category, "other", "many"):
        if key in forms:
            return forms[key]
    raise ValueError(f"plural(): no form for {category!r} (given: {', '.join(forms) or 'none'})")


def discount(percent_value=None, amount=None, currency=None) -> str:
    """``15 %`` or ``5,00 €``, whichever the offer has."""
    if not _missing(percent_value) and percent_value != "":
        return percent(percent_value)
    if not _missing(amount) and amount != "":
        return money(amount, currency)
    return ""


#: The data key holding text a store wrote in several languages: ``{"lt": {"recall_title": "..."}}``.
TRANSLATIONS = "translations"


def translated(data: Mapping[str, Any] | None, locale: str | None) -> dict[str, Any]:
    """The variables ``data[TRANSLATIONS]`` gives for ``locale`` (the template's): its exact entry,
    else its language's; empty when it has none (the plain values, usually English, stay)."""
    table = (data or {}).get(TRANSLATIONS)
    if not isinstance(table, Mapping) or not locale:
        return {}
    by_norm = {normalize_locale(k): v for k, v in table.items() if isinstance(k, str)}
    for cand in (locale, locale.split("-")[0]):
        entry = by_norm.get(cand)
        if isinstance(entry, Mapping):
            return {str(k): v for k, v in entry.items() if v not in (None, "")}
    return {}


FILTERS = {"money": money, "percent": percent, "number": number, "date": format_day, "datetime": format_moment}
GLOBALS = {"money": money, "percent": percent, "plural": plural, "discount": discount}

_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


_CODE_P = ('<p style="font-family:Menlo,Consolas,monospace;font-size:20px;font-weight:bold;'
           'letter-spacing:1px;text-align:center;">')


_PARAGRAPHS = re.compile(r"\n\s*\n")


def _escaped(s: str) -> str:
    return str(escape(s))


def _linked(line: str) -> str:
    out, pos = [], 0
    for m in _URL.finditer(line):
        out.append(_escaped(line[pos:m.start()]))
        url = _escaped(m.group(0))
        out.append(f'<a href="{url}">{url}</a>')
        pos = m.end()
    out.append(_escaped(line[pos:]))
    return "".join(out).strip()


def text_to_html(text: str) -> Markup:
    """Paragraphs from blank lines, line breaks, and links for URLs; everything else escaped.

    A paragraph indented by four spaces (a discount code) is shown large and centred.
    """
    # Built as plain text from escaped pieces and marked safe once at the end: Markup's own
    # join and + escape-check every operand, which cost more than the rest of the function.
    paras = []
    for para in _PARAGRAPHS.split(text.strip()):
        raw_lines = para.split("\n")
        if "http" in para:
            lines = [_linked(line) for line in raw_lines]
        else:  # no URL to link (each starts with http): the paragraph is escaped in one go
            lines = [line.strip() for line in _escaped(para).split("\n")]
        if all(line.startswith("    ") for line in raw_lines):  # an indented code, e.g. a discount code
            paras.append(_CODE_P + "<br>\n".join(lines) + "</p>")
        else:
            paras.append("<p>" + "<br>\n".join(lines) + "</p>")
    return Markup("\n".join(paras))


# --- running a template's blocks without its top level ------------------------------------------
#
# A template's blocks were handed out after running the whole template once (its top level may
# ``set`` variables, define macros or ``extends`` another template), which rendered every block a
# first time only to throw the text away. When the top level is nothing but the subject, text and
# html blocks (every shipped template), that first run changes nothing the blocks then see, so it
# is skipped, as long as the blocks call nothing that could leave a trace for a second run to see
# (a list's ``append`` on the message's data, ``lipsum``'s random numbers): such a call stops the
# render before it is made, and the render starts over the old way.

#: Set in each compiled template's module: whether its top level only renders blocks in BLOCKS.
_BLOCKS_ONLY = "_retention_blocks_only"


def _blocks_only(tree: nodes.Template) -> bool:
    for node in tree.body:
        if isinstance(node, nodes.Block) and node.name in BLOCKS and not node.required:  # root checks those
            continue
        if isinstance(node, nodes.Output) and all(isinstance(n, nodes.TemplateData) for n in node.nodes):
            continue  # text between the blocks: written out by the top level only
        return False
    return True


def _skips_top_level(template: Template) -> bool:
    return template.root_render_func.__globals__.get(_BLOCKS_ONLY, False) is True


#: True while blocks run without their template's top level having run first.
_top_level_skipped: contextvars.ContextVar[bool] = contextvars.ContextVar("retention_top_level_skipped",
                                                                          default=False)

#: Values whose methods change nothing (a list's or dict's are checked by name).
_IMMUTABLE = frozenset((str, Markup, int, float, bool, Decimal, date, datetime, tuple, frozenset))
_CONTAINERS = frozenset((list, dict, set))
#: Made afresh within the run that uses them (a block's loop, cycler, joiner, macro).
_RUN_LOCAL = (Macro, BlockReference, LoopContext, Cycler, Joiner)


class _Replay(Exception):
    """A block called something that might act differently on a second run: render the old way."""


class _Environment(SandboxedEnvironment):
    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        code = super()._generate(source, name, filename, defer_init)
        return f"{code}\n{_BLOCKS_ONLY} = {_blocks_only(source)!r}\n"

    def call(self, context, obj, /, *args, **kwargs):  # type: ignore[override]
        if _top_level_skipped.get() and not self._leaves_no_trace(obj):
            raise _Replay(obj)
        return super().call(context, obj, *args, **kwargs)

    def _leaves_no_trace(self, obj) -> bool:
        if isinstance(obj, _RUN_LOCAL):
            return True
        owner = getattr(obj, "__self__", None)
        if owner is not None and not isinstance(owner, type):
            kind = type(owner)
            if kind in _IMMUTABLE or isinstance(owner, _RUN_LOCAL):
                return True
            return kind in _CONTAINERS and not modifies_known_mutable(owner, getattr(obj, "__name__", ""))
        return any(obj is f for name, f in self.globals.items() if name != "lipsum")


class Renderer:
    """Finds and renders message templates.

    :param override_dir: searched before the built-in templates (``config/templates``).
    :param strict: a template referring to an undefined variable fails instead of rendering a gap.
    """

    def __init__(self, override_dir: str | Path | None = None, *, fallback_locale: str = "en",
                 strict: bool = True, shop_name: str = "", shop_url: str | None = None,
                 builtin_dir: str | Path = PACKAGE_TEMPLATES):
        dirs = [Path(override_dir)] if override_dir else []
        dirs.append(Path(builtin_dir))
        self.search_path = dirs
        self.fallback_locale = normalize_locale(fallback_locale) or "en"
        self.shop_name = shop_name
        self.shop_url = shop_url
        loader = ChoiceLoader([FileSystemLoader(str(d)) for d in dirs])
        undefined = StrictUndefined if strict else Undefined
        self._text = self._env(loader, undefined, autoescape=False)
        self._html = self._env(loader, undefined, autoescape=True)

    @classmethod
    def from_settings(cls, settings) -> "Renderer":
        from .settings import section, templates_dir

        m = section(settings, "messages")
        return cls(templates_dir(settings), fallback_locale=m["fallback_locale"], strict=m["strict_templates"],
                   shop_name=m["shop_name"], shop_url=m["shop_url"])

    @staticmethod
    def _env(loader, undefined, autoescape: bool) -> SandboxedEnvironment:
        env = _Environment(loader=loader, undefined=undefined, autoescape=autoescape,
                           trim_blocks=True, lstrip_blocks=True, auto_reload=True)
        env.filters.update(FILTERS)
        env.globals.update(GLOBALS)
        return env

    def _exists(self, name: str) -> bool:
        return self._find(name) is not None

    def _find(self, name: str) -> Template | None:
        try:
            return self._text.get_template(name)
        except TemplateNotFound:
            return None

    def negotiate(self, kind: str, locale: str | None) -> str:
        """The locale whose template for ``kind`` will be used."""
        return self._negotiate(kind, locale)[0]

    def _negotiate(self, kind: str, locale: str | None) -> tuple[str, Template]:
        """The locale whose template for ``kind`` will be used, and that (text) template."""
        tried = locale_candidates(locale, self.fallback_locale)
        for cand in tried:
            found = self._find(f"{cand}/{kind}{SUFFIX}")
            if found is not None:
                return cand, found
        raise RenderError(f"no template for message kind {kind!r} in {', '.join(tried)} "
                          f"(looked in {', '.join(str(d) for d in self.search_path)})")

    def available(self) -> dict[str, list[str]]:
        """``{kind: [locales]}`` over every template found, overrides included."""
        out: dict[str, set[str]] = {}
        for name in self._text.list_templates(extensions=[SUFFIX[1:]]):
            parts = name.split("/")
            if len(parts) == 2 and not parts[1].startswith("_"):  # _footer.j2 and the like are parts
                out.setdefault(parts[1][: -len(SUFFIX)], set()).add(parts[0])
        return {k: sorted(v) for k, v in sorted(out.items())}

    def variables(self, kind: str, data: Mapping[str, Any], customer: Mapping | None, locale: str,
                  unsubscribe_url: str | None, message_class: str | None = None) -> dict[str, Any]:
        spec = BUILTIN_KINDS.get(kind)
        names = COMMON_VARIABLES + (spec.optional if spec else ())
        values: dict[str, Any] = dict.fromkeys(names)
        customer = customer or {}
        values.update(first_name=customer.get("first_name") or "", last_name=customer.get("last_name") or "",
                      shop_name=self.shop_name, shop_url=self.shop_url, unsubscribe_url=unsubscribe_url,
                      locale=locale, kind=kind, message_class=message_class or (spec.message_class if spec else None),
                      marketing_consent=customer.get("marketing_consent"))
        values.update(data or {})
        values.update(translated(data, locale))
        return values

    def render(self, kind: str, locale: str | None, data: Mapping[str, Any], *, customer: Mapping | None = None,
               tz: tzinfo | str | None = None, unsubscribe_url: str | None = None,
               template: str | None = None, message_class: str | None = None) -> Rendered:
        """Render ``kind`` for ``locale`` (negotiated); dates are shown in ``tz`` (default UTC).

        :param template: another template name than the kind's (a variant a feature chose).
        :param message_class: the message's class (default: the built-in kind's); templates word
            their unsubscribe line by it and the customer's consent.
        """
        try:
            chosen, found = self._negotiate(template or kind, locale)
        except TemplateError as e:  # found, but does not compile
            name = getattr(e, "name", None) or template or kind
            line = f", line {e.lineno}" if getattr(e, "lineno", None) else ""
            raise RenderError(f"template {name}{line}: {type(e).__name__}: {e.message}") from e
        requested = normalize_locale(locale)
        # Format for the requested locale when the words are in its language (en-GB: £, dd/mm/yyyy).
        same_language = requested and requested.split("-")[0] == chosen.split("-")[0]
        loc = babel_locale(requested if same_language else chosen, chosen)
        if isinstance(tz, str):
            from zoneinfo import ZoneInfo
            tz = ZoneInfo(tz)
        name = f"{chosen}/{template or kind}{SUFFIX}"
        values = self.variables(kind, data, customer, chosen, unsubscribe_url, message_class)
        token = _current.set(_Format(loc, tz or timezone.utc))
        try:
            # The template negotiation just loaded (and checked on disk): loading it again would
            # only stat its file a second time.
            skip = _skips_top_level(found)
            try:
                subject, text, body = self._parts(name, values, found, skip)
            except Exception:
                if not skip:
                    raise
                # Rendered the old way, the blocks give the old result, or raise the old error
                # (the first in the template's order, the top level's run included).
                subject, text, body = self._parts(name, values, found, False)
            layout = self._html.get_template(LAYOUT)
            html = layout.render(subject=subject, body=body, lang=chosen, shop_name=self.shop_name,
                                 shop_url=self.shop_url, unsubscribe_url=unsubscribe_url)
        except RenderError:
            raise
        except TemplateError as e:
            where = f"{name}, line {e.lineno}" if getattr(e, "lineno", None) else name
            raise RenderError(f"template {where}: {type(e).__name__}: {e.message or e}") from e
        except (ValueError, TypeError, ArithmeticError) as e:
            raise RenderError(f"template {name}: {e}") from e
        finally:
            _current.reset(token)
        return Rendered(subject=subject, text=text, html=html, locale=chosen)

    def _parts(self, name: str, values: Mapping[str, Any], found: Template, skip: bool) -> tuple[str, str, Markup]:
        """The subject, the text and the HTML body; ``skip``: without running the top level first."""
        flag = _top_level_skipped.set(skip)
        try:
            text_blocks = self._blocks(self._text, name, values, found, skip)
            if "text" not in text_blocks or "subject" not in text_blocks:
                missing = [b for b in ("subject", "text") if b not in text_blocks]
                raise RenderError(f"template {name}: no {{% block {missing[0]} %}}")
            subject = _SPACES.sub(" ", self._run(text_blocks["subject"])).strip()
            text = _BLANK_LINES.sub("\n\n", self._run(text_blocks["text"]).strip()) + "\n"
            if "html" in text_blocks:
                body = Markup(self._run(self._blocks(self._html, name, values, None, skip)["html"]).strip())
            else:
                body = text_to_html(text)
        finally:
            _top_level_skipped.reset(flag)
        return subject, text, body

    @staticmethod
    def _blocks(env: SandboxedEnvironment, name: str, values: Mapping[str, Any], template: Template | None = None,
                skip: bool = False):
        """Run the template once (top-level ``set``, macros, ``extends``), then hand out its blocks.

        ``skip``: not the run, when the top level only renders the blocks (see ``_blocks_only``).
        """
        if template is None:
            template = env.get_template(name)
        ctx = template.new_context(dict(values))
        if not (skip and _skips_top_level(template)):
            for _ in template.root_render_func(ctx):
                pass
        return {b: (fns[0], ctx) for b, fns in ctx.blocks.items() if b in BLOCKS}

    @staticmethod
    def _run(block) -> str:
        fn, ctx = block
        return "".join(fn(ctx))

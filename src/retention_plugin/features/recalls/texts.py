"""A recall notice's own text per language: given on the command line or in a file, checked, and
which languages fall back to the default (English) text."""

from __future__ import annotations

import json
from typing import Mapping

from .settings import QUALITY_KIND, SAFETY_KIND, RecallError


#: Text a recall gives the notice, by the name `recall create` uses, and the template variable it fills.
TEXT_FIELDS = {"title": "recall_title", "instructions": "instructions", "remedy": "remedy"}
#: The shipped languages besides English: `recall create` takes ``--title-<lang>`` and the like for these.
TEXT_LANGUAGES = ("lt", "sl", "ru", "ka")
#: Longer text is refused (a notice is read on a phone; the ticket and the page carry the title too).
MAX_TEXT_CHARS = 4000


def check_texts(texts, where: str = "texts") -> dict[str, dict[str, str]]:
    """``{"lt": {"title": ..., "instructions": ..., "remedy": ...}, ...}`` checked and cleaned:
    locales normalised (``pt_br`` -> ``pt-BR``), empty values dropped.

    :raises RecallError: naming the language or field that is wrong.
    """
    from retention_plugin.messaging.templates import normalize_locale

    if texts is None:
        return {}
    if not isinstance(texts, Mapping):
        raise RecallError(f"{where}: expected a table of languages, e.g. {{lt = {{title = \"...\"}}}}")
    out: dict[str, dict[str, str]] = {}
    for lang, fields_ in texts.items():
        loc = normalize_locale(lang) if isinstance(lang, str) else None
        if not loc:
            raise RecallError(f"{where}: {lang!r} is not a language code (e.g. lt, ru, pt-BR)")
        if not isinstance(fields_, Mapping):
            raise RecallError(f"{where}.{lang}: expected a table with title, instructions and/or remedy")
        for name, value in fields_.items():
            if name not in TEXT_FIELDS:
                raise RecallError(f"{where}.{lang}.{name}: unknown field (expected {', '.join(TEXT_FIELDS)})")
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if not isinstance(value, str):
                raise RecallError(f"{where}.{lang}.{name}: expected text")
            if len(value) > MAX_TEXT_CHARS:
                raise RecallError(f"{where}.{lang}.{name}: longer than {MAX_TEXT_CHARS} characters")
            out.setdefault(loc, {})[name] = value.strip()
    return out


def load_texts(path: str) -> dict[str, dict[str, str]]:
    """Per-language texts from a TOML or JSON file (by its extension; otherwise JSON, then TOML)."""
    import tomllib

    try:
        raw = open(path, "rb").read()
    except OSError as e:
        raise RecallError(f"--texts: cannot read {path}: {e.strerror or e}") from None
    text = raw.decode("utf-8", "replace")
    tries = [("JSON", json.loads), ("TOML", tomllib.loads)]
    if path.lower().endswith(".toml"):
        tries = tries[1:]
    elif path.lower().endswith(".json"):
        tries = tries[:1]
    problems = []
    for kind, parse in tries:
        try:
            return check_texts(parse(text), where=f"--texts {path}")
        except (ValueError, tomllib.TOMLDecodeError) as e:
            problems.append(f"not {kind}: {e}")
    raise RecallError(f"--texts {path}: " + "; ".join(problems))


def message_translations(texts: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Stored texts as the messages' ``translations`` (``recall_title``, ``instructions``, ``remedy``)."""
    return {loc: {TEXT_FIELDS[k]: v for k, v in fields_.items() if k in TEXT_FIELDS and v}
            for loc, fields_ in (texts or {}).items()}


def language_coverage(default: Mapping[str, str | None], texts: Mapping[str, Mapping[str, str]],
                      languages) -> dict:
    """Which languages have their own text and which get the default (``--title`` ...) text instead.

    A field falls back when the default has it and the language does not. Without default
    instructions or remedy every language's template has its own wording for them, so only
    the title can fall back then.
    """
    given = {loc: sorted(f for f in fields_ if f in TEXT_FIELDS) for loc, fields_ in sorted(texts.items())}
    fallback = {}
    for loc in sorted(set(languages) | set(texts)):
        if loc == "en" or loc.startswith("en-"):
            continue
        missing = [f for f in TEXT_FIELDS if default.get(f) and not (texts.get(loc) or {}).get(f)]
        if missing:
            fallback[loc] = missing
    return {"given": given, "fallback": fallback}


def recall_languages(app) -> list[str]:
    """The languages recall notices are written in here (shipped and override templates)."""
    from retention_plugin.messaging.outbox import renderer_for

    try:
        available = renderer_for(app.settings).available()
    except Exception:  # a broken override directory is reported at send time
        return ["en", *TEXT_LANGUAGES]
    return sorted(set(available.get(SAFETY_KIND, [])) | set(available.get(QUALITY_KIND, [])))

"""The docs say what the code does: generated pages are current, and every config key they name exists.

docs/cli-reference.md and the key reference in docs/configuration.md are cog output
(tools/docs_reference.py); the rest of the docs are prose, checked here for section and key names.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from marshmallow import fields

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from docs_reference import nested_schema, sections  # noqa: E402 (tools/ is not a package)

GENERATED = ["docs/cli-reference.md", "docs/configuration.md"]
REGENERATE = f"cog -r {' '.join(GENERATED)}"
#: TOML tables the docs show that are not ours: Shopify CLI's app configuration, and a placeholder.
FOREIGN = {"webhooks", "redacted", "access_scopes", "auth", "app_proxy", "build", "pos"}
#: `[section] key`, `[section].key`, `[a.b]`, `[[a.b]] key` inside backticks.
MENTION = re.compile(r"`(\[\[?)([a-z_][a-z0-9_.]*)(\]\]?)(?:\.| )?([a-z_][a-z0-9_]*)?")


def test_generated_pages_are_current():
    res = subprocess.run([sys.executable, "-m", "cogapp", "--check", "--diff", "--check-fail-msg",
                          f"regenerate with: {REGENERATE}", *GENERATED], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _table_sections(doc: str) -> list[str]:
    table = doc.split("## Sections", 1)[1].split("\n## ", 1)[0]
    return [name for row in table.splitlines() if row.startswith("| `[")
            for name in re.findall(r"`\[([a-z_]+)\]`", row.split("|")[1])]


def test_the_sections_table_names_every_section_once():
    named = _table_sections((ROOT / "docs" / "configuration.md").read_text())
    assert len(named) == len(set(named)), f"named twice: {sorted({n for n in named if named.count(n) > 1})}"
    real = set(sections())
    assert not real - set(named), f"sections docs/configuration.md does not list: {sorted(real - set(named))}"
    assert not set(named) - real, f"docs/configuration.md lists sections that do not exist: {sorted(set(named) - real)}"


def _keys(schema) -> dict:
    """A schema's fields by the name they have in TOML (``data_key``, e.g. ``fields`` for ``fields_``)."""
    return {f.data_key or name: f for name, f in schema.fields.items()}


def resolve(path: str, key: str | None) -> str | None:
    """None if ``[path] key`` names a real table and key; else what is wrong."""
    name, *rest = path.split(".")
    schema = sections().get(name)
    if schema is None:
        return f"no section [{name}]"
    where = f"[{name}]"
    for part in rest:
        field = _keys(schema).get(part)
        if field is None:
            return f"{where} has no {part!r}"
        if isinstance(field, fields.Dict) and part == rest[-1] and key is None:
            return None  # a table of free keys, such as [offers.combines_with]
        sub = nested_schema(field)
        if sub is None:
            return f"{where}.{part} is a value, not a table"
        schema, where = sub[0], f"{where[:-1]}.{part}]"
    if key is not None and key not in _keys(schema):
        return f"{where} has no key {key!r}"
    return None


def mentions(text: str) -> list[tuple[str, str | None]]:
    return [(m.group(2), m.group(4)) for m in MENTION.finditer(text) if m.group(2).split(".")[0] not in FOREIGN]


def test_every_section_and_key_the_docs_name_exists():
    wrong = []
    for doc in sorted([*ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md"]):
        for path, key in mentions(doc.read_text()):
            problem = resolve(path, key)
            if problem:
                wrong.append(f"{doc.relative_to(ROOT)}: `[{path}]{' ' + key if key else ''}`: {problem}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("text, problem", [
    ("`[analysis]`", "no section [analysis]"),
    ("`[links] signing_secret`", "[links] has no key 'signing_secret'"),
    ("`[reminders.offer].min_purchase`", "[reminders.offer] has no key 'min_purchase'"),
    ("`[[offers.occasion]]`", "[offers] has no 'occasion'"),
    ("`[offers.thank_you]`", "[offers].thank_you is a value, not a table"),
])
def test_the_mention_check_catches_drift(text, problem):
    [(path, key)] = mentions(text)
    assert resolve(path, key) == problem


@pytest.mark.parametrize("text", ["`[recovery.watch] tiers`", "`[[recovery.complaints.fields]] id`",
                                  "`[offers.combines_with]`", "`[actions].dry_run`", "`[loyalty]`"])
def test_the_mention_check_accepts_real_names(text):
    [(path, key)] = mentions(text)
    assert resolve(path, key) is None

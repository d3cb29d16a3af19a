"""Reference pages generated from the code, for the cog blocks in docs/.

``cog -r docs/cli-reference.md docs/configuration.md`` (from the repository root) rewrites them;
``tests/test_docs_generated.py`` fails while either is stale. Only the built-in plugins are loaded,
so an installed third-party plugin never leaks into the pages.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import click
from click.testing import CliRunner
from marshmallow import Schema, fields, missing, validate

#: Help is wrapped at this width, whatever the terminal generating the page.
WIDTH = 80


# --- CLI ------------------------------------------------------------------------------------


def retention_group() -> click.Group:
    """The ``retention`` command with the built-in plugins' commands, without touching the real one."""
    from retention_plugin.cli import cli
    from retention_plugin.plugins import make_plugin_manager

    group = copy.copy(cli)
    group.commands = dict(cli.commands)
    make_plugin_manager(entry_points=False).hook.register_commands(cli=group)
    return group


def _commands(cmd: click.Command, path: list[str]) -> Iterator[list[str]]:
    yield path
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            sub = cmd.commands[name]
            if not sub.hidden:
                yield from _commands(sub, [*path, name])


def cli_reference() -> str:
    group = retention_group()
    runner = CliRunner()
    out = []
    for path in _commands(group, []):
        res = runner.invoke(group, [*path, "--help"], prog_name="retention", terminal_width=WIDTH,
                            catch_exceptions=False)
        if res.exit_code != 0:
            raise RuntimeError(f"`retention {' '.join(path)} --help` exited {res.exit_code}: {res.output}")
        title = " ".join(["retention", *path])
        out.append(f"## `{title}`\n\n```\n{res.output.rstrip()}\n```\n")
    return "\n".join(out)


# --- configuration --------------------------------------------------------------------------


def sections() -> dict[str, Schema]:
    """Every configuration section: the core ones, then each built-in plugin's, by name."""
    from retention_plugin.config import CORE_SECTIONS
    from retention_plugin.plugins import collect, make_plugin_manager

    plugin_sections = dict(collect(make_plugin_manager(entry_points=False), "register_config_sections"))
    return {**CORE_SECTIONS, **dict(sorted(plugin_sections.items()))}


def nested_schema(field: fields.Field) -> tuple[Schema, bool] | None:
    """The schema of a sub-table (``[a.b]``) or array of tables (``[[a.b]]``), and whether it is an array."""
    if isinstance(field, fields.Nested):
        return field.schema, bool(field.many)
    if isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
        return field.inner.schema, True
    return None


_TYPES: list[tuple[type[fields.Field], str]] = [
    (fields.Email, "email address"), (fields.String, "string"), (fields.Boolean, "boolean"),
    (fields.Integer, "integer"), (fields.Decimal, "decimal"), (fields.Float, "number"),
    (fields.DateTime, "date and time"), (fields.Dict, "table"),
]


def type_name(field: fields.Field) -> str:
    if isinstance(field, fields.List):
        return f"list of {type_name(field.inner)}s"
    for cls, name in _TYPES:
        if isinstance(field, cls):
            return name
    doc = (type(field).__doc__ or type(field).__name__).strip().split(".")[0]
    return doc[0].lower() + doc[1:]


def toml_value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, (int, float, Decimal)):
        return f"`{value}`"
    if isinstance(value, (list, tuple)):
        return "`[" + ", ".join(toml_value(v).strip("`") for v in value) + "]`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f"{k} = {toml_value(v).strip('`')}" for k, v in value.items()) + "}`"
    return f"`{value}`"


def default_of(field: fields.Field) -> str:
    if field.required:
        return "required"
    value = field.load_default
    if value is missing:
        return "unset"
    return toml_value(value() if callable(value) else value)


def _rules(field: fields.Field) -> list[str]:
    parts = []
    for v in field.validators:
        if isinstance(v, validate.OneOf):
            parts.append(" \\| ".join(f"`{c}`" for c in v.choices))
        elif isinstance(v, validate.Range):
            lo = "" if v.min is None else f"{'≥' if v.min_inclusive else '>'} {v.min}"
            hi = "" if v.max is None else f"{'≤' if v.max_inclusive else '<'} {v.max}"
            parts.append(", ".join(p for p in (lo, hi) if p))
        elif isinstance(v, validate.Length) and v.min:
            parts.append(f"at least {v.min} {'item' if isinstance(field, fields.List) else 'character'}"
                         + ("s" if v.min > 1 else ""))
    return [p for p in parts if p]


def accepted(field: fields.Field) -> str:
    """What the validators allow, as far as they say it declaratively (a function validator says nothing)."""
    parts = _rules(field)
    if isinstance(field, fields.List):
        parts += [f"each: {rule}" for rule in _rules(field.inner)]
    return "; ".join(parts)


def _table(title: str, schema: Schema) -> Iterator[str]:
    rows = [(name, f) for name, f in schema.fields.items() if nested_schema(f) is None]
    if rows:
        yield f"### `{title}`\n"
        yield "| key | type | default | accepted |"
        yield "|---|---|---|---|"
        for name, f in rows:
            yield f"| `{f.data_key or name}` | {type_name(f)} | {default_of(f)} | {accepted(f)} |"
        yield ""
    for name, f in schema.fields.items():
        sub = nested_schema(f)
        if sub is not None:
            inner, many = sub
            path = f"{title.strip('[]')}.{f.data_key or name}"
            yield from _table(f"[[{path}]]" if many else f"[{path}]", inner)


def config_reference() -> str:
    lines: list[str] = []
    for name, schema in sections().items():
        lines += list(_table(f"[{name}]", schema))
    return "\n".join(lines)

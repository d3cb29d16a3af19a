"""Configuration: one TOML file, ``${VAR}`` substitution, marshmallow validation.

Loading is two-phase because plugins may bring their own sections: the core
sections (including ``[plugins]``, which says which plugins load) are
validated first; then every plugin's ``register_config_sections`` schemas
validate their sections, and any section nobody claims is an error.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import shop_scope
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

DEFAULT_PATH = "retention.toml"
ENV_VAR = "RETENTION_CONFIG"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the file.

    ``problems`` lists every (key, message) found, so one run reports them all.
    """

    def __init__(self, path: str | os.PathLike | None, key: str | None, message: str,
                 problems: list[tuple[str | None, str]] | None = None):
        self.path = str(path) if path else "<config>"
        self.key = key
        self.message = message
        self.problems = problems or [(key, message)]
        if len(self.problems) > 1:
            lines = [f"  {k}: {m}" if k else f"  {m}" for k, m in self.problems]
            super().__init__(f"{self.path}: {len(self.problems)} problems:\n" + "\n".join(lines))
            return
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + message)

    @classmethod
    def combine(cls, path, errors: list["ConfigError"]) -> "ConfigError":
        problems = [p for e in errors for p in e.problems]
        if len(problems) == 1:
            return cls(path, *problems[0])
        return cls(path, None, "; ".join(f"{k}: {m}" if k else m for k, m in problems), problems)


# --- schemas -------------------------------------------------------------------


class Strict(Schema):
    class Meta:
        unknown = RAISE


def _database_url(value: str) -> bool:
    from .storage.db import SUPPORTED_SCHEMES, unsupported_scheme

    if value.split("://", 1)[0] not in SUPPORTED_SCHEMES or "://" not in value:
        raise ValidationError(unsupported_scheme(value).split(": ", 1)[1])
    return True


class DatabaseSchema(Strict):
    url = fields.String(load_default="sqlite:///retention.db", validate=_database_url)
    pool_size = fields.Integer(load_default=5, validate=validate.Range(min=1))
    #: SQLite commits: "full" syncs the WAL at every commit, so a delivery answered 200 survives a
    #: power cut; "normal" syncs only at checkpoints (faster; the last commits can be lost).
    sqlite_synchronous = fields.String(load_default="full", validate=validate.OneOf(["full", "normal"]))


class ServerSchema(Strict):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8000, validate=validate.Range(min=1, max=65535))
    workers = fields.Integer(load_default=2, validate=validate.Range(min=1))
    #: Threads per worker; unset: 4. Threads waiting on a commit let others' commits share its
    #: WAL sync (SQLite: the receiver's group commit; PostgreSQL: its WAL flush).
    threads = fields.Integer(load_default=None, validate=validate.Range(min=1, max=64))
    max_body_bytes = fields.Integer(load_default=2 * 1024 * 1024, validate=validate.Range(min=1024))
    #: A client must have sent its whole request within this many seconds of starting it (408 after).
    read_timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.5, max=300))
    #: Where /metrics is served ("host:port"); never on the webhook port. "" serves no metrics.
    metrics_bind = fields.String(load_default="127.0.0.1:9412", validate=validate.Regexp(
        r"^$|^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$", error="expected host:port, e.g. 127.0.0.1:9412"))


class ShopifySchema(Strict):
    shop = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$",
                                                                error="expected a domain like example.myshopify.com"))
    access_token = fields.String(load_default=None)
    api_version = fields.String(load_default="2026-07", validate=validate.Regexp(r"^\d{4}-\d{2}$|^unstable$",
                                                                                error="expected YYYY-MM"))
    #: Unset: the client secret verifies webhooks (a Dev Dashboard app signs them with it).
    webhook_secrets = fields.List(fields.String(validate=validate.Length(min=1)), load_default=None,
                                  validate=validate.Length(min=1, error="at least one secret is required"))
    #: Where the Admin API is; unset: https://<shop>. An egress proxy, or a local test double.
    admin_base_url = fields.String(load_default=None, validate=lambda v: _base_url(v))
    # A Dev Dashboard app (docs/install.md): its credentials, and how it gets tokens.
    client_id = fields.String(load_default=None, validate=validate.Length(min=1))
    client_secret = fields.String(load_default=None, validate=validate.Length(min=1))
    grant = fields.String(load_default="client_credentials",
                          validate=validate.OneOf(["client_credentials", "authorization_code"]))
    #: The public base URL of `retention serve`: install redirects, app configuration, webhook address.
    app_url = fields.String(load_default=None, validate=lambda v: _base_url(v))
    #: Unset: every scope the built-in features need (retention_plugin.install.scopes).
    scopes = fields.List(fields.String(validate=validate.Regexp(r"^[a-z][a-z_]*[a-z]$", error="not a scope name")),
                         load_default=None)
    expiring_offline_tokens = fields.Boolean(load_default=True)
    subscribe_on_install = fields.Boolean(load_default=True)
    app_proxy_prefix = fields.String(load_default="apps", validate=validate.OneOf(["apps", "a", "community", "tools"]))
    app_proxy_subpath = fields.String(load_default="rewards", validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9_-]*$", error="letters, digits, - and _ only"))

    @validates_schema
    def _a_webhook_secret(self, data, **kwargs):
        if not data.get("webhook_secrets") and not data.get("client_secret"):
            raise ValidationError("set webhook_secrets, or client_secret (which then verifies webhooks)",
                                  "webhook_secrets")

    @post_load
    def _client_secret_verifies_webhooks(self, data, **kwargs):
        if not data.get("webhook_secrets"):
            data["webhook_secrets"] = [data["client_secret"]]
        return data


class ZendeskSchema(Strict):
    subdomain = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]*$",
                                                                     error="expected the subdomain only, e.g. example"))
    email = fields.Email(load_default=None)
    api_token = fields.String(load_default=None)
    #: Instead of email + api_token: an OAuth access token, sent as ``Authorization: Bearer``.
    oauth_token = fields.String(load_default=None, validate=validate.Length(min=1))
    webhook_secret = fields.String(required=True, validate=validate.Length(min=1))
    max_clock_skew_seconds = fields.Integer(load_default=300, validate=validate.Range(min=1))
    #: Where the API is; unset: https://<subdomain>.zendesk.com. An egress proxy, or a local test double.
    base_url = fields.String(load_default=None, validate=lambda v: _base_url(v))

    @validates_schema
    def _one_credential(self, data, **kwargs):
        if data.get("api_token") and data.get("oauth_token"):
            raise ValidationError("set api_token (with email) or oauth_token, not both", "oauth_token")


class ActionsSchema(Strict):
    dry_run = fields.Boolean(load_default=True)
    max_attempts = fields.Integer(load_default=8, validate=validate.Range(min=1))
    batch_size = fields.Integer(load_default=20, validate=validate.Range(min=1))
    #: Wait before the second attempt; doubles per attempt up to backoff_max_seconds (a Retry-After
    #: longer than that is still honoured). With the defaults the 8th attempt comes 10.5-21 minutes
    #: after the first, so an outage shorter than that loses nothing.
    backoff_base_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0))
    backoff_max_seconds = fields.Float(load_default=3600.0, validate=validate.Range(min=0))


def _base_url(value: str) -> bool:
    from .platforms.retrying import check_base_url

    try:
        check_base_url(value)
    except ValueError as e:
        raise ValidationError(str(e)) from None
    return True


class WorkerSchema(Strict):
    batch_size = fields.Integer(load_default=50, validate=validate.Range(min=1))
    #: Deliveries committed in one transaction (each in a savepoint of its own); 1: one commit each.
    deliveries_per_commit = fields.Integer(load_default=50, validate=validate.Range(min=1))
    #: A transaction commits after the delivery that takes it past this long: on SQLite it holds the
    #: one write lock, which the receiver's inserts wait for.
    commit_interval_ms = fields.Integer(load_default=250, validate=validate.Range(min=1))
    lease_seconds = fields.Integer(load_default=300, validate=validate.Range(min=1))
    max_attempts = fields.Integer(load_default=8, validate=validate.Range(min=1))
    backoff_base_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0))
    backoff_max_seconds = fields.Float(load_default=3600.0, validate=validate.Range(min=0))
    poll_seconds = fields.Float(load_default=1.0, validate=validate.Range(min=0.01))


class PluginsSchema(Strict):
    dirs = fields.List(fields.String(), load_default=list)
    disabled = fields.List(fields.String(), load_default=list)


class LoggingSchema(Strict):
    level = fields.String(load_default="INFO", validate=validate.OneOf(
        ["DEBUG", "INFO", "WARNING", "ERROR"]))


CORE_SECTIONS: dict[str, Schema] = {
    "database": DatabaseSchema(),
    "server": ServerSchema(),
    "shopify": ShopifySchema(),
    "zendesk": ZendeskSchema(),
    "actions": ActionsSchema(),
    "worker": WorkerSchema(),
    "plugins": PluginsSchema(),
    "logging": LoggingSchema(),
}
OPTIONAL_SECTIONS = {"shopify", "zendesk"}  # absent means the platform is not used

SECRET_KEYS = {"access_token", "api_token", "webhook_secret", "webhook_secrets", "password", "secret", "signing_secret"}


# --- settings ------------------------------------------------------------------


@dataclass
class Settings:
    path: Path | None
    data: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    #: ``[shops."<domain>".<section>]``: each shop's sections, validated with the global one merged under.
    per_shop: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def section(self, name: str) -> dict[str, Any]:
        """A validated section; an absent optional section is ``{}``.

        Inside a shop's scope (:mod:`.shop_scope`) it is that shop's, when ``[shops."<shop>".<name>]`` exists.
        """
        shop = shop_scope.scoped()
        if shop is not None and shop in self.per_shop and name in self.per_shop[shop]:
            return self.per_shop[shop][name]
        got = self.data.get(name) or {}
        if name == "shopify" and got and shop is not None and got.get("shop") != shop:
            return {**got, "shop": shop}  # the app's settings, for the shop in scope
        return got

    @property
    def configured_shop(self) -> str:
        """``[shopify] shop`` as written, whatever shop is in scope ("" without Shopify)."""
        return (self.data.get("shopify") or {}).get("shop") or ""

    def shop_overrides(self) -> list[str]:
        """The shops with a ``[shops."<domain>"]`` table, in the file's order."""
        return list(self.per_shop)

    def has(self, name: str) -> bool:
        return bool(self.data.get(name))

    @property
    def database_url(self) -> str:
        url = self.data["database"]["url"]
        # Relative SQLite paths are relative to the config file, not the cwd,
        # so `retention serve` and `retention worker` agree wherever they start.
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://" and ":memory:" not in url:
            return prefix + str((self.base_dir / url[len(prefix):]).resolve())
        return url

    def plugin_dirs(self) -> list[Path]:
        return [(self.base_dir / d).resolve() for d in self.data["plugins"]["dirs"]]

    def masked(self) -> dict[str, Any]:
        """The settings with every secret replaced, for printing."""
        return _mask(self.data)


def _mask(value, key=None):
    if isinstance(value, Mapping):
        return {k: _mask(v, k) for k, v in value.items()}
    if key and (key in SECRET_KEYS or key.endswith(("secret", "secrets", "_token", "password"))) and value:
        if isinstance(value, list):
            return ["********" for _ in value]
        return "********"
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if key == "url" and isinstance(value, str):
        return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1********@", value)
    return value


def substitute_env(value, env: Mapping[str, str], path: str = ""):
    """Replace ``${VAR}`` in every string; unset variables are one error naming every one of them."""
    missing: list[ConfigError] = []
    out = _substitute(value, env, path, missing)
    if missing:
        raise ConfigError.combine(None, missing)
    return out


def _substitute(value, env: Mapping[str, str], path: str, missing: list[ConfigError]):
    if isinstance(value, dict):
        return {k: _substitute(v, env, f"{path}.{k}" if path else k, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    if isinstance(value, str):
        def repl(m):
            name = m.group(1)
            if name not in env:
                missing.append(ConfigError(None, path, f"environment variable {name} is not set"))
                return ""
            return env[name]
        return _VAR.sub(repl, value)
    return value


def _flatten(messages, prefix: str) -> list[tuple[str, str]]:
    out = []
    if isinstance(messages, dict):
        for k, v in messages.items():
            key = prefix if k == "_schema" else f"{prefix}.{k}"
            out.extend(_flatten(v, key))
    elif isinstance(messages, list):
        for m in messages:
            out.extend(_flatten(m, prefix))
    else:
        text = str(messages)
        if text == "Unknown field.":
            text = "unknown key"
        out.append((prefix, text))
    return out


def _non_booleans(schema: Schema, raw, prefix: str) -> list[tuple[str, str]]:
    """Keys whose schema says boolean but whose TOML value is not one.

    marshmallow takes "false", "no", 0 and "off" for False, so ``dry_run = "false"`` would
    load; but a string there is a quoting mistake, and with "true"/"false" spelled by hand
    the next edit may read "flase", which then fails somewhere else. TOML has real booleans.
    """
    out: list[tuple[str, str]] = []
    if not isinstance(raw, dict):
        return out
    for name, f in schema.fields.items():
        key = f.data_key or name
        if key not in raw:
            continue
        value, where = raw[key], f"{prefix}.{key}"
        if isinstance(f, fields.Boolean) and not isinstance(value, bool):
            out.append((where, f"expected true or false (a TOML boolean, without quotes), got {value!r}"))
        elif isinstance(f, fields.Nested) and isinstance(f.schema, Schema):
            for i, item in enumerate(value if f.many and isinstance(value, list) else [value]):
                out.extend(_non_booleans(f.schema, item, f"{where}[{i}]" if f.many else where))
        elif isinstance(f, fields.List) and isinstance(f.inner, fields.Nested) and isinstance(value, list):
            inner = f.inner.schema
            if isinstance(inner, Schema):
                for i, item in enumerate(value):
                    out.extend(_non_booleans(inner, item, f"{where}[{i}]"))
    return out


def validate_section(path, name: str, schema: Schema, raw_section) -> dict[str, Any]:
    if not isinstance(raw_section, dict):
        raise ConfigError(path, f"[{name}]", f"expected a table, got {type(raw_section).__name__}")
    strict = _non_booleans(schema, raw_section, f"[{name}]")
    try:
        loaded = schema.load(raw_section)
    except ValidationError as e:
        problems = [(re.sub(r"^\[(\w+)\]\.", r"[\1].", k), m) for k, m in _flatten(e.messages, f"[{name}]")]
        flagged = {k for k, _ in strict}
        problems = strict + [(k, m) for k, m in problems if k not in flagged]
        raise ConfigError.combine(path, [ConfigError(path, k, m) for k, m in problems]) from None
    if strict:
        raise ConfigError.combine(path, [ConfigError(path, k, m) for k, m in strict])
    return loaded


def resolve_path(path: str | os.PathLike | None) -> Path | None:
    """Where the config lives: the argument, then $RETENTION_CONFIG, then ./retention.toml."""
    if path:
        return Path(path)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(DEFAULT_PATH)


def read_raw(path: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found (pass --config PATH or set RETENTION_CONFIG)") from None
    except OSError as e:
        raise ConfigError(path, None, f"cannot read: {e.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, None, f"not valid TOML: {e}") from None
    try:
        return substitute_env(raw, os.environ if env is None else env)
    except ConfigError as e:
        raise ConfigError(path, e.key, e.message, e.problems) from None


def load_core(raw: dict[str, Any], path: Path | None) -> Settings:
    data: dict[str, Any] = {}
    errors: list[ConfigError] = []
    for name, schema in CORE_SECTIONS.items():
        try:
            if name in raw:
                data[name] = validate_section(path, name, schema, raw[name])
            elif name not in OPTIONAL_SECTIONS:
                data[name] = schema.load({})
        except ConfigError as e:
            errors.append(e)
    if errors:
        raise ConfigError.combine(path, errors)
    return Settings(path=path, data=data, raw=raw)


def apply_plugin_sections(settings: Settings, sections: Mapping[str, Schema]) -> None:
    """Validate the sections plugins registered; reject sections nobody claims."""
    raw = settings.raw
    errors: list[ConfigError] = []
    for name, schema in sections.items():
        try:
            settings.data[name] = validate_section(settings.path, name, schema, raw.get(name, {}))
        except ConfigError as e:
            errors.append(e)
    known = set(CORE_SECTIONS) | set(sections)
    if "shops" in raw:
        try:
            settings.per_shop = validate_shop_overrides(settings, {**CORE_SECTIONS, **sections})
        except ConfigError as e:
            errors.append(e)
    for name in raw:
        if name == "shops":
            continue
        if name not in known:
            errors.append(ConfigError(settings.path, f"[{name}]", "unknown section (no plugin reads it; "
                                      f"known: {', '.join(sorted(known))})"))
    if errors:
        raise ConfigError.combine(settings.path, errors)


#: Sections a shop cannot override: they are the install's, not a shop's.
INSTALL_SECTIONS = frozenset({"database", "server", "worker", "plugins", "logging"})


def validate_shop_overrides(settings: Settings, schemas: Mapping[str, Schema]) -> dict[str, dict[str, dict]]:
    """``[shops."<domain>".<section>]`` merged over ``[<section>]``, each validated as the section is."""
    raw = settings.raw.get("shops")
    path = settings.path
    if not isinstance(raw, dict):
        raise ConfigError(path, "[shops]", "expected a table of shops, e.g. [shops.\"example.myshopify.com\".loyalty]")
    out: dict[str, dict[str, dict]] = {}
    errors: list[ConfigError] = []
    for domain, tables in raw.items():
        shop = shop_scope.normalise(domain)
        where = f'[shops."{domain}"]'
        if shop is None or shop != domain:
            errors.append(ConfigError(path, where, "expected a shop domain like example.myshopify.com, lower case"))
            continue
        if not isinstance(tables, dict):
            errors.append(ConfigError(path, where, f"expected a table, got {type(tables).__name__}"))
            continue
        out[shop] = {}
        for name, over in tables.items():
            key = f'[shops."{domain}".{name}]'
            if name in INSTALL_SECTIONS or name not in schemas:
                why = "is the install's, not a shop's" if name in INSTALL_SECTIONS else "is no known section"
                errors.append(ConfigError(path, key, f"{name} {why}"))
                continue
            if not isinstance(over, dict):
                errors.append(ConfigError(path, key, f"expected a table, got {type(over).__name__}"))
                continue
            merged = {**(settings.raw.get(name) or {}), **over}
            if name == "shopify":
                if "shop" in over and over["shop"] != shop:
                    errors.append(ConfigError(path, f"{key}.shop", "must be the shop the table is for, or unset"))
                    continue
                merged["shop"] = shop
            try:
                out[shop][name] = validate_section(path, name, schemas[name], merged)
            except ConfigError as e:
                errors.extend(ConfigError(path, (k or f"[{name}]").replace(f"[{name}]", key, 1), m)
                              for k, m in e.problems)
    if errors:
        raise ConfigError.combine(path, errors)
    return out


def from_dict(raw: dict[str, Any], path: Path | None = None) -> Settings:
    """Core settings from an in-memory mapping (tests, the demo)."""
    return load_core(substitute_env(raw, os.environ), path)


def section_or_defaults(source, name: str, schema: Schema | type[Schema]) -> dict[str, Any]:
    """The validated ``[name]`` section, or what ``schema`` loads from nothing when it is absent.

    A plugin's section is missing when the plugin is switched off (another
    plugin may still read it, as every discount reads ``[offers] combines_with``)
    or when settings were built without it; readers then get the defaults.
    ``source`` is the ``Settings``, or anything that has them (a HookContext, the app).
    """
    settings = getattr(source, "settings", source)
    got = settings.section(name) if settings is not None else None
    if got:
        return got
    return (schema() if isinstance(schema, type) else schema).load({})

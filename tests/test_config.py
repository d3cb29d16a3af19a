import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from retention_plugin import config as cfg
from retention_plugin.cli import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "retention.example.toml"
SECRETS = {"SHOPIFY_CLIENT_SECRET": "shpss_example_client_secret",
           "SHOPIFY_ACCESS_TOKEN": "shpat_example_token_value", "SHOPIFY_WEBHOOK_SECRET": "whsec-value-1",
           "ZENDESK_API_TOKEN": "zd-api-token-value", "ZENDESK_WEBHOOK_SECRET": "zd-signing-secret-value"}


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "retention.toml"
    p.write_text(text)
    return p


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_example_config_validates_and_masks_every_secret(monkeypatch):
    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    result = run("--config", str(EXAMPLE), "config", "check")
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    for secret in EXAMPLE_ENV.values():
        assert secret not in result.output
    assert "********" in result.output


def test_unset_variable_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    p = write(tmp_path, '[zendesk]\nsubdomain = "x"\nwebhook_secret = "${NOT_SET_ANYWHERE}"\n')
    result = run("--config", str(p), "config", "check")
    assert result.exit_code == 2
    assert "NOT_SET_ANYWHERE" in result.output
    assert "zendesk.webhook_secret" in result.output


def test_unknown_key_names_file_section_and_key(tmp_path):
    p = write(tmp_path, '[actions]\ndry_run = true\ndry_runn = false\n')
    result = run("--config", str(p), "config", "check")
    assert result.exit_code == 2
    assert str(p) in result.output
    assert "[actions].dry_runn" in result.output
    assert "unknown key" in result.output


def test_wrong_type_says_what_was_expected(tmp_path):
    p = write(tmp_path, '[zendesk]\nsubdomain = "x"\nwebhook_secret = "s"\nmax_clock_skew_seconds = "soon"\n')
    result = run("--config", str(p), "config", "check")
    assert result.exit_code == 2
    assert "[zendesk].max_clock_skew_seconds" in result.output
    assert "integer" in result.output.lower()


def test_unknown_section_is_rejected(tmp_path):
    p = write(tmp_path, '[loyalti]\npoints = 1\n')
    result = run("--config", str(p), "config", "check")
    assert result.exit_code == 2
    assert "[loyalti]" in result.output


def test_missing_file_is_a_clear_error(tmp_path):
    result = run("--config", str(tmp_path / "nope.toml"), "config", "check")
    assert result.exit_code == 2
    assert "file not found" in result.output


def test_invalid_toml_is_a_clear_error(tmp_path):
    p = write(tmp_path, "[database\nurl = 1\n")
    result = run("--config", str(p), "config", "check")
    assert result.exit_code == 2
    assert "not valid TOML" in result.output


def test_platform_sections_are_optional_and_config_env_var_is_read(tmp_path):
    p = write(tmp_path, '[database]\nurl = "sqlite:///x.db"\n')
    result = run("config", "check", "--json", env={"RETENTION_CONFIG": str(p)})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert "shopify" not in data["settings"] and "zendesk" not in data["settings"]
    assert data["settings"]["actions"]["dry_run"] is True


def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path):
    settings = cfg.load_core({"database": {"url": "sqlite:///data/r.db"}}, tmp_path / "retention.toml")
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'r.db'}"


def test_masked_hides_password_in_database_url():
    settings = cfg.load_core({"database": {"url": "postgresql+psycopg://u:hunter2@db/x"}}, None)
    assert "hunter2" not in json.dumps(settings.masked())


def test_env_substitution_inside_lists():
    out = cfg.substitute_env({"a": ["${X}", "y-${X}"]}, {"X": "1"})
    assert out == {"a": ["1", "y-1"]}
    with pytest.raises(cfg.ConfigError) as e:
        cfg.substitute_env({"a": ["${MISSING}"]}, {})
    assert "MISSING" in str(e.value) and "a[0]" in str(e.value)


EXAMPLE_ENV = {**SECRETS, "SMTP_PASSWORD": "smtp-pass", "RETENTION_UNSUBSCRIBE_SECRET": "unsub-secret",
               "RETENTION_LINK_SECRET": "link-secret-value-0123456789abcdef",
               "RETENTION_REVIEWS_SECRET": "reviews-secret-value-0123456789abcdef",
               "RECALL_SIGNING_SECRET": "recall-signing-secret-value-0123456789abcdef"}


def _missing_keys(schema, raw, where):
    from marshmallow import fields as f

    missing = []
    for name, field in schema.fields.items():
        key = field.data_key or name
        if key not in raw:
            missing.append(f"{where}.{key}")
            continue
        inner = field.inner if isinstance(field, f.List) else field
        if isinstance(inner, f.Nested):
            items = raw[key] if isinstance(raw[key], list) else [raw[key]]
            union = {}
            for item in items:
                if isinstance(item, dict):
                    union.update(item)
            nested = inner.schema
            missing += _missing_keys(nested, union, f"{where}.{key}")
    return missing


def test_example_config_documents_every_key_of_every_section(monkeypatch):
    from retention_plugin.app import Retention
    from retention_plugin.config import CORE_SECTIONS
    from retention_plugin.plugins import collect

    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    app = Retention.from_config(EXAMPLE, entry_points=False)
    sections = {**CORE_SECTIONS, **dict(collect(app.pm, "register_config_sections"))}
    missing = []
    for name, schema in sections.items():
        raw = app.settings.raw.get(name)
        if raw is None:
            missing.append(f"[{name}]")
            continue
        missing += _missing_keys(schema, raw, f"[{name}]")
    # A key may be shown commented out (an optional setting with its example value).
    text = EXAMPLE.read_text()
    import re

    missing = [m for m in missing if not (m.startswith("[") and "." in m and re.search(
        rf"(?<![\w.]){re.escape(m.rsplit('.', 1)[1])}\s*=", text))]
    assert not missing, f"config/retention.example.toml does not show: {missing}"

"""The [contact_policy], [email] and [messages] sections: defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from retention_plugin.messaging.policy import PolicySettings
from retention_plugin.messaging.settings import SECTIONS, load_section, section, templates_dir


def test_defaults_are_the_issues():
    cp = load_section("contact_policy")
    assert cp["allowed_hours"] == ["09:00", "20:00"]
    assert (cp["max_marketing_per_week"], cp["min_gap_hours"]) == (2, 48.0)
    assert cp["respect_rest_days"] and cp["respect_public_holidays"]
    assert cp["default_timezone"] == "UTC" and cp["safety_ignores_quiet_hours"]
    msgs = load_section("messages")
    assert (msgs["default_channel"], msgs["fallback_locale"]) == ("email", "en")
    assert load_section("email")["security"] == "starttls"
    ps = PolicySettings.from_section(cp)
    assert ps == PolicySettings()


@pytest.mark.parametrize("name, raw, message", [
    ("contact_policy", {"alowed_hours": ["09:00", "20:00"]}, "[contact_policy].alowed_hours: unknown key"),
    ("email", {"pasword": "x"}, "[email].pasword: unknown key"),
    ("messages", {"fallback_lang": "en"}, "[messages].fallback_lang: unknown key"),
    ("contact_policy", {"allowed_hours": ["20:00", "09:00"]},
     "[contact_policy].allowed_hours: the start 20:00 must be before"),
    ("contact_policy", {"allowed_hours": ["9", "20:00"]}, "[contact_policy].allowed_hours: expected two times"),
    ("contact_policy", {"default_timezone": "Europe/Vilnus"}, "[contact_policy].default_timezone: unknown time zone"),
    ("contact_policy", {"country_timezones": {"us": "America/Chicago"}}, "[contact_policy].country_timezones.us"),
    ("contact_policy", {"country_rest_days": {"LT": ["sunday"]}}, "[contact_policy].country_rest_days.LT"),
    ("contact_policy", {"max_marketing_per_week": -1}, "[contact_policy].max_marketing_per_week"),
    ("email", {"security": "ssl"}, "[email].security: Must be one of"),
    ("email", {"username": "u"}, "[email].password: password is required when username is set"),
    ("email", {"unsubscribe_url": "https://x/{customer}"}, "[email].unsubscribe_url: unknown placeholder {customer}"),
    ("messages", {"shopify_mode": "flow"}, "[messages].shopify_mode"),
])
def test_problems_name_the_key(name, raw, message):
    with pytest.raises(ValueError) as e:
        load_section(name, raw)
    assert str(e.value).startswith(message)


def test_sections_plug_into_the_app_config_loader():
    from retention_plugin import config

    settings = config.from_dict({"contact_policy": {"max_marketing_per_week": 3}, "email": {"hots": "x"}})
    with pytest.raises(config.ConfigError, match=r"\[email\]\.hots: unknown key"):
        config.apply_plugin_sections(settings, SECTIONS)
    settings = config.from_dict({"contact_policy": {"max_marketing_per_week": 3}})
    config.apply_plugin_sections(settings, SECTIONS)
    assert section(settings, "contact_policy")["max_marketing_per_week"] == 3
    assert section(settings, "messages")["default_channel"] == "email"


def test_partial_mapping_gets_defaults_and_templates_dir_is_relative_to_the_config(tmp_path):
    assert section({"messages": {"shop_name": "X"}}, "messages")["batch_size"] == 100
    assert section(None, "email")["host"] == "localhost"

    class AppSettings:  # what the app's Settings offers
        base_dir = tmp_path

        def section(self, name):
            return {"messages": load_section("messages", {"templates_dir": "templates"})}.get(name, {})

    assert templates_dir(AppSettings()) == (tmp_path / "templates").resolve()
    assert templates_dir(None) is None

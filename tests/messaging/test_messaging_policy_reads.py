"""The contact policy builds a country's holiday calendar only when a setting reads it (building one
costs as much as sending a hundred messages), and answers as before."""

from __future__ import annotations

from datetime import date

import pytest

from retention_plugin.messaging import policy
from retention_plugin.messaging.policy import PolicySettings, day_off

SUNDAY, CHRISTMAS = date(2026, 3, 1), date(2026, 12, 25)  # Christmas 2026 is a Friday


@pytest.fixture
def calendars(monkeypatch):
    built: list[tuple] = []
    real = policy._calendar.__wrapped__

    def counted(*args):
        built.append(args)
        return real(*args)

    monkeypatch.setattr(policy, "_calendar", counted)
    return built


def test_no_calendar_when_neither_rest_days_nor_holidays_are_respected(calendars):
    off = PolicySettings(respect_rest_days=False, respect_public_holidays=False)
    assert day_off(SUNDAY, "LT", None, off) is None and day_off(CHRISTMAS, "LT", None, off) is None
    assert calendars == []


def test_no_calendar_for_rest_days_the_settings_name_without_holidays(calendars):
    s = PolicySettings(respect_public_holidays=False, country_rest_days={"LT": frozenset({6})})
    assert day_off(SUNDAY, "LT", None, s) == "Sunday 2026-03-01 is a rest day in LT"
    assert day_off(CHRISTMAS, "LT", None, s) is None
    assert calendars == []


def test_the_calendar_still_answers_where_a_setting_reads_it(calendars):
    assert day_off(SUNDAY, "LT", None, PolicySettings(respect_public_holidays=False)).endswith("rest day in LT")
    assert day_off(CHRISTMAS, "LT", None, PolicySettings(respect_rest_days=False)).startswith(
        "2026-12-25 is a public holiday in LT")
    assert day_off(CHRISTMAS, "LT", None, PolicySettings()).startswith("2026-12-25 is a public holiday in LT")
    assert day_off(date(2026, 3, 3), "LT", None, PolicySettings()) is None
    assert calendars and all(args == ("LT", None, 2026) for args in calendars)


def test_the_allowed_hours_are_worded_from_the_settings_of_each_policy():
    assert PolicySettings().hours == "09:00–20:00"
    assert PolicySettings(start=PolicySettings().start.replace(hour=8)).hours == "08:00–20:00"

"""The contact policy as a pure function: the issue's acceptance cases and the edges around them."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from retention_plugin.messaging.policy import PolicySettings, day_off, decide, resolve_timezone
from retention_plugin.messaging.settings import load_section

VILNIUS = ZoneInfo("Europe/Vilnius")
RIYADH = ZoneInfo("Asia/Riyadh")
LT = {"id": 1, "country": "LT", "marketing_consent": "subscribed"}
SA = {"id": 2, "country": "SA", "marketing_consent": "subscribed"}


def local(y, mo, d, h, mi=0, tz=VILNIUS) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz).astimezone(timezone.utc)


def ask(at: datetime, customer=LT, message_class="marketing", kind="voucher", **kw):
    return decide(message_class=message_class, kind=kind, customer=customer, due_at=at, now=at, **kw)


def test_marketing_at_0600_local_is_deferred_to_the_start_of_allowed_hours_that_day():
    d = ask(local(2026, 3, 3, 6))  # a Tuesday
    assert d.decision == "defer"
    assert d.send_at == local(2026, 3, 3, 9)
    assert d.reason.startswith("06:00 Europe/Vilnius is before allowed hours 09:00–20:00")


def test_after_allowed_hours_goes_to_the_next_morning():
    d = ask(local(2026, 3, 3, 20, 0))  # the end is exclusive
    assert (d.decision, d.send_at) == ("defer", local(2026, 3, 4, 9))
    assert "after allowed hours" in d.reason


def test_within_allowed_hours_is_sent_now_with_the_reason():
    at = local(2026, 3, 3, 14, 30)
    d = ask(at)
    assert (d.decision, d.send_at) == ("send", at)
    assert "14:30 Europe/Vilnius" in d.reason and "0 marketing messages in the last 7 days" in d.reason


def test_sunday_in_lithuania_goes_out_monday_at_nine():
    d = ask(local(2026, 3, 1, 11))  # Sunday
    assert (d.decision, d.send_at) == ("defer", local(2026, 3, 2, 9))
    assert "Sunday 2026-03-01 is a rest day in LT" in d.reason


def test_friday_in_saudi_arabia_goes_out_sunday():
    d = ask(local(2026, 3, 6, 10, tz=RIYADH), customer=SA)  # Friday; Saturday is a rest day too
    assert (d.decision, d.send_at) == ("defer", local(2026, 3, 8, 9, tz=RIYADH))
    assert "Friday 2026-03-06 is a rest day in SA" in d.reason
    assert ask(local(2026, 3, 5, 10, tz=RIYADH), customer=SA).decision == "send"  # Thursday is a working day


def test_public_holiday_goes_out_on_the_next_working_day():
    d = ask(local(2026, 2, 16, 10))  # Monday, Day of Restoration of the State of Lithuania
    assert (d.decision, d.send_at) == ("defer", local(2026, 2, 17, 9))
    assert "2026-02-16 is a public holiday in LT" in d.reason


def test_holiday_then_weekend_skips_both():
    # Saturday 2026-02-14 evening -> Sunday rest -> Monday 16th holiday -> Tuesday 09:00
    d = ask(local(2026, 2, 14, 21))
    assert d.send_at == local(2026, 2, 17, 9)


def test_rest_days_and_holidays_can_be_switched_off_or_overridden():
    ps = PolicySettings(respect_rest_days=False, respect_public_holidays=False)
    assert ask(local(2026, 3, 1, 11), settings=ps).decision == "send"
    assert ask(local(2026, 2, 16, 10), settings=ps).decision == "send"
    only_sunday = PolicySettings.from_section(load_section("contact_policy", {"country_rest_days": {"LT": ["sun"]}}))
    assert ask(local(2026, 2, 28, 11), settings=only_sunday).decision == "send"  # Saturday works now
    assert ask(local(2026, 3, 1, 11), settings=only_sunday).decision == "defer"


def test_third_marketing_message_in_the_window_is_suppressed_but_transactional_goes_out():
    at = local(2026, 3, 3, 10)
    recent = [at - timedelta(days=6), at - timedelta(days=3)]
    d = ask(at, recent_marketing=recent)
    assert (d.decision, d.send_at) == ("suppress", None)
    assert d.reason == "marketing frequency cap: 2 marketing messages in the last 7 days (max 2)"
    t = ask(at, message_class="transactional", kind="thank_you", recent_marketing=recent)
    assert t.decision == "send"
    assert "transactional" in t.reason


def test_messages_older_than_the_window_do_not_count():
    at = local(2026, 3, 3, 10)
    d = ask(at, recent_marketing=[at - timedelta(days=7, minutes=1), at - timedelta(days=3)])
    assert d.decision == "send"


def test_cap_is_checked_at_the_deferred_moment():
    # Due Sunday; one of the two earlier messages leaves the 7-day window by Monday 09:00.
    at = local(2026, 3, 1, 11)
    recent = [local(2026, 2, 22, 10), local(2026, 2, 27, 10)]
    d = ask(at, recent_marketing=recent)
    assert (d.decision, d.send_at) == ("defer", local(2026, 3, 2, 9))
    # ...whereas two inside the window at that moment suppress, naming the moment.
    d = ask(at, recent_marketing=[local(2026, 2, 26, 10), local(2026, 2, 27, 10)])
    assert d.decision == "suppress"
    assert "before Mon 2026-03-02 09:00 Europe/Vilnius" in d.reason


def test_too_close_to_the_last_marketing_message_is_deferred_to_the_end_of_the_gap():
    at = local(2026, 3, 3, 10)
    d = ask(at, recent_marketing=[at - timedelta(hours=20)])
    assert (d.decision, d.send_at) == ("defer", at + timedelta(hours=28))
    assert "minimum gap 48 h" in d.reason


def test_gap_end_outside_allowed_hours_moves_on_to_the_next_allowed_moment():
    at = local(2026, 3, 3, 10)
    d = ask(at, recent_marketing=[local(2026, 3, 1, 19, 30)])  # gap ends Tue 19:30: later today
    assert (d.decision, d.send_at) == ("defer", local(2026, 3, 3, 19, 30))
    d = ask(at, recent_marketing=[local(2026, 3, 2, 19, 30)])  # gap ends Wed 19:30: inside hours
    assert d.send_at == local(2026, 3, 4, 19, 30)
    d = ask(at, recent_marketing=[local(2026, 3, 2, 20, 30)])  # gap ends Wed 20:30: after hours -> Thu 09:00
    assert d.send_at == local(2026, 3, 5, 9)


@pytest.mark.parametrize("consent", ["unsubscribed", "not_subscribed", "pending", None])
def test_marketing_needs_subscribed_consent(consent):
    d = ask(local(2026, 3, 3, 10), customer={**LT, "marketing_consent": consent})
    assert d.decision == "suppress"
    assert d.reason == f"no marketing consent ({consent or 'none recorded'})"


def test_transactional_needs_no_consent_but_keeps_quiet_hours():
    c = {**LT, "marketing_consent": "unsubscribed"}
    d = ask(local(2026, 3, 3, 10), customer=c, message_class="transactional", kind="delay_apology")
    assert d.decision == "send"
    d = ask(local(2026, 3, 3, 6), customer=c, message_class="transactional", kind="delay_apology")
    assert (d.decision, d.send_at) == ("defer", local(2026, 3, 3, 9))


def test_safety_recall_ignores_quiet_hours_unless_configured_otherwise():
    at = local(2026, 3, 1, 3)  # Sunday, 03:00
    d = ask(at, message_class="transactional", kind="recall")
    assert (d.decision, d.send_at) == ("send", at)
    assert "safety notice" in d.reason
    strict = PolicySettings(safety_ignores_quiet_hours=False)
    assert ask(at, message_class="transactional", kind="recall", settings=strict).send_at == local(2026, 3, 2, 9)


def test_erased_customer_gets_nothing():
    d = ask(local(2026, 3, 3, 10), customer={**LT, "redacted_at": local(2026, 1, 1, 0)},
            message_class="transactional", kind="recall")
    assert d.decision == "suppress" and "erased" in d.reason


def test_veto_hook_suppresses_with_its_reason_and_sees_the_message():
    seen = []

    def veto(message, customer, when):
        seen.append((message["kind"], customer["id"], when))
        return "vetoed by plugin 'vip' (contact_allowed)"

    at = local(2026, 3, 3, 10)
    d = ask(at, veto_hook=veto)
    assert (d.decision, d.reason) == ("suppress", "vetoed by plugin 'vip' (contact_allowed)")
    assert seen == [("voucher", 1, at)]
    assert ask(at, veto_hook=lambda *a: None).decision == "send"


def test_not_yet_due_is_deferred_to_due_time():
    now = local(2026, 3, 3, 10)
    d = decide(message_class="marketing", kind="voucher", customer=LT, due_at=now + timedelta(hours=2), now=now)
    assert (d.decision, d.send_at) == ("defer", now + timedelta(hours=2))
    assert d.reason.startswith("not due until")


def test_naive_datetimes_are_rejected():
    with pytest.raises(ValueError, match="aware"):
        naive = datetime(2026, 3, 3)  # noqa: DTZ001 (on purpose)
        decide(message_class="marketing", kind="voucher", customer=LT, due_at=naive, now=naive)


def test_allowed_hours_are_configurable():
    ps = PolicySettings(start=time(10), end=time(18))
    d = ask(local(2026, 3, 3, 9, 30), settings=ps)
    assert d.send_at == local(2026, 3, 3, 10) and "10:00–18:00" in d.reason


# --- time zones ------------------------------------------------------------------------------


@pytest.mark.parametrize("customer, zone", [
    ({"country": "LT"}, "Europe/Vilnius"),
    ({"country": "US", "province": "CA"}, "America/Los_Angeles"),
    ({"country": "US", "province": "US-TX"}, "America/Chicago"),
    ({"country": "US"}, "America/New_York"),
    ({"country": "RU", "province": "NVS"}, "Asia/Novosibirsk"),
    ({"country": "RU", "province": "SPE"}, "Europe/Moscow"),
    ({"country": "AU", "province": "WA"}, "Australia/Perth"),
    ({"country": "BR", "province": "AM"}, "America/Manaus"),
    ({"country": "CA", "province": "BC"}, "America/Vancouver"),
    ({"country": "MX", "province": "BC"}, "America/Tijuana"),
    ({"country": "MX", "province": "JAL"}, "America/Mexico_City"),
    ({"country": "GE"}, "Asia/Tbilisi"),
    ({"country": "XX"}, "UTC"),
    ({}, "UTC"),
])
def test_zone_from_the_address(customer, zone):
    assert resolve_timezone(customer, PolicySettings())[0].key == zone


def test_zone_precedence_hook_then_stored_then_country_override_then_address():
    ps = PolicySettings(country_timezones={"US": "America/Denver"}, default_timezone="Europe/Berlin")
    c = {"country": "US", "province": "CA", "timezone": "Pacific/Honolulu"}
    assert resolve_timezone(c, ps, lambda _: "Asia/Tokyo")[0].key == "Asia/Tokyo"
    assert resolve_timezone(c, ps, lambda _: None)[0].key == "Pacific/Honolulu"
    assert resolve_timezone(c, ps, lambda _: "Not/AZone")[0].key == "Pacific/Honolulu"  # a bad hook answer is ignored
    assert resolve_timezone({**c, "timezone": None}, ps)[0].key == "America/Denver"
    assert resolve_timezone({}, ps)[0].key == "Europe/Berlin"


def test_timezone_hook_moves_quiet_hours():
    at = local(2026, 3, 3, 6)  # 06:00 in Vilnius = 13:00 in Tokyo
    assert ask(at, timezone_hook=lambda c: "Asia/Tokyo").decision == "send"


def test_day_off_uses_subdivision_holidays_and_unknown_countries_have_none():
    ps = PolicySettings()
    assert day_off(date(2026, 3, 31), "US", "CA", ps) is not None  # César Chávez Day, California only
    assert day_off(date(2026, 3, 31), "US", "NY", ps) is None
    assert day_off(date(2026, 3, 1), "XX", None, ps) is None

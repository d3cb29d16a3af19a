"""The contact policy: whether a message may go out now, later, or not at all.

:func:`decide` is a pure function of its arguments (no database, no clock, no
plugin manager), so the worker, ``retention messages explain`` and the tests
all ask it the same question the same way. The order of the checks:

1. erased customer: suppress;
2. marketing without ``subscribed`` consent: suppress; a *courtesy* kind
   (transactional, listed in ``courtesy_kinds``) after an explicit
   ``unsubscribed``: suppress;
3. the customer's local time (hook, stored zone, address, default): outside the
   allowed hours, on a rest day or on a public holiday, move to the start of the
   allowed hours on the next working day (safety notices listed in
   ``safety_kinds`` skip this when ``safety_ignores_quiet_hours``);
4. marketing only, at that moment: at ``max_marketing_per_week`` messages in the
   7 days before it, suppress; closer than ``min_gap_hours`` to the last one,
   move to when the gap ends and go back to 3;
5. due now: the ``contact_allowed`` veto, then send; otherwise defer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property, lru_cache
from typing import Any, Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

import holidays

from .kinds import COURTESY_KINDS, MARKETING, SAFETY_KINDS, check_class
from .settings import WEEKDAYS, section
from .timezones import country_zone, valid_zone

SEND, DEFER, SUPPRESS = "send", "defer", "suppress"
WINDOW = timedelta(days=7)
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class PolicySettings:
    start: time = time(9, 0)
    end: time = time(20, 0)
    max_marketing_per_week: int = 2
    min_gap: timedelta = timedelta(hours=48)
    respect_rest_days: bool = True
    respect_public_holidays: bool = True
    default_timezone: str = "UTC"
    country_timezones: Mapping[str, str] = field(default_factory=dict)
    country_rest_days: Mapping[str, frozenset[int]] = field(default_factory=dict)
    safety_ignores_quiet_hours: bool = True
    safety_kinds: frozenset[str] = frozenset(SAFETY_KINDS)
    courtesy_kinds: frozenset[str] = frozenset(COURTESY_KINDS)

    def offers_unsubscribe(self, message_class: str, kind: str) -> bool:
        """Whether mail of this class and kind carries List-Unsubscribe."""
        return message_class == MARKETING or kind in self.courtesy_kinds

    @classmethod
    def from_section(cls, data: Mapping[str, Any]) -> "PolicySettings":
        """From a loaded ``[contact_policy]`` section (see ``settings.ContactPolicySchema``)."""
        start, end = (time.fromisoformat(v) for v in data["allowed_hours"])
        return cls(
            start=start,
            end=end,
            max_marketing_per_week=data["max_marketing_per_week"],
            min_gap=timedelta(hours=data["min_gap_hours"]),
            respect_rest_days=data["respect_rest_days"],
            respect_public_holidays=data["respect_public_holidays"],
            default_timezone=data["default_timezone"],
            country_timezones=dict(data["country_timezones"]),
            country_rest_days={cc: frozenset(WEEKDAYS.index(d) for d in days)
                               for cc, days in data["country_rest_days"].items()},
            safety_ignores_quiet_hours=data["safety_ignores_quiet_hours"],
            safety_kinds=frozenset(data["safety_kinds"]),
            courtesy_kinds=frozenset(data["courtesy_kinds"]),
        )

    @classmethod
    def from_settings(cls, settings) -> "PolicySettings":
        """From the app's settings (or a mapping of sections, or None for the defaults)."""
        return cls.from_section(section(settings, "contact_policy"))

    @cached_property  # in every send's reason; the settings are frozen
    def hours(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


@dataclass(frozen=True)
class Decision:
    decision: str  # send / defer / suppress
    send_at: datetime | None  # when it goes out (now for send); None for suppress
    reason: str
    timezone: str | None = None  # the customer's zone the decision used

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision,
                "send_at": self.send_at.isoformat() if self.send_at else None,
                "reason": self.reason}


TimezoneHook = Callable[[Mapping], "str | None"]
#: ``veto_hook(message, customer, when)`` returns None to allow, or the reason for a veto.
VetoHook = Callable[[Mapping, Mapping, datetime], "str | None"]


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    return value.astimezone(timezone.utc)


def resolve_timezone(customer: Mapping, settings: PolicySettings,
                     hook: TimezoneHook | None = None) -> tuple[ZoneInfo, str]:
    """The customer's zone and where it came from, first found wins:

    the ``customer_timezone`` hook, the customer's stored ``timezone``, the
    store's ``country_timezones`` for the country, the address (country and
    province), ``default_timezone``.
    """
    if hook is not None:
        zone = valid_zone(hook(customer))
        if zone:
            return zone, "customer_timezone hook"
    zone = valid_zone(customer.get("timezone"))
    if zone:
        return zone, "customer's time zone"
    country = (customer.get("country") or "").upper() or None
    if country:
        zone = valid_zone(settings.country_timezones.get(country))
        if zone:
            return zone, f"[contact_policy].country_timezones.{country}"
        zone = valid_zone(country_zone(country, customer.get("province")))
        if zone:
            return zone, f"address {country}" + (f"-{customer['province']}" if customer.get("province") else "")
    return ZoneInfo(settings.default_timezone), "[contact_policy].default_timezone"


@lru_cache(maxsize=512)
def _calendar(country: str, subdiv: str | None, year: int):
    for sd in ((subdiv, None) if subdiv else (None,)):
        try:
            return holidays.country_holidays(country, subdiv=sd, years=year)
        except NotImplementedError:  # unknown country, or a province code holidays doesn't use
            continue
    return None


def day_off(day: date, country: str | None, subdiv: str | None, settings: PolicySettings) -> str | None:
    """Why ``day`` is not a working day for a customer in ``country``, or None when it is."""
    if not country:
        return None
    # The calendar only when a setting reads it: building one (a country's holidays for a year)
    # costs as much as sending a hundred messages.
    if settings.respect_rest_days:
        if country in settings.country_rest_days:
            rest = day.weekday() in settings.country_rest_days[country]
        elif (cal := _calendar(country, subdiv, day.year)) is not None:
            weekend = cal._get_weekend(day) if hasattr(cal, "_get_weekend") else cal.weekend
            rest = day.weekday() in weekend and day not in getattr(cal, "weekend_workdays", ())
        else:
            rest = False
        if rest:
            return f"{_DAY_NAMES[day.weekday()]} {day.isoformat()} is a rest day in {country}"
    if settings.respect_public_holidays:
        cal = _calendar(country, subdiv, day.year)
        if cal is not None and day in cal:
            return f"{day.isoformat()} is a public holiday in {country} ({cal.get(day)})"
    return None


def _local(t: datetime, zone: ZoneInfo) -> str:
    t = t.astimezone(zone)
    return f"{_DAY_NAMES[t.weekday()][:3]} {t:%Y-%m-%d %H:%M} {zone.key}"


def next_allowed(start: datetime, zone: ZoneInfo, country: str | None, subdiv: str | None,
                 settings: PolicySettings) -> tuple[datetime | None, str | None]:
    """The first moment at or after ``start`` inside the allowed hours of a working day.

    Returns that moment (UTC) and why ``start`` itself was not allowed (None if it was).
    """
    local = start.astimezone(zone)
    why = None
    for _ in range(400):
        d = local.date()
        off = day_off(d, country, subdiv, settings)
        if off:
            why = why or off
            local = datetime.combine(d + timedelta(days=1), settings.start, zone)
        elif local.time() < settings.start:
            why = why or f"{local:%H:%M} {zone.key} is before allowed hours {settings.hours}"
            local = datetime.combine(d, settings.start, zone)
        elif local.time() >= settings.end:
            why = why or f"{local:%H:%M} {zone.key} is after allowed hours {settings.hours}"
            local = datetime.combine(d + timedelta(days=1), settings.start, zone)
        else:
            return local.astimezone(timezone.utc), why
    return None, "no working day in the next year (check [contact_policy].country_rest_days)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _hours(td: timedelta) -> str:
    h = td.total_seconds() / 3600
    return f"{h:.0f} h" if h >= 1 else f"{td.total_seconds() / 60:.0f} min"


def decide(*, message_class: str, kind: str, customer: Mapping, due_at: datetime, now: datetime,
           recent_marketing: Sequence[datetime] = (), settings: PolicySettings | None = None,
           timezone_hook: TimezoneHook | None = None, veto_hook: VetoHook | None = None,
           message: Mapping | None = None) -> Decision:
    """Decide whether a message goes out now (``send``), later (``defer``) or never (``suppress``).

    :param recent_marketing: when this customer's marketing messages went out
        (any channel); only the ones before the moment of sending count.
    :param timezone_hook: ``hook(customer) -> zone name | None``.
    :param veto_hook: ``hook(message, customer, when) -> reason | None``,
        asked only when the answer would otherwise be ``send``.
    :param message: the message row, passed to the veto hook (a stand-in is
        made from ``kind`` and ``message_class`` when absent).
    """
    check_class(message_class)
    settings = settings or PolicySettings()
    now = _aware(now, "now")
    due_at = _aware(due_at, "due_at")
    marketing = message_class == MARKETING

    if customer.get("redacted_at"):
        return Decision(SUPPRESS, None, "the customer's personal data was erased")
    if marketing:
        consent = customer.get("marketing_consent")
        if consent != "subscribed":
            return Decision(SUPPRESS, None, f"no marketing consent ({consent or 'none recorded'})")
    elif kind in settings.courtesy_kinds and customer.get("marketing_consent") == "unsubscribed":
        return Decision(SUPPRESS, None, f"the customer unsubscribed; {kind} is a courtesy message they may decline")

    zone, zone_source = resolve_timezone(customer, settings, timezone_hook)
    country = (customer.get("country") or "").upper() or None
    subdiv = (customer.get("province") or "").upper() or None
    safety = kind in settings.safety_kinds and settings.safety_ignores_quiet_hours
    sent = sorted(_aware(t, "recent_marketing[]") for t in recent_marketing) if marketing else []

    t = max(due_at, now)
    why = None
    for _ in range(50):
        if not safety:
            t, moved = next_allowed(t, zone, country, subdiv, settings)
            if t is None:
                return Decision(SUPPRESS, None, moved, zone.key)
            why = why or moved
        if not marketing:
            break
        in_window = [s for s in sent if t - WINDOW < s <= t]
        if len(in_window) >= settings.max_marketing_per_week:
            when = "the last 7 days" if t <= now else f"the 7 days before {_local(t, zone)}"
            return Decision(SUPPRESS, None,
                            f"marketing frequency cap: {_plural(len(in_window), 'marketing message')} "
                            f"in {when} (max {settings.max_marketing_per_week})", zone.key)
        before = [s for s in sent if s <= t]
        if before and t - before[-1] < settings.min_gap:
            why = why or (f"last marketing message went out {_hours(t - before[-1])} earlier, "
                          f"minimum gap {_hours(settings.min_gap)}")
            t = before[-1] + settings.min_gap
            continue
        break

    if t <= now:
        if veto_hook is not None:
            msg = message if message is not None else {"kind": kind, "message_class": message_class,
                                                       "due_at": due_at}
            veto = veto_hook(msg, customer, now)
            if veto:
                return Decision(SUPPRESS, None, veto, zone.key)
        return Decision(SEND, now, _send_reason(message_class, kind, safety, now, zone, zone_source,
                                                sent, settings), zone.key)
    if why is None:  # not due yet, and nothing else stood in the way
        why = f"not due until {_local(due_at, zone)}"
    return Decision(DEFER, t, f"{why}; next allowed moment {_local(t, zone)}", zone.key)


def _send_reason(message_class, kind, safety, now, zone, zone_source, sent, settings) -> str:
    local = now.astimezone(zone)
    if safety:
        where = f"safety notice ({kind}): quiet hours and rest days do not apply"
    else:
        where = f"{local:%H:%M} {zone.key} ({zone_source}) is within allowed hours {settings.hours}"
    if message_class == MARKETING:
        n = sum(1 for s in sent if now - WINDOW < s <= now)
        return (f"{where}; subscribed; {_plural(n, 'marketing message')} in the last 7 days "
                f"(max {settings.max_marketing_per_week})")
    return f"{where}; transactional, so no consent or frequency cap applies"

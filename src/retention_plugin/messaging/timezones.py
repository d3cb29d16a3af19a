"""A customer's time zone from the address: country, and province where a country spans several.

Shopify gives a country code and a province code, never a time zone. For
countries with one zone, CLDR (through Babel) knows it. For the large
countries with several, the province decides (US, CA, AU, BR, RU, MX); without
a province, the zone where most of the country's people live is the default.
A store overrides any country with ``[contact_policy] country_timezones``, and
a plugin overrides any customer with the ``customer_timezone`` hook.

Where a state or province itself spans zones, the zone of most of its people
is used.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import get_global

_NY, _CHI, _DEN, _LA = "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"

PROVINCE_ZONES: dict[str, dict[str, str]] = {
    "US": {
        "AL": _CHI, "AK": "America/Anchorage", "AZ": "America/Phoenix", "AR": _CHI, "CA": _LA, "CO": _DEN,
        "CT": _NY, "DE": _NY, "DC": _NY, "FL": _NY, "GA": _NY, "HI": "Pacific/Honolulu", "ID": "America/Boise",
        "IL": _CHI, "IN": "America/Indiana/Indianapolis", "IA": _CHI, "KS": _CHI, "KY": "America/Kentucky/Louisville",
        "LA": _CHI, "ME": _NY, "MD": _NY, "MA": _NY, "MI": "America/Detroit", "MN": _CHI, "MS": _CHI, "MO": _CHI,
        "MT": _DEN, "NE": _CHI, "NV": _LA, "NH": _NY, "NJ": _NY, "NM": _DEN, "NY": _NY, "NC": _NY, "ND": _CHI,
        "OH": _NY, "OK": _CHI, "OR": _LA, "PA": _NY, "RI": _NY, "SC": _NY, "SD": _CHI, "TN": _CHI, "TX": _CHI,
        "UT": _DEN, "VT": _NY, "VA": _NY, "WA": _LA, "WV": _NY, "WI": _CHI, "WY": _DEN,
        "PR": "America/Puerto_Rico", "VI": "America/St_Thomas", "GU": "Pacific/Guam", "AS": "Pacific/Pago_Pago",
        "MP": "Pacific/Saipan", "UM": "Pacific/Honolulu",
    },
    "CA": {
        "AB": "America/Edmonton", "BC": "America/Vancouver", "MB": "America/Winnipeg", "NB": "America/Moncton",
        "NL": "America/St_Johns", "NS": "America/Halifax", "NT": "America/Edmonton", "NU": "America/Iqaluit",
        "ON": "America/Toronto", "PE": "America/Halifax", "QC": "America/Toronto", "SK": "America/Regina",
        "YT": "America/Whitehorse",
    },
    "AU": {
        "ACT": "Australia/Sydney", "NSW": "Australia/Sydney", "NT": "Australia/Darwin", "QLD": "Australia/Brisbane",
        "SA": "Australia/Adelaide", "TAS": "Australia/Hobart", "VIC": "Australia/Melbourne", "WA": "Australia/Perth",
    },
    "BR": {
        "AC": "America/Rio_Branco", "AL": "America/Maceio", "AP": "America/Belem", "AM": "America/Manaus",
        "BA": "America/Bahia", "CE": "America/Fortaleza", "DF": "America/Sao_Paulo", "ES": "America/Sao_Paulo",
        "GO": "America/Sao_Paulo", "MA": "America/Fortaleza", "MT": "America/Cuiaba", "MS": "America/Campo_Grande",
        "MG": "America/Sao_Paulo", "PA": "America/Belem", "PB": "America/Fortaleza", "PR": "America/Sao_Paulo",
        "PE": "America/Recife", "PI": "America/Fortaleza", "RJ": "America/Sao_Paulo", "RN": "America/Fortaleza",
        "RS": "America/Sao_Paulo", "RO": "America/Porto_Velho", "RR": "America/Boa_Vista", "SC": "America/Sao_Paulo",
        "SP": "America/Sao_Paulo", "SE": "America/Maceio", "TO": "America/Araguaina",
    },
    "MX": {
        "BC": "America/Tijuana", "BCS": "America/Mazatlan", "SON": "America/Hermosillo", "SIN": "America/Mazatlan",
        "NAY": "America/Mazatlan", "CHIH": "America/Chihuahua", "Q ROO": "America/Cancun", "ROO": "America/Cancun",
        "YUC": "America/Merida", "CAMP": "America/Merida", "NL": "America/Monterrey", "COAH": "America/Monterrey",
        "TAMPS": "America/Matamoros",
    },  # every other state: America/Mexico_City
    "RU": {
        "KGD": "Europe/Kaliningrad",
        "SAM": "Europe/Samara", "UD": "Europe/Samara", "AST": "Europe/Astrakhan", "SAR": "Europe/Saratov",
        "ULY": "Europe/Ulyanovsk", "VGG": "Europe/Volgograd",
        "SVE": "Asia/Yekaterinburg", "CHE": "Asia/Yekaterinburg", "KGN": "Asia/Yekaterinburg",
        "TYU": "Asia/Yekaterinburg", "KHM": "Asia/Yekaterinburg", "YAN": "Asia/Yekaterinburg",
        "ORE": "Asia/Yekaterinburg", "PER": "Asia/Yekaterinburg", "BA": "Asia/Yekaterinburg",
        "OMS": "Asia/Omsk",
        "NVS": "Asia/Novosibirsk", "TOM": "Asia/Tomsk", "ALT": "Asia/Barnaul", "AL": "Asia/Barnaul",
        "KEM": "Asia/Novokuznetsk", "KYA": "Asia/Krasnoyarsk", "KK": "Asia/Krasnoyarsk", "TY": "Asia/Krasnoyarsk",
        "IRK": "Asia/Irkutsk", "BU": "Asia/Irkutsk",
        "SA": "Asia/Yakutsk", "AMU": "Asia/Yakutsk", "ZAB": "Asia/Chita",
        "PRI": "Asia/Vladivostok", "KHA": "Asia/Vladivostok", "YEV": "Asia/Vladivostok",
        "MAG": "Asia/Magadan", "SAK": "Asia/Sakhalin",
        "KAM": "Asia/Kamchatka", "CHU": "Asia/Anadyr",
    },  # every other region: Europe/Moscow
}

#: Where a country spans several zones: the zone most of its people live in.
COUNTRY_DEFAULT_ZONES: dict[str, str] = {
    "US": _NY, "CA": "America/Toronto", "AU": "Australia/Sydney", "BR": "America/Sao_Paulo",
    "MX": "America/Mexico_City", "RU": "Europe/Moscow", "CN": "Asia/Shanghai", "KZ": "Asia/Almaty",
    "ID": "Asia/Jakarta", "DE": "Europe/Berlin", "ES": "Europe/Madrid", "PT": "Europe/Lisbon",
    "AR": "America/Argentina/Buenos_Aires", "CL": "America/Santiago", "EC": "America/Guayaquil",
    "UA": "Europe/Kyiv", "NZ": "Pacific/Auckland", "CD": "Africa/Kinshasa", "MN": "Asia/Ulaanbaatar",
    "UZ": "Asia/Tashkent", "MY": "Asia/Kuala_Lumpur", "PF": "Pacific/Tahiti", "KI": "Pacific/Tarawa",
    "FM": "Pacific/Pohnpei", "PG": "Pacific/Port_Moresby", "GL": "America/Nuuk", "CY": "Asia/Nicosia",
    "EG": "Africa/Cairo", "GE": "Asia/Tbilisi", "PS": "Asia/Hebron", "MH": "Pacific/Majuro",
    "UM": "Pacific/Honolulu",
}


@lru_cache(maxsize=1024)
def valid_zone(name: str | None) -> ZoneInfo | None:
    if not name or not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# Asked for every message's customer; the answer only depends on the (few) addresses' codes.
@lru_cache(maxsize=4096)
def country_zone(country: str | None, province: str | None = None) -> str | None:
    """The IANA zone for an address, or None when the country is unknown."""
    if not country:
        return None
    cc = country.strip().upper()
    prov = (province or "").strip().upper()
    if prov.startswith(cc + "-"):  # ISO 3166-2 form, e.g. US-CA
        prov = prov[len(cc) + 1:]
    by_province = PROVINCE_ZONES.get(cc)
    if by_province and prov and valid_zone(by_province.get(prov)):
        return by_province[prov]
    default = COUNTRY_DEFAULT_ZONES.get(cc)
    if valid_zone(default):
        return default
    for zone in get_global("territory_zones").get(cc, ()):
        if valid_zone(zone):
            return zone
    return None

"""The birthday form on the customer's rewards page (the storefront's ``storefront_sections`` and
``storefront_action`` hooks).

A customer without a stored birthday (none from the ``[loyalty.earn] birthday_metafield`` either)
sets it once here; after that the section only shows the month and day. Loyalty and the
storefront are separate plugins that may not import each other, so the form reaches the page,
and the page's POST reaches :func:`act`, through the hooks.
"""

from __future__ import annotations

from datetime import date
from html import escape

from .activities import birthday_of, set_birthday
from .settings import settings_of

ACTION = "birthday"
#: A year before this is a typo, not a birthday.
MIN_YEAR = 1900

#: The section's words per language the page speaks; other locales fall back to English.
TEXTS: dict[str, dict[str, str]] = {
    "en": {"title": "Your birthday", "blurb": "Tell us your birthday and get {points} points on it every year.",
           "label": "Date of birth", "save": "Save", "stored": "Your birthday: {date}.",
           "saved": "Saved. You get {points} points on your birthday.",
           "already": "Your birthday is already set and cannot be changed here.",
           "invalid": "Date of birth: enter a real date, such as 1990-04-23.",
           "future": "Date of birth: the date cannot be in the future.",
           "too_old": "Date of birth: the year must be 1900 or later.", "format": "{day} {month}",
           "months": "January February March April May June July August September October November December"},
    "lt": {"title": "Jūsų gimtadienis", "blurb": "Nurodykite savo gimtadienį ir kasmet jo proga gaukite {points} tšk.",
           "label": "Gimimo data", "save": "Išsaugoti", "stored": "Jūsų gimtadienis: {date}.",
           "saved": "Išsaugota. Gimtadienio proga gausite {points} tšk.",
           "already": "Jūsų gimtadienis jau nurodytas, čia jo pakeisti negalima.",
           "invalid": "Gimimo data: įveskite tikrą datą, pvz., 1990-04-23.",
           "future": "Gimimo data: data negali būti ateityje.",
           "too_old": "Gimimo data: metai turi būti 1900 ar vėlesni.", "format": "{month} {day} d.",
           "months": "sausio vasario kovo balandžio gegužės birželio liepos rugpjūčio rugsėjo spalio lapkričio "
                     "gruodžio"},
    "sl": {"title": "Vaš rojstni dan", "blurb": "Povejte nam svoj rojstni dan in vsako leto ob njem prejmite "
                                                 "{points} točk.",
           "label": "Datum rojstva", "save": "Shrani", "stored": "Vaš rojstni dan: {date}.",
           "saved": "Shranjeno. Ob rojstnem dnevu prejmete {points} točk.",
           "already": "Vaš rojstni dan je že vpisan in ga tukaj ni mogoče spremeniti.",
           "invalid": "Datum rojstva: vpišite pravi datum, npr. 1990-04-23.",
           "future": "Datum rojstva: datum ne more biti v prihodnosti.",
           "too_old": "Datum rojstva: leto mora biti 1900 ali poznejše.", "format": "{day}. {month}",
           "months": "januarja februarja marca aprila maja junija julija avgusta septembra oktobra novembra "
                     "decembra"},
    "ru": {"title": "Ваш день рождения", "blurb": "Укажите свой день рождения и получайте в этот день {points} "
                                                   "баллов каждый год.",
           "label": "Дата рождения", "save": "Сохранить", "stored": "Ваш день рождения: {date}.",
           "saved": "Сохранено. В день рождения вы получите баллы: {points}.",
           "already": "Ваш день рождения уже указан, изменить его здесь нельзя.",
           "invalid": "Дата рождения: введите настоящую дату, например 1990-04-23.",
           "future": "Дата рождения: дата не может быть в будущем.",
           "too_old": "Дата рождения: год должен быть не раньше 1900.", "format": "{day} {month}",
           "months": "января февраля марта апреля мая июня июля августа сентября октября ноября декабря"},
    "ka": {"title": "თქვენი დაბადების დღე", "blurb": "მიუთითეთ დაბადების დღე და ყოველ წელს ამ დღეს მიიღეთ "
                                                      "{points} ქულა.",
           "label": "დაბადების თარიღი", "save": "შენახვა", "stored": "თქვენი დაბადების დღე: {date}.",
           "saved": "შენახულია. დაბადების დღეზე მიიღებთ {points} ქულას.",
           "already": "თქვენი დაბადების დღე უკვე მითითებულია და აქ მისი შეცვლა შეუძლებელია.",
           "invalid": "დაბადების თარიღი: შეიყვანეთ ნამდვილი თარიღი, მაგ. 1990-04-23.",
           "future": "დაბადების თარიღი: თარიღი არ შეიძლება იყოს მომავალში.",
           "too_old": "დაბადების თარიღი: წელი უნდა იყოს 1900 ან უფრო გვიანდელი.", "format": "{day} {month}",
           "months": "იანვარი თებერვალი მარტი აპრილი მაისი ივნისი ივლისი აგვისტო სექტემბერი ოქტომბერი ნოემბერი "
                     "დეკემბერი"},
}


def _words(locale: str) -> dict[str, str]:
    return TEXTS.get(locale) or TEXTS.get(locale.split("-")[0]) or TEXTS["en"]


def _safe(text) -> str:
    # Escape everything, and braces too: the page may be rendered as Liquid by the shop's theme.
    return escape(str(text), quote=True).replace("{", "&#123;").replace("}", "&#125;")


def _points(ctx) -> int:
    return int(settings_of(ctx)["earn"]["birthday"])


def month_day(locale: str, month: int, day: int) -> str:
    w = _words(locale)
    return w["format"].format(day=day, month=w["months"].split()[month - 1])


def section(ctx, customer_id: int, locale: str, post_url: str, csrf: str) -> dict | None:
    """The section, or None while ``[loyalty.earn] birthday`` gives no points."""
    points = _points(ctx)
    if points <= 0:
        return None
    w = _words(locale)
    stored = birthday_of(ctx.conn, customer_id)
    if stored is not None:
        html = f"<p id='rp-birthday'>{_safe(w['stored'].format(date=month_day(locale, *stored)))}</p>"
    else:
        today = ctx.now.date().isoformat()
        html = (f"<p>{_safe(w['blurb'].format(points=points))}</p>"
                f"<form method='post' action='{_safe(post_url)}' id='rp-birthday-form'>"
                f"<input type='hidden' name='csrf' value='{_safe(csrf)}'>"
                f"<input type='hidden' name='action' value='{ACTION}'>"
                f"<label for='rp-birthday-date'>{_safe(w['label'])}</label> "
                f"<input type='date' id='rp-birthday-date' name='birthday' required min='{MIN_YEAR}-01-01' "
                f"max='{today}'> <button type='submit'>{_safe(w['save'])}</button></form>")
    return {"id": "birthday", "title": w["title"], "html": html}


def act(ctx, customer_id: int, form, locale: str) -> dict | None:
    """Store the posted birthday once; None for another plugin's action or while the rule is off."""
    points = _points(ctx)
    if points <= 0:
        return None
    w = _words(locale)
    text = str(form.get("birthday") or "").strip()
    try:
        # Only the form's YYYY-MM-DD: fromisoformat would also take "19900423" or a week date.
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            raise ValueError(text)
        born = date.fromisoformat(text)
    except ValueError:
        return {"ok": False, "message": w["invalid"]}
    if born.year < MIN_YEAR:
        return {"ok": False, "message": w["too_old"]}
    if born > ctx.now.date():
        return {"ok": False, "message": w["future"]}
    if not set_birthday(ctx.conn, customer_id, born, ctx.now, source="storefront"):
        return {"ok": False, "message": w["already"]}
    return {"ok": True, "message": w["saved"].format(points=points)}

"""The referral link on the customer's rewards page (the storefront's ``storefront_sections`` hook).

Referrals and the storefront are separate plugins that may not import each other, so the link
reaches the page through the hook: switching either plugin off simply drops the section.
"""

from __future__ import annotations

from html import escape

from .engine import QUALIFIED, facts

#: The section's words in each language the page speaks; other locales fall back to English.
TEXTS = {
    "en": ("Invite a friend", "Share your link: your friend gets a discount on their first order, and you earn "
           "points once it is paid.", "Friends who qualified"),
    "lt": ("Pakviesk draugą", "Pasidalyk savo nuoroda: draugas gaus nuolaidą pirmajam užsakymui, o tu gausi "
           "taškų, kai jis bus apmokėtas.", "Draugai, kurių užsakymai įskaityti"),
    "sl": ("Povabi prijatelja", "Deli svojo povezavo: prijatelj dobi popust pri prvem naročilu, ti pa točke, "
           "ko je plačano.", "Prijatelji, ki so se šteli"),
    "ru": ("Пригласите друга", "Поделитесь ссылкой: друг получит скидку на первый заказ, а вы — баллы, когда "
           "он будет оплачен.", "Друзья, чьи заказы засчитаны"),
    "ka": ("მოიწვიე მეგობარი", "გაუზიარე შენი ბმული: მეგობარი პირველ შეკვეთაზე ფასდაკლებას მიიღებს, შენ კი "
           "ქულებს, როცა ის გადახდილი იქნება.", "მეგობრები, რომელთა შეკვეთაც ჩაითვალა"),
}


def section(ctx, customer_id: int, locale: str) -> dict | None:
    """The section for this customer, or None while ``[links]`` cannot sign a link."""
    known = facts(ctx, customer_id)
    if known["link"] is None:
        return None
    title, blurb, counted = TEXTS.get(locale, TEXTS["en"])

    # Escape everything, and braces too: the page may be rendered as Liquid by the shop's theme.
    def safe(text: str) -> str:
        return escape(text, quote=True).replace("{", "&#123;").replace("}", "&#125;")

    html = (f"<p>{safe(blurb)}</p>"
            f"<p><input id='referral-link' type='text' readonly value='{safe(known['link'])}' "
            f"aria-label='{safe(title)}'></p>"
            f"<p>{safe(counted)}: <strong>{int(known[QUALIFIED])}</strong></p>")
    return {"id": "referrals", "title": title, "html": html}

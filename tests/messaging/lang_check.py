"""Is there English in a message that should be in another language?

A small check, not a language detector: it strips what is *meant* to stay as
it is (URLs, e-mail addresses, discount codes, order numbers, and the values a
test names: product names, the shop's and the customer's names), then looks
for common English words. For Russian and Georgian, which are not written in
Latin letters, any Latin word left over is English (or at least not theirs).

The word list leaves out English words that are also Lithuanian or Slovenian
words ("in", "to", "a", "on", "so", "me", "do", "no", "be", "man", "ten",
"one", "more", "link", "list"), so a correct Slovenian "in" is no false alarm.
"""

from __future__ import annotations

import html
import re
from typing import Iterable

ENGLISH = frozenset("""
the and you your yours we our ours us they them their it its is are was were been being am
of for with from by at or if but than then that this these those there here what when where
which who whom why how will would shall should can could may might must not have has had
having does did done don't doesn't didn't it's we're we'll we've you're you'll you've i'm i'll
won't can't isn't aren't let's hi hello dear regards best thanks thank sorry please just
only also again still soon now new next off out up over into about after before until
all any each every some such very really way day days week weeks time times get got
make made take taken give given keep use used using need needs want like see look
order orders ordered ordering delivery deliver delivered shipped shipping parcel carrier
late delayed delay cancel cancelled code codes valid expire expires expired expiry
point points reward rewards free earned balance left account loyalty
recall recalled notice safety quality product products problem instructions remedy
stop using confirm confirmed received receive receiving read click clicks
unsubscribe unsubscribed subscribed subscription emails email message messages
reply answer answers rating rate good bad well fine right wrong nothing anything
store shop shopping customer customers team service services booking book due
restock reorder running low plenty miss missed what's back ready waiting
page link's form send sent yes enter checkout cart total
""".split())

_URL = re.compile(r"(?:https?://|mailto:|www\.)\S+")
_EMAIL = re.compile(r"\S+@\S+")
_CODE = re.compile(r"\b[A-Z0-9]+(?:-[A-Z0-9]+)+\b")  # THANKS-7KQ2, SORRY-3XP9Q2
_TAG = re.compile(r"<[^>]+>")  # markup in a page (attribute values too)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")  # whole words of any script: "atšaukti" is one word
_ASCII = re.compile(r"[A-Za-z']+")
NON_LATIN = ("ru", "ka")


def _strip(text: str, keep: Iterable[str]) -> str:
    text = html.unescape(_TAG.sub(" ", text))
    for value in sorted((v for v in keep if v), key=len, reverse=True):  # longest first: "Kettle K1" before "K1"
        text = text.replace(value, " ")
    text = _URL.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    return _CODE.sub(" ", text)


def english_words(text: str, language: str, keep: Iterable[str] = ()) -> list[str]:
    """The English words in ``text``, which should be in ``language``; ``keep``: values to ignore."""
    words = [w for w in _WORD.findall(_strip(text, keep)) if _ASCII.fullmatch(w)]
    if language.split("-")[0] in NON_LATIN:
        return [w for w in words if len(w) > 1]
    return [w for w in words if w.lower() in ENGLISH]

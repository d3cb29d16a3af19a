"""The built-in complaint vocabulary of five languages, and the words that change what it means.

A keyword says a customer *may* be reporting a problem; the words around it
say whether they are. For each language (``en``, ``lt``, ``sl``, ``ru``,
``ka``):

- ``keywords``: ``{severity: [word, ...]}``. Whole words, case-insensitive; a
  trailing ``*`` makes a stem ("sugadint*" catches "sugadintas"); inner spaces
  match any whitespace. ``[recovery.complaints] keywords`` replaces a
  language's list; the cues below stay.
- ``negators``: a keyword with one of these up to four words before it, in the
  same clause, is negated ("nothing was broken or damaged", "ни один не
  повреждён"). ``negator_prefix`` (Lithuanian) treats a verb with the
  negative prefix *ne-* the same ("nebuvo pažeista"), except the listed words
  that only look negative. ``concord``: the negative pronouns of languages
  with negative concord, which before a negative keyword agree with it
  ("nieko negavau", "ничего не получил": I received nothing).
- ``post_negators``: the same, up to two words *after* the keyword (Georgian
  puts the negation before the verb, after the adjective: "დაზიანებული ნივთი
  არასდროს მიმიღია"; "დაგვიანების გარეშე").
- ``reassurance``: in the same sentence, a low-severity keyword is not a
  complaint ("thanks for telling me about the delay, no problem at all").
- ``conditionals``: before the keyword in the same sentence, it is
  hypothetical ("if an item arrives damaged, what should I do?").
- ``policy``: anywhere in the sentence, it is an enquiry about the shop's
  rules ("question about your refund policy").
- ``why``: a question starting with one of these is a grievance ("why did my
  parcel arrive damaged?"); any other question is an enquiry, unless its
  keyword is ``accusatory`` ("is this a scam?").
- ``asking``: a subject starting with these is a question, with or without
  a question mark ("Question about missing items").
- ``contrast`` and ``and``: words that start a new clause ("but", "however",
  "and"): a negation before them does not reach past them (nor does a comma).
- ``not_goods``: after a negative keyword ("negavau", "nisem dobil"), these
  say it is about an email, invoice or code, not the goods.
"""

from __future__ import annotations

LEXICON: dict[str, dict] = {
    "en": {
        "keywords": {
            "high": ["broken", "broke", "smashed", "shattered", "cracked", "chipped", "damag*", "never arrived",
                     "never received", "not received", "haven't received", "have not received", "didn't receive",
                     "did not receive", "hasn't arrived", "has not arrived", "dangerous", "unsafe", "injur*",
                     "sparks", "chargeback*", "lawyer*", "scam*", "fraud*", "ruined"],
            "medium": ["complain*", "complaint*", "disappointed", "disappointing", "unacceptable", "disgusted",
                       "refund me", "want a refund", "want my money back", "money back", "please refund",
                       "demand a refund", "need a refund", "full refund now", "wrong item*", "wrong product*",
                       "not what i ordered", "someone else's order", "missing", "defective", "faulty",
                       "not working", "doesn't work", "does not work", "stopped working", "leak*", "poor quality",
                       "bad quality", "poor packaging", "terrible", "awful", "horrible", "worst", "rude",
                       "charged twice", "double charge*", "no answer", "no reply", "no response", "nobody answers",
                       "nobody helps", "not what i paid for", "unusable", "soaked"],
            "low": ["late", "delayed", "delay*", "still waiting", "still nothing", "not happy", "unhappy",
                    "frustrat*", "lost", "stuck", "no update"],
        },
        "negators": ["no", "not", "never", "nothing", "none", "nor", "neither", "without", "don't", "didn't",
                     "doesn't", "wasn't", "weren't", "isn't", "aren't", "haven't", "hasn't", "won't", "nobody"],
        "concord": [],
        "post_negators": [],
        "reassurance": ["no problem", "not a problem", "no worries", "no rush", "not in a hurry",
                        "doesn't matter", "all good", "everything is fine"],
        "conditionals": ["if", "in case", "whether", "what happens", "in the event", "should it", "would",
                         "what if", "worried", "afraid"],
        "policy": ["policy", "policies", "warranty", "guarantee", "insured", "insurance", "terms", "conditions",
                   "how long does", "how long do", "how many days", "do you offer", "return window"],
        "why": ["why", "how come"],
        "accusatory": ["scam*", "fraud*", "unacceptable", "chargeback*", "lawyer*"],
        "asking": ["question", "quick question", "enquiry", "inquiry", "query"],
        "contrast": ["but", "however", "although", "though", "yet"],
        "and": ["and"],
        "not_goods": ["email", "mail", "confirmation", "invoice", "notification", "code", "newsletter",
                      "tracking"],
    },
    "lt": {
        "keywords": {
            "high": ["sugadint*", "sudužus*", "sudužęs", "sudužo", "sudaužyt*", "sulūž*", "nulūž*", "pažeist*",
                     "apgadint*", "įskil*", "atskil*", "negavau", "negavome", "pavoj*", "sukčia*", "apgavyst*",
                     "kibirkšč*", "permirk*"],
            "medium": ["skund*", "nusivyl*", "nepriimtin*", "grąžinkite pinigus", "grąžintumėte pinigus",
                       "grąžinti pinigus", "atgauti pinigus", "pinigų grąžinim*", "ne ta prekė", "ne tą prekę",
                       "ne tos prekės", "svetimą užsakymą", "trūksta", "brokas", "broko", "broku", "brokuot*",
                       "neveikia", "nustojo veikti",
                       "nespausdina", "neatpažįsta", "teka", "prakiur*", "ištekėj*", "išsiliej*",
                       "prasta kokybė", "prastai", "siaubing*", "jokio atsakymo", "niekas neatsako",
                       "niekas nepadeda", "du kartus", "du mokėjimus", "dvigub*", "netinkam*"],
            "low": ["vėluoja", "vėlavim*", "vėluos*", "vis dar laukiu", "nepatenkint*", "erzina",
                    "jokios informacijos", "dingęs", "dingo"],
        },
        "negators": ["ne", "nei", "niekas", "nieko", "niekada", "jokių", "jokio", "jokios", "be", "nėra",
                     "nebuvo", "nesu"],
        "concord": ["nei", "niekas", "nieko", "niekada", "jokių", "jokio", "jokios"],
        "negator_prefix": "ne",
        # Words that start with ne- but do not negate.
        "not_negators": ["neseniai", "nemokamai", "nemokam*", "nedaug", "nedidel*", "negavau", "negavome",
                         "neveikia", "nespausdina", "neatpažįsta", "nepriimtin*", "nepatenkint*", "neatsako",
                         "nepadeda", "neišsiuntėte", "nežinau"],
        "post_negators": [],
        "reassurance": ["jokių problemų", "ne problema", "nieko tokio", "neskubu", "viskas gerai"],
        "conditionals": ["jei", "jeigu", "tuo atveju", "kas bus", "kas nutinka", "kas būna", "bijojau", "bijau"],
        "policy": ["politik*", "sąlyg*", "garantij*", "taisykl*", "apdraust*", "per kiek", "ar taikote"],
        "why": ["kodėl"],
        "accusatory": ["sukčia*", "apgavyst*", "nepriimtin*"],
        "asking": ["klausimas", "trumpas klausimas", "užklausa"],
        "contrast": ["bet", "tačiau", "nors", "o"],
        "and": ["ir"],
        "not_goods": ["laišk*", "el", "pranešim*", "sąskait*", "kod*", "patvirtinim*", "sekimo"],
    },
    "sl": {
        "keywords": {
            "high": ["razbit*", "razbil*", "poškodovan*", "počen*", "okrušen*", "nisem prejel*",
                     "nisem dobil*", "nevarn*", "prevar*", "uničen*", "iskri", "premočen*"],
            "medium": ["pritožb*", "razočaran*", "nesprejemljiv*", "vračilo denarja", "vrnite denar",
                       "vrnite mi denar", "napačen izdelek", "napačnega izdelka", "manjka", "okvarjen*",
                       "pokvarjen*", "ne deluje", "prenehal delovati", "ne tiska", "ne prepozna", "pušča",
                       "iztekl*", "slaba kakovost", "slabo zapakiran*", "grozn*", "nobenega odgovora",
                       "nihče ne odgovori", "nihče ne pomaga", "dvakrat bremen*", "dve plačili", "dvojn*",
                       "neuporab*"],
            "low": ["zamuja", "zamud*", "še vedno čakam", "nezadovolj*", "nisem zadovoljn*", "moteče",
                    "izgubljen*", "nobenih informacij"],
        },
        "negators": ["ne", "ni", "nič", "ničesar", "nobena", "nobene", "noben", "nobeden", "nobenega", "brez",
                     "niso", "nikoli", "nisem", "nočem", "niti"],
        "concord": ["nič", "ničesar", "nobena", "nobene", "noben", "nobeden", "nobenega", "nikoli", "niti"],
        "post_negators": [],
        "reassurance": ["ni problema", "ni problem", "ni težav", "se mi ne mudi", "vse v redu"],
        "conditionals": ["če", "v primeru", "kaj se zgodi", "kaj če", "bala sem se", "bal sem se", "bojim se",
                         "strah me je"],
        "policy": ["politik*", "pogoj*", "garancij*", "pravil*", "zavarovan*", "koliko časa traja",
                   "v koliko dneh", "ali imate popust"],
        "why": ["zakaj"],
        "accusatory": ["prevar*", "nesprejemljiv*"],
        "asking": ["vprašanje", "kratko vprašanje", "poizvedba"],
        "contrast": ["ampak", "vendar", "čeprav", "a", "pa"],
        "and": ["in"],
        "not_goods": ["pošt*", "sporočil*", "račun*", "kod*", "potrdil*", "številk*"],
    },
    "ru": {
        "keywords": {
            "high": ["сломан*", "разбит*", "разбил*", "поврежд*", "треснут*", "треснул*", "сколом", "не получил*",
                     "опасн*", "мошенн*", "обман*", "испорчен*", "искрит", "мокр*"],
            "medium": ["жалоб*", "разочаров*", "неприемлем*", "верните деньги", "вернуть деньги",
                       "вернуть второй платёж", "возврат денег", "не тот товар", "не хватает", "брак*",
                       "бракован*", "не работает", "перестал работать", "не печатает", "не распознаёт",
                       "течёт", "протек*", "вытекл*", "плохое качество", "плохо упаковано", "ужасн*",
                       "никакого ответа", "ни одного ответа", "никто не отвечает", "никто не помогает",
                       "дважды", "двойное списание", "два платежа", "чужой заказ", "непригодн*"],
            "low": ["задерж*", "опаздыва*", "всё ещё жду", "все еще жду", "до сих пор ничего", "недовол*",
                    "раздражает", "потерял*", "никакой информации"],
        },
        "negators": ["не", "нет", "ни", "ничего", "ничто", "никогда", "никаких", "никакого", "без", "нисколько"],
        "concord": ["ни", "ничего", "ничто", "никогда", "никаких", "никакого", "нисколько"],
        "post_negators": [],
        "reassurance": ["не проблема", "никаких проблем", "ничего страшного", "не тороплюсь", "всё в порядке",
                        "все в порядке"],
        "conditionals": ["если", "в случае", "что будет", "что если", "боялась", "боялся", "боюсь"],
        "policy": ["политик*", "услови*", "гаранти*", "правил*", "застрахован*", "через сколько", "сколько дней",
                   "сколько обычно", "есть ли скидка"],
        "why": ["почему", "зачем", "отчего"],
        "accusatory": ["мошенн*", "обман*", "неприемлем*"],
        "asking": ["вопрос", "короткий вопрос", "запрос"],
        "contrast": ["но", "однако", "хотя", "а"],
        "and": ["и"],
        "not_goods": ["письм*", "уведомлени*", "счёт*", "счет*", "код*", "подтверждени*", "трек*"],
    },
    "ka": {
        "keywords": {
            "high": ["გატეხილ*", "გატყდა", "დაზიანებულ*", "დაზიანდა", "არ მიმიღია", "ვერ მივიღე", "საშიშ*",
                     "თაღლით*", "გაბზარულ*", "მიმტვრეულ*", "ნამსხვრევ*", "ნაპერწკ*", "გაჟღენთილ*"],
            "medium": ["საჩივ*", "იმედგაცრუებ*", "მიუღებელ*", "თანხის დაბრუნებ*", "თანხა დამიბრუნოთ",
                       "თანხა დამიბრუნეთ", "არასწორი ნივთ*", "სხვისი შეკვეთა", "აკლია", "წუნ*", "არ მუშაობს",
                       "შეწყვიტა მუშაობა", "არ ბეჭდავს", "ვერ ცნობს", "ჟონავს", "დაიღვარა", "გახვრეტილ*",
                       "ცუდი ხარისხ*", "ცუდად იყო შეფუთული", "საშინელ*", "არანაირი პასუხი", "არც ერთი პასუხი",
                       "არავინ პასუხობს", "არავინ მეხმარება", "ორჯერ", "ორმაგ*", "ორი გადახდა*",
                       "გამოუსადეგარ*"],
            "low": ["აგვიანებ*", "დაგვიანებ*", "ისევ ველოდები", "უკმაყოფილ*", "გამაღიზიანებ*", "დაიკარგა",
                    "არანაირი ინფორმაცია"],
        },
        "negators": ["არ", "ვერ", "არა", "არაფერი", "არც", "არასდროს", "არანაირი", "ნურც", "უდაზიანებლად"],
        "concord": ["არაფერი", "არც", "არასდროს", "არანაირი"],
        "post_negators": ["არასდროს", "არაფერი", "გარეშე"],
        "reassurance": ["პრობლემა არ არის", "არანაირი პრობლემა", "არ მეჩქარება", "ყველაფერი რიგზეა"],
        "conditionals": ["თუ", "იმ შემთხვევაში", "რა მოხდება", "რა ხდება", "მეშინოდა", "მეშინია"],
        "policy": ["პოლიტიკ*", "პირობ*", "გარანტი*", "წეს*", "დაზღვეულ*", "რამდენ ხანში", "რამდენი დღე",
                   "ფასდაკლება გაქვთ"],
        "why": ["რატომ"],
        "accusatory": ["თაღლით*", "მიუღებელ*"],
        "asking": ["კითხვა", "მოკლე კითხვა", "შეკითხვა"],
        "contrast": ["მაგრამ", "თუმცა"],
        "and": ["და"],
        "not_goods": ["წერილ*", "შეტყობინებ*", "ინვოის*", "კოდ*", "დადასტურებ*", "თრექინგ*"],
    },
}

#: A subject starting with one of these is a reply or forward: it quotes an older subject, so only the
#: body says what this message is about.
REPLY_PREFIXES = ("re:", "fw:", "fwd:", "aw:", "sv:", "atb:", "odg:", "ответ:", "пересл:")

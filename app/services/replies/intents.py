"""What a patient's reply asks for, read without guessing. Pure: no database, no Streamlit.

**Normalising.** Arabic tashkeel and tatweel are dropped, alef forms (أ إ آ ٱ) read as ا, ى as ي,
ة as ه, ؤ as و and ئ as ي (the usual spelling variants); Arabic-Indic (٠-٩) and Persian (۰-۹)
digits read as 0-9; text is lower-cased; apostrophes join ("can't" -> "cant"); other punctuation,
symbols and emoji become spaces; a letter stretched three times or more ("نعععم", "yesss") counts
once, and a word not in the vocabulary is also tried with its doubled letters single ("yess").

**Reading.** A quick-reply button's payload is read first (the reminder templates' buttons, see
``BUTTON_PAYLOADS``); an unknown payload falls back to the text. The text must be made only of
phrases of one intent and polite filler ("please", "شكرا", "ان شاء الله", "the appointment") to
count; a single word outside the vocabulary, two different intents ("yes but can I change"), a
negation the vocabulary does not know ("not sure", "لا تلغي") or a question mark makes it
``UNCLEAR``, and the front desk reads it. Digits follow the reminder texts' convention: 1 confirms,
2 cancels, 3 asks to reschedule.

**Opt-out words.** STOP and START keep the carriers' meaning (the English keywords are
``app.reply_lint``'s carrier keywords; the Arabic ones are ours) and count only as the whole message,
as carriers count them. Two of them are also answers to a reminder: CANCEL / الغاء (opt-out, or
"cancel my appointment") and YES (opt-in, or "I will come"). ``classify(..., awaiting_answer=True)``
(the default) reads them as answers: the receiving side passes it only when an appointment of the
sender awaits an answer (a reminder of it went to that number and it is still to come); otherwise
they keep their opt-out / opt-in meaning, as before replies were understood.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from app.reply_lint import OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS
from db.enums import ReplyIntent

__all__ = ["BUTTON_PAYLOADS", "START_WORDS", "STOP_WORDS", "classify", "keyword", "normalise"]

# The payloads of the reminder templates' quick-reply buttons (twilio/quick-reply "id" of each
# action). Case does not matter. Set them exactly so in the Content template.
BUTTON_PAYLOADS: dict[str, ReplyIntent] = {
    "CONFIRM": ReplyIntent.CONFIRM,
    "CANCEL": ReplyIntent.CANCEL,
    "RESCHEDULE": ReplyIntent.RESCHEDULE,
}

# -- normalising ------------------------------------------------------------------------------------

_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")  # tashkeel, tatweel
_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي",
                          "ک": "ك", "ی": "ي"})
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_APOSTROPHES = re.compile("['\u2019\u2018\u02bc`\u00b4]")
_STRETCHED = re.compile(r"(\w)\1{2,}")
_DOUBLED = re.compile(r"(\w)\1+")
_QUESTION = re.compile("[?\u061f\u00bf\u2e2e]")
# "أجّل" (postpone, with its shadda) and "أجَل" (yes) are one word once the marks are gone.
_POSTPONE_SHADDA = re.compile("ج[\u064b-\u0650\u0652]*\u0651")


def normalise(text: str) -> str:
    """``text`` as the vocabulary is written: see the module docstring. Words joined by one space."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _ARABIC_MARKS.sub("", text).translate(_LETTERS).translate(_DIGITS).casefold()
    text = _APOSTROPHES.sub("", text)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "LN":
            kept.append(char)
        elif category != "Mn":  # other combining marks join; punctuation, symbols, emoji, spaces split
            kept.append(" ")
    return " ".join(_STRETCHED.sub(r"\1", "".join(kept)).split())


def _squeezed(word: str) -> str:
    return _DOUBLED.sub(r"\1", word)


# -- the vocabulary ---------------------------------------------------------------------------------

_FILLER = "filler"  # polite words and openers: allowed beside an intent, never one themselves
_AJAL = "ajal"  # "اجل": "yes" or "postpone" (see _POSTPONE_SHADDA); on its own never read

_CONFIRM = (
    "yes", "y", "yeah", "yea", "yep", "yup", "ya", "yah", "ok", "okay", "okey", "okie", "confirm", "confirmed",
    "i confirm", "sure", "of course", "absolutely", "definitely", "alright", "all right", "i will come",
    "ill come", "will come", "i will be there", "ill be there", "will be there", "i will attend", "will attend",
    "i am coming", "im coming", "coming", "attending", "see you", "see you then", "see you tomorrow", "1",
    "نعم", "ايوه", "ايوا", "اي", "ايه", "يب", "اكيد", "تمام", "موافق", "موافقه", "مؤكد", "أؤكد", "اكد",
    "أكدت", "تأكيد", "تم التأكيد", "حاضر", "بجي", "باجي", "بنجي", "جاي", "جايه", "جايين", "راح اجي",
    "رح اجي", "بحضر", "راح احضر", "سأحضر", "سوف احضر", "اوكي", "اوك", "اوكيه",
)
_CANCEL = (
    "cancel", "cancel it", "no", "nope", "nah", "cant come", "cannot come", "can not come", "cant make it",
    "cannot make it", "cant attend", "cannot attend", "wont come", "will not come", "wont make it",
    "wont be able to come", "will not be able to come", "not coming", "im not coming", "i am not coming",
    "i will not come", "not able to come", "wont be able to make it", "will not be able to make it",
    "wont be able to attend", "2",
    "لا", "لاء", "الغاء", "إلغاء", "الغي", "ألغي", "الغيه", "الغيها", "الغوه", "الغوا", "الغو", "كنسل",
    "كنسله", "كنسلي", "كنسلو", "كنسلوا", "ما اقدر", "ماقدر", "ما اقدر اجي", "ما اقدر احضر", "ما راح اجي",
    "ماراح اجي", "ما رح اجي", "مارح اجي", "ما راح احضر", "ما بجي", "مابجي", "لن احضر", "لن اتمكن",
    "لن اتمكن من الحضور", "مو جاي", "مب جاي", "ماني جاي", "مو قادر اجي", "اعتذر عن الحضور",
    "اعتذر عن الموعد",
)
_RESCHEDULE = (
    "reschedule", "re schedule", "change", "change time", "change date", "change day", "another time",
    "another day", "another date", "different time", "different day", "different date", "other time",
    "other day", "change the time", "change the date", "change the day", "new time", "new date", "postpone",
    "move", "later", "can i reschedule", "can we reschedule",
    "can i change", "3",
    "تأجيل", "اجله", "اجلها", "اجلوا", "اجلو", "ابي اجل", "ابغى اجل", "اريد اجل", "ودي اجل", "اجل الموعد",
    "غير الموعد", "غيروا الموعد", "اغير الموعد", "ابي اغير", "ابغى اغير", "اغير", "تغيير الموعد", "تغيير",
    "تعديل الموعد", "تعديل", "عدل الموعد", "موعد ثاني", "موعد آخر", "موعد جديد", "وقت ثاني", "وقت آخر",
    "يوم ثاني", "يوم آخر", "بدل الموعد", "تبديل الموعد", "نقل الموعد", "انقل الموعد",
    "ممكن اغير الموعد", "ممكن نغير الموعد", "ممكن موعد ثاني", "ممكن اجل الموعد",
)
_FILLERS = (
    "please", "pls", "plz", "sorry", "thanks", "thank you", "thankyou", "thx", "ty", "hi", "hello", "dear", "i", "it",
    "my", "the", "appointment", "want to", "would like to", "id like to", "need to", "wanna",
    "شكرا", "شكرا لك", "شكرا لكم", "مشكور", "مشكورين", "يعطيك العافيه", "الله يعطيك العافيه",
    "لو سمحت", "لو سمحتي", "من فضلك", "مرحبا", "اسف", "اسفه", "السلام عليكم", "هلا", "اهلا", "ابي", "ابغى",
    "اريد", "ودي",
    "الموعد", "موعدي", "الحجز", "والله",  # not "موعد": "اي موعد" asks "which appointment"
    # "ان شاء الله" (God willing) is filler, never an answer: in Saudi usage it is said as often
    # to soften a "maybe" or to end a conversation politely as to promise to come, so on its own it
    # says nothing about the appointment ("بجي ان شاء الله" still confirms through "بجي").
    "ان شاء الله", "انشاء الله", "انشالله", "ان شاءالله", "inshallah", "insha allah", "in sha allah",
    "inshaallah",
)

# Carriers' keywords (one table: app.reply_lint's) and ours in Arabic; each is a whole message.
STOP_WORDS = frozenset(normalise(w) for w in (
    *OPT_OUT_KEYWORDS, "opt-out", "توقف", "إيقاف", "ايقاف", "الغاء", "إلغاء", "الغاء الاشتراك", "إلغاء الاشتراك"))
START_WORDS = frozenset(normalise(w) for w in (*OPT_IN_KEYWORDS, "ابدأ", "ابدا", "بدء", "اشتراك"))


def _table(groups: Iterable[tuple[str, Iterable[str]]]) -> dict[tuple[str, ...], str]:
    table: dict[tuple[str, ...], str] = {}
    for meaning, phrases in groups:
        for phrase in phrases:
            words = tuple(normalise(phrase).split())
            if table.get(words, meaning) != meaning:
                raise ValueError(f"'{phrase}' is listed with two meanings")
            table[words] = meaning
    return table


_PHRASES = _table([
    (ReplyIntent.CONFIRM.value, _CONFIRM), (ReplyIntent.CANCEL.value, _CANCEL),
    (ReplyIntent.RESCHEDULE.value, _RESCHEDULE), (_FILLER, _FILLERS), (_AJAL, ("اجل",)),
])
_LONGEST = max(len(words) for words in _PHRASES)
_KNOWN = {word for words in _PHRASES for word in words}
_BY_SQUEEZED: dict[str, str] = {}
for _word in sorted(_KNOWN, key=lambda w: (_squeezed(w) != w, w)):  # a word written single wins
    _BY_SQUEEZED.setdefault(_squeezed(_word), _word)


def _known(word: str) -> str:
    return word if word in _KNOWN else _BY_SQUEEZED.get(_squeezed(word), word)


# -- reading ----------------------------------------------------------------------------------------


def keyword(body: str) -> ReplyIntent | None:
    """STOP or START when the whole message is an opt-out or opt-in keyword (as carriers read it)."""
    text = normalise(body)
    if text in STOP_WORDS:
        return ReplyIntent.STOP
    if text in START_WORDS:
        return ReplyIntent.START
    return None


def _phrases(body: str) -> ReplyIntent:
    """The one intent the text's phrases share, or UNCLEAR (see the module docstring)."""
    words = [_known(word) for word in normalise(body).split()]
    found: set[str] = set()
    position = 0
    while position < len(words):
        for size in range(min(_LONGEST, len(words) - position), 0, -1):
            meaning = _PHRASES.get(tuple(words[position:position + size]))
            if meaning is not None:
                break
        else:
            return ReplyIntent.UNCLEAR  # a word outside the vocabulary: never guess around it
        if meaning == _AJAL:
            if not _POSTPONE_SHADDA.search(body):
                return ReplyIntent.UNCLEAR
            meaning = ReplyIntent.RESCHEDULE.value
        if meaning != _FILLER:
            found.add(meaning)
        position += size
    return ReplyIntent(found.pop()) if len(found) == 1 else ReplyIntent.UNCLEAR


def _answers(intent: ReplyIntent) -> bool:
    return intent in (ReplyIntent.CONFIRM, ReplyIntent.CANCEL)


def classify(body: str, button_payload: str = "", *, awaiting_answer: bool = True) -> ReplyIntent:
    """What the reply asks for. ``awaiting_answer``: an appointment of the sender awaits an answer,
    so CANCEL / الغاء / YES answer it instead of opting out or in (see the module docstring)."""
    by_button = BUTTON_PAYLOADS.get((button_payload or "").strip().upper())
    if by_button is not None:
        return by_button
    word = keyword(body)
    phrases = _phrases(body)
    if word is not None and not (awaiting_answer and _answers(phrases)):
        return word  # an opt-out or opt-in, even asked as a question ("STOP?"), as carriers read it
    return ReplyIntent.UNCLEAR if _QUESTION.search(body or "") else phrases

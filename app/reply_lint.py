"""Reply-wording lint: warnings for template text that asks patients to reply in a way that fails.

Pure (no Streamlit, no database); works on template source text, Jinja placeholders included.

Two checks:

* **One-way SMS.** Saudi A2P SMS is one-way (pre-registered alphanumeric senders): a patient's
  reply never comes back. An SMS template that asks for a reply ("Reply 1 to confirm",
  "للتأكيد أرسل 1", "رد بـ نعم") gets a warning. WhatsApp and e-mail replies do arrive, so only SMS.
  Telling patients *not* to reply ("Do not reply to this message", "يرجى عدم الرد") is fine.
* **Carrier keywords.** Carriers and Twilio treat a single-word reply of STOP, STOPALL, CANCEL,
  END, QUIT, UNSUBSCRIBE, OPTOUT or REVOKE as an opt-out from *all* the sender's SMS, and START,
  YES or UNSTOP as an opt-in they answer themselves. "Reply CANCEL to cancel" therefore
  unsubscribes the patient. The warning is raised for SMS and WhatsApp (a WhatsApp template can
  fall back to SMS with the same words). For e-mail a reply goes to the clinic's mailbox, with
  no carrier in between, so "reply YES" in an e-mail is fine; only an instruction to *text* or
  *SMS* a keyword ("Text CANCEL to 0501234567") is warned about in an e-mail.

  A keyword counts when it is asked for as the reply word: after "reply / text / send / respond
  with / answer / type" (or Arabic "رد / أرسل / الرد بـ"), case-insensitive; or when it is
  quoted or written in capitals (in a text that is not all capitals) as an instruction: followed
  by "to …" / "for …" ("… or CANCEL to cancel"), or in a sentence that asks for a reply.
  "Reply STOP to opt out" is the keyword's intended use and is not warned about as a keyword
  (it still gets the one-way warning on SMS, since Saudi replies do not arrive).
"""

from __future__ import annotations

import re
import unicodedata

from db.enums import Channel, Language

__all__ = ["ONE_WAY_SMS", "OPT_IN_KEYWORDS", "OPT_OUT_KEYWORDS", "reply_warnings"]

OPT_OUT_KEYWORDS = ("STOP", "STOPALL", "CANCEL", "END", "QUIT", "UNSUBSCRIBE", "OPTOUT", "REVOKE")
OPT_IN_KEYWORDS = ("YES", "START", "UNSTOP")

ONE_WAY_SMS = ("SMS in Saudi Arabia is one-way: patients cannot reply to it. Ask them to confirm by "
               "WhatsApp, a link or a call instead.")


def _opt_out_message(keyword: str) -> str:
    return (f"Replying {keyword} unsubscribes the patient from all your SMS (carriers treat it as an "
            "opt-out keyword). Suggest a digit (reply 2) or a WhatsApp button instead.")


def _opt_in_message(keyword: str) -> str:
    return (f"{keyword} is an opt-in keyword that carriers handle themselves (like YES and START): "
            "the reply may never reach you. Use a digit (reply 1) or a WhatsApp button instead.")


# -- normalising the source -----------------------------------------------------------------------

# Jinja comments vanish; statements and expressions (and single-brace {name}) become a neutral
# token: a digit, so "Reply {{ choice }}" still reads as "reply <something>" and no letter is added.
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_JINJA_STATEMENT = re.compile(r"\{%.*?%\}", re.DOTALL)
_JINJA_EXPRESSION = re.compile(r"\{\{.*?\}\}|\{\s*[A-Za-z_]\w*\s*\}", re.DOTALL)
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")  # harakat, tatweel
_ALEFS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا"})


def _normalise(source: str) -> str:
    text = _JINJA_COMMENT.sub("", source)
    text = _JINJA_STATEMENT.sub(" ", text)
    text = _JINJA_EXPRESSION.sub(" 0 ", text)
    text = unicodedata.normalize("NFC", text)
    text = _ARABIC_MARKS.sub("", text).translate(_ALEFS)
    return text.replace("\u2019", "'").replace("\u2018", "'")


_SENTENCE_END = re.compile(r"[.!?؟\n;؛]")


def _sentence_around(text: str, start: int, end: int) -> str:
    left = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
    right_match = _SENTENCE_END.search(text, end)
    return text[left:right_match.start() if right_match else len(text)]


# -- one-way SMS: does the text ask for a reply? --------------------------------------------------

_QUOTED = r"""(?:["'«“][^"'»”\n]{1,20}["'»”])"""
# A one-word answer ends the clause or is followed by "to/for/if/or": "Text 1 to confirm", not "send 2 reminders".
_ANSWER_END = r"(?=\s*(?:$|[.,;:!?)]|\b(?i:to|for|if|or)\b))"
_ANSWER = (r"(?:\d{1,3}|" + _QUOTED + r"|(?!(?:SMS|MMS|OTP|PDF|SMSes)\b)[A-Z]{2,})" + _ANSWER_END)

_ENGLISH_REPLY = [
    re.compile(r"\brepl(?:y|ying)\b", re.IGNORECASE),
    re.compile(r"\b(?:text|txt|sms|message)\s+(?:us\s+)?back\b", re.IGNORECASE),
    re.compile(r"\brespond(?:ing)?\s+(?:with|by|to\s+this|to\s+the\s+(?:message|text|sms))\b", re.IGNORECASE),
    re.compile(r"\bplease\s+respond\b", re.IGNORECASE),
    re.compile(r"\banswer(?:ing)?\s+(?:with|by)\b", re.IGNORECASE),
    re.compile(r"\bsend\s+us\b(?!\s+(?:an?\s+)?(?:e-?mail|whats\s?app))", re.IGNORECASE),
    # "Text 1 to confirm", "Text YES", "send 2.", "send 'ok'": a verb then a one-word answer.
    re.compile(rf"\b(?i:text|txt|send|sms|answer)\s+{_ANSWER}"),
]
# "do not reply", "no-reply", "never reply", "in reply to", "no need to reply", "you don't have to reply";
# but "don't forget to reply" asks for one.
_ENGLISH_NEGATION = re.compile(
    r"(?:\bnot|n't|\bno|\bnever|\bcannot|\bwithout)[\s-]+(?!forget\b)(?:\w+\s+)?$"
    r"|\bin\s+$|(?:\bno|n't|\bnot)\s+(?:need|have)\s+to\s+$",
    re.IGNORECASE,
)
_NO_REPLY_ADDRESS = re.compile(r"no-?\s?reply", re.IGNORECASE)

# Arabic (after dropping harakat and tatweel and writing every alef as ا).
_AR_WORD_END = r"(?!\w)"
_AR_ANSWER = (r"(?:\d{1,3}|[٠-٩]{1,3}|[A-Za-z]{2,}|" + _QUOTED + r"|نعم|لا|موافق|اوافق|الغاء|"
              r"(?:ال)?رقم\s*(?:\d|[٠-٩])|كلمة|كلمه)" + _AR_WORD_END)
_AR_OBJECT = r"(?:" + _AR_ANSWER + r"|(?:لنا|الينا)" + _AR_WORD_END + r")"
_ARABIC_REPLY = [
    # رد بـ نعم / رد بنعم / رد 1 / ردي ب 2 / رد على هذه الرسالة
    re.compile(rf"(?<!\w)(?:رد|ردي|ردوا)(?!\w)\s*(?:ب\s*{_AR_ANSWER}|{_AR_ANSWER}|على\s+(?:هذه|هذا))"),
    # الرد بـ 1 / بالرد ب نعم / للرد برقم 1
    re.compile(rf"(?<!\w)(?:ب|و|ل)?(?:ال|ل)رد(?!\w)\s*ب\s*{_AR_ANSWER}"),
    # (يرجى) الرد على هذه الرسالة; not "للرد على هذه الرسالة اتصل بنا" (to answer it, call us)
    re.compile(r"(?<!\w)(?:ب|و)?الرد(?!\w)\s*على\s+(?:هذه|هذا|الرساله|الرسالة)"),
    re.compile(r"(?<!\w)(?:يرجى|الرجاء|نرجو|برجاء|نامل)\s+(?:منك(?:م)?\s+)?الرد(?!\w)"),
    # أرسل 1 / ارسل نعم / أرسلي "1" / أرسل لنا
    re.compile(rf"(?<!\w)[وف]?(?:ارسل|ارسلي|ارسلوا)\s+{_AR_OBJECT}"),
    re.compile(rf"(?<!\w)(?:ب|ل)?ارسال\s+(?:\d{{1,3}}|[٠-٩]{{1,3}}|{_QUOTED}|نعم|لا)(?!\w)"),
]
_ARABIC_NEGATION = re.compile(r"(?:(?<!\w)(?:عدم|لا|لن|دون|بدون|غير)\s+(?:\w+\s+){0,1})$")


def _asks_for_reply(text: str, language: Language | None) -> bool:
    for pattern in _ENGLISH_REPLY:  # every text: Arabic texts often carry English words
        for match in pattern.finditer(text):
            before = text[max(0, match.start() - 30):match.start()]
            if _ENGLISH_NEGATION.search(before) or _NO_REPLY_ADDRESS.search(text, max(0, match.start() - 3),
                                                                          match.end()):
                continue
            return True
    if language in (None, Language.AR):
        for pattern in _ARABIC_REPLY:
            for match in pattern.finditer(text):
                before = text[max(0, match.start() - 30):match.start()]
                if _ARABIC_NEGATION.search(before):
                    continue
                return True
    return False


# -- carrier keywords -----------------------------------------------------------------------------

_KEYWORDS = OPT_OUT_KEYWORDS + OPT_IN_KEYWORDS
_KEYWORD = r"(?P<keyword>" + "|".join(_KEYWORDS) + r")"
# Between the verb and the keyword: "with", "back", "us", "the word", "by sending", a colon, quotes.
_FILLER = (r"""(?:\s*(?:\b(?:with|back|us|the\s+word|by\s+sending|by\s+texting|only|just)\b|"""
           r"""[:\-–—"'«»“”]))*\s*""")
_REPLY_VERBS = r"(?:repl(?:y|ying)|text(?:ing)?|txt|sms|send(?:ing)?|respond(?:ing)?|answer(?:ing)?)"
_TEXT_VERBS = r"(?:text(?:ing)?|txt|sms|send(?:ing)?\s+(?:an?\s+)?(?:sms|text)(?:\s+message)?)"
_ARABIC_VERBS = r"(?:(?:رد|ردي|ردوا|[وف]?(?:ارسل|ارسلي|ارسلوا))|(?:ب|و|ل)?(?:ال|ل)رد|(?:ب|ل)?ارسال)(?!\w)"
_ARABIC_FILLER = r"""(?:\s*(?:ب|بكلمة|بكلمه|كلمة|كلمه|لنا|[:\-–—"'«»“”]))*\s*"""

_KEYWORD_AFTER_VERB = re.compile(
    rf"(?:\b{_REPLY_VERBS}\b|(?<!\w){_ARABIC_VERBS}){_FILLER}{_ARABIC_FILLER}\b{_KEYWORD}\b", re.IGNORECASE)
_KEYWORD_AFTER_TEXT_VERB = re.compile(rf"\b{_TEXT_VERBS}\b{_FILLER}\b{_KEYWORD}\b", re.IGNORECASE)
_KEYWORD_ANYWHERE = re.compile(rf"\b{_KEYWORD}\b", re.IGNORECASE)
_INSTRUCTION_AFTER = re.compile(r"""["'»”]?\s*(?:to|for)\b""", re.IGNORECASE)
_ASKS_IN_SENTENCE = re.compile(rf"\b{_REPLY_VERBS}\b|(?<!\w){_ARABIC_VERBS}(?!\w)", re.IGNORECASE)
_OPT_OUT_PURPOSE = re.compile(
    r"""^["'»”]?\s*(?:to|for)\s+(?:opt[\s-]?out|unsubscribe|stop\s+(?:receiving|all|these|this|our|messages|texts|sms))"""
    r"""|^["'»”]?\s*لالغاء\s+الاشتراك""",
    re.IGNORECASE,
)


def _quoted_at(text: str, start: int, end: int) -> bool:
    return start > 0 and text[start - 1] in "\"'«“" and end < len(text) and text[end] in "\"'»”"


def _keywords_asked(text: str, email: bool) -> list[str]:
    """The carrier keywords the text asks patients to send, in order of first appearance."""
    found: dict[str, int] = {}
    # Capitals mark a keyword unless the whole text shouts (no lower case and many capitals).
    shouting = not any(c.islower() for c in text) and sum(c.isupper() for c in text) > 12

    def add(keyword: str, position: int) -> None:
        keyword = keyword.upper()
        if keyword not in found:
            found[keyword] = position

    def intended_opt_out(keyword: str, end: int) -> bool:
        return keyword.upper() in OPT_OUT_KEYWORDS and bool(_OPT_OUT_PURPOSE.search(text[end:end + 60]))

    verb_pattern = _KEYWORD_AFTER_TEXT_VERB if email else _KEYWORD_AFTER_VERB
    for match in verb_pattern.finditer(text):
        if not intended_opt_out(match["keyword"], match.end()):
            add(match["keyword"], match.start("keyword"))
    if not email:
        for match in _KEYWORD_ANYWHERE.finditer(text):
            word = match["keyword"]
            start, end = match.span()
            quoted = _quoted_at(text, start, end)
            if not (quoted or (word.isupper() and not shouting)) or intended_opt_out(word, end):
                continue
            # "… or CANCEL to cancel"; a quoted keyword also counts in a sentence that asks for a reply.
            if _INSTRUCTION_AFTER.match(text, end) or (
                    quoted and _ASKS_IN_SENTENCE.search(_sentence_around(text, start, end))):
                add(word, start)
    return sorted(found, key=found.__getitem__)


# -- the API --------------------------------------------------------------------------------------


def reply_warnings(body: str, channel: Channel | str, *, language: Language | str | None = None) -> list[str]:
    """Plain-words warnings about how ``body`` asks patients to reply on ``channel``; [] when fine.

    ``language`` narrows the phrase patterns: English text is checked for English phrasing only,
    Arabic text for Arabic and English phrasing (Arabic texts often quote English words);
    ``None`` checks both. Never raises for odd text.
    """
    channel = Channel.parse(channel)
    language = Language(language) if language is not None else None
    if not body or not body.strip():
        return []
    text = _normalise(body)
    warnings: list[str] = []
    if channel == Channel.SMS and _asks_for_reply(text, language):
        warnings.append(ONE_WAY_SMS)
    for keyword in _keywords_asked(text, email=channel == Channel.EMAIL):
        warnings.append(_opt_out_message(keyword) if keyword in OPT_OUT_KEYWORDS else _opt_in_message(keyword))
    return warnings

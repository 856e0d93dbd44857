"""The rules a template's text must follow, and the live checks the editor shows while typing.

Pure (no database): what a message class means (``class_rules``), the documented variables and
their sample values, ``check_body`` for the editor's counter and preview, and
``validate_content``, which refuses a save with a ``ValidationError`` whose ``field`` names the
offending form field. A promotional template may not use the patient's clinical details
(``CLINICAL_VARIABLES``).
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app import pricing
from app.bidi import direction_marks
from app.config import Settings, get_settings
from app.errors import ValidationError
from app.reply_lint import reply_warnings
from app.segments import count_segments
from app.services.message_content import CHANNEL_BODY_LIMITS, STANDARD_VARIABLES
from app.templating import TEMPLATE_CONSTRUCT, TemplateRenderError, compile_template, convert_single_braces
from db.enums import Channel, Language, MessageClass

MAX_SUBJECT_CHARS = 300
CUSTOM_SAMPLE_VALUE = "sample"

CONTENT_FIELDS = ("subject_en", "body_en", "subject_ar", "body_ar")
# Variables that carry a patient's clinical details, refused in promotional templates (PDPL:
# health data is sensitive; an advertising or awareness message must not reveal anyone's care).
# Clinical: what the patient has or had done — diagnosis or condition, tests and their results,
# medication, procedures — and who or which service treats them (``doctor_name`` and
# ``department`` of the next appointment: "Oncology" or a psychiatrist's name discloses the
# condition). Not clinical: the patient's name and the appointment's date and time (personal
# data, but they say nothing about the care), and the clinic's own name and phone. Names are
# compared case-insensitively, so a custom ``Diagnosis`` is refused too.
CLINICAL_VARIABLES = frozenset({
    "diagnosis", "condition", "test_name", "lab_test", "lab_result", "result", "test_result",
    "medication", "prescription", "procedure", "treatment", "doctor_name", "department",
})
FIELD_LABELS = {
    "subject_en": "English subject", "body_en": "English text",
    "subject_ar": "Arabic subject", "body_ar": "Arabic text",
}


def class_rules(message_class: MessageClass | str, channel: Channel | str,
                settings: Settings | None = None, *, window: tuple[dt.time, dt.time] | None = None) -> list[str]:
    """What choosing this class means for the messages, in the editor's words; ``window`` is the
    clinic's promotional window (``Tenant.promotional_window``; without it the one a new clinic gets)."""
    opens, closes = window or (settings or get_settings()).promotional_window()
    start, end = opens.strftime("%H:%M"), closes.strftime("%H:%M")
    if MessageClass(message_class) == MessageClass.SERVICE:
        return ["Sent at any time of day; a patient's own quiet hours delay it unless it is marked urgent.",
                "No promotional consent is needed; opt-outs of the channel still apply."]
    rules = [f"Sent only between {start} and {end} clinic time; outside the window messages wait (urgent does not "
             "bypass it).",
             "Only patients who gave promotional consent receive it; the others are skipped.",
             "Clinical details are refused in the text: " + ", ".join(sorted(CLINICAL_VARIABLES)) + "."]
    if Channel(channel) == Channel.SMS:
        rules.append("SMS to Saudi numbers goes out under the clinic's sender ending in -AD (Settings); without "
                     "one it is refused before sending.")
    return rules


# -- plain data returned to pages ------------------------------------------------------------


@dataclass(frozen=True)
class VariableInfo:
    name: str
    meaning: str
    example_en: str
    example_ar: str

@dataclass(frozen=True)
class UnknownVariable:
    name: str
    suggestion: str | None

    @property
    def message(self) -> str:
        hint = f" Did you mean '{self.suggestion}'?" if self.suggestion else ""
        return f"Unknown variable '{self.name}'.{hint}"


@dataclass(frozen=True)
class BodyCheck:
    """What the live editor shows under a text box."""

    channel: Channel
    language: Language
    characters: int  # of the preview when it renders, else of the text as typed
    limit: int
    over_limit: bool
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    per_segment: int
    non_gsm_chars: tuple[str, ...]
    stray_characters_hint: str | None
    estimated_cost: float  # per message, in ``currency``
    currency: str
    variables: tuple[str, ...]
    unknown_variables: tuple[UnknownVariable, ...]
    preview: str
    error: str | None  # the syntax or render problem, in plain words
    # How the text asks patients to reply, when that fails (app.reply_lint): warnings, not refusals.
    reply_warnings: tuple[str, ...] = ()
    # Marks added so numbers keep their order inside Arabic text (app.bidi): counted in the length.
    direction_marks: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.unknown_variables and not self.over_limit


# -- variables and sample data ---------------------------------------------------------------


def variable_reference() -> list[VariableInfo]:
    """The documented variables (name, meaning, English and Arabic example) for the editor."""
    return [VariableInfo(name, meaning, *_split_example(example))
            for name, (meaning, example) in STANDARD_VARIABLES.items()]


def variable_reference_markdown() -> str:
    """The table in docs/template-variables.md, generated from ``STANDARD_VARIABLES``."""
    lines = ["| variable | meaning | example (English) | example (Arabic) |", "|---|---|---|---|"]
    for info in variable_reference():
        lines.append(f"| `{info.name}` | {info.meaning} | {info.example_en} | {info.example_ar} |")
    return "\n".join(lines) + "\n"


def _split_example(example: str) -> tuple[str, str]:
    english, _, arabic = example.partition(" / ")
    return english, arabic or english


def sample_values(language: Language | str = Language.EN, custom_variables: Iterable[str] = (),
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Sample data for previews: the documented examples in ``language``, then ``overrides``."""
    arabic = Language(language) == Language.AR
    values: dict[str, Any] = {
        info.name: info.example_ar if arabic else info.example_en for info in variable_reference()
    }
    values.update({name: CUSTOM_SAMPLE_VALUE for name in custom_variables if name not in values})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return values


def used_variables(source: str) -> frozenset[str]:
    """The variables ``source`` uses; a ``ValidationError`` when it does not compile."""
    return compile_template(source).variables


def _unknown(used: Iterable[str], known: Iterable[str]) -> tuple[UnknownVariable, ...]:
    known_list = sorted(set(known))
    return tuple(
        UnknownVariable(name, next(iter(difflib.get_close_matches(name, known_list, n=1, cutoff=0.6)), None))
        for name in sorted(set(used) - set(known_list))
    )


def _check_braces(source: str) -> None:
    rest = TEMPLATE_CONSTRUCT.sub("", convert_single_braces(source))
    if "{" in rest or "}" in rest:
        brace = "{" if "{" in rest else "}"
        raise TemplateRenderError(
            f"The text has a '{brace}' without its partner. Write a variable as {{{{ patient_name }}}} "
            "or {patient_name}."
        )


# -- the live editor: pure checks -------------------------------------------------------------


def check_body(
    channel: Channel | str,
    body: str,
    *,
    language: Language | str = Language.EN,
    custom_variables: Iterable[str] = (),
    sample_values_override: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> BodyCheck:
    """Everything the editor shows while typing: segments, length, cost, variables, preview.

    Never raises for a bad body: problems come back in ``error`` and ``unknown_variables``.
    """
    channel = Channel.parse(channel)
    language = Language(language)
    settings = settings or get_settings()
    custom = tuple(custom_variables)
    error: str | None = None
    used: frozenset[str] = frozenset()
    unknown: tuple[UnknownVariable, ...] = ()
    preview = ""
    try:
        used = used_variables(body)
        _check_braces(body)
        unknown = _unknown(used, [*STANDARD_VARIABLES, *custom])
        values = sample_values(language, [*custom, *(u.name for u in unknown)], sample_values_override)
        preview = compile_template(body).render(values)
    except ValidationError as exc:
        error = str(exc)
    counted = preview if error is None else body
    info = count_segments(counted)
    limit = CHANNEL_BODY_LIMITS[channel]
    return BodyCheck(
        channel=channel, language=language, characters=len(counted), limit=limit,
        over_limit=len(counted) > limit, encoding=info.encoding, segments=info.segments,
        per_segment=info.per_segment, non_gsm_chars=info.non_gsm_chars,
        stray_characters_hint=info.stray_characters_hint,
        estimated_cost=pricing.estimate(channel, segments=pricing.segments(channel, counted),
                                        messages=1 if counted.strip() else 0, settings=settings),
        currency=settings.price_currency,
        variables=tuple(sorted(used)), unknown_variables=unknown, preview=preview, error=error,
        reply_warnings=tuple(reply_warnings(body, channel, language=language)),
        direction_marks=direction_marks(preview) if error is None else 0,
    )


# -- refusing a save ---------------------------------------------------------------------------


def _validate_text(field: str, source: str, channel: Channel, language: Language,
                   known: Iterable[str], *, limit: int) -> None:
    """Refuse a body or subject that does not compile, uses unknown variables, or is too long."""
    label = FIELD_LABELS[field]
    try:
        used = used_variables(source)
        _check_braces(source)
    except ValidationError as exc:
        raise ValidationError(f"{label}: {exc}", field=field) from None
    unknown = _unknown(used, known)
    try:  # render with sample data first: a sandbox escape is reported as such, not as a name
        rendered = compile_template(source).render(
            sample_values(language, [*known, *(u.name for u in unknown)]))
    except ValidationError as exc:
        raise ValidationError(f"{label}: {exc}", field=field) from None
    if unknown:
        raise ValidationError(f"{label}: " + " ".join(u.message for u in unknown), field=field)
    if len(rendered) > limit:
        raise ValidationError(
            f"{label} is {len(rendered):,} characters with sample data; {channel.label} allows at most "
            f"{limit:,}.", field=field,
        )


@dataclass(frozen=True)
class Content:
    """The four texts a version holds (stripped), as one value to validate and save."""

    body_en: str
    body_ar: str
    subject_en: str
    subject_ar: str


def _refuse_clinical(content: Content) -> None:
    """A promotional template may not use ``CLINICAL_VARIABLES`` (checked after the text compiles)."""
    for field in ("body_en", "body_ar", "subject_en", "subject_ar"):
        source = getattr(content, field)
        if not source.strip():
            continue
        clinical = sorted(name for name in used_variables(source) if name.lower() in CLINICAL_VARIABLES)
        if clinical:
            names = ", ".join(clinical)
            braces = " and ".join(f"{{{{ {name} }}}}" for name in clinical)
            raise ValidationError(
                f"Promotional messages may not include clinical details ({names}). Remove {braces} "
                "or make this a service template.", field=field,
            )


def validate_content(content: Content, channel: Channel, known: Iterable[str],
                     message_class: MessageClass = MessageClass.SERVICE) -> None:
    """Refuse content that cannot be saved as a whole: an empty English text, an e-mail without a
    subject, a subject outside e-mail, a text that does not compile, uses a variable not in
    ``known`` or is too long, and clinical details in a promotional template."""
    known = tuple(known)
    if not content.body_en.strip():
        raise ValidationError("The English text is empty.", field="body_en")
    if channel == Channel.EMAIL and not content.subject_en.strip():
        raise ValidationError("An e-mail needs an English subject.", field="subject_en")
    limit = CHANNEL_BODY_LIMITS[channel]
    _validate_text("body_en", content.body_en, channel, Language.EN, known, limit=limit)
    if content.body_ar.strip():
        _validate_text("body_ar", content.body_ar, channel, Language.AR, known, limit=limit)
    for field, language in (("subject_en", Language.EN), ("subject_ar", Language.AR)):
        subject = getattr(content, field)
        if subject.strip():
            if channel != Channel.EMAIL:
                raise ValidationError(f"Only e-mail has a subject; {channel.label} does not.", field=field)
            _validate_text(field, subject, channel, language, known, limit=MAX_SUBJECT_CHARS)
    if message_class == MessageClass.PROMOTIONAL:
        _refuse_clinical(content)

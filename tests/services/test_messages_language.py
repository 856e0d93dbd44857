"""Which language messages to a patient use (review 19b, point 4): the notification preference's, else
the patient record's; one rule (``message_content.preferred_language``) that sending and the Patients
page both read."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from app.services.message_content import choose_language, preferred_language
from app.services.patients import PatientSummary, Preferences, messages_language
from db.enums import Language


def _patient(language: Language) -> PatientSummary:
    return PatientSummary(uuid.uuid4(), "MRN-1", "Sara Ali", "سارة علي", None, None, language)


def test_the_preference_wins_over_the_record() -> None:
    assert preferred_language(Language.AR, Language.EN) == Language.AR
    assert preferred_language(None, Language.EN) == Language.EN
    assert preferred_language("ar", None) == Language.AR and preferred_language(None, None) is None


def test_the_patients_page_says_which_language_and_why() -> None:
    prefers_arabic = Preferences(language=Language.AR)
    assert messages_language(_patient(Language.EN), prefers_arabic) == "Arabic (patient's preference)"
    assert messages_language(_patient(Language.AR), Preferences()) == "Arabic (as on the patient record)"
    assert messages_language(_patient(Language.EN), Preferences()) == "English (as on the patient record)"


def test_sending_picks_the_same_language() -> None:
    tenant = SimpleNamespace(default_language="en")
    for preferred, record in ((Language.AR, Language.EN), (None, Language.AR), (Language.EN, Language.AR)):
        chosen = choose_language(preference=SimpleNamespace(language=preferred), patient=SimpleNamespace(
            language=record), tenant=tenant, has_arabic_body=True)  # type: ignore[arg-type]
        assert chosen.language == preferred_language(preferred, record)
    assert choose_language(preference=None, patient=None, tenant=SimpleNamespace(default_language="ar"),  # type: ignore[arg-type]
                           has_arabic_body=True).language == Language.AR

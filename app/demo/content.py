"""The demo's fixed content: clinics, staff logins, names, doctors and message templates.

Names are common Saudi/Arab first and family names with their Arabic spelling. Template bodies
use only the standard variables (``{{ patient_name }}``, ``{{ appointment_date }}``, ...) and
never ask a patient to reply with a keyword.
"""

from __future__ import annotations

from dataclasses import dataclass

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - the published password of the demo logins


@dataclass(frozen=True)
class DemoClinic:
    slug: str
    name: str
    name_ar: str
    default_language: str
    phone: str
    mrn_prefix: str
    email_domain: str
    login_prefix: str
    staff: tuple[tuple[str, str, str], ...]  # (username suffix, role, display name)
    doctors: tuple[tuple[str, str, str], ...]  # (name EN, name AR, department)


CLINICS: tuple[DemoClinic, ...] = (
    DemoClinic(
        slug="alnoor", name="Al Noor Clinic", name_ar="عيادة النور", default_language="en",
        phone="+966114567890", mrn_prefix="ALN", email_domain="alnoor.example.com", login_prefix="alnoor",
        staff=(("admin", "admin", "Huda Al-Harbi"), ("frontdesk", "front_desk", "Reem Al-Saleh"),
               ("analyst", "analyst", "Omar Al-Jaber")),
        doctors=(
            ("Dr. Ahmed Al-Harbi", "د. أحمد الحربي", "Family Medicine"),
            ("Dr. Sara Al-Otaibi", "د. سارة العتيبي", "Pediatrics"),
            ("Dr. Lama Al-Qahtani", "د. لمى القحطاني", "Obstetrics & Gynecology"),
            ("Dr. Khalid Al-Ghamdi", "د. خالد الغامدي", "Internal Medicine"),
            ("Dr. Faisal Al-Shehri", "د. فيصل الشهري", "Cardiology"),
            ("Dr. Noura Al-Dosari", "د. نورة الدوسري", "Endocrinology"),
            ("Dr. Omar Al-Zahrani", "د. عمر الزهراني", "Pulmonology"),
            ("Dr. Reem Al-Mutairi", "د. ريم المطيري", "Dermatology"),
        ),
    ),
    DemoClinic(
        slug="riyadh-family", name="Riyadh Family Care", name_ar="رعاية الأسرة بالرياض", default_language="ar",
        phone="+966112223344", mrn_prefix="RFC", email_domain="riyadhfamily.example.com", login_prefix="riyadh",
        staff=(("admin", "admin", "Khalid Al-Dosari"), ("frontdesk", "front_desk", "Noura Al-Shammari"),
               ("analyst", "analyst", "Faisal Al-Malki")),
        doctors=(
            ("Dr. Hassan Al-Shammari", "د. حسن الشمري", "Family Medicine"),
            ("Dr. Maryam Al-Anazi", "د. مريم العنزي", "Pediatrics"),
            ("Dr. Hind Al-Subaie", "د. هند السبيعي", "Obstetrics & Gynecology"),
            ("Dr. Yousef Al-Malki", "د. يوسف المالكي", "Internal Medicine"),
            ("Dr. Sultan Al-Juhani", "د. سلطان الجهني", "Cardiology"),
            ("Dr. Amal Al-Rashidi", "د. أمل الرشيدي", "Endocrinology"),
            ("Dr. Nawaf Al-Yami", "د. نواف اليامي", "Pulmonology"),
            ("Dr. Dana Al-Tamimi", "د. دانة التميمي", "Dental"),
        ),
    ),
)

DEMO_LOGINS: list[tuple[str, str, str, str]] = [
    (c.slug, f"{c.login_prefix}.{suffix}", DEMO_PASSWORD, role) for c in CLINICS for suffix, role, _ in c.staff
]
"""(clinic slug, username, password, role) of every demo staff login."""

DEPARTMENTS_AR = {
    "Family Medicine": "طب الأسرة",
    "Pediatrics": "طب الأطفال",
    "Obstetrics & Gynecology": "النساء والولادة",
    "Internal Medicine": "الباطنة",
    "Cardiology": "القلب",
    "Endocrinology": "الغدد الصماء والسكري",
    "Pulmonology": "الأمراض الصدرية",
    "Dermatology": "الجلدية",
    "Dental": "الأسنان",
}

# Which department looks after a patient with this tag (first matching tag wins).
TAG_DEPARTMENT = (
    ("pediatrics", "Pediatrics"),
    ("prenatal", "Obstetrics & Gynecology"),
    ("diabetes", "Endocrinology"),
    ("cardiology", "Cardiology"),
    ("hypertension", "Internal Medicine"),
    ("asthma", "Pulmonology"),
)

MALE_FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("Mohammed", "محمد"), ("Ahmed", "أحمد"), ("Abdullah", "عبدالله"), ("Abdulrahman", "عبدالرحمن"),
    ("Khalid", "خالد"), ("Faisal", "فيصل"), ("Saud", "سعود"), ("Fahad", "فهد"), ("Sultan", "سلطان"),
    ("Turki", "تركي"), ("Nasser", "ناصر"), ("Omar", "عمر"), ("Ali", "علي"), ("Hassan", "حسن"),
    ("Hussein", "حسين"), ("Ibrahim", "إبراهيم"), ("Yousef", "يوسف"), ("Saleh", "صالح"), ("Majed", "ماجد"),
    ("Bandar", "بندر"), ("Nawaf", "نواف"), ("Mansour", "منصور"), ("Abdulaziz", "عبدالعزيز"), ("Talal", "طلال"),
    ("Rayan", "ريان"), ("Ziyad", "زياد"), ("Hamad", "حمد"), ("Meshal", "مشعل"), ("Waleed", "وليد"),
    ("Badr", "بدر"), ("Osama", "أسامة"), ("Tariq", "طارق"),
)
FEMALE_FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("Fatimah", "فاطمة"), ("Noura", "نورة"), ("Sara", "سارة"), ("Aisha", "عائشة"), ("Maryam", "مريم"),
    ("Reem", "ريم"), ("Hessa", "حصة"), ("Lama", "لمى"), ("Haifa", "هيفاء"), ("Amal", "أمل"), ("Mona", "منى"),
    ("Hind", "هند"), ("Lulwa", "لولوة"), ("Dana", "دانة"), ("Jawaher", "جواهر"), ("Abeer", "عبير"),
    ("Shahad", "شهد"), ("Razan", "رزان"), ("Wejdan", "وجدان"), ("Nouf", "نوف"), ("Ghada", "غادة"),
    ("Huda", "هدى"), ("Layla", "ليلى"), ("Asma", "أسماء"), ("Bashayer", "بشاير"), ("Khadijah", "خديجة"),
    ("Rahaf", "رهف"), ("Latifa", "لطيفة"), ("Munira", "منيرة"), ("Alanoud", "العنود"), ("Joud", "جود"),
    ("Salma", "سلمى"),
)
FAMILY_NAMES: tuple[tuple[str, str], ...] = (
    ("Al-Qahtani", "القحطاني"), ("Al-Otaibi", "العتيبي"), ("Al-Ghamdi", "الغامدي"), ("Al-Zahrani", "الزهراني"),
    ("Al-Shehri", "الشهري"), ("Al-Dosari", "الدوسري"), ("Al-Harbi", "الحربي"), ("Al-Mutairi", "المطيري"),
    ("Al-Anazi", "العنزي"), ("Al-Shammari", "الشمري"), ("Al-Subaie", "السبيعي"), ("Al-Malki", "المالكي"),
    ("Al-Omari", "العمري"), ("Al-Juhani", "الجهني"), ("Al-Rashidi", "الرشيدي"), ("Al-Asmari", "الأسمري"),
    ("Al-Yami", "اليامي"), ("Al-Balawi", "البلوي"), ("Al-Faifi", "الفيفي"), ("Al-Tamimi", "التميمي"),
    ("Al-Sulaiman", "السليمان"), ("Al-Rasheed", "الرشيد"), ("Al-Khaldi", "الخالدي"), ("Al-Sharif", "الشريف"),
    ("Al-Hazmi", "الحازمي"), ("Al-Sahli", "السهلي"), ("Al-Ahmari", "الأحمري"), ("Al-Bishi", "البيشي"),
    ("Al-Qarni", "القرني"), ("Al-Shahrani", "الشهراني"), ("Al-Hamdan", "الحمدان"), ("Al-Jaber", "الجابر"),
    ("Al-Mansour", "المنصور"), ("Al-Fahad", "الفهد"), ("Al-Nasser", "الناصر"), ("Al-Saleh", "الصالح"),
    ("Al-Ali", "العلي"), ("Al-Hussaini", "الحسيني"), ("Al-Baqami", "البقمي"), ("Al-Thubaiti", "الثبيتي"),
    ("Al-Mohaimeed", "المحيميد"), ("Al-Othman", "العثمان"), ("Al-Sudairi", "السديري"), ("Al-Muhanna", "المهنا"),
    ("Al-Qurashi", "القرشي"), ("Al-Najjar", "النجار"), ("Al-Hakami", "الحكمي"), ("Al-Ruwaili", "الرويلي"),
    ("Al-Khathami", "الخثعمي"), ("Al-Mousa", "الموسى"), ("Al-Turki", "التركي"), ("Al-Kathiri", "الكثيري"),
    ("Al-Attas", "العطاس"), ("Al-Bakri", "البكري"), ("Al-Ajmi", "العجمي"), ("Al-Mahmoud", "المحمود"),
    ("Al-Hajri", "الهاجري"), ("Al-Marri", "المري"), ("Al-Dawood", "الداود"), ("Al-Zamil", "الزامل"),
)

# Mobile prefixes of the Saudi operators (05X); 0579 is only valid as 05790/05791.
MOBILE_PREFIXES = ("50", "53", "54", "55", "56", "57", "58", "59")
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # reserved: never a real mailbox


@dataclass(frozen=True)
class DemoTemplate:
    code: str
    name: str
    description: str
    channel: str
    message_class: str
    body_en: str
    body_ar: str
    subject_en: str = ""
    subject_ar: str = ""
    fallback_channel: str | None = None
    whatsapp_approved: bool = False  # linked to a Content template WhatsApp approved (variables in body order)
    automatic: bool = False  # sent by the app itself (reminders, acknowledgements), not by a staff member


TEMPLATES: tuple[DemoTemplate, ...] = (
    DemoTemplate(
        code="appointment_reminder", name="Appointment reminder", channel="sms", message_class="service",
        description="Sent before an appointment (the reminder rule 'SMS 3 h before').", automatic=True,
        body_en=(
            "Hi {{ patient_name }}, your appointment with {{ doctor_name }} is on {{ appointment_date }} "
            "at {{ appointment_time }}. {{ clinic_name }}, {{ clinic_phone }}"
        ),
        body_ar=(
            "{{ patient_name }}، نذكركم بموعدكم مع {{ doctor_name }} يوم {{ appointment_date }} الساعة "
            "{{ appointment_time }}. {{ clinic_name }}، هاتف {{ clinic_phone }}"
        ),
    ),
    DemoTemplate(
        code="appointment_confirmation", name="Appointment confirmation", channel="whatsapp",
        message_class="service", fallback_channel="sms", automatic=True,
        description="Sent when an appointment is booked, and when a patient confirms one by reply.",
        body_en=(
            "Hello {{ patient_name }}, your appointment at {{ clinic_name }} is confirmed.\n"
            "Doctor: {{ doctor_name }} ({{ department }})\n"
            "Date: {{ appointment_date }} at {{ appointment_time }}\n"
            "Please arrive 15 minutes early. To change the time, call us on {{ clinic_phone }}."
        ),
        body_ar=(
            "مرحباً {{ patient_name }}، تم تأكيد موعدكم في {{ clinic_name }}.\n"
            "الطبيب: {{ doctor_name }} ({{ department }})\n"
            "التاريخ: {{ appointment_date }} الساعة {{ appointment_time }}\n"
            "يرجى الحضور قبل الموعد بخمس عشرة دقيقة. لتغيير الموعد اتصلوا بنا على {{ clinic_phone }}."
        ),
    ),
    DemoTemplate(
        code="appointment_cancellation", name="Appointment cancellation", channel="sms", message_class="service",
        description="Sent when the clinic cancels an appointment.",
        body_en=(
            "{{ patient_name }}, we are sorry: your appointment with {{ doctor_name }} on {{ appointment_date }} "
            "at {{ appointment_time }} is cancelled. To book a new time call {{ clinic_phone }}. {{ clinic_name }}"
        ),
        body_ar=(
            "{{ patient_name }}، نعتذر عن إلغاء موعدكم مع {{ doctor_name }} يوم {{ appointment_date }} الساعة "
            "{{ appointment_time }}. لحجز موعد جديد اتصلوا على {{ clinic_phone }}. {{ clinic_name }}"
        ),
    ),
    DemoTemplate(
        code="lab_results_ready", name="Lab results ready", channel="sms", message_class="service",
        description="Tells the patient that results can be collected or discussed.",
        body_en=(
            "{{ patient_name }}, your lab results from {{ department }} are ready. Please call {{ clinic_name }} "
            "on {{ clinic_phone }} or ask at reception on your next visit."
        ),
        body_ar=(
            "{{ patient_name }}، نتائج تحاليلكم من قسم {{ department }} جاهزة. يرجى التواصل مع {{ clinic_name }} "
            "على {{ clinic_phone }} أو مراجعة الاستقبال في زيارتكم القادمة."
        ),
    ),
    DemoTemplate(
        code="vaccination_due", name="Vaccination due", channel="whatsapp", message_class="service",
        fallback_channel="sms",
        description="Vaccination campaigns (children, chronic conditions).",
        body_en=(
            "Hello {{ patient_name }}, according to your records at {{ clinic_name }} a vaccination is now due. "
            "Please call {{ clinic_phone }} to book a convenient time with {{ department }}."
        ),
        body_ar=(
            "مرحباً {{ patient_name }}، حسب سجلكم لدى {{ clinic_name }} حان موعد التطعيم. "
            "يرجى الاتصال على {{ clinic_phone }} لحجز موعد مناسب في قسم {{ department }}."
        ),
    ),
    DemoTemplate(
        code="holiday_hours", name="Holiday opening hours", channel="email", message_class="promotional",
        description="Clinic news for patients who agreed to receive it.",
        subject_en="{{ clinic_name }}: opening hours during the holiday",
        subject_ar="{{ clinic_name }}: مواعيد العمل خلال الإجازة",
        body_en=(
            "Dear {{ patient_name }},\n\n"
            "During the coming public holiday {{ clinic_name }} will be open from 9:00 AM to 1:00 PM. "
            "Regular hours resume on the first working day after the holiday. "
            "For anything urgent, call us on {{ clinic_phone }}.\n\n"
            "We wish you and your family a happy holiday.\n"
            "{{ clinic_name }}\n\n"
            "You receive this e-mail because you agreed to hear about clinic news. "
            "To stop these e-mails, tell our reception team."
        ),
        body_ar=(
            "السلام عليكم {{ patient_name }}،\n\n"
            "خلال الإجازة الرسمية القادمة ستعمل {{ clinic_name }} من الساعة التاسعة صباحاً حتى الواحدة ظهراً، "
            "وتعود ساعات العمل المعتادة في أول يوم عمل بعد الإجازة. "
            "للحالات العاجلة اتصلوا بنا على {{ clinic_phone }}.\n\n"
            "مع أطيب التمنيات لكم ولأسرتكم بإجازة سعيدة.\n"
            "{{ clinic_name }}\n\n"
            "تصلكم هذه الرسالة لأنكم وافقتم على استلام أخبار العيادة. "
            "لإيقافها يرجى إبلاغ موظفي الاستقبال."
        ),
    ),
    # Reminders and replies (issue 20): the WhatsApp reminder patients answer, and the acknowledgement of a
    # cancellation by reply (a confirmation is acknowledged with ``appointment_confirmation``).
    DemoTemplate(
        code="appointment_reminder_whatsapp", name="Appointment reminder (WhatsApp)", channel="whatsapp",
        message_class="service", fallback_channel="sms", whatsapp_approved=True, automatic=True,
        description="The reminder rule 'WhatsApp 24 h before'; patients answer it.",
        body_en=(
            "Hello {{ patient_name }}, a reminder of your appointment with {{ doctor_name }} at {{ clinic_name }} "
            "on {{ appointment_date }} at {{ appointment_time }}.\n"
            "Reply 1 to confirm, 2 to cancel or 3 to change the time."
        ),
        body_ar=(
            "مرحباً {{ patient_name }}، نذكركم بموعدكم مع {{ doctor_name }} في {{ clinic_name }} يوم "
            "{{ appointment_date }} الساعة {{ appointment_time }}.\n"
            "للتأكيد أرسلوا 1، وللإلغاء 2، ولتغيير الموعد 3."
        ),
    ),
    DemoTemplate(
        code="appointment_cancelled_by_reply", name="Cancellation received", channel="whatsapp",
        message_class="service", automatic=True,
        description="Answers a patient who cancelled by replying to a reminder.",
        body_en=(
            "{{ patient_name }}, your appointment with {{ doctor_name }} on {{ appointment_date }} at "
            "{{ appointment_time }} is cancelled as you asked. To book another time call {{ clinic_phone }}. "
            "{{ clinic_name }}"
        ),
        body_ar=(
            "{{ patient_name }}، تم إلغاء موعدكم مع {{ doctor_name }} يوم {{ appointment_date }} الساعة "
            "{{ appointment_time }} بناءً على طلبكم. لحجز موعد آخر اتصلوا على {{ clinic_phone }}. {{ clinic_name }}"
        ),
    ),
)


@dataclass(frozen=True)
class DemoRule:
    """A reminder rule each demo clinic has (created through ``reminders.rules.create_rule``)."""

    name: str
    channel: str
    template_code: str
    offset_minutes: int
    confirm_ack_code: str | None = None
    cancel_ack_code: str | None = None


REMINDER_RULES: tuple[DemoRule, ...] = (
    DemoRule("WhatsApp 24 h before", "whatsapp", "appointment_reminder_whatsapp", 24 * 60,
             confirm_ack_code="appointment_confirmation", cancel_ack_code="appointment_cancelled_by_reply"),
    # Saudi A2P SMS is one-way (app.reply_lint): the SMS reminder asks for no answer and acknowledges none.
    DemoRule("SMS 3 h before", "sms", "appointment_reminder", 3 * 60),
)

# Appointment types as the clinics' systems name them: (type, weight), and more per department.
APPOINTMENT_TYPES: tuple[tuple[str, int], ...] = (
    ("Follow-up", 45), ("Consultation", 20), ("New patient", 15), ("Check-up", 10),
)
DEPARTMENT_APPOINTMENT_TYPES: dict[str, tuple[tuple[str, int], ...]] = {
    "Pediatrics": (("Vaccination", 40), ("Well-child visit", 20)),
    "Obstetrics & Gynecology": (("Prenatal visit", 50),),
    "Dental": (("Dental cleaning", 35),),
    "Endocrinology": (("Diabetes review", 35),),
    "Cardiology": (("ECG", 15),),
}

# Patients' answers to the WhatsApp reminder, as they write them (each is read by
# ``app.services.replies.intents.classify`` as the intent it is listed under; a test holds it so).
# A quick-reply button: (payload, English text, Arabic text).
REPLY_BUTTONS: dict[str, tuple[str, str, str]] = {
    "confirm": ("CONFIRM", "Confirm", "تأكيد"),
    "cancel": ("CANCEL", "Cancel", "إلغاء"),
    "reschedule": ("RESCHEDULE", "Change time", "تغيير الموعد"),
}
REPLY_TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "confirm": {
        "en": ("1", "Yes", "yes please", "Ok thank you", "Confirmed", "I will be there", "Yes, see you tomorrow",
               "ok 👍"),
        "ar": ("1", "١", "نعم", "تمام", "اكيد", "نعم ان شاء الله", "تم التأكيد", "موافق شكرا", "جاي إن شاء الله"),
    },
    "cancel": {
        "en": ("2", "Sorry I cant come", "No", "Please cancel it", "I will not be able to come",
               "sorry, I can't make it"),
        "ar": ("2", "٢", "ما اقدر اجي", "اعتذر عن الحضور", "لن اتمكن من الحضور"),
    },
    "reschedule": {
        "en": ("3", "Can I reschedule please", "Another day please", "I would like to change the time"),
        "ar": ("3", "٣", "ابي اغير الموعد", "ممكن موعد ثاني", "تأجيل لو سمحت"),
    },
    "unclear": {
        "en": ("What time should I arrive?", "Is parking available at the clinic?",
               "Can my wife come instead of me?", "Thanks"),
        "ar": ("كم سعر الكشف؟", "هل الدكتور موجود يوم الخميس؟", "وين موقع العيادة؟", "شكرا"),
    },
}

# A front desk answer typed in the inbox (free text inside WhatsApp's 24 hours); {name}: the patient's name.
STAFF_ANSWERS: dict[str, tuple[str, ...]] = {
    "en": ("Hello {name}, thank you for your message. We will call you today to arrange it.",
           "Hello {name}, no problem. Please tell reception when you arrive.",
           "Hello {name}, we can offer you another time. We will call you shortly."),
    "ar": ("أهلاً {name}، شكراً لرسالتكم. سنتصل بكم اليوم لترتيب ذلك.",
           "أهلاً {name}، لا مشكلة، يرجى إبلاغ الاستقبال عند وصولكم.",
           "أهلاً {name}، يمكننا تحديد موعد آخر لكم. سنتصل بكم قريباً."),
}


@dataclass(frozen=True)
class InboxScene:
    """A thread each demo clinic's inbox shows right now: a patient's reply ``minutes_ago``, what the
    front desk did with it (``how``: unread, assigned, answered, done) and from whom (a patient of the
    clinic writing in ``language``, or a number no patient has)."""

    key: str
    language: str
    body: str
    minutes_ago: int
    how: str = "unread"  # unread | assigned | answered | done
    unknown_number: bool = False
    handled_after_minutes: int = 0  # answered / done: that long after the reply
    answer: str = ""  # answered: the front desk's text ({name}: the patient's name)


INBOX_SCENES: tuple[InboxScene, ...] = (
    InboxScene("reschedule_en", "en", "I would like to change the time please", 25),
    InboxScene("reschedule_ar", "ar", "ممكن موعد ثاني لو سمحت", 70),
    InboxScene("question_ar_digits", "ar", "هل ممكن اجي الساعة ١١:٣٠ بدل ٩:٠٠؟", 170),
    InboxScene("assigned_en", "en", "My son has a fever since yesterday, can the doctor see him earlier?", 240,
               how="assigned"),
    InboxScene("unknown_number", "en",
               "Hello, I got a reminder from this number but I have no appointment. Who is this?", 50,
               unknown_number=True),
    InboxScene("answered_ar", "ar", "ممكن اتأخر ربع ساعة؟", 300, how="answered", handled_after_minutes=12,
               answer="أهلاً {name}، لا مشكلة، ننتظركم. يرجى إبلاغ الاستقبال عند وصولكم."),
    InboxScene("done_en", "en", "Where can I park?", 26 * 60, how="done", handled_after_minutes=20),
    InboxScene("waiting_ar", "ar", "السلام عليكم، هل تحتاج التحاليل صيام؟", 30 * 60),
)

# Completed bulk sends per clinic: (name, template code, days ago, Riyadh hour, audience tags).
BULK_CAMPAIGNS: tuple[tuple[str, str, int, int, tuple[str, ...]], ...] = (
    ("Public holiday opening hours", "holiday_hours", 78, 10, ()),
    ("Flu vaccination: children", "vaccination_due", 61, 11, ("pediatrics",)),
    ("Long weekend opening hours", "holiday_hours", 44, 9, ()),
    ("Flu vaccination: chronic conditions", "vaccination_due", 30, 10, ("diabetes", "asthma")),
    ("School holiday opening hours", "holiday_hours", 12, 10, ()),
    ("Vaccination follow-up", "vaccination_due", 5, 11, ("pediatrics", "diabetes", "asthma")),
)

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


TEMPLATES: tuple[DemoTemplate, ...] = (
    DemoTemplate(
        code="appointment_reminder", name="Appointment reminder", channel="sms", message_class="service",
        description="Sent the day before an appointment.",
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
        message_class="service", fallback_channel="sms",
        description="Sent when an appointment is booked.",
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

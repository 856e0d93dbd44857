"""Demo data: two clinics with staff logins, patients, templates and 90 days of message history.

The seeder behind ``python -m app seed-demo``: ``seed_demo(engine, messages=None,
patients_per_clinic=2000, seed=7, progress=print)`` creates the clinics "Al Noor Clinic"
(``alnoor``) and "Riyadh Family Care" (``riyadh-family``) with one login per role
(``DEMO_LOGINS``, password ``DEMO_PASSWORD``), patients, appointments (the last 30 days and the
next 14), eight bilingual templates, reminder rules, 90 days of message history, and the reminders,
patients' replies and inbox threads of issue 20 (``app.demo.replies``), unless they already exist
(then ``report.already_present`` is True).
"""

from app.demo.content import DEMO_LOGINS, DEMO_PASSWORD
from app.demo.seeder import SeedReport, seed_demo

__all__ = ["DEMO_LOGINS", "DEMO_PASSWORD", "SeedReport", "seed_demo"]

"""The demo data seeder behind ``python -m app seed-demo`` (implementation in ``app.demo``).

``seed_demo(engine, messages=None, patients_per_clinic=2000, seed=7, progress=print)`` creates
the clinics "Al Noor Clinic" (``alnoor``) and "Riyadh Family Care" (``riyadh-family``) with one
login per role (``DEMO_LOGINS``), patients, appointments, six bilingual templates and 90 days
of message history, unless they already exist (then ``report.already_present`` is True).
"""

from app.demo import DEMO_LOGINS, DEMO_PASSWORD, SeedReport, seed_demo
from app.demo.content import CLINICS

DEMO_CLINIC_SLUGS = [c.slug for c in CLINICS]

__all__ = ["DEMO_CLINIC_SLUGS", "DEMO_LOGINS", "DEMO_PASSWORD", "SeedReport", "seed_demo"]

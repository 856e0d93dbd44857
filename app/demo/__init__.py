"""Demo data: two clinics with staff logins, patients, templates and 90 days of message history."""

from app.demo.content import DEMO_LOGINS, DEMO_PASSWORD
from app.demo.seeder import SeedReport, seed_demo

__all__ = ["DEMO_LOGINS", "DEMO_PASSWORD", "SeedReport", "seed_demo"]

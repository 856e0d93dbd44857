"""The clinic profile through the real delivery path: an e-mail's From shows the sending clinic's
sender name (else its name) on the server's address; the neighbouring clinic's shows its own."""

from __future__ import annotations

import dataclasses
from email.utils import parseaddr

from app.services import clinic_settings, messaging
from tests.factories import call, make_tenant
from tests.neighbours import neighbour_id


def test_an_email_is_from_the_clinics_sender_name(engine, make_runtime, fake_smtp) -> None:
    tenant = make_tenant(engine, "al-noor", "Al Noor Clinic")
    profile = call(engine, tenant, clinic_settings.get_clinic_settings).profile
    call(engine, tenant, clinic_settings.set_profile, dataclasses.replace(profile, email_sender_name="Al Noor Care"))
    runtime, queue = make_runtime(smtp=fake_smtp)
    call(engine, tenant, messaging.send, "email", recipient="sara@example.com", text="Hello", subject="Hi",
         queue=queue)
    call(engine, neighbour_id(engine), messaging.send, "email", recipient="sara@example.com", text="Hello",
         subject="Hi", queue=queue)
    queue.drain(runtime)
    senders = sorted(parseaddr(mail.message["From"]) for mail in fake_smtp.messages)
    assert senders == [("Al Noor Care", "no-reply@clinic.example"), ("Neighbour Clinic", "no-reply@clinic.example")]

"""Patients' replies (issue 20): the inbound SMS and WhatsApp messages that answer reminders.

``intents`` reads what a reply asks for (confirm, cancel, reschedule, opt-out, opt-in, or unclear),
in English and Arabic, without guessing. ``clinic`` finds the clinic a reply is for from the number
it was sent to. ``receive`` stores it on the clinic's patient thread and acts on a clear confirm or
cancel of the appointment awaiting an answer (``acknowledge`` sends the reminder rule's
acknowledgement); everything else waits in the front desk's inbox.
"""

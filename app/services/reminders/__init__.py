"""Appointment reminders that run themselves (issue 20).

- ``calendar``: when a clinic's reminders may go out (working week, sending hours, Ramadan hours,
  public holidays from the ``holidays`` library, the clinic's own closed days); pure, no database.
- ``rules``: the clinic's reminder rules and its calendar, edited by admins (audited).
- ``planner``: one reminder row per (appointment, rule), planned, moved and cancelled as
  appointments, rules and the calendar change; set-based.
- ``dispatch``: the maintenance pass sends the reminders whose time has come, once each.
- ``schedule``: what the screens read (the coming reminders, an appointment's reminders).
"""

"""Bulk sends, one module per step:

- ``audience``: who a bulk send goes to (all patients, tags, appointments, a custom list);
- ``recipients``: reading an uploaded or pasted list of numbers into a custom list;
- ``plan``: each recipient's outcome (language, text, opt-out and consent), shared by the review
  and the expansion;
- ``wizard``: the staff side: the draft, its review (dry run) and the confirm that creates the job;
- ``expansion``: the worker's job: the job's message rows, then their delivery jobs;
- ``jobs``: the jobs list, a job's progress, and pause, resume and cancel.
"""

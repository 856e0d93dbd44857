"""Appointments kept current from the clinic's own system (issue 20).

``records`` is the one upsert both intake paths use (the FHIR API and an upload): appointments
keyed by the clinic system's id, created, changed, cancelled or left alone, every refused input
with its reason. ``upload`` reads a CSV or Excel file into those inputs and shows what they would
do before anything is written; ``listing`` is what the Appointments page reads.
"""

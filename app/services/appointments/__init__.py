"""Appointments kept current from the clinic's own system (the FHIR API or an upload)."""

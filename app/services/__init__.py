"""The service layer: every staff action, checked for role and tenant, audited, Streamlit-free.

Services take a tenant-bound session and the acting staff member (``Actor``) and return plain
data (dataclasses, DataFrames), never live ORM objects.
"""

"""Clinic notification management: the application core (importable without Streamlit)."""

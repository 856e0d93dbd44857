"""Streamlit glue shared by the entry script and the pages.

Only this package, ``app/streamlit_app.py`` and ``pages/`` import ``streamlit``; everything they
show comes from ``app.services``.
"""

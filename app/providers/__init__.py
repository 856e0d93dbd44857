"""Delivery providers behind one small interface (``app.providers.base.Provider``)."""
